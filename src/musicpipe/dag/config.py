"""The DAG's configuration: one JSON Airflow Variable over the manifest's defaults.

The DAG reads the Airflow Variable ``music_streaming_pipeline`` (a JSON object) once per parse.
Every key is optional except ``arrivals_queue_url``: names default to docs/data-contract.md §7 (the
manifest's ``DEFAULT_NAMES``), intervals to what suits AWS. Set it as an environment variable
(``AIRFLOW_VAR_MUSIC_STREAMING_PIPELINE``, which Airflow reads without touching its database:
the local stack and MWAA's startup script do this) or in any secrets backend.

Pure: no Airflow import, no I/O. Python 3.11+, as the manifest it reads needs (``tomllib``):
the host's 3.11 and MWAA's 3.12.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields

from musicpipe.contract.layout import STREAMS_PREFIX, report_key
from musicpipe.manifest import DEFAULT_NAMES, DEFAULT_SETTINGS, RETRY_SETTINGS
from musicpipe.pipeline.retries import RetrySettings

VARIABLE = "music_streaming_pipeline"
# What wait_for_streams_files waits for (a wildcard match: nested folders too).
STREAM_FILES_PATTERN = f"{STREAMS_PREFIX}*.csv"

# Intervals and the connection, with the defaults for AWS; the local stack sets small ones.
DEFAULT_TUNING: dict[str, object] = {
    "aws_conn_id": "aws_default",
    # How often the triggerer polls the arrivals queue (MessageQueueTrigger's waiter_delay).
    "arrivals_poll_seconds": 20,
    # wait_for_streams_files: poke interval and how long a run waits for a stream file before
    # it ends on the skip path (an event whose file a previous run already took).
    "sensor_poke_seconds": 10,
    "sensor_timeout_seconds": 60,
    # How often the Glue operators ask for their run's state.
    "glue_poll_seconds": 6,
}


class DagConfigError(ValueError):
    """The Variable holds something the DAG cannot use; the message names the key."""


@dataclass(frozen=True)
class DagConfig:
    arrivals_queue_url: str
    raw_bucket: str
    processed_bucket: str
    quarantine_bucket: str
    kpi_table: str
    tracker_table: str
    validation_job: str
    etl_job: str
    metrics_namespace: str
    pipeline_name: str
    dag_id: str
    aws_conn_id: str
    arrivals_poll_seconds: int
    sensor_poke_seconds: int
    sensor_timeout_seconds: int
    glue_poll_seconds: int
    # The manifest's retry settings (docs/data-contract.md §8.1), carried by the Variable.
    retry_timer_seconds: int
    retry_base_seconds: int
    retry_max_seconds: int
    max_file_attempts: int
    claim_window_seconds: int

    def report_key(self, batch_id: str) -> str:
        return report_key(batch_id)

    @property
    def retry(self) -> RetrySettings:
        return RetrySettings(
            base_seconds=self.retry_base_seconds,
            max_seconds=self.retry_max_seconds,
            max_attempts=self.max_file_attempts,
            claim_window_seconds=self.claim_window_seconds,
        )


# The manifest names the DAG reads (the local stack fills them from the manifest).
NAME_KEYS = [f.name for f in fields(DagConfig) if f.type == "str" and f.name in DEFAULT_NAMES]
_INT_KEYS = [k for k, v in DEFAULT_TUNING.items() if isinstance(v, int)]


def variable_value(
    names: dict[str, str],
    sqs_endpoint: str,
    account_id: str,
    settings: dict[str, float | int],
    **tuning: object,
) -> dict[str, object]:
    """The Variable for a manifest's names and retry settings and the queue at that SQS
    endpoint, plus any tuning (what the local stacks and promotion write; unset tuning keeps
    the DAG's AWS defaults)."""
    return {
        "arrivals_queue_url": f"{sqs_endpoint}/{account_id}/{names['arrivals_queue']}",
        **{key: names[key] for key in NAME_KEYS},
        **{key: int(settings[key]) for key in RETRY_SETTINGS},
        **tuning,
    }


def load_dag_config(raw: str | dict | None) -> DagConfig:
    """The DagConfig from the Variable's value (JSON text, a dict, or None when unset)."""
    where = f"Airflow Variable {VARIABLE}"
    if raw is None or raw == "":
        values: dict = {}
    elif isinstance(raw, dict):
        values = dict(raw)
    else:
        try:
            values = json.loads(raw)
        except ValueError as exc:
            raise DagConfigError(f"{where} is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise DagConfigError(f"{where} must be a JSON object, got {type(values).__name__}")
    known = set(NAME_KEYS) | set(DEFAULT_TUNING) | set(RETRY_SETTINGS) | {"arrivals_queue_url"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DagConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    queue_url = values.get("arrivals_queue_url")
    if not isinstance(queue_url, str) or not queue_url.startswith(("http://", "https://")):
        raise DagConfigError(
            f"{where} must set arrivals_queue_url to the SQS URL of the arrivals queue "
            f"(e.g. https://sqs.us-east-1.amazonaws.com/<account>/{DEFAULT_NAMES['arrivals_queue']}"
            f"), got {queue_url!r}"
        )
    merged: dict[str, object] = {"arrivals_queue_url": queue_url}
    for key in NAME_KEYS:
        value = values.get(key, DEFAULT_NAMES[key])
        if not isinstance(value, str) or not value.strip():
            raise DagConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
        merged[key] = value.strip()
    conn = values.get("aws_conn_id", DEFAULT_TUNING["aws_conn_id"])
    if not isinstance(conn, str) or not conn:
        raise DagConfigError(f"{where}: aws_conn_id must be a connection id, got {conn!r}")
    merged["aws_conn_id"] = conn
    for key in _INT_KEYS:
        value = values.get(key, DEFAULT_TUNING[key])
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DagConfigError(f"{where}: {key} must be a whole number of seconds >= 1")
        merged[key] = value
    for key in RETRY_SETTINGS:
        value = values.get(key, DEFAULT_SETTINGS[key])
        lowest = 0 if key == "retry_timer_seconds" else 1  # a timer of 0: arrivals only
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise DagConfigError(
                f"{where}: {key} must be a whole number >= {lowest}, got {value!r}"
            )
        merged[key] = value
    return DagConfig(**merged)  # type: ignore[arg-type]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def batch_id_for(run_id: str) -> str:
    """A DAG run's batch id: its run id as one safe S3 path segment.

    ``asset_triggered__2026-11-26T08:30:00.123+00:00_qWdW`` becomes
    ``asset_triggered__2026-11-26T08-30-00.123-00-00_qWdW``: unique per DAG run, and readable
    back to the run that made it.
    """
    safe = _UNSAFE.sub("-", run_id).strip("-.")
    if not safe:
        raise ValueError(f"run id {run_id!r} has no character usable in a batch id")
    return safe
