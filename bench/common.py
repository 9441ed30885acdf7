"""Shared pieces of the benchmarks: a private stack, result output in the benchmark-action
format (a JSON list of {"name", "unit", "value"}) under bench-results/."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from musicpipe.glue.model import ACTIVE_STATES, JobRunState
from musicpipe.manifest import load_manifest
from musicpipe.stack.embedded import EmbeddedStack
from musicpipe.stack.preflight import free_ports
from musicpipe.stack.settings import load_settings

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"


def _exit_on_sigterm(signum, frame):
    # Turn `kill` into an exception, so the `finally` below still stops the stack.
    raise SystemExit(128 + signum)


@contextmanager
def private_stack(airflow: bool = False):
    """An embedded stack on free ports with its own state (with Airflow or without), stopped
    whatever happens (an exception, Ctrl-C or a SIGTERM)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="musicpipe-bench-") as state:
        aws, glue, airflow_port = free_ports(3)
        os.environ.update(
            MUSICPIPE_STATE_DIR=state,
            MUSICPIPE_AWS_PORT=str(aws),
            MUSICPIPE_GLUE_PORT=str(glue),
            MUSICPIPE_AIRFLOW_PORT=str(airflow_port),
            MUSICPIPE_AIRFLOW=str(airflow).lower(),
        )
        stack = EmbeddedStack(load_settings(), load_manifest())
        try:
            stack.up(fresh=True)
            yield stack
        finally:
            stack.down(save=False)


def write_results(name: str, figures: list[dict]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path


def timed_run(glue, job: str, arguments: dict[str, str] | None = None, poll: float = 0.1) -> float:
    """Seconds from StartJobRun to SUCCEEDED; any other end stops the benchmark with its error."""
    started = time.perf_counter()
    run_id = glue.start_job_run(JobName=job, Arguments=arguments or {})["JobRunId"]
    while True:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        if run["JobRunState"] not in ACTIVE_STATES:
            break
        time.sleep(poll)
    if run["JobRunState"] != JobRunState.SUCCEEDED:
        raise SystemExit(f"{job} {run['JobRunState']}: {run.get('ErrorMessage')}")
    return time.perf_counter() - started
