"""Background processes of the stack, tracked by PID file and stopped with everything they
started.

Each service runs in its own session (``start_new_session``), so its process group holds what
it forks: Airflow's scheduler and its task workers, the Glue emulator and its Spark JVMs. The
PID file records the process's creation time (psutil's, on Linux and macOS alike), so a recycled
PID is never mistaken for ours.

Stopping reaches every member: the recorded process and whatever is left in its process group
get SIGTERM (the group matters when the leader died first: a scheduler killed with ``kill -9``
leaves its workers running in it); descendants in sessions of their own (a Glue run) are left
to their parent's own shutdown for the grace period; whatever outlives it gets SIGKILL.

A leader killed with ``kill -9`` leaves children that no tree reaches any more: init adopts
them (a Glue run, an Airflow task worker that left the group). So each service gets a token in
its environment, ``MUSICPIPE_PROCESS_TOKEN=<state folder>::<service>``, that every child
inherits; stopping a service, and starting it again, also ends this user's processes carrying
its token (SIGTERM, SIGKILL after the grace period).

The state folder holds Airflow's login and database and every saved object: it is the stack's
user's alone. Services start with umask 077, so what they and their children (Airflow's
workers, Spark) create is 600 / 700; ``make_private`` fixes a folder written before that rule.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

PRIVATE_UMASK = 0o077
TOKEN_ENV = "MUSICPIPE_PROCESS_TOKEN"
# Creation times are floats of seconds; psutil derives them from clock ticks, so two reads of
# the same process may differ in the last digits.
CREATE_TIME_TOLERANCE_S = 0.05


def make_private(folder: Path) -> None:
    """Create ``folder`` (700) and take group and other bits off everything already in it:
    state folders from before this rule had 755 folders and 644 files (airflow.db)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (folder, *folder.rglob("*")):
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue  # gone meanwhile
        if not stat.S_ISLNK(mode) and mode & 0o077:
            path.chmod(stat.S_IMODE(mode) & 0o700)


def create_time(pid: int) -> float | None:
    """When the process was created (seconds since the epoch), or None if there is none."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def is_alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie only waits for its parent to reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True


def same_process(pid: int, created: float | None) -> bool:
    """``pid`` is alive and is the process created at ``created`` (not a recycled PID)."""
    now = create_time(pid)
    return (
        created is not None
        and now is not None
        and abs(now - created) <= CREATE_TIME_TOLERANCE_S
        and is_alive(pid)
    )


def group_members(pgid: int, created_after: float) -> list[psutil.Process]:
    """Live processes of process group ``pgid`` created no earlier than ``created_after`` (a
    group id outlives its leader, and a later group may reuse the number)."""
    members = []
    for proc in psutil.process_iter(["create_time", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.info["create_time"] + CREATE_TIME_TOLERANCE_S < created_after:
                continue
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def process_tree(pid: int, created: float) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """The process started as ``pid`` at ``created`` (if it still runs) with what is left of its
    process group; and apart, their descendants in other groups."""
    group: dict[int, psutil.Process] = {}
    if same_process(pid, created):
        group[pid] = psutil.Process(pid)
    for member in group_members(pid, created):
        group.setdefault(member.pid, member)
    others: dict[int, psutil.Process] = {}
    for proc in group.values():
        try:
            for child in proc.children(recursive=True):
                if child.pid not in group:
                    others.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            continue
    return list(group.values()), list(others.values())


def token_carriers(token: str) -> list[psutil.Process]:
    """This user's live processes (but this one) whose environment carries ``token``."""
    uid, me = os.getuid(), os.getpid()
    found = []
    for proc in psutil.process_iter(["uids", "status"]):
        try:
            if proc.pid == me or proc.info["uids"].real != uid:
                continue
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(TOKEN_ENV) == token:
                found.append(proc)
        except (psutil.Error, OSError, TypeError, AttributeError):
            continue  # gone meanwhile, or not ours to read
    return found


def terminate(group: list[psutil.Process], others: list[psutil.Process], timeout: float) -> None:
    """SIGTERM ``group``, wait up to ``timeout`` s for it and ``others``, SIGKILL what is left
    and wait for it (reaping those that are our own children)."""
    for proc in group:
        _send(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(group + others, timeout=timeout)
    for proc in alive:
        _send(proc, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)


def _send(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass


@dataclass
class ManagedProcess:
    """One named service of the stack: its PID file and log file live in the state folder.

    ``children_are_services``: what it starts are services with PID files of their own (the
    supervisor's restarts), stopped in their own order, so stopping it leaves its descendants
    alone."""

    name: str
    state_dir: Path
    children_are_services: bool = False
    popen: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    @property
    def token(self) -> str:
        """What this service's processes carry in their environment (``TOKEN_ENV``)."""
        return f"{self.state_dir.resolve()}::{self.name}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pids" / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def record(self) -> dict | None:
        try:
            rec = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) and "pid" in rec else None

    def pid(self) -> int | None:
        """The PID if the recorded process is still ours and alive, else None."""
        rec = self.record()
        if not rec:
            return None
        pid = int(rec["pid"])
        return pid if same_process(pid, rec.get("create_time")) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(
        self, cmd: list[str], env: dict[str, str], cwd: Path | None = None, grace: float = 5.0
    ) -> int:
        """Start the service, after ending what an earlier run of it left (workers of a killed
        scheduler, the runs of a killed Glue emulator): overwriting the PID file alone would
        lose them."""
        self.end_leftovers(grace)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} start: {cmd}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**env, TOKEN_ENV: self.token},
                cwd=cwd,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        record = {
            "pid": proc.pid,
            "create_time": create_time(proc.pid),
            "cmd": cmd,
            "started_at": time.time(),
        }
        self.pid_file.write_text(json.dumps(record))
        self.popen = proc  # kept, so that only its parent's waitpid reaps it
        return proc.pid

    def leftovers(self) -> list[psutil.Process]:
        """What still runs of this service: the process, its group, their descendants, and
        whatever else carries its token."""
        group, others = self._tree()
        return group + others

    def _tree(self) -> tuple[list[psutil.Process], list[psutil.Process]]:
        """The process and its group (to SIGTERM), apart from its other descendants (left to
        their parent's shutdown for the grace period); token carriers that no tree reaches any
        more (orphans) join the first list."""
        group: list[psutil.Process] = []
        others: list[psutil.Process] = []
        rec = self.record()
        if rec and rec.get("create_time") is not None:
            group, others = process_tree(int(rec["pid"]), float(rec["create_time"]))
            if self.children_are_services:
                others = []
        seen = {p.pid for p in group + others}
        group += [p for p in token_carriers(self.token) if p.pid not in seen]
        return group, others

    def end_leftovers(self, grace: float) -> bool:
        """End whatever of this service still runs (SIGTERM, SIGKILL after ``grace`` s)."""
        group, others = self._tree()
        if group or others:
            terminate(group, others, grace)
        return bool(group or others)

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM the service and its group, wait, then SIGKILL whatever it started that is
        still there; also what a dead leader left behind. True if something was stopped."""
        stopped = self.end_leftovers(timeout)
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def uptime(self) -> float | None:
        rec = self.record()
        return time.time() - rec["started_at"] if rec and self.is_running() else None


PR_SET_PDEATHSIG = 1
GROUP_STOP_GRACE_SECONDS = 10


def port_is_free(port: int) -> bool:
    """Whether a server could bind ``port`` on loopback now (checked before it is started, so
    a taken port is refused with its number instead of the server's own start error)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def die_with_parent():
    """A ``preexec_fn`` (Linux; None elsewhere): the child gets SIGTERM when the command that
    started it dies, even by kill -9, instead of serving on as an orphan (a program it execs
    keeps the setting). For servers a CLI command runs in the foreground."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, called after it
    return lambda: libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group ``process`` leads, SIGKILL what is left after the grace
    period (a foreground server started with ``start_new_session``)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=GROUP_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; end any member of its group it left.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return


T = TypeVar("T")


class ServerStartError(RuntimeError):
    """A server a command runs in the foreground exited, or did not answer in time; the message
    says so and where its log is."""


def wait_until_answers(
    process: subprocess.Popen, probe: Callable[[], T], what: str, log_file: Path, timeout: float
) -> T:
    """``probe()``'s answer once it gives one (it raises OSError or ValueError until then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-10:])
            raise ServerStartError(
                f"{what} exited with code {process.returncode}; its log ({log_file}) ends:\n{tail}"
            )
        try:
            return probe()
        except (OSError, ValueError):  # urllib's URLError is an OSError
            time.sleep(0.5)
    raise ServerStartError(f"{what} did not answer within {timeout:.0f} s; see {log_file}")


@contextmanager
def one_at_a_time(folder: Path, on_wait: Callable[[], None]) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` itself (created if missing; flock on the folder, so
    no lock file is left behind, and the lock goes with a holder that dies, even by kill -9);
    ``on_wait()`` first says why when another process holds it. For work into a shared cache
    that two processes at once would break: the second waits, then finds it done."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
