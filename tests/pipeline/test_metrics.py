"""Pipeline metrics land in (moto) CloudWatch with the Pipeline dimension
(docs/data-contract.md §6.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from musicpipe.manifest import METRIC_NAMES as MANIFEST_METRIC_NAMES
from musicpipe.pipeline.metrics import (
    METRIC_NAMES,
    end_to_end_latency_seconds,
    metric_unit,
    put_pipeline_metrics,
)

NAMESPACE, PIPELINE = "MusicStreaming/Pipeline", "music_streaming_realtime_pipeline"


class Recorder:
    def __init__(self):
        self.calls = []

    def put_metric_data(self, **kwargs):
        self.calls.append(kwargs)


def test_names_match_the_manifest():
    assert METRIC_NAMES == MANIFEST_METRIC_NAMES


def test_units_count_and_seconds():
    assert metric_unit("FilesProcessed") == "Count"
    assert metric_unit("EtlDurationSeconds") == "Seconds"
    assert metric_unit("RowsAccepted", {"RowsAccepted": "Count/Second"}) == "Count/Second"


def test_metrics_land_in_cloudwatch_with_dimension_and_units(aws):
    cw = aws.client("cloudwatch")
    values = dict.fromkeys(METRIC_NAMES, 0.0)
    values.update(FilesProcessed=3, RowsAccepted=11346, EtlDurationSeconds=42.5)
    when = datetime.now(UTC).replace(microsecond=0)

    sent = put_pipeline_metrics(cw, NAMESPACE, PIPELINE, values, timestamp=when)
    assert sent == len(METRIC_NAMES)

    listed = cw.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert {m["MetricName"] for m in listed} == set(METRIC_NAMES)
    assert all(m["Dimensions"] == [{"Name": "Pipeline", "Value": PIPELINE}] for m in listed)

    def stat(name):
        return cw.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=name,
            Dimensions=[{"Name": "Pipeline", "Value": PIPELINE}],
            StartTime=when - timedelta(minutes=5),
            EndTime=when + timedelta(minutes=5),
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]

    [files] = stat("FilesProcessed")
    assert (files["Sum"], files["Unit"]) == (3.0, "Count")
    [duration] = stat("EtlDurationSeconds")
    assert (duration["Sum"], duration["Unit"]) == (42.5, "Seconds")
    [latency] = stat("EndToEndLatencySeconds")
    assert latency["Unit"] == "Seconds"


def test_chunks_skips_none_and_refuses_bad_values():
    cw = Recorder()
    metrics = {f"Custom{i}": i for i in range(45)}
    metrics["EndToEndLatencySeconds"] = None
    assert put_pipeline_metrics(cw, NAMESPACE, PIPELINE, metrics, chunk_size=20) == 45
    assert [len(c["MetricData"]) for c in cw.calls] == [20, 20, 5]
    assert all(c["Namespace"] == NAMESPACE for c in cw.calls)

    for bad in (float("nan"), float("inf"), "3", True):
        with pytest.raises(ValueError, match="FilesProcessed"):
            put_pipeline_metrics(Recorder(), NAMESPACE, PIPELINE, {"FilesProcessed": bad})
    with pytest.raises(ValueError, match="chunk_size"):
        put_pipeline_metrics(Recorder(), NAMESPACE, PIPELINE, {}, chunk_size=1001)


def test_latency_is_from_the_earliest_arrival():
    written = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    arrivals = [
        datetime(2024, 6, 1, 11, 59, tzinfo=UTC),
        datetime(2024, 6, 1, 11, 0),  # naive = UTC
        datetime(2024, 6, 1, 13, 30, tzinfo=timezone(timedelta(hours=2))),  # 11:30 UTC
    ]
    assert end_to_end_latency_seconds(arrivals, written) == 3600.0
    assert end_to_end_latency_seconds([written + timedelta(seconds=3)], written) == 0.0
    with pytest.raises(ValueError, match="no arrival times"):
        end_to_end_latency_seconds([], written)
