"""CloudWatch metrics of a pipeline run (docs/data-contract.md §6.3).

Namespace ``MusicStreaming/Pipeline`` (manifest name ``metrics_namespace``), one dimension
``Pipeline=<pipeline_name>``. Metric names (:data:`METRIC_NAMES`): ``FilesProcessed``,
``FilesFailed`` (files that failed alone in the ETL; 0 when none did), ``FilesQuarantined``,
``RowsAccepted``, ``RowsRejected``, ``DuplicatesDropped``, ``KpiItemsWritten`` (unit
``Count``), ``EtlDurationSeconds``, ``EndToEndLatencySeconds`` (unit ``Seconds``). Any other
name may be sent too: its unit is ``Seconds`` when the name ends in ``Seconds``, else
``Count``, unless ``unit_overrides`` says otherwise.

``EndToEndLatencySeconds`` is "arrival to KPIs written" for the *earliest* arrival of the batch:
the longest any file of the batch waited (worst case), which is what an alarm should watch.
Arrival is the stream object's ``LastModified``.

Python 3.9-compatible; boto3 and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

# Same names as musicpipe.manifest.METRIC_NAMES (manifest itself needs Python 3.11).
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
DIMENSION = "Pipeline"

# PutMetricData takes at most 1,000 metric data per request (and 1 MB). Nine metrics never
# come near it, but callers may send more.
MAX_METRIC_DATA_PER_CALL = 1000


def metric_unit(name: str, unit_overrides: Mapping[str, str] | None = None) -> str:
    if unit_overrides and name in unit_overrides:
        return unit_overrides[name]
    return "Seconds" if name.endswith("Seconds") else "Count"


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (as listen_time and S3 LastModified are)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def put_pipeline_metrics(
    cloudwatch,
    namespace: str,
    pipeline_name: str,
    metrics: Mapping[str, float | int | None],
    unit_overrides: Mapping[str, str] | None = None,
    timestamp: datetime | None = None,
    chunk_size: int = MAX_METRIC_DATA_PER_CALL,
) -> int:
    """PutMetricData for each ``name: value`` with dimension ``Pipeline=<pipeline_name>``.

    ``None`` values are skipped (a metric that does not apply to this run, e.g. the latency of
    a run without files). Non-numeric or non-finite values raise ValueError before anything is
    sent. All data share one timestamp (``timestamp`` or now, UTC). Returns how many data were
    sent.
    """
    if not pipeline_name:
        raise ValueError("pipeline_name must not be empty (it is the Pipeline dimension)")
    if not 1 <= chunk_size <= MAX_METRIC_DATA_PER_CALL:
        raise ValueError(f"chunk_size must be 1..{MAX_METRIC_DATA_PER_CALL}")
    when = _as_utc(timestamp) if timestamp else datetime.now(timezone.utc)
    data: list[dict] = []
    for name, value in metrics.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"metric {name}: {value!r} is not a number")
        if not math.isfinite(value):
            raise ValueError(f"metric {name}: {value!r} is not finite (CloudWatch rejects it)")
        data.append(
            {
                "MetricName": name,
                "Dimensions": [{"Name": DIMENSION, "Value": pipeline_name}],
                "Timestamp": when,
                "Value": float(value),
                "Unit": metric_unit(name, unit_overrides),
            }
        )
    for start in range(0, len(data), chunk_size):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + chunk_size])
    return len(data)


def end_to_end_latency_seconds(arrival_times: Iterable[datetime], written_at: datetime) -> float:
    """Seconds from the batch's earliest arrival to ``written_at`` (KPIs written).

    The earliest arrival gives the worst case of the batch. Naive datetimes count as UTC. A
    negative result (clock skew between S3 and this host) is reported as 0. Raises ValueError
    without arrival times.
    """
    arrivals = [_as_utc(t) for t in arrival_times]
    if not arrivals:
        raise ValueError("no arrival times: latency is undefined for an empty batch")
    return max(0.0, (_as_utc(written_at) - min(arrivals)).total_seconds())
