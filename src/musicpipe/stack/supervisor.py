"""The embedded stack's supervisor: the process `up` starts last and `down` stops first, which
starts again a service that dies, as Compose's ``restart: unless-stopped`` does.

Every quarter second it looks at each service's PID file and process: the Glue emulator and
Airflow's components are restarted after a backoff, up to a limit (stack/supervision.py has the
rules); moto is only watched (its recovery is `up`'s). Each death and restart is a line in its
log (``<state>/logs/supervisor.log``); what it saw is ``<state>/supervision.json``, which
`status` shows. It reaps its children (the services it restarted) and, on Linux, is their
subreaper, so what a restarted service leaves when it dies is reaped here, not left
``<defunct>``.

Run as ``python -m musicpipe.stack.supervisor`` with the environment and folder `up` ran in.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from musicpipe.manifest import load_manifest
from musicpipe.processes import ManagedProcess
from musicpipe.stack.embedded import EmbeddedStack
from musicpipe.stack.settings import load_settings
from musicpipe.stack.supervision import (
    RestartPolicy,
    Watch,
    describe_exit,
    record_death,
    record_restart,
    record_running,
    record_stop,
    restart_due,
    to_document,
)

TICK_S = 0.25
# What a dead service left (a Glue run, a task worker) gets this long after SIGTERM: its
# parent is gone, so nothing is waiting for its result.
LEFTOVER_GRACE_S = 3.0
PR_SET_CHILD_SUBREAPER = 36


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


def become_subreaper() -> bool:
    """Orphans of our descendants are re-parented to us (Linux), so we reap them."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def policy_of(stack: EmbeddedStack) -> RestartPolicy:
    s = stack.settings
    return RestartPolicy(
        backoff_s=s.restart_backoff_seconds,
        max_backoff_s=s.restart_max_backoff_seconds,
        limit=s.restart_limit,
        window_s=s.restart_window_seconds,
    )


class Supervisor:
    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack
        self.policy = policy_of(stack)
        self.started_at = time.time()
        self.stopping = threading.Event()
        self.processes: dict[str, ManagedProcess] = {"moto": stack.moto, "glue": stack.glue}
        self.starters: dict[str, Callable[[], int]] = {"glue": self._start_glue}
        if stack.settings.airflow:
            for component, process in stack.airflow.processes.items():
                self.processes[process.name] = process
                self.starters[process.name] = self._airflow_starter(component)
        self.watches = {name: Watch(name) for name in self.processes}
        self.exits: dict[int, int] = {}  # wait statuses of reaped children, by PID

    def _start_glue(self) -> int:
        stack = self.stack
        return stack.glue.start(stack.glue_command(), stack.service_env(), grace=LEFTOVER_GRACE_S)

    def _airflow_starter(self, component: str) -> Callable[[], int]:
        return lambda: self.stack.airflow.start_component(component, grace=LEFTOVER_GRACE_S)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        log(
            f"supervising {', '.join(self.processes)} (restart after {self.policy.backoff_s:g} s "
            f"doubling to {self.policy.max_backoff_s:g} s, at most {self.policy.limit} restarts "
            f"in {self.policy.window_s:g} s; moto is watched, not restarted)"
        )
        self.write()
        while not self.stopping.is_set():
            if not self.stack.settings.state_dir.is_dir():
                log(f"the state folder {self.stack.settings.state_dir} is gone: stopping")
                break
            try:
                self.tick(time.time())
            except Exception as exc:  # one bad look (a file half written) must not end it
                log(f"error while watching: {type(exc).__name__}: {exc}")
            self.stopping.wait(TICK_S)
        self.reap()
        log("stopped")

    def tick(self, now: float) -> None:
        self.reap()
        changed = False
        for name, process in self.processes.items():
            watch = self.watches[name]
            if process.is_running():
                record_running(watch)
                continue
            rec = process.record()
            if rec is None:  # stopped on purpose, as `restart: unless-stopped` leaves it
                line = record_stop(watch)
                if line:
                    log(line)
                    changed = True
                continue
            if not watch.dead:
                self.reap()  # it may have died since the last reap: its status is ours then
                status = self.exits.pop(int(rec.get("pid", -1)), None)
                log(record_death(watch, self.policy, now, describe_exit(status)))
                changed = True
            elif restart_due(watch, now) and not self.stopping.is_set():
                self.restart(name, now)
                changed = True
        if changed:
            self.write()

    def restart(self, name: str, now: float) -> None:
        watch = self.watches[name]
        try:
            pid = self.starters[name]()
        except Exception as exc:  # counted as a restart; the next tick sees it dead again
            record_restart(watch, now)
            log(f"{name}: restart {watch.restarts} failed: {type(exc).__name__}: {exc}")
            return
        record_restart(watch, now)
        log(
            f"{name} restarted (restart {watch.restarts}), PID {pid}; its log: "
            f"{self.processes[name].log_file}"
        )

    def reap(self) -> None:
        """Collect every child that exited: the services we restarted, and orphans of theirs
        that were re-parented to us."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exits[pid] = status
            for process in self.processes.values():
                if process.popen is not None and process.popen.pid == pid:
                    # Reaped here: its Popen must never wait on that PID again (reuse).
                    process.popen.returncode = os.waitstatus_to_exitcode(status)

    def write(self) -> None:
        """The report `status` reads, replaced atomically."""
        path = self.stack.settings.supervision_file
        doc = to_document(os.getpid(), self.started_at, self.policy, self.watches.values())
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, path)


def main() -> int:
    stack = EmbeddedStack(load_settings(), load_manifest())
    supervisor = Supervisor(stack)

    def stop(signum, frame) -> None:  # SIGTERM from `down` or `up`
        supervisor.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not become_subreaper():
        log("not a subreaper on this system: orphans of restarted services go to init")
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
