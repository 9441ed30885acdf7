"""The embedded stack's supervisor on a real stack (moto, the Glue emulator; no Airflow): a
killed service comes back by itself, the restart limit gives up and says so, moto is left to
`up`, and nothing a killed service started outlives the next start or `down`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from musicpipe.aws.local import LocalAws
from musicpipe.processes import TOKEN_ENV, ManagedProcess, is_alive, token_carriers
from musicpipe.stack.base import GLUE_HEALTH_PATH, http_ok

from ..conftest import isolated_env, run_cli

ROLE = "arn:aws:iam::123456789012:role/musicpipe-glue-job-role"
LOST_RUN = """\
import os, subprocess, time
# A child in a session of its own that ignores SIGTERM, as a Spark JVM or a task worker may.
child = subprocess.Popen(["bash", "-c", {child!r}], start_new_session=True)
with open({pids!r} + ".tmp", "w") as f:
    f.write(f"{{os.getpid()}} {{child.pid}}")
os.replace({pids!r} + ".tmp", {pids!r})
time.sleep(300)
"""


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One embedded stack for the module, with a small restart limit; whatever happens, nothing
    it started outlives it."""
    root = tmp_path_factory.mktemp("supervised")
    env = isolated_env(root / "state")
    env.update(MUSICPIPE_RESTART_LIMIT="2", MUSICPIPE_RESTART_MAX_BACKOFF_SECONDS="2")
    run_cli("up", env=env, cwd=root, check=True)
    yield env | {"root": str(root)}
    run_cli("down", "--no-save", env=env, cwd=root)
    state = Path(env["MUSICPIPE_STATE_DIR"])
    for name in ("supervisor", "glue", "moto"):
        ManagedProcess(name, state).stop(timeout=5)


def cli(stack, *args, check=False):
    env = {k: v for k, v in stack.items() if k != "root"}
    return run_cli(*args, env=env, cwd=Path(stack["root"]), check=check)


def status(stack) -> tuple[int, dict]:
    result = cli(stack, "status", "--json", "--timeout", "10")
    return result.returncode, {s["name"]: s for s in json.loads(result.stdout)["services"]}


def process(stack, name: str) -> ManagedProcess:
    return ManagedProcess(name, Path(stack["MUSICPIPE_STATE_DIR"]))


def kill(stack, name: str) -> int:
    pid = process(stack, name).pid()
    assert pid is not None, f"{name} is not running"
    os.kill(pid, signal.SIGKILL)
    return pid


def glue_back(stack, old_pid: int) -> bool:
    """The emulator runs again as a new process and answers its health check."""
    pid = process(stack, "glue").pid()
    return pid not in (None, old_pid) and http_ok(
        f"http://127.0.0.1:{stack['MUSICPIPE_GLUE_PORT']}{GLUE_HEALTH_PATH}"
    )


def supervision(stack) -> dict:
    """What the supervisor last wrote for `status`."""
    return json.loads(Path(stack["MUSICPIPE_STATE_DIR"], "supervision.json").read_text())


def our_carriers(stack) -> list[psutil.Process]:
    """Every process of this user carrying a token of this stack's state folder."""
    prefix = f"{Path(stack['MUSICPIPE_STATE_DIR']).resolve()}::"
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.environ().get(
                TOKEN_ENV, ""
            ).startswith(prefix):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def start_lost_run(stack, tmp_path, ignore_term=True) -> tuple[object, str, str, list[int]]:
    """A Python shell run that sleeps with a child (that ignores SIGTERM); its and the child's
    PIDs once both run."""
    child = ("trap '' TERM; " if ignore_term else "") + "exec sleep 300"
    aws = LocalAws(f"http://127.0.0.1:{stack['MUSICPIPE_AWS_PORT']}", "us-east-1")
    pids = tmp_path / f"pids-{time.monotonic_ns()}"
    key = f"scripts/{pids.name}.py"
    aws.client("s3").put_object(
        Bucket="musicpipe.artifacts",
        Key=key,
        Body=LOST_RUN.format(pids=str(pids), child=child).encode(),
    )
    glue = aws.client("glue", endpoint=f"http://127.0.0.1:{stack['MUSICPIPE_GLUE_PORT']}")
    job = f"lost-{pids.name}"
    glue.create_job(
        Name=job,
        Role=ROLE,
        Command={
            "Name": "pythonshell",
            "ScriptLocation": f"s3://musicpipe.artifacts/{key}",
            "PythonVersion": "3.9",
        },
    )
    run_id = glue.start_job_run(JobName=job)["JobRunId"]
    wait_for(pids.exists, 60, "the run started its child")
    return glue, job, run_id, [int(p) for p in pids.read_text().split()]


def test_a_killed_glue_emulator_comes_back_and_its_lost_run_fails(stack, tmp_path):
    glue, job, run_id, (run_pid, child_pid) = start_lost_run(stack, tmp_path)
    killed = kill(stack, "glue")
    started = time.monotonic()
    wait_for(lambda: glue_back(stack, killed), 30, "the Glue emulator back and healthy")
    took = time.monotonic() - started
    print(f"Glue emulator healthy again {took:.1f} s after kill -9")
    code, services = status(stack)
    assert code == 0
    assert services["glue (emulator)"]["state"] == "healthy"
    assert services["glue (emulator)"]["restarts"] == 1
    assert services["glue (emulator)"]["last_death"] is not None
    # Started by `up`, whose process has ended: not the supervisor's child.
    assert services["glue (emulator)"]["last_exit"].startswith("unknown")
    assert services["supervisor"]["state"] == "running"
    # The run the dead emulator held is FAILED, as Glue reports a lost run, not RUNNING.
    run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
    assert run["JobRunState"] == "FAILED"
    assert "restarted while this run was in progress" in run["ErrorMessage"]
    # What it ran (and the child that ignored SIGTERM) was ended before the new one started.
    assert not is_alive(run_pid) and not is_alive(child_pid)
    log = process(stack, "supervisor").log_file.read_text()
    assert "glue died" in log and "glue restarted (restart 1)" in log


def test_past_the_restart_limit_it_gives_up_and_up_starts_it_again(stack, tmp_path):
    # Killed again, it is restarted again; as the supervisor's own child, its exit is known
    # and it is reaped (no <defunct> left).
    killed = kill(stack, "glue")
    started = time.monotonic()
    wait_for(lambda: glue_back(stack, killed), 30, "the Glue emulator back a second time")
    print(f"second restart: healthy {time.monotonic() - started:.1f} s after kill -9")
    glue = status(stack)[1]["glue (emulator)"]
    assert glue["restarts"] == 2
    assert glue["last_exit"] == "killed by signal 9 (SIGKILL)"
    supervisor = psutil.Process(process(stack, "supervisor").pid())
    *_, left = start_lost_run(stack, tmp_path, ignore_term=False)
    killed = kill(stack, "glue")
    wait_for(lambda: supervision(stack)["services"]["glue"]["given_up"], 15, "given up")
    code, services = status(stack)
    assert code == 1  # a service is down
    glue = services["glue (emulator)"]
    assert glue["state"] == "stopped" and glue["restarts"] == 2
    assert glue["last_exit"] == "killed by signal 9 (SIGKILL)"
    assert "given up" in glue["note"] and "musicpipe up" in glue["note"]
    assert not psutil.pid_exists(killed), "the supervisor left its dead child <defunct>"
    assert [c for c in supervisor.children() if c.status() == psutil.STATUS_ZOMBIE] == []
    text = cli(stack, "status")
    assert "given up" in text.stdout and "musicpipe up" in text.stdout
    assert all(is_alive(p) for p in left)  # the dead emulator's run and its child

    # `up` starts it again and resets the counts; nothing of the dead one is left.
    cli(stack, "up", check=True)
    code, services = status(stack)
    assert code == 0 and services["glue (emulator)"]["restarts"] == 0
    assert services["supervisor"]["state"] == "running"
    assert not any(is_alive(p) for p in left)
    glue = psutil.Process(process(stack, "glue").pid())
    tree = {glue.pid} | {c.pid for c in glue.children(recursive=True)}
    assert {p.pid for p in token_carriers(process(stack, "glue").token)} <= tree


def test_a_killed_moto_is_not_restarted_and_status_says_run_up(stack):
    kill(stack, "moto")
    wait_for(lambda: supervision(stack)["services"]["moto"]["dead"], 10, "moto seen dead")
    # Twice the first backoff: a restart would have happened by now.
    time.sleep(2)
    assert not process(stack, "moto").is_running()
    code, services = status(stack)
    assert code == 1
    moto = services["aws (moto)"]
    assert moto["state"] == "stopped" and moto["restarts"] == 0
    assert "not restarted" in moto["note"] and "musicpipe up" in moto["note"]
    assert services["glue (emulator)"]["state"] == "healthy"  # the others keep running
    up = cli(stack, "up", check=True)
    assert "unclean stop" in up.stdout
    assert status(stack)[0] == 0


def test_down_leaves_no_process_carrying_a_token(stack):
    """A stand-in for Airflow's scheduler whose workers left its process group, killed with
    -9: the workers are orphans that no process tree reaches, only their token."""
    scheduler = process(stack, "airflow-scheduler")
    workers = Path(stack["root"], "workers")
    scheduler.start(
        ["bash", "-c", f"for i in 1 2; do setsid sleep 300 & echo $! >> {workers}; done; wait"],
        env=dict(os.environ),
    )

    def both_started() -> list[int]:
        pids = [int(p) for p in workers.read_text().split()] if workers.exists() else []
        return pids if len(pids) == 2 else []

    pids = wait_for(both_started, 10, "the workers started")
    leader = scheduler.pid()
    wait_for(lambda: all(os.getpgid(p) != leader for p in pids), 10, "setsid ran")
    os.kill(leader, signal.SIGKILL)
    scheduler.popen.wait()  # this test started it: reap it
    assert all(is_alive(p) for p in pids)
    assert len(our_carriers(stack)) >= 5  # moto, glue, the supervisor, the two workers
    cli(stack, "down", check=True)
    assert our_carriers(stack) == []
    assert not any(is_alive(p) for p in pids)
    assert token_carriers(scheduler.token) == []
