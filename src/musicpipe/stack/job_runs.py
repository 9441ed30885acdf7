"""Running a Glue job from the command line: its arguments, a scratch job for a loose script,
following a run's logs live, and a run as a row of `musicpipe job runs`.

Everything goes through the Glue API (StartJobRun, GetJobRun, GetJobRuns) and CloudWatch Logs
(GetLogEvents with ``nextForwardToken``), as a user's own code against AWS would.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from musicpipe.job_specs import GLUEETL, JOB_NAME, GlueJobSpec, build_spec
from musicpipe.manifest import Manifest

ARG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SCRATCH_PREFIX = "scratch_"
TERMINAL_STATES = {"SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR", "EXPIRED"}


class RunUsageError(ValueError):
    """A `job run` argument that cannot be used (a usage error: exit 2)."""


def parse_arguments(pairs: Iterable[str]) -> dict[str, str]:
    """``--arg KEY=VALUE`` options as a run's Arguments: ``batch_id=x`` is ``--batch_id x``."""
    arguments: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not ARG_KEY.match(key):
            raise RunUsageError(
                f"--arg {pair!r}: expected KEY=VALUE with a key of letters, digits, '_', '-' "
                "or '.' (e.g. --arg batch_id=x)"
            )
        arguments[f"--{key}"] = value
    return arguments


def scratch_spec(manifest: Manifest, script: Path) -> GlueJobSpec:
    """A job for a script outside the manifest: a glueetl job with the defaults every glueetl
    job of the manifest gets (arguments, library, Glue version), as spark-submit in the Glue
    image would run it; named after the file, its script under scratch/ in S3."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", script.stem)
    name = f"{SCRATCH_PREFIX}{stem}"[:255]
    if not JOB_NAME.match(name):
        raise RunUsageError(f"{script}: cannot make a job name from this file name")
    spec = build_spec(
        {"name": name, "command": GLUEETL, "script": str(script.resolve())},
        manifest.job_arguments(),
        manifest.artifacts_bucket,
        int(manifest.settings["glue_timeout_minutes"]),
        f"--script {script}",
    )
    location = f"s3://{manifest.artifacts_bucket}/scratch/{name}.py"
    return GlueJobSpec(**{**spec.__dict__, "script_location": location})


def _when(value) -> dt.datetime | None:
    return value if isinstance(value, dt.datetime) else None


def run_duration(run: dict, now: dt.datetime | None = None) -> float | None:
    """Seconds from start to end (to ``now`` while it runs)."""
    started = _when(run.get("StartedOn"))
    if started is None:
        return None
    ended = _when(run.get("CompletedOn")) or now or dt.datetime.now(started.tzinfo)
    return max(0.0, (ended - started).total_seconds())


def run_row(run: dict, now: dt.datetime | None = None) -> dict[str, object]:
    """What `job runs` shows of a run (also its --json keys)."""
    started = _when(run.get("StartedOn"))
    return {
        "run_id": run["Id"],
        "attempt": run.get("Attempt", 0),
        "previous_run_id": run.get("PreviousRunId"),
        "state": str(run["JobRunState"]),
        "started": started.astimezone(dt.UTC).isoformat() if started else None,
        "duration_s": run_duration(run, now),
        "error": run.get("ErrorMessage"),
        "arguments": dict(run.get("Arguments", {})),
    }


@dataclass
class LogCursor:
    """Where we are in one log stream: GetLogEvents' forward token."""

    group: str
    stream: str
    token: str | None = None

    def read(self, logs) -> list[str]:
        """The lines written since the last read ([] while the stream does not exist yet)."""
        lines: list[str] = []
        while True:
            kwargs = {"logGroupName": self.group, "logStreamName": self.stream}
            if self.token:
                kwargs["nextToken"] = self.token
            else:
                kwargs["startFromHead"] = True  # type: ignore[assignment]
            try:
                page = logs.get_log_events(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return lines  # the run has not started writing yet
                raise
            lines.extend(e["message"] for e in page["events"])
            token = page.get("nextForwardToken")
            if not page["events"] or token == self.token:
                self.token = token or self.token
                return lines
            self.token = token


def follow_run(
    glue,
    logs,
    job: str,
    run_id: str,
    on_line: Callable[[str, str], None],
    poll: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Print the run's output and error lines as they arrive (``on_line(stream, line)``, with
    stream ``output`` or ``error``) until it ends; the final GetJobRun."""
    cursors: list[tuple[str, LogCursor]] = []
    while True:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        if not cursors:
            group = run.get("LogGroupName") or "/aws-glue/jobs"
            cursors = [(kind, LogCursor(f"{group}/{kind}", run_id)) for kind in ("output", "error")]
        # The emulator ships a run's last lines before it records the end, so one more read
        # after a terminal state gets them all.
        for kind, cursor in cursors:
            for line in cursor.read(logs):
                on_line(kind, line)
        if run["JobRunState"] in TERMINAL_STATES:
            return run
        sleep(poll)


def next_attempt(glue, job: str, run: dict) -> dict | None:
    """The run that retries ``run`` (a FAILED run whose job's MaxRetries allows another), or
    None. The emulator stores a retry before its predecessor's end, so it is there to find."""
    if run["JobRunState"] != "FAILED":
        return None
    for page in glue.get_paginator("get_job_runs").paginate(JobName=job):
        for candidate in page["JobRuns"]:
            if candidate.get("PreviousRunId") == run["Id"]:
                return candidate
    return None
