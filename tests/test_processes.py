"""Stack processes are tracked by PID file and stopped with their whole process group."""

from __future__ import annotations

import json
import os
import time

from musicpipe.stack.processes import ManagedProcess


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_ends_the_whole_process_group(tmp_path):
    proc = ManagedProcess("sleeper", tmp_path)
    child_file = tmp_path / "child.pid"
    # A parent that starts a child, like Airflow's scheduler and its workers.
    pid = proc.start(
        ["bash", "-c", f"sleep 300 & echo $! > {child_file}; wait"], env=dict(os.environ)
    )
    for _ in range(50):
        if child_file.exists() and child_file.read_text().strip():
            break
        time.sleep(0.1)
    child = int(child_file.read_text())
    assert proc.is_running() and _alive(child)
    assert proc.stop(timeout=5)
    assert not _alive(pid) and not _alive(child)
    assert not proc.pid_file.exists()
    assert not proc.stop()  # stopping twice is harmless


def test_a_recycled_pid_is_not_taken_for_ours(tmp_path):
    proc = ManagedProcess("ghost", tmp_path)
    proc.pid_file.parent.mkdir(parents=True)
    # PID 1 is alive, but it did not start at the recorded time: not our process.
    proc.pid_file.write_text(json.dumps({"pid": 1, "start_ticks": -1, "started_at": 0}))
    assert proc.pid() is None
    assert not proc.stop()


def test_log_goes_to_the_state_folder(tmp_path):
    proc = ManagedProcess("echo", tmp_path)
    proc.start(["bash", "-c", "echo hello-from-service"], env=dict(os.environ))
    for _ in range(50):
        if "hello-from-service" in proc.tail():
            break
        time.sleep(0.1)
    assert "hello-from-service" in proc.tail()
    assert proc.log_file == tmp_path / "logs" / "echo.log"
