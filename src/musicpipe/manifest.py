"""The resource manifest: the one place that names every AWS resource of the pipeline.

Defaults are those of docs/data-contract.md §7. Overrides come from a TOML file
(``musicpipe.toml`` in the working directory, or the path in ``MUSICPIPE_CONFIG``), section
``[names]`` and ``[settings]``, and then from the environment (``MUSICPIPE_<KEY>``, e.g.
``MUSICPIPE_RAW_BUCKET``), which wins. Bootstrap, the LocalStack hook, the DAG's defaults and
promotion all read this module, so it depends on the standard library only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The S3 layout's home is musicpipe.contract.layout; SONGS_KEY and USERS_KEY are re-exported.
from musicpipe.contract.layout import SONGS_KEY as SONGS_KEY
from musicpipe.contract.layout import STREAMS_PREFIX
from musicpipe.contract.layout import USERS_KEY as USERS_KEY

# A job of the manifest; GlueJobSpec is re-exported (its home is musicpipe.job_specs).
from musicpipe.job_specs import PIPELINE_JOBS, JobEntryError, build_spec, check_entry, check_unique
from musicpipe.job_specs import GlueJobSpec as GlueJobSpec

CONFIG_ENV = "MUSICPIPE_CONFIG"
CONFIG_FILE = "musicpipe.toml"
ENV_PREFIX = "MUSICPIPE_"

# Every name a user may override, with its default (docs/data-contract.md §7).
DEFAULT_NAMES: dict[str, str] = {
    "raw_bucket": "rds.data",
    "processed_bucket": "trial.data",
    "quarantine_bucket": "warehouse.bucket",
    # Holds job scripts and the --extra-py-files package that the Glue jobs need.
    "artifacts_bucket": "musicpipe.artifacts",
    "kpi_table": "kpi.table",
    "tracker_table": "kpi.table_file_tracker",
    "arrivals_queue": "music-arrivals",
    "dag_id": "music_streaming_realtime_pipeline",
    "validation_job": "music_streaming_validation",
    "etl_job": "music_streaming_etl_complete",
    "metrics_namespace": "MusicStreaming/Pipeline",
    "pipeline_name": "music_streaming_realtime_pipeline",
    "glue_role_name": "musicpipe-glue-job-role",
    "region": "us-east-1",
}

# Tunable numbers, with their defaults and types.
DEFAULT_SETTINGS: dict[str, float | int] = {
    "validation_reject_threshold": 0.5,
    "default_listen_duration_seconds": 180,
    "glue_timeout_minutes": 60,
    # Retries (docs/data-contract.md §8.1): how often a timed run looks for due files (0: only
    # arrivals start runs), the backoff of a FAILED file (base doubling up to max), how many
    # attempts before it is quarantined, and when a claim of a dead run may be taken over.
    "retry_timer_seconds": 300,
    "retry_base_seconds": 60,
    "retry_max_seconds": 3600,
    "max_file_attempts": 4,
    "claim_window_seconds": 7200,
}
RETRY_SETTINGS = (
    "retry_timer_seconds",
    "retry_base_seconds",
    "retry_max_seconds",
    "max_file_attempts",
    "claim_window_seconds",
)

GLUE_LOG_GROUPS = (
    "/aws-glue/jobs/output",
    "/aws-glue/jobs/error",
    "/aws-glue/python-jobs/output",
    "/aws-glue/python-jobs/error",
)

DAG_TASK_IDS = (
    "select_due_files",
    "wait_for_streams_files",
    "validate_data_quality",
    "check_validation_status",
    "realtime_etl_processing",
    "write_kpis_to_dynamodb",
    "archive_processed_files",
    "fail_on_failed_files",
)

METRIC_NAMES = (
    "FilesProcessed",
    "FilesFailed",
    "FilesQuarantined",
    "RowsAccepted",
    "RowsRejected",
    "DuplicatesDropped",
    "KpiItemsWritten",
    "EtlDurationSeconds",
    "EndToEndLatencySeconds",
)


class ConfigError(ValueError):
    """A configuration file or environment variable the manifest cannot use."""


@dataclass(frozen=True)
class Index:
    name: str
    hash_key: str
    range_key: str | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    hash_key: str
    range_key: str | None = None
    gsis: tuple[Index, ...] = ()

    def attributes(self) -> list[str]:
        """Every attribute used in a key of the table or its indexes, in a stable order."""
        names: list[str] = []
        for key in (self.hash_key, self.range_key):
            if key and key not in names:
                names.append(key)
        for gsi in self.gsis:
            for key in (gsi.hash_key, gsi.range_key):
                if key and key not in names:
                    names.append(key)
        return names


@dataclass(frozen=True)
class NotificationSpec:
    """S3 ObjectCreated events of the raw bucket's stream files, sent to the arrivals queue."""

    bucket: str
    queue: str
    prefix: str = STREAMS_PREFIX
    suffix: str = ".csv"
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)
    config_id: str = "musicpipe-stream-arrivals"


@dataclass(frozen=True)
class Manifest:
    names: dict[str, str]
    settings: dict[str, float | int]
    source: tuple[str, ...] = ()  # where overrides came from, for `musicpipe manifest`
    # The config file's [[jobs]] entries, checked (job_specs.check_entry), and that file.
    job_entries: tuple[dict[str, Any], ...] = ()
    jobs_file: str = ""

    def __getattr__(self, item: str) -> str:
        # manifest.raw_bucket etc.; only reached for names not defined on the class.
        names = object.__getattribute__(self, "names")
        if item in names:
            return names[item]
        raise AttributeError(item)

    @property
    def buckets(self) -> dict[str, str]:
        return {
            role: self.names[f"{role}_bucket"]
            for role in ("raw", "processed", "quarantine", "artifacts")
        }

    @property
    def tables(self) -> tuple[TableSpec, ...]:
        return (
            TableSpec(
                name=self.names["kpi_table"],
                hash_key="pk",
                range_key="sk",
                gsis=(Index("gsi1", "gsi1pk", "gsi1sk"),),
            ),
            TableSpec(name=self.names["tracker_table"], hash_key="file_key"),
        )

    @property
    def notification(self) -> NotificationSpec:
        return NotificationSpec(bucket=self.names["raw_bucket"], queue=self.names["arrivals_queue"])

    @property
    def log_groups(self) -> tuple[str, ...]:
        return GLUE_LOG_GROUPS

    def glue_role_arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:role/{self.names['glue_role_name']}"

    @property
    def extra_py_files(self) -> str:
        return f"s3://{self.names['artifacts_bucket']}/libs/musicpipe_jobs.zip"

    def job_arguments(self) -> dict[str, str]:
        """Default arguments every Glue job of the pipeline receives."""
        n, s = self.names, self.settings
        return {
            "--raw_bucket": n["raw_bucket"],
            "--processed_bucket": n["processed_bucket"],
            "--quarantine_bucket": n["quarantine_bucket"],
            "--kpi_table": n["kpi_table"],
            "--tracker_table": n["tracker_table"],
            "--metrics_namespace": n["metrics_namespace"],
            "--pipeline_name": n["pipeline_name"],
            "--validation_reject_threshold": str(s["validation_reject_threshold"]),
            "--default_listen_duration_seconds": str(s["default_listen_duration_seconds"]),
            "--claim_window_seconds": str(s["claim_window_seconds"]),
            "--extra-py-files": self.extra_py_files,
        }

    @property
    def glue_jobs(self) -> tuple[GlueJobSpec, ...]:
        """The pipeline's jobs, then those the config file's [[jobs]] entries add."""
        common = self.job_arguments()
        bucket = self.names["artifacts_bucket"]
        timeout = int(self.settings["glue_timeout_minutes"])
        specs = [
            build_spec(
                {"name": self.names[job["name_key"]], **job}, common, bucket, timeout, "defaults"
            )
            for job in PIPELINE_JOBS
        ]
        specs += [
            build_spec(entry, common, bucket, timeout, f"{self.jobs_file} [[jobs]]")
            for entry in self.job_entries
        ]
        return tuple(specs)

    def as_dict(self) -> dict[str, object]:
        return {
            "names": dict(self.names),
            "settings": dict(self.settings),
            "jobs": [asdict(spec) for spec in self.glue_jobs],
        }


def _read_config_file(path: Path) -> dict[str, dict[str, object]]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    unknown_sections = set(data) - {"names", "settings", "stack", "jobs"}
    if unknown_sections:
        raise ConfigError(
            f"{path}: unknown section(s) {sorted(unknown_sections)}; "
            "use [names], [settings], [stack] or [[jobs]]"
        )
    return data


def config_path(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file in use: $MUSICPIPE_CONFIG (must exist) or ./musicpipe.toml if present."""
    explicit = (os.environ if environ is None else environ).get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={explicit}: no such file")
        return path
    path = (cwd or Path.cwd()) / CONFIG_FILE
    return path if path.is_file() else None


def read_config_section(
    section: str, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, object], str]:
    """One section of the config file and the file's path ('' when there is no file)."""
    path = config_path(cwd, environ)
    if path is None:
        return {}, ""
    return dict(_read_config_file(path).get(section, {})), str(path)


def _coerce_setting(key: str, raw: Any, where: str) -> float | int:
    default = DEFAULT_SETTINGS[key]
    if key in RETRY_SETTINGS and (
        isinstance(raw, bool | float) or (isinstance(raw, str) and not raw.strip().isdigit())
    ):
        # int(2.5) would quietly be 2: a count or a number of seconds must be written whole.
        raise ConfigError(f"{where}: {key} must be a whole number, got {raw!r}")
    try:
        value = type(default)(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: {key} must be a {type(default).__name__}, got {raw!r}"
        ) from None
    if value < 0:
        raise ConfigError(f"{where}: {key} must not be negative, got {raw!r}")
    # The timer may be 0 (off: only arrivals start runs); the others must be at least 1.
    if key in RETRY_SETTINGS[1:] and value < 1:
        raise ConfigError(f"{where}: {key} must be at least 1, got {raw!r}")
    if key == "validation_reject_threshold" and value > 1:
        raise ConfigError(f"{where}: {key} is a share between 0 and 1, got {raw!r}")
    return value


def load_manifest(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Manifest:
    """Defaults, then the config file, then MUSICPIPE_* environment variables."""
    env = os.environ if environ is None else environ
    names = dict(DEFAULT_NAMES)
    settings = dict(DEFAULT_SETTINGS)
    sources: list[str] = []

    path = config_path(cwd, env)
    entries: tuple[dict[str, Any], ...] = ()
    if path is not None:
        data = _read_config_file(path)
        entries = _job_entries(path, data.get("jobs", []))
        for section, known in (("names", names), ("settings", settings)):
            values = data.get(section, {})
            unknown = set(values) - set(known)
            if unknown:
                raise ConfigError(
                    f"{path} [{section}]: unknown key(s) {sorted(unknown)}; "
                    f"known keys: {', '.join(sorted(known))}"
                )
            for key, value in values.items():
                if section == "names":
                    if not isinstance(value, str) or not value.strip():
                        raise ConfigError(f"{path} [names]: {key} must be a non-empty string")
                    names[key] = value.strip()
                else:
                    settings[key] = _coerce_setting(key, value, f"{path} [settings]")
        sources.append(str(path))

    for key in names:
        value = env.get(ENV_PREFIX + key.upper())
        if value is not None:
            if not value.strip():
                raise ConfigError(f"{ENV_PREFIX}{key.upper()} is set but empty")
            names[key] = value.strip()
            sources.append(ENV_PREFIX + key.upper())
    for key in settings:
        value = env.get(ENV_PREFIX + key.upper())
        if value is not None:
            settings[key] = _coerce_setting(key, value, ENV_PREFIX + key.upper())
            sources.append(ENV_PREFIX + key.upper())

    _check_bucket_names(names)
    if settings["retry_max_seconds"] < settings["retry_base_seconds"]:
        raise ConfigError(
            f"retry_max_seconds ({settings['retry_max_seconds']}) is below retry_base_seconds "
            f"({settings['retry_base_seconds']}): the cap must be at least the first wait "
            f"(set in {', '.join(sources) or 'the defaults'})"
        )
    manifest = Manifest(names, settings, tuple(sources), entries, str(path or ""))
    try:
        check_unique(list(manifest.glue_jobs))
    except JobEntryError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return manifest


def _job_entries(path: Path, jobs: object) -> tuple[dict[str, Any], ...]:
    """The [[jobs]] tables of the config file, each checked."""
    if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
        raise ConfigError(f"{path}: jobs must be [[jobs]] tables (docs/developing-jobs.md)")
    entries = []
    for number, entry in enumerate(jobs, 1):
        try:
            entries.append(check_entry(entry, path.parent))
        except JobEntryError as exc:
            raise ConfigError(f"{path} [[jobs]] entry {number}: {exc}") from None
    return tuple(entries)


def _check_bucket_names(names: dict[str, str]) -> None:
    buckets = {k: v for k, v in names.items() if k.endswith("_bucket")}
    for key, bucket in buckets.items():
        ok = (
            3 <= len(bucket) <= 63
            and bucket[0].isalnum()
            and bucket[-1].isalnum()
            and all(c.islower() or c.isdigit() or c in ".-" for c in bucket)
            and ".." not in bucket
        )
        if not ok:
            raise ConfigError(
                f"{key}={bucket!r} is not a valid S3 bucket name "
                "(3-63 characters: lower-case letters, digits, '.' and '-')"
            )
    seen: dict[str, str] = {}
    for key, bucket in buckets.items():
        if bucket in seen:
            raise ConfigError(f"{key} and {seen[bucket]} both name bucket {bucket!r}")
        seen[bucket] = key
