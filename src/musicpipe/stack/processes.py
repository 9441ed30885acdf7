"""Background processes of the stack, tracked by PID file and stopped by process group.

Each service runs in its own session (``start_new_session``), so stopping it signals the whole
group: a SIGTERM to a parent alone would orphan its children (Airflow's workers, Spark's JVM).
The PID file also records the process's start time, so a recycled PID is never mistaken for ours.

The state folder holds Airflow's login and database and every saved object: it is the stack's
user's alone. Services start with umask 077, so what they and their children (Airflow's
workers, Spark) create is 600 / 700; ``make_private`` fixes a folder written before that rule.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PRIVATE_UMASK = 0o077


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


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; it only waits for its parent to reap it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return True


@dataclass
class ManagedProcess:
    """One named service of the stack: its PID file and log file live in the state folder."""

    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pids" / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def record(self) -> dict | None:
        try:
            return json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        """The PID if the recorded process is still ours and alive, else None."""
        rec = self.record()
        if not rec:
            return None
        pid = int(rec["pid"])
        if not _alive(pid) or start_ticks(pid) != rec.get("start_ticks"):
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
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
                env=env,
                cwd=cwd,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        record = {
            "pid": proc.pid,
            "start_ticks": start_ticks(proc.pid),
            "cmd": cmd,
            "started_at": time.time(),
        }
        self.pid_file.write_text(json.dumps(record))
        return proc.pid

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM the process group, wait, then SIGKILL. True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            pgid = None
        self._signal(pid, pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._group_alive(pid, pgid):
            time.sleep(0.1)
        if self._group_alive(pid, pgid):
            self._signal(pid, pgid, signal.SIGKILL)
            while self._group_alive(pid, pgid) and time.monotonic() < deadline + 5:
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal(pid: int, pgid: int | None, sig: int) -> None:
        try:
            if pgid is not None and pgid == pid:
                os.killpg(pgid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    @staticmethod
    def _group_alive(pid: int, pgid: int | None) -> bool:
        if pgid is None or pgid != pid:
            return _alive(pid)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        # killpg succeeds while zombies of the group wait to be reaped; check members.
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == pgid and _alive(int(entry.name)):
                        return True
                except (ProcessLookupError, PermissionError):
                    continue
        return False

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def uptime(self) -> float | None:
        rec = self.record()
        return time.time() - rec["started_at"] if rec and self.is_running() else None
