"""The Glue jobs of the manifest: each one an entry (name, command, script, arguments, sizes).

The pipeline's two jobs are the default entries (``PIPELINE_JOBS``); a user adds a job with a
``[[jobs]]`` table in ``musicpipe.toml`` (docs/developing-jobs.md). What an entry leaves out
comes from its command's defaults (``COMMAND_DEFAULTS``: Glue 5.1 Spark or a Python shell job
as AWS runs them). Stdlib only: the manifest, and through it the DAG, imports this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

GLUEETL, PYTHONSHELL = "glueetl", "pythonshell"

# The pipeline's jobs: the name comes from the manifest's [names] key, so renaming a job does
# not rename its script. The DAG runs these two; nothing else in the code names them.
PIPELINE_JOBS: tuple[dict[str, str], ...] = (
    {
        "name_key": "validation_job",
        "command": PYTHONSHELL,
        "script": "spark_jobs/music_streaming_validation.py",
    },
    {
        "name_key": "etl_job",
        "command": GLUEETL,
        "script": "spark_jobs/music_streaming_etl_complete.py",
    },
)

# What a job of each command gets unless its entry says otherwise.
COMMAND_DEFAULTS: dict[str, dict[str, object]] = {
    # Glue 5.1 Spark runs Python 3.11 on Spark 3.5.
    GLUEETL: {
        "python_version": "3",
        "glue_version": "5.1",
        "worker_type": "G.1X",
        "number_of_workers": 2,
        "max_capacity": None,
        "arguments": {"--job-language": "python", "--enable-metrics": "true"},
    },
    # Python shell jobs run Python 3.9 on 1/16 DPU.
    PYTHONSHELL: {
        "python_version": "3.9",
        "glue_version": None,
        "worker_type": None,
        "number_of_workers": None,
        "max_capacity": 0.0625,
        "arguments": {},
    },
}
ENTRY_KEYS = {
    "name": "the Glue job name (letters, digits, '_', '-', '.')",
    "command": f"{GLUEETL} or {PYTHONSHELL}",
    "script": "the job's script, relative to the config file",
    "arguments": "default arguments, a table of strings ('--' is added to a key without it)",
    "glue_version": 'e.g. "5.1"',
    "python_version": 'e.g. "3" (glueetl) or "3.9" (pythonshell)',
    "worker_type": "glueetl: G.1X, G.2X, ...",
    "number_of_workers": "glueetl: a whole number >= 1",
    "max_capacity": "pythonshell: 0.0625 or 1",
    "timeout_minutes": "a whole number >= 1 (default: [settings] glue_timeout_minutes)",
    "max_concurrent_runs": "a whole number >= 1 (default 1)",
    "max_retries": "a whole number 0..10: how often Glue runs a FAILED run again (default 0)",
}
REQUIRED_KEYS = ("name", "command", "script")
# S3 keys, log streams and file names are made from it: keep it plain.
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


class JobEntryError(ValueError):
    """A job entry the manifest cannot use; the manifest adds where the entry came from."""


@dataclass(frozen=True)
class GlueJobSpec:
    name: str
    command: str  # "glueetl" (Spark) or "pythonshell"
    script: str  # path of the script: relative to the repository, or absolute
    script_location: str  # where the script lives in S3
    python_version: str
    glue_version: str | None
    default_arguments: dict[str, str] = field(default_factory=dict)
    max_concurrent_runs: int = 1
    max_retries: int = 0
    timeout_minutes: int = 60
    max_capacity: float | None = None  # Python shell: 0.0625 or 1
    worker_type: str | None = None  # Spark
    number_of_workers: int | None = None
    source: str = "defaults"  # where the entry came from, for `musicpipe manifest`


def check_entry(entry: Mapping[str, object], base_dir: Path) -> dict[str, object]:
    """A [[jobs]] table checked and normalised: its script made absolute (relative paths are
    relative to ``base_dir``, the config file's folder), its argument keys given their '--'."""
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in ENTRY_KEYS.items())
        raise JobEntryError(f"unknown key(s) {unknown}; known keys: {known}")
    for key in REQUIRED_KEYS:
        if not isinstance(entry.get(key), str) or not str(entry[key]).strip():
            raise JobEntryError(f"{key} is required ({ENTRY_KEYS[key]})")
    out: dict[str, object] = dict(entry)
    name = str(entry["name"]).strip()
    if not JOB_NAME.match(name):
        raise JobEntryError(f"name {name!r} is not a job name: {ENTRY_KEYS['name']}, max 255")
    out["name"] = name
    if entry["command"] not in COMMAND_DEFAULTS:
        raise JobEntryError(
            f"job {name}: unknown command {entry['command']!r}; use {GLUEETL} or {PYTHONSHELL}"
        )
    out["script"] = str((base_dir / str(entry["script"])).resolve())
    arguments = entry.get("arguments", {})
    if not isinstance(arguments, Mapping) or not all(
        isinstance(v, str) for v in arguments.values()
    ):
        raise JobEntryError(f"job {name}: arguments must be a table of strings")
    out["arguments"] = {k if k.startswith("--") else f"--{k}": v for k, v in arguments.items()}
    for key in ("glue_version", "python_version", "worker_type"):
        if key in entry and not isinstance(entry[key], str):
            raise JobEntryError(f"job {name}: {key} must be a string ({ENTRY_KEYS[key]})")
    for key in ("number_of_workers", "timeout_minutes", "max_concurrent_runs"):
        value = entry.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise JobEntryError(f"job {name}: {key} must be {ENTRY_KEYS[key]}, got {value!r}")
    retries = entry.get("max_retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise JobEntryError(
            f"job {name}: max_retries must be {ENTRY_KEYS['max_retries']}, got {retries!r}"
        )
    if "max_capacity" in entry and entry["max_capacity"] not in (0.0625, 1):
        raise JobEntryError(f"job {name}: max_capacity must be 0.0625 or 1")
    # Glue refuses these on the other command; say so here rather than at CreateJob.
    wrong = {GLUEETL: ("max_capacity",), PYTHONSHELL: ("worker_type", "number_of_workers")}
    for key in wrong[str(entry["command"])]:
        if key in entry:
            raise JobEntryError(f"job {name}: {key} is not for {entry['command']} jobs")
    return out


def build_spec(
    entry: Mapping[str, object],
    common_arguments: Mapping[str, str],
    artifacts_bucket: str,
    timeout_minutes: int,
    source: str,
) -> GlueJobSpec:
    """The job of a checked entry: its command's defaults, the arguments every job gets, then
    what the entry says."""
    name, command = str(entry["name"]), str(entry["command"])
    defaults = COMMAND_DEFAULTS[command]

    def pick(key: str):
        return entry.get(key, defaults.get(key))

    return GlueJobSpec(
        name=name,
        command=command,
        script=str(entry["script"]),
        script_location=f"s3://{artifacts_bucket}/scripts/{name}.py",
        python_version=str(pick("python_version")),
        glue_version=pick("glue_version"),
        default_arguments={
            **common_arguments,
            **defaults["arguments"],  # type: ignore[dict-item]
            **entry.get("arguments", {}),  # type: ignore[dict-item]
        },
        max_concurrent_runs=int(entry.get("max_concurrent_runs", 1)),  # type: ignore[call-overload]
        max_retries=int(entry.get("max_retries", 0)),  # type: ignore[call-overload]
        timeout_minutes=int(entry.get("timeout_minutes", timeout_minutes)),  # type: ignore[call-overload]
        max_capacity=pick("max_capacity"),
        worker_type=pick("worker_type"),
        number_of_workers=pick("number_of_workers"),
        source=source,
    )


def check_unique(specs: list[GlueJobSpec]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise JobEntryError(
                f"job {spec.name} is defined twice ({seen[spec.name]} and {spec.source}); "
                "give each [[jobs]] entry its own name (a pipeline job's name is set in [names])"
            )
        seen[spec.name] = spec.source
