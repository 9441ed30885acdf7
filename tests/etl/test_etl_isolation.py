"""One bad stream file fails alone, and the ETL processes what validation passed (issue #17;
docs/data-contract.md §3.2, §3.9, §6.5).

Against the session's real stack: the Glue emulator runs the real validation job and the real
ETL on Spark, against moto; the DAG's write, archive and verdict steps are called as their
tasks call them. Each ETL run costs 40-90 s on two cores, so the module runs three: one batch
without a report (a bad header), one validated batch that holds both a file Spark cannot read
and a file replaced after validation, and one whose reference file changed (it stops early).
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from musicpipe.dag import steps

from .. import pipeline_helpers as helpers
from ..conftest import SAMPLES
from ..pipeline_helpers import MANIFEST, PROCESSED, RAW, Pipeline

REFERENCES = {"songs": SAMPLES / "songs.csv", "users": SAMPLES / "users.csv"}
STREAMS1, STREAMS2, STREAMS3 = (SAMPLES / "streams" / f"streams{i}.csv" for i in (1, 2, 3))


def oracle(streams: list[Path]) -> dict:
    """The KPI items of ``streams`` with the sample references, from scratch (DuckDB)."""
    return helpers.oracle_items(REFERENCES["songs"], REFERENCES["users"], streams)


pytestmark = pytest.mark.timeout(1200)


# -- helpers -----------------------------------------------------------------------------------
def reset(local_stack) -> None:
    """moto emptied, as the `aws` fixture does (a module-scoped fixture cannot use that one)."""
    endpoint = local_stack.settings.aws_endpoint
    req = urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()


def etl_stdout(local_stack, run: dict) -> str:
    path = local_stack.glue_state_dir / "work" / run["Id"] / "stdout.log"
    return path.read_text(errors="replace") if path.is_file() else f"(no {path})"


def archive_and_verdict(pipe: Pipeline, batch_id: str, completed: list[str]) -> str | None:
    """archive_processed_files then fail_on_failed_files, as the DAG's tasks call them; the
    verdict's error, or None when the run would end green."""
    steps.archive(
        pipe.s3,
        pipe.dynamodb,
        raw_bucket=RAW,
        tracker_table=MANIFEST.tracker_table,
        keys=completed,
    )
    try:
        steps.fail_on_failed_files(pipe.s3, processed_bucket=PROCESSED, batch_id=batch_id)
    except steps.FilesFailedError as exc:
        return str(exc)
    return None


def metric_sum(pipe: Pipeline, name: str) -> float | None:
    now = datetime.now(UTC)
    points = pipe.aws.client("cloudwatch").get_metric_statistics(
        Namespace=MANIFEST.metrics_namespace,
        MetricName=name,
        Dimensions=[{"Name": "Pipeline", "Value": MANIFEST.pipeline_name}],
        StartTime=now - timedelta(minutes=30),
        EndTime=now + timedelta(minutes=5),
        Period=3600,
        Statistics=["Sum"],
    )["Datapoints"]
    return sum(p["Sum"] for p in points) if points else None


def staged_manifest(pipe: Pipeline, batch_id: str) -> dict:
    key = f"kpis/staging/{batch_id}/manifest.json"
    return json.loads(pipe.s3.get_object(Bucket=PROCESSED, Key=key)["Body"].read())


def with_header(path: Path, header: str, out: Path) -> Path:
    """``path`` with its first line replaced by ``header``."""
    _, rest = path.read_text().split("\n", 1)
    out.write_text(f"{header}\n{rest}")
    return out


def with_a_wide_row(path: Path, out: Path) -> Path:
    """``path`` with one row carrying 20,500 extra empty fields: validation reads only the
    header's columns and passes the file, Spark's CSV reader (20,480 columns at most) throws."""
    lines = path.read_text().split("\n")
    lines[5] += "," * 20_500
    out.write_text("\n".join(lines))
    return out


# -- 1. a bad header fails alone -----------------------------------------------------------------
def test_a_file_with_a_bad_header_fails_alone_and_the_others_complete(aws, local_stack, tmp_path):
    """A run without a validation report (the ETL by hand): nothing checked the header
    before the ETL, which fails that file alone."""
    pipe = Pipeline(aws, local_stack)
    pipe.put_references(REFERENCES["songs"], REFERENCES["users"])
    pipe.put(STREAMS1, "streams/a.csv")
    pipe.put(STREAMS2, "streams/b.csv")
    bad = with_header(STREAMS3, "user_id,track_id,played_at", tmp_path / "c.csv")
    pipe.put(bad, "streams/c.csv")

    run = pipe.etl("iso-1")  # SUCCEEDED: the good files must still be written and archived
    log = etl_stdout(local_stack, run)
    written = pipe.write_kpis("iso-1")
    verdict = archive_and_verdict(pipe, "iso-1", written.files_completed)

    try:
        tracker = pipe.tracker_items()
        assert {k: i["status"] for k, i in tracker.items()} == {
            "streams/a.csv": "COMPLETED",
            "streams/b.csv": "COMPLETED",
            "streams/c.csv": "FAILED",
        }
        failed = tracker["streams/c.csv"]
        assert failed["error"].startswith("streams/c.csv: header lacks listen_time")
        assert "'played_at'" in failed["error"] and "upload the file again" in failed["error"]
        assert failed["attempts"] == 1
        helpers.assert_rows_accounted(tracker)
        helpers.assert_same_kpis(pipe.kpi_table(), oracle([STREAMS1, STREAMS2]))
        # The good files are archived, the failed one waits in streams/ for the next run.
        assert pipe.keys(RAW, "streams/") == ["streams/c.csv"]
        assert metric_sum(pipe, "FilesFailed") == 1
        assert metric_sum(pipe, "FilesProcessed") == 2
        assert [f["file_key"] for f in staged_manifest(pipe, "iso-1")["files_failed"]] == [
            "streams/c.csv"
        ]
        assert verdict is not None and "1 stream file(s) failed" in verdict
        assert "streams/c.csv: header lacks listen_time" in verdict
        assert pipe.keys(PROCESSED, "pinned/") == []  # the batch's pinned copies are gone
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- ETL stdout ({run['Id']}):\n{log}") from exc


# -- 2. a validated batch: a file Spark cannot read, a file replaced after validation ------------
@pytest.fixture(scope="module")
def validated_batch(local_stack, tmp_path_factory) -> dict:
    """Validate good.csv, wide.csv and late.csv; replace late.csv; run the ETL on what
    validation passed, as the DAG does, then write and archive. What a user would look at is
    kept, so the tests below may run in any order (each test's `aws` empties moto)."""
    tmp = tmp_path_factory.mktemp("validated")
    reset(local_stack)
    pipe = Pipeline(local_stack.aws, local_stack)
    pipe.put_references(REFERENCES["songs"], REFERENCES["users"])
    pipe.put(STREAMS1, "streams/good.csv")
    pipe.put(with_a_wide_row(STREAMS2, tmp / "wide.csv"), "streams/wide.csv")
    pipe.put(STREAMS3, "streams/late.csv")
    report = pipe.validate("iso-2")
    passed = [f["key"] for f in report["files"] if f["kind"] == "streams"]
    assert [f["status"] for f in report["files"] if f["kind"] == "streams"] == ["PASSED"] * 3
    pipe.put(STREAMS1, "streams/late.csv")  # another version, after validation

    run = pipe.etl("iso-2", passed)
    written = pipe.write_kpis("iso-2")
    return {
        "pipe": pipe,
        "run": run,
        "log": etl_stdout(local_stack, run),
        "report": {f["key"]: f for f in report["files"]},
        "late_etag_now": pipe.s3.head_object(Bucket=RAW, Key="streams/late.csv")["ETag"],
        "verdict": archive_and_verdict(pipe, "iso-2", written.files_completed),
        "tracker": pipe.tracker_items(),
        "kpis": pipe.kpi_table(),
        "raw": pipe.keys(RAW, "streams/"),
        "events": pipe.keys(PROCESSED, "processed/streams/"),
        "pinned": pipe.keys(PROCESSED, "pinned/"),
        "files_failed": metric_sum(pipe, "FilesFailed"),
    }


def test_a_file_spark_cannot_read_fails_alone(validated_batch):
    """The one Spark pass over the batch throws; checked one by one, the wide file is named
    and the good one completes."""
    b = validated_batch
    try:
        tracker = b["tracker"]
        assert tracker["streams/good.csv"]["status"] == "COMPLETED"
        wide = tracker["streams/wide.csv"]
        assert wide["status"] == "FAILED" and wide["attempts"] == 1
        assert wide["error"].startswith("streams/wide.csv: Spark could not read it")
        assert "more than 20,480 fields" in wide["error"], wide["error"]
        assert wide["etag"] == b["report"]["streams/wide.csv"]["etag"]
        helpers.assert_rows_accounted(tracker)
        helpers.assert_same_kpis(b["kpis"], oracle([STREAMS1]))
        assert b["files_failed"] == 1
        assert b["verdict"] is not None and "streams/wide.csv: Spark could not read" in b["verdict"]
        assert "streams/wide.csv" in b["raw"] and "streams/good.csv" not in b["raw"]
        assert b["pinned"] == []
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- ETL stdout ({b['run']['Id']}):\n{b['log']}") from exc


def test_a_file_replaced_after_validation_is_neither_claimed_nor_processed(validated_batch):
    b = validated_batch
    validated = b["report"]["streams/late.csv"]["etag"]
    now = b["late_etag_now"].strip('"')
    assert validated != now
    assert "streams/late.csv" not in b["tracker"], b["tracker"].get("streams/late.csv")
    assert not [k for k in b["events"] if "/source=late.csv/" in k]
    assert "streams/late.csv" in b["raw"]  # left for its own S3 event
    line = (
        f"skip streams/late.csv: changed since validation (validated ETag {validated}, "
        f"now {now}): not claimed or processed by this run"
    )
    assert line in b["log"], b["log"]


# -- 3. a reference file changed after validation ----------------------------------------------
def test_a_changed_reference_file_stops_the_run_before_any_claim(aws, local_stack, tmp_path):
    pipe = Pipeline(aws, local_stack)
    pipe.put_references(REFERENCES["songs"], REFERENCES["users"])
    pipe.put(STREAMS1, "streams/a.csv")
    report = pipe.validate("iso-3")
    validated = {f["key"]: f["etag"] for f in report["files"]}
    changed = tmp_path / "users.csv"
    # A blank line at the end: the same rows, but another ETag.
    changed.write_text(REFERENCES["users"].read_text() + "\n")
    pipe.put(changed, "users/users.csv")
    now = pipe.s3.head_object(Bucket=RAW, Key="users/users.csv")["ETag"].strip('"')

    run = pipe.etl("iso-3", ["streams/a.csv"], expect="FAILED")
    message = run.get("ErrorMessage", "")
    assert (
        f"s3://{RAW}/users/users.csv changed since validation "
        f"(validated ETag {validated['users/users.csv']}, now {now})"
    ) in message, message
    assert "before claiming any stream file" in message
    assert pipe.tracker_items() == {}
    assert pipe.keys(RAW, "streams/") == ["streams/a.csv"]
    assert pipe.keys(PROCESSED, "pinned/") == []
