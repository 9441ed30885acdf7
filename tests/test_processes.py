"""Stack processes are tracked by PID file and creation time, and stopped with everything they
started: real child processes, through psutil (the same code on Linux and macOS)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil

from musicpipe.processes import TOKEN_ENV, ManagedProcess, create_time, is_alive, token_carriers


def _wait_for_file(path: Path, lines: int = 1, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(x) for x in path.read_text().split()]
            if len(pids) >= lines:
                return pids
        time.sleep(0.05)
    raise AssertionError(f"{path} never had {lines} PIDs")


def _start_with_workers(proc: ManagedProcess, worker: str, count: int = 1):
    """Start ``proc`` as a leader running ``count`` copies of the shell command ``worker`` in
    the background, as a scheduler runs its workers; the leader's PID and the workers'."""
    pid_file = proc.state_dir / f"{proc.name}-workers.pid"
    leader = proc.start(
        ["bash", "-c", f"for i in $(seq {count}); do {worker} & echo $! >> {pid_file}; done; wait"],
        env=dict(os.environ),
    )
    return leader, _wait_for_file(pid_file, lines=count)


def _in_own_session(pid: int, parent_group: int) -> None:
    """Wait until setsid has moved ``pid`` out of ``parent_group``."""
    deadline = time.monotonic() + 10
    while os.getpgid(pid) == parent_group and time.monotonic() < deadline:
        time.sleep(0.05)


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_stop_ends_the_whole_process_group(tmp_path):
    proc = ManagedProcess("sleeper", tmp_path)
    child_file = tmp_path / "child.pid"
    # A parent that starts a child, like Airflow's scheduler and its workers.
    pid = proc.start(
        ["bash", "-c", f"sleep 300 & echo $! > {child_file}; wait"], env=dict(os.environ)
    )
    (child,) = _wait_for_file(child_file)
    assert proc.is_running() and is_alive(child)
    assert proc.stop(timeout=5)
    assert not is_alive(pid) and not is_alive(child)
    assert not proc.pid_file.exists()
    assert not proc.stop()  # stopping twice is harmless


def test_what_a_killed_leader_left_in_its_group_is_stopped(tmp_path):
    """A scheduler killed with -9 leaves its workers in its process group; `down` must still
    end them, although the recorded process is gone."""
    proc = ManagedProcess("scheduler", tmp_path)
    # The workers ignore SIGTERM, as Airflow's task workers were seen to.
    leader, pids = _start_with_workers(proc, "(trap '' TERM; exec sleep 300)", count=2)
    os.kill(leader, signal.SIGKILL)
    assert _gone(leader)
    assert not proc.is_running()  # the recorded process is dead…
    assert all(is_alive(p) for p in pids)  # …its workers are not
    started = time.monotonic()
    assert proc.stop(timeout=1)
    assert all(_gone(p) for p in pids), "SIGTERM-ignoring workers outlived stop()"
    assert time.monotonic() - started < 10


def test_a_child_in_a_session_of_its_own_is_stopped_too(tmp_path):
    """The Glue emulator starts each run in its own session; stop() reaches them as
    descendants, after the parent's grace period."""
    proc = ManagedProcess("emulator", tmp_path)
    run_file = tmp_path / "run.pid"
    proc.start(
        ["bash", "-c", f"setsid sleep 300 & echo $! > {run_file}; wait"], env=dict(os.environ)
    )
    (run,) = _wait_for_file(run_file)
    time.sleep(0.2)  # setsid has exec'd sleep in its new session
    assert os.getpgid(run) != os.getpgid(proc.pid())
    assert proc.stop(timeout=1)
    assert _gone(run)


def test_a_zombie_is_not_running_and_stop_leaves_none(tmp_path):
    proc = ManagedProcess("quick", tmp_path)
    pid = proc.start(["true"], env=dict(os.environ))
    # `true` exits at once. This test process is its parent: until something reaps it (Python's
    # subprocess module may, when another Popen starts) it is a zombie, and either way it is
    # not running.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and is_alive(pid):
        time.sleep(0.05)
    assert not is_alive(pid)
    assert not proc.is_running()
    assert proc.uptime() is None

    # A service whose own child exited unreaped: stop() ends it, and the zombie goes with it.
    holder = ManagedProcess("holder", tmp_path)
    child_file = tmp_path / "child.pid"
    leader = holder.start(
        ["bash", "-c", f"sleep 0.1 & echo $! > {child_file}; exec sleep 300"],
        env=dict(os.environ),
    )
    (child,) = _wait_for_file(child_file)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and is_alive(child):
        time.sleep(0.05)
    assert not is_alive(child) and psutil.pid_exists(child)  # a zombie of `sleep 300`
    assert holder.is_running()
    assert holder.stop(timeout=5)
    assert _gone(leader)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and psutil.pid_exists(child):
        time.sleep(0.05)
    assert not psutil.pid_exists(child), "the zombie was never reaped"


def test_a_recycled_pid_is_not_taken_for_ours(tmp_path):
    proc = ManagedProcess("ghost", tmp_path)
    proc.pid_file.parent.mkdir(parents=True)
    # PID 1 is alive, but it was not created at the recorded time: not our process.
    real = create_time(1)
    assert real is not None
    proc.pid_file.write_text(json.dumps({"pid": 1, "create_time": real + 10, "started_at": 0}))
    assert proc.pid() is None
    assert not proc.stop()
    assert is_alive(1)
    # A record from before creation times (or a broken one) is never ours either.
    proc.pid_file.write_text(json.dumps({"pid": os.getpid(), "start_ticks": 5}))
    assert proc.pid() is None and proc.leftovers() == []
    proc.pid_file.write_text("not json")
    assert proc.pid() is None


def test_log_goes_to_the_state_folder(tmp_path):
    proc = ManagedProcess("echo", tmp_path)
    proc.start(["bash", "-c", "echo hello-from-service"], env=dict(os.environ))
    for _ in range(50):
        if "hello-from-service" in proc.tail():
            break
        time.sleep(0.1)
    assert "hello-from-service" in proc.tail()
    assert proc.log_file == tmp_path / "logs" / "echo.log"


def test_no_proc_filesystem_in_the_package():
    """Process control is psutil's: nothing in src/ reads /proc (macOS has none)."""
    src = Path(__file__).resolve().parents[1] / "src"
    needle = "/" + "proc"
    offenders = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if needle + "/" in p.read_text() or f'"{needle}"' in p.read_text()
    ]
    assert offenders == []


def test_each_child_carries_the_services_token(tmp_path):
    proc = ManagedProcess("tokened", tmp_path)
    _, (child,) = _start_with_workers(proc, "sleep 300")
    try:
        assert psutil.Process(child).environ()[TOKEN_ENV] == proc.token
        assert str(tmp_path.resolve()) in proc.token and proc.token.endswith("::tokened")
        assert {p.pid for p in token_carriers(proc.token)} == {proc.pid(), child}
        # Another service's token is another: stopping one never reaches the other.
        assert ManagedProcess("other", tmp_path).token != proc.token
    finally:
        proc.stop(timeout=1)


def test_starting_again_first_ends_what_the_killed_run_left(tmp_path):
    """`up` after a kill -9 used to overwrite the PID file, and the dead leader's worker (here
    in a session of its own, ignoring SIGTERM) ran on for ever."""
    proc = ManagedProcess("scheduler", tmp_path)
    leader, (worker,) = _start_with_workers(proc, "setsid bash -c \"trap '' TERM; exec sleep 300\"")
    _in_own_session(worker, leader)
    os.kill(leader, signal.SIGKILL)
    assert _gone(leader)
    assert is_alive(worker) and not proc.is_running()
    started = time.monotonic()
    again = proc.start(["sleep", "300"], env=dict(os.environ), grace=1)
    try:
        assert _gone(worker), "the old run's worker outlived the new start"
        assert time.monotonic() - started < 10
        assert proc.pid() == again
    finally:
        proc.stop(timeout=1)


def test_stop_ends_an_orphan_that_no_tree_reaches(tmp_path):
    proc = ManagedProcess("orphaning", tmp_path)
    leader, (orphan,) = _start_with_workers(proc, "setsid sleep 300")
    _in_own_session(orphan, leader)
    os.kill(leader, signal.SIGKILL)
    assert _gone(leader)
    assert os.getpgid(orphan) != leader and psutil.Process(orphan).ppid() != leader
    assert proc.stop(timeout=5)
    assert _gone(orphan)


def test_a_supervisors_stop_leaves_the_services_it_started(tmp_path):
    """The supervisor's children are services with PID files and tokens of their own, stopped
    by `down` in their own order after it."""
    supervisor = ManagedProcess("supervisor", tmp_path, children_are_services=True)
    _, (service,) = _start_with_workers(supervisor, f"{TOKEN_ENV}=another-service setsid sleep 300")
    _in_own_session(service, supervisor.pid())
    try:
        assert supervisor.stop(timeout=5)
        assert not supervisor.is_running()
        assert is_alive(service)
    finally:
        os.kill(service, signal.SIGKILL)
