"""A pytest plugin for a team's own Glue jobs: a private local stack and ``run_glue_job``.

Installed with musicpipe and registered as the pytest plugin ``musicpipe`` (an entry point in
pyproject.toml), so a test beside a musicpipe.toml needs no conftest::

    def test_hello(run_glue_job):
        run = run_glue_job("hello_job", {"greeting": "hi"})
        assert run.state == "SUCCEEDED", run.error
        assert "hello hi" in run.output

- ``musicpipe_stack``: one embedded stack (the local AWS and the Glue emulator, no Airflow) for
  the session, on free ports, its state in pytest's temporary folder, with the jobs of
  $MUSICPIPE_CONFIG or of the musicpipe.toml in pytest's root folder; stopped at the end, also
  when a test fails.
- ``run_glue_job(name, arguments=None, timeout=600)``: deploys what changed in the working
  tree (as ``musicpipe job run`` does), starts a run through the Glue API, waits for its end
  and returns a :class:`GlueJobRun`.

The fixtures import the stack only when a test asks for them: loading the plugin into every
pytest run of the environment costs nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CONFIG_FILE = "musicpipe.toml"


def isolated_env(state_dir: Path) -> dict[str, str]:
    """Environment for a stack of its own: own state folder, free ports, no real credentials."""
    from musicpipe.aws.local import CREDENTIAL_VARIABLES
    from musicpipe.stack.preflight import free_ports

    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICPIPE_")}
    for var in CREDENTIAL_VARIABLES + ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(var, None)
    env["MUSICPIPE_STATE_DIR"] = str(state_dir)
    # The embedded stack, also where a Docker engine answers.
    env["MUSICPIPE_STACK"] = "embedded"
    aws, glue, airflow = free_ports(3)
    env["MUSICPIPE_AWS_PORT"] = str(aws)
    env["MUSICPIPE_GLUE_PORT"] = str(glue)
    env["MUSICPIPE_AIRFLOW_PORT"] = str(airflow)
    # Airflow only where a test asks for it: it adds ~40 s to the start.
    env["MUSICPIPE_AIRFLOW"] = "false"
    # No retry timer: only arrivals start runs.
    env["MUSICPIPE_RETRY_TIMER_SECONDS"] = "0"
    return env


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """``env`` in this process's environment for the block (the stack reads settings and
    passes the environment to what it starts), restored afterwards."""
    old = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old)


@contextmanager
def started_stack(env: Mapping[str, str]):
    """An embedded stack configured by ``env``, started fresh and always stopped again (also
    when starting it fails half-way)."""
    from musicpipe.manifest import load_manifest
    from musicpipe.stack.embedded import EmbeddedStack
    from musicpipe.stack.settings import load_settings

    with environment(env):
        stack = EmbeddedStack(load_settings(), load_manifest())
        try:
            stack.up(fresh=True)
        except BaseException:
            stack.down(save=False)
            raise
    try:
        yield stack
    finally:
        stack.down(save=False)


@dataclass(frozen=True)
class GlueJobRun:
    """A finished run as a test sees it: GetJobRun's state and error, and its log lines."""

    job: str
    run_id: str
    state: str
    error: str | None
    duration_s: float | None
    output: list[str]  # the run's output log (the script's stdout), line by line
    error_log: list[str]  # its error log (stderr: tracebacks, Spark's own lines)

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


def run_job(
    stack, name: str, arguments: Mapping[str, object] | None = None, timeout: float = 600.0
) -> GlueJobRun:
    """Deploy what changed, run ``name`` with ``arguments`` (``{"batch_id": "x"}`` is
    ``--batch_id x``) and wait for its end; a run still going after ``timeout`` seconds is
    stopped and the call raises TimeoutError."""
    from musicpipe.stack.job_runs import follow_run, run_duration

    stack.deploy_jobs()
    glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
    args = {(k if k.startswith("--") else f"--{k}"): str(v) for k, v in (arguments or {}).items()}
    run_id = glue.start_job_run(JobName=name, Arguments=args)["JobRunId"]
    lines: dict[str, list[str]] = {"output": [], "error": []}
    deadline = time.monotonic() + timeout

    def sleep_or_give_up(seconds: float) -> None:
        if time.monotonic() > deadline:
            glue.batch_stop_job_run(JobName=name, JobRunIds=[run_id])
            raise TimeoutError(f"{name} run {run_id} still running after {timeout:.0f} s; stopped")
        time.sleep(seconds)

    final = follow_run(
        glue,
        stack.aws.client("logs"),
        name,
        run_id,
        lambda stream, line: lines[stream].append(line),
        sleep=sleep_or_give_up,
    )
    return GlueJobRun(
        job=name,
        run_id=run_id,
        state=str(final["JobRunState"]),
        error=final.get("ErrorMessage"),
        duration_s=run_duration(final),
        output=lines["output"],
        error_log=lines["error"],
    )


def _config_for(rootpath: Path) -> dict[str, str]:
    """MUSICPIPE_CONFIG as the user set it, or the musicpipe.toml of pytest's root folder."""
    explicit = os.environ.get("MUSICPIPE_CONFIG")
    if explicit:
        return {"MUSICPIPE_CONFIG": str(Path(explicit).resolve())}
    found = rootpath / CONFIG_FILE
    return {"MUSICPIPE_CONFIG": str(found)} if found.is_file() else {}


@pytest.fixture(scope="session")
def musicpipe_stack(request, tmp_path_factory):
    """A private embedded stack for the session (see the module's text)."""
    env = isolated_env(tmp_path_factory.mktemp("musicpipe") / "state")
    env.update(_config_for(request.config.rootpath))
    with started_stack(env) as stack:
        yield stack


@pytest.fixture
def run_glue_job(musicpipe_stack) -> Callable[..., GlueJobRun]:
    """``run_glue_job(name, arguments=None, timeout=600)`` on the session's stack."""

    def run(
        name: str, arguments: Mapping[str, object] | None = None, timeout: float = 600.0
    ) -> GlueJobRun:
        return run_job(musicpipe_stack, name, arguments, timeout)

    return run
