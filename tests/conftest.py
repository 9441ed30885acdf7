"""Shared fixtures: an isolated state folder and ports, and a real moto server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

# The private stack of musicpipe's own pytest plugin (docs/developing-jobs.md), used here too.
from musicpipe.testing import isolated_env, started_stack

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"


@pytest.fixture
def stack_env(tmp_path, monkeypatch) -> dict[str, str]:
    """A private state folder and ports, applied to this process and returned for children."""
    env = isolated_env(tmp_path / "state")
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return env


def run_cli(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    check: bool = False,
    timeout: float = 300,
):
    """Run the real CLI in a child process, as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "musicpipe.cli", *args],
        env={**env, "COLUMNS": "200"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"musicpipe {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


GLUE_MINUTE_SECONDS = 3  # a Glue Timeout "minute" in the session's emulator


@contextmanager
def local_spark(app: str):
    """A one-core local SparkSession in UTC, without its UI, stopped when the block ends."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName(app)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    try:
        yield session
    finally:
        session.stop()


@contextmanager
def cpu_load(workers: int | None = None):
    """Busy loops, one per core by default, to play a loaded laptop; stopped by process group
    when the block ends, also when it fails."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(workers or os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """One embedded stack (moto + the Glue emulator, no Airflow) for the session, started and
    stopped by the stack code itself."""
    env = isolated_env(tmp_path_factory.mktemp("stack-state"))
    env["MUSICPIPE_GLUE_MINUTE_SECONDS"] = str(GLUE_MINUTE_SECONDS)
    with started_stack(env) as stack:
        stack.test_env = env  # type: ignore[attr-defined]  # for tests that restart a part
        yield stack


@pytest.fixture
def aws(local_stack):
    """The session's moto server, reset to empty before the test."""
    import urllib.request

    endpoint = local_stack.settings.aws_endpoint
    req = urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    return local_stack.aws


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    # A SIGTERM (`timeout`, a CI runner stopping the job) becomes what Ctrl-C is: pytest then
    # runs the fixtures' teardown, so the stacks the tests started are stopped, not orphaned.
    signal.signal(signal.SIGTERM, _interrupted)


def as_from_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: a test run started in the background (CI's `&`)
    ignores SIGINT, and a child that inherits that would never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
