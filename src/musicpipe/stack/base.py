"""What every stack (embedded, Compose) reports to the CLI, and the errors it raises."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from musicpipe.artifacts import deploy_jobs
from musicpipe.aws.s3 import head_or_none
from musicpipe.bootstrap import Change, bootstrap
from musicpipe.stack.persistence import SnapshotSummary

if TYPE_CHECKING:
    from musicpipe.stack.recovery import Recovery

GLUE_HEALTH_PATH = "/health"  # the Glue job emulator's
SUPERVISOR_ROW = "supervisor"  # the embedded stack's supervisor, in `status`


class StackError(RuntimeError):
    """The stack could not be started, stopped or reached; the message says what to do."""


@dataclass
class UpReport:
    already_running: bool
    changes: list[Change]
    restored: SnapshotSummary | None
    fresh: bool
    # Set when the last stop was unclean (the AWS server died without `down`): what came back.
    recovery: Recovery | None = None


@dataclass
class ServiceStatus:
    name: str
    running: bool
    healthy: bool
    pid: int | None
    endpoint: str
    uptime_s: float | None
    log: str  # a log file, or the command that shows the log
    # What the embedded stack's supervisor saw since the last `up` (stack/supervision.py).
    restarts: int = 0
    last_death: float | None = None  # seconds since the epoch
    last_exit: str | None = None
    supervision: str | None = None
    note: str | None = None  # what to do about it, when it is down


@dataclass
class StackStatus:
    services: list[ServiceStatus]
    resources: list[Change] = field(default_factory=list)
    snapshot: SnapshotSummary | None = None


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 500
    except (urllib.error.URLError, OSError):
        return False


def deploy_job_changes(stack, account_id: str) -> list[Change]:
    """Deploy the Glue jobs from this checkout's scripts and library to the stack's emulator,
    uploading only what changed; what happened to the library and to each job, as Changes."""
    glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
    return deploy_jobs(stack.aws.client("s3"), glue, stack.manifest, account_id)


def resource_states(stack, aws_up: bool, glue_up: bool) -> list[Change]:
    """Which resources of the manifest exist (the bootstrap's dry run), and which Glue jobs;
    only from the services that answer."""
    resources = bootstrap(stack.aws.client, stack.manifest, apply=False) if aws_up else []
    if aws_up:
        library = stack.manifest.extra_py_files
        bucket, _, key = library.removeprefix("s3://").partition("/")
        there = head_or_none(stack.aws.client("s3"), bucket, key) is not None
        resources.append(
            Change("glue library", library, "unchanged" if there else "missing", "the jobs' zip")
        )
    if glue_up:
        glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
        existing = {j["Name"] for j in glue.get_jobs()["Jobs"]}
        for spec in stack.manifest.glue_jobs:
            state = "unchanged" if spec.name in existing else "missing"
            resources.append(Change("glue job", spec.name, state, spec.command))
    return resources
