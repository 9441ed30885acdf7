"""What the DAG's small Python tasks do, as plain functions over boto3 clients.

The DAG file only wires these to Airflow (clients from the connection's hooks, XComs); tests
call them directly against moto. Python 3.11+ (``datetime.UTC``): the host's 3.11 and MWAA's
3.12.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from musicpipe.aws.s3 import error_code, read_or_none
from musicpipe.contract.columns import STREAMS
from musicpipe.contract.report import NO_STREAM_FILES
from musicpipe.contract.status import ArchiveOutcome, ValidationStatus
from musicpipe.pipeline.archiver import archive_already_counted, archive_completed_files
from musicpipe.pipeline.kpi_writer import staging_keys, write_staged_kpis
from musicpipe.pipeline.metrics import end_to_end_latency_seconds, put_pipeline_metrics

# Task ids of the branch targets (docs/data-contract.md §7 names the main path; these two end a
# run early).
ETL_TASK = "realtime_etl_processing"
VALIDATION_FAILED_TASK = "validation_failed"
NO_NEW_FILES_TASK = "no_new_files"


class ReportError(RuntimeError):
    """The validation report is missing or unreadable: the validation job did not do its work."""


@dataclass
class Decision:
    """Where check_validation_status sends the run, and why."""

    branch: str
    message: str
    stream_keys: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)


def read_report(s3, bucket: str, key: str) -> dict:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        raise ReportError(
            f"no validation report at s3://{bucket}/{key} "
            f"({error_code(exc)}): see the validation job's log"
        ) from exc
    try:
        report = json.loads(body)
    except ValueError as exc:
        raise ReportError(f"s3://{bucket}/{key} is not JSON: {exc}") from exc
    if not isinstance(report, dict) or report.get("overall_status") not in (
        ValidationStatus.PASSED,
        ValidationStatus.FAILED,
    ):
        raise ReportError(f"s3://{bucket}/{key} has no overall_status PASSED/FAILED")
    return report


def decide(report: dict, report_uri: str) -> Decision:
    """The branch for a validation report (docs/data-contract.md §6.4): the ETL for the files
    that passed, the skip path when there was nothing to validate, the failure branch otherwise."""
    streams = [f for f in report.get("files", []) if f.get("kind") == STREAMS]
    passed = [f["key"] for f in streams if f.get("status") == ValidationStatus.PASSED]
    quarantined = [f["key"] for f in streams if f.get("status") == ValidationStatus.FAILED]
    if report["overall_status"] == ValidationStatus.PASSED:
        note = f"; {len(quarantined)} quarantined" if quarantined else ""
        return Decision(
            ETL_TASK,
            f"validation PASSED: {len(passed)} stream file(s) to process{note} ({report_uri})",
            passed,
            quarantined,
        )
    if report.get("error") == NO_STREAM_FILES:
        return Decision(NO_NEW_FILES_TASK, f"nothing new to process ({report_uri})")
    return Decision(
        VALIDATION_FAILED_TASK,
        f"validation FAILED: {report.get('error')}; report: {report_uri}",
        [],
        quarantined,
    )


def publish_quarantined(cloudwatch, namespace: str, pipeline: str, decision: Decision) -> None:
    put_pipeline_metrics(
        cloudwatch, namespace, pipeline, {"FilesQuarantined": len(decision.quarantined)}
    )


def write_kpis(
    s3,
    dynamodb_resource,
    cloudwatch,
    *,
    raw_bucket: str,
    processed_bucket: str,
    kpi_table: str,
    tracker_table: str,
    metrics_namespace: str,
    pipeline_name: str,
    batch_id: str,
) -> dict:
    """write_kpis_to_dynamodb: staged items → the KPI table, then KpiItemsWritten and
    EndToEndLatencySeconds (from the earliest arrival of the batch's files)."""
    result = write_staged_kpis(
        s3, dynamodb_resource, processed_bucket, kpi_table, tracker_table, batch_id
    )
    written_at = datetime.now(UTC)
    # Arrival = each staged file's LastModified; archive_processed_files runs after this task,
    # so the files are still under streams/ (unless this is a re-run after archiving).
    arrivals = []
    for file_key in [*result.files_completed, *result.files_skipped]:
        try:
            arrivals.append(s3.head_object(Bucket=raw_bucket, Key=file_key)["LastModified"])
        except ClientError:
            continue  # gone already: no arrival time to report
    latency = end_to_end_latency_seconds(arrivals, written_at) if arrivals else None
    put_pipeline_metrics(
        cloudwatch,
        metrics_namespace,
        pipeline_name,
        {"KpiItemsWritten": result.items_written, "EndToEndLatencySeconds": latency},
        timestamp=written_at,
    )
    return {
        "batch_id": batch_id,
        "items_written": result.items_written,
        "items_deleted": result.items_deleted,
        "dates": list(result.dates),
        "files_completed": list(result.files_completed),
        "files_skipped": list(result.files_skipped),
        "end_to_end_latency_s": latency,
    }


class ArchiveError(RuntimeError):
    """Some files could not be archived; they stay under streams/ and the next run retries."""


def archive(s3, dynamodb_resource, *, raw_bucket: str, tracker_table: str, keys: list[str]):
    """archive_processed_files: the files this run completed (``keys``), then every unchanged
    re-upload of a COMPLETED file still waiting in streams/ (already counted, never processed
    again). Every file is tried; then ArchiveError names those that failed."""
    results = archive_completed_files(s3, dynamodb_resource, raw_bucket, tracker_table, keys)
    results += archive_already_counted(s3, dynamodb_resource, raw_bucket, tracker_table, skip=keys)
    failed = [r for r in results if r.status == ArchiveOutcome.FAILED]
    if failed:
        detail = "; ".join(f"{r.file_key}: {r.detail}" for r in failed)
        raise ArchiveError(f"{len(failed)} of {len(results)} file(s) not archived: {detail}")
    return [
        {"file_key": r.file_key, "status": str(r.status), "to": r.archived_key, "detail": r.detail}
        for r in results
    ]


class FilesFailedError(RuntimeError):
    """Stream files failed alone in the ETL; the batch's other files were written and archived."""


def failed_files_message(failed: list[dict]) -> str | None:
    """The run's verdict on the files that failed alone in the ETL (the staging manifest's
    ``files_failed``), naming each with its error; None when none did."""
    if not failed:
        return None
    named = []
    for entry in failed:
        key, error = entry.get("file_key", "?"), entry.get("error") or "no error recorded"
        named.append(error if error.startswith(f"{key}:") else f"{key}: {error}")
    return (
        f"{len(failed)} stream file(s) failed in the ETL and were not processed (the other "
        f"files of the batch were written and archived): {'; '.join(named)}. They are FAILED "
        "in the tracker and taken again by the next run."
    )


def fail_on_failed_files(s3, *, processed_bucket: str, batch_id: str) -> None:
    """fail_on_failed_files: raise FilesFailedError when the batch's staging manifest lists
    files that failed alone. A run that did not reach the ETL has no manifest: nothing failed."""
    manifest_key, _ = staging_keys(batch_id)
    body = read_or_none(s3, processed_bucket, manifest_key)
    failed = json.loads(body).get("files_failed", []) if body else []
    message = failed_files_message(failed)
    if message:
        raise FilesFailedError(message)
