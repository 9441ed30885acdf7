"""Glue's job semantics: the rules as plain functions, and the backend that applies them.

What AWS Glue does with a job definition and a run request, as far as the pipeline, the Amazon
provider's GlueJobOperator and the promotion script rely on it: validation with Glue's error
codes, argument merging, the arguments Glue adds, run states, concurrency and timeouts, what
CreateJob, UpdateJob and BatchStopJobRun decide, pagination. The functions do no I/O;
:class:`GlueBackend` (as in moto's ``models.py``) applies them to a store and a runner it is
given, one method per operation, so ``server.py`` only parses and serialises.
"""

from __future__ import annotations

import copy
import enum
import secrets
import time
from collections.abc import Iterable
from typing import Any, Protocol

from musicpipe.glue.errors import (
    ConcurrentRunsExceeded,
    EntityNotFound,
    IdempotentParameterMismatch,
    InvalidInput,
)
from musicpipe.glue.runtimes import check_glue_version

GLUEETL = "glueetl"
PYTHONSHELL = "pythonshell"
COMMANDS = (GLUEETL, PYTHONSHELL, "gluestreaming", "glueray")
RUNNABLE = (GLUEETL, PYTHONSHELL)


class JobRunState(enum.StrEnum):
    """A job run's JobRunState, as botocore's Glue model lists them.

    Members are ``str``: they compare equal to the plain strings read back from the store and
    serialise to their value (``json.dumps(JobRunState.FAILED) == '"FAILED"'``).
    """

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"
    WAITING = "WAITING"  # never entered here: runs start at once or are refused
    EXPIRED = "EXPIRED"  # never entered here


# The states this emulator moves a run through; a run in a terminal state never changes again.
ACTIVE_STATES = frozenset({JobRunState.STARTING, JobRunState.RUNNING, JobRunState.STOPPING})
TERMINAL_STATES = frozenset(
    {
        JobRunState.SUCCEEDED,
        JobRunState.FAILED,
        JobRunState.TIMEOUT,
        JobRunState.STOPPED,
        JobRunState.ERROR,
    }
)

DEFAULT_TIMEOUT_MINUTES = 2880  # Glue's default for new jobs (48 h)
MAX_PAGE = 200  # the largest MaxResults the list operations accept
# Members of a stored job that Glue sets itself, not part of the definition a caller sends.
JOB_TIMESTAMPS = ("CreatedOn", "LastModifiedOn")

# CreateJob members this emulator stores and echoes back; anything else is rejected, as
# botocore's own validation would reject it before it reached AWS.
JOB_MEMBERS = {
    "Name",
    "JobMode",
    "JobRunQueuingEnabled",
    "Description",
    "LogUri",
    "Role",
    "ExecutionProperty",
    "Command",
    "DefaultArguments",
    "NonOverridableArguments",
    "Connections",
    "MaxRetries",
    "AllocatedCapacity",
    "Timeout",
    "MaxCapacity",
    "SecurityConfiguration",
    "Tags",
    "NotificationProperty",
    "GlueVersion",
    "NumberOfWorkers",
    "WorkerType",
    "CodeGenConfigurationNodes",
    "ExecutionClass",
    "SourceControlDetails",
    "MaintenanceWindow",
}


def now() -> float:
    return time.time()


def new_run_id() -> str:
    return "jr_" + secrets.token_hex(32)


def validate_job(definition: dict, *, name: str) -> dict:
    """A stored job from a CreateJob request or an UpdateJob's JobUpdate."""
    unknown = set(definition) - JOB_MEMBERS
    if unknown:
        raise InvalidInput(f"Unknown job parameter(s): {', '.join(sorted(unknown))}")
    if not name or len(name) > 255:
        raise InvalidInput("Job name must be 1 to 255 characters long.")
    if not definition.get("Role"):
        raise InvalidInput("Role should not be null or empty.")
    command = definition.get("Command") or {}
    if not command.get("ScriptLocation"):
        raise InvalidInput("Command.ScriptLocation should not be null or empty.")
    command_name = command.get("Name", GLUEETL)
    if command_name not in COMMANDS:
        raise InvalidInput(f"Invalid Command.Name {command_name!r}; expected one of {COMMANDS}")
    if definition.get("WorkerType") and definition.get("MaxCapacity") is not None:
        raise InvalidInput("Please set worker type and number of workers instead of max capacity.")
    if bool(definition.get("WorkerType")) != bool(definition.get("NumberOfWorkers")):
        raise InvalidInput("Worker type and number of workers must be set together.")
    timeout = definition.get("Timeout")
    if timeout is not None and (not isinstance(timeout, int) or timeout < 1):
        raise InvalidInput("Timeout must be a positive number of minutes.")
    check_glue_version(definition.get("GlueVersion"))
    retries = definition.get("MaxRetries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidInput("MaxRetries must be a whole number from 0.")
    if retries > MAX_RETRIES_LIMIT:
        raise InvalidInput(f"MaxRetries must be at most {MAX_RETRIES_LIMIT}.")
    concurrency = (definition.get("ExecutionProperty") or {}).get("MaxConcurrentRuns", 1)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidInput("ExecutionProperty.MaxConcurrentRuns must be at least 1.")
    job = copy.deepcopy(definition)
    job["Name"] = name
    job.setdefault("Command", {}).setdefault("Name", GLUEETL)
    job.setdefault("ExecutionProperty", {"MaxConcurrentRuns": 1})
    job.setdefault("Timeout", DEFAULT_TIMEOUT_MINUTES)
    job.setdefault("MaxRetries", 0)
    job.setdefault("DefaultArguments", {})
    if command_name == PYTHONSHELL:
        job["Command"].setdefault("PythonVersion", "3.9")
        job.setdefault("MaxCapacity", 0.0625)
    job.pop("Tags", None)  # tags are not part of GetJob's Job
    return job


def max_concurrent_runs(job: dict) -> int:
    return int((job.get("ExecutionProperty") or {}).get("MaxConcurrentRuns", 1))


def log_group_prefix(job: dict) -> str:
    """Where Glue writes a run's logs: /aws-glue/jobs or /aws-glue/python-jobs."""
    if job["Command"].get("Name") == PYTHONSHELL:
        return "/aws-glue/python-jobs"
    return "/aws-glue/jobs"


def resolve_arguments(
    job: dict, run_arguments: dict[str, str] | None, run_id: str, temp_dir: str
) -> dict[str, str]:
    """The arguments a run's script sees, merged as Glue merges them.

    DefaultArguments, overridden by the run's Arguments, overridden by NonOverridableArguments;
    then what Glue adds itself: --JOB_NAME, --JOB_ID, --JOB_RUN_ID, and --TempDir unless set.
    """
    args: dict[str, str] = {}
    args.update(job.get("DefaultArguments") or {})
    args.update(run_arguments or {})
    args.update(job.get("NonOverridableArguments") or {})
    for key in args:
        if not key.startswith("--"):
            raise InvalidInput(f"Argument key {key!r} must start with '--'.")
    args.setdefault("--TempDir", temp_dir.rstrip("/") + "/" + job["Name"])
    args.setdefault("--job-bookmark-option", "job-bookmark-disable")
    args["--JOB_NAME"] = job["Name"]
    args["--JOB_ID"] = "j_" + run_id[3:]
    args["--JOB_RUN_ID"] = run_id
    return args


def script_argv(arguments: dict[str, str]) -> list[str]:
    """`--key value` pairs, as Glue passes them to the script (getResolvedOptions reads these)."""
    argv: list[str] = []
    for key, value in arguments.items():
        argv.extend([key, str(value)])
    return argv


# What a run may set for itself (StartJobRun), else the job's; a retry keeps its run's.
RUN_SETTINGS = ("Timeout", "MaxCapacity", "WorkerType", "NumberOfWorkers")
# Glue's limit on a job's MaxRetries.
MAX_RETRIES_LIMIT = 10


def new_run(
    job: dict,
    request: dict,
    active_runs: int,
    temp_dir: str,
    run_id: str | None = None,
    attempt: int = 0,
) -> dict:
    """A JobRun in STARTING state for a StartJobRun request, or a Glue error. The request's
    ``JobRunId`` names a previous run this one retries (its ``PreviousRunId``)."""
    limit = max_concurrent_runs(job)
    if active_runs >= limit:
        raise ConcurrentRunsExceeded(
            f"Concurrent runs exceeded for {job['Name']}: {active_runs} active, "
            f"MaxConcurrentRuns is {limit}."
        )
    timeout = request.get("Timeout", job.get("Timeout", DEFAULT_TIMEOUT_MINUTES))
    if not isinstance(timeout, int) or timeout < 1:
        raise InvalidInput("Timeout must be a positive number of minutes.")
    run_id = run_id or new_run_id()
    arguments = resolve_arguments(job, request.get("Arguments"), run_id, temp_dir)
    started = now()
    run = {
        "Id": run_id,
        "Attempt": attempt,
        "JobName": job["Name"],
        "JobMode": job.get("JobMode", "SCRIPT"),
        "StartedOn": started,
        "LastModifiedOn": started,
        "JobRunState": JobRunState.STARTING,
        "Arguments": dict(request.get("Arguments") or {}),
        "PredecessorRuns": [],
        "AllocatedCapacity": 0,
        "ExecutionTime": 0,
        "Timeout": timeout,
        "LogGroupName": log_group_prefix(job),
        "GlueVersion": job.get("GlueVersion", "0.9" if job["Command"]["Name"] == GLUEETL else ""),
        # Not part of Glue's JobRun: what the runner needs, stripped from API answers.
        "_resolved": arguments,
        "_command": job["Command"]["Name"],
        "_script": job["Command"]["ScriptLocation"],
        "_python": job["Command"].get("PythonVersion", ""),
    }
    for key in RUN_SETTINGS[1:]:
        value = request.get(key, job.get(key))
        if value is not None:
            run[key] = value
    if not run["GlueVersion"]:
        run.pop("GlueVersion")
    if request.get("JobRunId"):
        run["PreviousRunId"] = request["JobRunId"]
    return run


def retry_of(failed: dict, job: dict | None, temp_dir: str) -> dict | None:
    """The next attempt of a FAILED run while the job's MaxRetries allows one, as Glue makes
    it: id ``<first attempt's id>_attempt_<n>``, ``Attempt`` n, ``PreviousRunId`` the failed
    run, the same run arguments and settings. A run that was stopped or timed out is not
    retried. (Not held to MaxConcurrentRuns: it takes the place of the attempt that ended.)"""
    if job is None or failed["JobRunState"] != JobRunState.FAILED:
        return None
    attempt = int(failed.get("Attempt", 0)) + 1
    if attempt > int(job.get("MaxRetries") or 0):
        return None
    first = failed["Id"].split("_attempt_")[0]
    request = {k: failed[k] for k in RUN_SETTINGS if k in failed}
    request["Arguments"] = failed.get("Arguments", {})
    request["JobRunId"] = failed["Id"]
    return new_run(job, request, 0, temp_dir, run_id=f"{first}_attempt_{attempt}", attempt=attempt)


def public_run(run: dict) -> dict:
    """A JobRun as the API returns it (the runner's private fields removed)."""
    return {k: v for k, v in run.items() if not k.startswith("_")}


def finish(run: dict, state: JobRunState, error: str | None = None) -> None:
    completed = now()
    run["JobRunState"] = state
    run["CompletedOn"] = completed
    run["LastModifiedOn"] = completed
    run["ExecutionTime"] = int(round(completed - run["StartedOn"]))
    if error:
        run["ErrorMessage"] = error[:2048]


def error_message(stderr_tail: str) -> str:
    """The last lines of a script's error, as Glue puts them in ErrorMessage.

    For a Python traceback that is its final line (`ValueError: …`), even when Spark logs
    shutdown chatter after it; otherwise the last few lines that are not log noise.
    """
    lines = [line.rstrip() for line in stderr_tail.splitlines() if line.strip()]
    start = None
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            start = i
    if start is not None:
        for line in lines[start + 1 :]:
            if not line.startswith((" ", "\t")):
                return line.strip()
    noise = (" INFO ", " WARN ", " DEBUG ", "INFO:", "WARNING:")
    meaningful = [line for line in lines if not any(n in line for n in noise)]
    return "\n".join((meaningful or lines)[-3:]).strip()


# -- the rules of the operations ---------------------------------------------------------------
def require_job_name(name: str | None) -> str:
    if not name:
        raise InvalidInput("JobName should not be null or empty.")
    return name


def require_job(name: str | None, job: dict | None) -> dict:
    """The job a request names, or the error Glue answers when there is none."""
    if job is None:
        raise EntityNotFound(f"Job with name: {name} not found")
    return job


def is_new_job(job: dict, existing: dict | None) -> bool:
    """CreateJob's idempotency: whether ``job`` (validated) is to be stored.

    False for a job of that name with the same definition (CreateJob answers as if it created
    it); a different definition is IdempotentParameterMismatchException.
    """
    if existing is None:
        return True
    same = {k: v for k, v in existing.items() if k not in JOB_TIMESTAMPS}
    if same != job:
        raise IdempotentParameterMismatch(
            f"Job with name {job['Name']} already exists with different parameters."
        )
    return False


def created_job(job: dict, stamp: float) -> dict:
    return {**job, "CreatedOn": stamp, "LastModifiedOn": stamp}


def require_job_update(update: object) -> dict:
    if not isinstance(update, dict):
        raise InvalidInput("JobUpdate should not be null.")
    return update


def updated_job(current: dict, update: dict, stamp: float) -> dict:
    """UpdateJob replaces the definition: members left out go back to their defaults."""
    job = validate_job(update, name=current["Name"])
    return {**job, "CreatedOn": current["CreatedOn"], "LastModifiedOn": stamp}


def require_runnable(job: dict) -> None:
    """StartJobRun refuses a job whose Command.Name this emulator cannot run."""
    if job["Command"]["Name"] not in RUNNABLE:
        raise InvalidInput(
            f"Command.Name {job['Command']['Name']!r} is not run by this emulator; "
            f"use one of {RUNNABLE}."
        )


def count_active(runs: Iterable[dict]) -> int:
    return sum(1 for r in runs if r["JobRunState"] in ACTIVE_STATES)


def require_run(job_name: str, run_id: str, run: dict | None) -> dict:
    if run is None:
        raise EntityNotFound(f"Job run {run_id} of job {job_name} not found")
    return run


# BatchStopJobRun's ErrorDetail for a run the runner did not know as active.
RUN_NOT_ACTIVE = {"ErrorCode": InvalidInput.code, "ErrorMessage": "Run not active"}


def stop_refusal(run: dict | None) -> dict | None:
    """BatchStopJobRun's ErrorDetail for a run that cannot be stopped; None: ask the runner."""
    if run is None:
        return {"ErrorCode": EntityNotFound.code, "ErrorMessage": "Run not found"}
    if run["JobRunState"] in TERMINAL_STATES:
        return {
            "ErrorCode": InvalidInput.code,
            "ErrorMessage": f"Job run is already {run['JobRunState']}",
        }
    return None


def page(items: list, max_results: Any, next_token: Any) -> tuple[list, str | None]:
    """One page of a list operation and the NextToken of the next (None: this was the last)."""
    size = int(max_results or 100)
    if not 1 <= size <= MAX_PAGE:
        raise InvalidInput(f"MaxResults must be between 1 and {MAX_PAGE}.")
    start = int(next_token or 0)
    return items[start : start + size], (str(start + size) if start + size < len(items) else None)


# -- the backend -------------------------------------------------------------------------------
class JobStore(Protocol):
    """What the backend needs of :class:`musicpipe.glue.store.Store`."""

    lock: Any

    def get_job(self, name: str) -> dict | None: ...
    def put_job(self, job: dict) -> None: ...
    def delete_job(self, name: str) -> None: ...
    def jobs(self) -> list[dict]: ...
    def get_run(self, job_name: str, run_id: str) -> dict | None: ...
    def put_run(self, run: dict) -> None: ...
    def runs(self, job_name: str) -> list[dict]: ...


class JobRunner(Protocol):
    """What the backend needs of :class:`musicpipe.glue.runner.Runner`."""

    def start(self, run: dict) -> None: ...
    def stop(self, run_id: str) -> bool: ...


class GlueBackend:
    """The Glue job operations over a store and a runner: arguments in, results or GlueError."""

    def __init__(self, store: JobStore, runner: JobRunner, temp_dir: str) -> None:
        self.store = store
        self.runner = runner
        self.temp_dir = temp_dir

    # jobs
    def get_job(self, name: str | None) -> dict:
        return require_job(name, self.store.get_job(require_job_name(name)))

    def create_job(self, name: str, definition: dict) -> None:
        job = validate_job(definition, name=name)
        with self.store.lock:
            if is_new_job(job, self.store.get_job(name)):
                self.store.put_job(created_job(job, now()))

    def update_job(self, name: str, update: object) -> None:
        update = require_job_update(update)
        with self.store.lock:
            self.store.put_job(updated_job(self.get_job(name), update, now()))

    def get_jobs(self, max_results: Any, next_token: Any) -> tuple[list[dict], str | None]:
        return page(self.store.jobs(), max_results, next_token)

    def list_jobs(self, max_results: Any, next_token: Any) -> tuple[list[str], str | None]:
        return page([j["Name"] for j in self.store.jobs()], max_results, next_token)

    def delete_job(self, name: str) -> None:
        # Glue answers the same whether or not the job existed.
        self.store.delete_job(require_job_name(name))

    # runs
    def start_job_run(self, job_name: str | None, request: dict) -> str:
        """Start a run of the job; ``request`` holds StartJobRun's members. The run's id."""
        with self.store.lock:
            job = self.get_job(job_name)
            require_runnable(job)
            active = count_active(self.store.runs(job["Name"]))
            if request.get("JobRunId"):  # a retry of that run: it must be this job's
                previous = request["JobRunId"]
                require_run(job["Name"], previous, self.store.get_run(job["Name"], previous))
            run = new_run(job, request, active, self.temp_dir)
            self.store.put_run(run)
        self.runner.start(run)
        return run["Id"]

    def get_job_run(self, job_name: str | None, run_id: str) -> dict:
        job = self.get_job(job_name)
        return public_run(require_run(job["Name"], run_id, self.store.get_run(job["Name"], run_id)))

    def get_job_runs(
        self, job_name: str | None, max_results: Any, next_token: Any
    ) -> tuple[list[dict], str | None]:
        job = self.get_job(job_name)
        runs = [public_run(r) for r in self.store.runs(job["Name"])]
        return page(runs, max_results, next_token)

    def batch_stop_job_run(
        self, job_name: str | None, run_ids: list[str]
    ) -> tuple[list[dict], list[dict]]:
        """The runs asked to stop, and the per-run errors (BatchStopJobRun never fails whole)."""
        job = self.get_job(job_name)
        stopped, refused = [], []
        for run_id in run_ids:
            detail = stop_refusal(self.store.get_run(job["Name"], run_id))
            if detail is None:
                if self.runner.stop(run_id):
                    stopped.append({"JobName": job["Name"], "JobRunId": run_id})
                    continue
                detail = dict(RUN_NOT_ACTIVE)
            refused.append({"JobName": job["Name"], "JobRunId": run_id, "ErrorDetail": detail})
        return stopped, refused
