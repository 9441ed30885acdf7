"""The supervisor's rules, as plain functions: which services it restarts, after how long, when
it gives up, and how what it saw is written down for `status`.

Like Compose's ``restart: unless-stopped``, a service that dies is started again (one stopped on
purpose, whose PID file ``stop()`` removed, is not): after a delay
that starts at ``backoff_s`` and doubles with each restart still inside the window, up to
``max_backoff_s``; once ``limit`` restarts fall inside ``window_s`` seconds, the next death is
not followed by a restart (given up until the next `up`). moto is watched but never restarted:
a new moto is empty until its journal is replayed with every writer stopped, which is `up`'s
recovery (stack/recovery.py).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

# The services watched but not restarted, and why (said by `status`).
NOT_RESTARTED = {
    "moto": (
        "not restarted: a restarted AWS (moto) is empty until its journal is replayed with "
        "every writer stopped; run `musicpipe up` (or `make up`) to recover it"
    ),
}
NOT_A_CHILD = "unknown (started by `up`, not by the supervisor, so its exit status is not ours)"


@dataclass(frozen=True)
class RestartPolicy:
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    limit: int = 5
    window_s: float = 600.0


@dataclass
class Watch:
    """What the supervisor knows of one service since it started."""

    name: str
    restart_times: list[float] = field(default_factory=list)
    last_death: float | None = None
    last_exit: str | None = None
    restart_at: float | None = None  # a restart is due then
    given_up: bool = False
    dead: bool = False  # seen dead and handled; a new death is one after it runs again
    stopped: bool = False  # stopped on purpose (its PID file is gone): not restarted

    @property
    def restarts(self) -> int:
        return len(self.restart_times)

    def describe(self) -> str:
        """The supervision of this service, in a few words."""
        if self.stopped:
            return "stopped on purpose, not restarted"
        if self.name in NOT_RESTARTED:
            return "died, not restarted" if self.dead else "watched"
        if self.given_up:
            return f"given up after {self.restarts} restart(s)"
        if self.restart_at is not None:
            return "restart pending"
        return "watched"


def is_restarted(name: str) -> bool:
    return name not in NOT_RESTARTED


def recent(times: Iterable[float], now: float, window_s: float) -> list[float]:
    """The restarts that count against the limit: those in the last ``window_s`` seconds."""
    return [t for t in times if now - t < window_s]


def restart_delay(
    policy: RestartPolicy, restart_times: Sequence[float], now: float
) -> float | None:
    """Seconds to wait before restarting a service that just died, or None: give up (the
    limit of restarts inside the window is reached)."""
    n = len(recent(restart_times, now, policy.window_s))
    if n >= policy.limit:
        return None
    return min(policy.backoff_s * 2**n, policy.max_backoff_s)


def describe_exit(wait_status: int | None) -> str:
    """A waitpid status in words; None when the process was not the supervisor's child."""
    if wait_status is None:
        return NOT_A_CHILD
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        try:
            return f"killed by signal {number} ({signal.Signals(number).name})"
        except ValueError:
            return f"killed by signal {number}"
    if os.WIFEXITED(wait_status):
        return f"exited with code {os.WEXITSTATUS(wait_status)}"
    return f"wait status {wait_status}"


def record_death(watch: Watch, policy: RestartPolicy, now: float, exit_text: str) -> str:
    """A service was found dead: note it, schedule its restart or give up. The log line."""
    watch.dead, watch.last_death, watch.last_exit = True, now, exit_text
    if not is_restarted(watch.name):
        return f"{watch.name} died ({exit_text}); {NOT_RESTARTED[watch.name]}"
    delay = restart_delay(policy, watch.restart_times, now)
    if delay is None:
        watch.given_up, watch.restart_at = True, None
        return (
            f"{watch.name} died ({exit_text}); given up: {policy.limit} restart(s) within "
            f"{policy.window_s:g} s already; run `musicpipe up` once the cause is fixed"
        )
    watch.restart_at = now + delay
    return f"{watch.name} died ({exit_text}); restarting in {delay:g} s"


def record_stop(watch: Watch) -> str | None:
    """The service is not running and has no PID file: someone stopped it (``stop()``), so it
    is left stopped, a pending restart too. The log line, the first time."""
    if watch.stopped:
        return None
    watch.stopped, watch.dead, watch.restart_at = True, False, None
    return f"{watch.name} was stopped on purpose (its PID file is gone): not restarted"


def record_running(watch: Watch) -> None:
    """It runs (restarted here, or started by someone else): a death after this is new."""
    watch.dead, watch.stopped, watch.restart_at = False, False, None


def restart_due(watch: Watch, now: float) -> bool:
    return watch.dead and watch.restart_at is not None and now >= watch.restart_at


def record_restart(watch: Watch, now: float) -> None:
    """The service was started again; a death after this is a new one."""
    watch.restart_times.append(now)
    watch.restart_at, watch.dead = None, False


# -- the file `status` reads -------------------------------------------------------------------
def to_document(pid: int, started_at: float, policy: RestartPolicy, watches: Iterable[Watch]):
    return {
        "pid": pid,
        "started_at": started_at,
        "policy": asdict(policy),
        "services": {
            w.name: {
                "restarts": w.restarts,
                "restart_times": w.restart_times,
                "last_death": w.last_death,
                "last_exit": w.last_exit,
                "given_up": w.given_up,
                "dead": w.dead,
                "stopped": w.stopped,
                "restart_at": w.restart_at,
                "supervision": w.describe(),
            }
            for w in watches
        },
    }


def given_up(document: dict) -> list[str]:
    """The services the supervisor no longer restarts."""
    return sorted(n for n, s in document.get("services", {}).items() if s.get("given_up"))


def supervision_state(running: bool, document: dict | None) -> str:
    """The supervisor's own row: running, given up (on some service) or stopped."""
    if not running:
        return "stopped"
    return "given up" if document and given_up(document) else "running"
