"""The Spark UI of glueetl runs, as Glue gives it: a live UI while a run's SparkContext runs,
and, with ``--enable-spark-ui true``, the run's Spark event logs under
``--spark-event-logs-path`` in S3, for Spark's history server (`musicpipe spark-history`).

The event log is written to the run's work folder and uploaded when the run has ended, not
written through S3A: with a warm driver the run's SparkContext is stopped by the pool after the
script exits, which is when Spark closes the log; an S3A stream uploads nothing until it is
closed, so a run killed or timed out would leave no log at all, while the local file is uploaded
as it is (``<app id>.inprogress``, which the history server lists as incomplete).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from musicpipe.glue import spark

ENABLE_ARG = "--enable-spark-ui"
PATH_ARG = "--spark-event-logs-path"
UI_URL_FIELD = "_spark_ui_url"  # kept on the stored run (not part of Glue's JobRun)


class SparkUiError(ValueError):
    """A run's Spark UI arguments cannot be honoured; the message says how to fix them."""


def event_logs_location(arguments: dict[str, str]) -> tuple[str, str] | None:
    """(bucket, key prefix ending in '/' or empty) where the run's event logs go, or None."""
    raw = arguments.get(ENABLE_ARG, "false")
    enabled = raw.strip().lower()
    if enabled not in ("true", "false"):
        raise SparkUiError(f"{ENABLE_ARG} must be true or false, not {raw!r}.")
    if enabled == "false":
        return None
    path = arguments.get(PATH_ARG, "").strip()
    if not path:
        raise SparkUiError(
            f"{ENABLE_ARG} true needs {PATH_ARG} s3://bucket/prefix/ (where the run writes its "
            "Spark event logs), as on Glue."
        )
    return s3_location(path, PATH_ARG)


def s3_location(path: str, what: str) -> tuple[str, str]:
    """(bucket, key prefix ending in '/' or empty) of an s3://bucket/prefix/ location."""
    parts = urlsplit(path.strip())
    if parts.scheme not in ("s3", "s3a", "s3n") or not parts.netloc:
        raise SparkUiError(f"{what} {path!r} is not an s3://bucket/prefix/ location.")
    prefix = parts.path.strip("/")
    return parts.netloc, prefix + "/" if prefix else ""


def run_conf(ui_port: int, event_log_dir: Path | None) -> dict[str, str]:
    """The Spark settings of one run: its live UI, and its event log when asked for."""
    conf = spark.ui_conf(ui_port)
    if event_log_dir is not None:
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = event_log_dir.as_uri()
    return conf


def upload_event_logs(s3, folder: Path, bucket: str, prefix: str) -> list[str]:
    """Upload every event log in ``folder``; the S3 keys written."""
    keys = []
    # Hadoop's local file system writes a hidden .crc beside each file: not an event log.
    for path in sorted(p for p in folder.glob("*") if p.is_file() and p.name[0] != "."):
        key = prefix + path.name
        s3.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys
