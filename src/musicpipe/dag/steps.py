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

from musicpipe.aws.s3 import error_code, head_or_none, plain_etag, read_or_none
from musicpipe.contract.columns import STREAMS
from musicpipe.contract.layout import SONGS_KEY, STREAMS_PREFIX, USERS_KEY
from musicpipe.contract.report import NO_STREAM_FILES
from musicpipe.contract.status import ArchiveOutcome, TrackerStatus, ValidationStatus
from musicpipe.pipeline.archiver import archive_already_counted, archive_completed_files
from musicpipe.pipeline.kpi_writer import staging_keys, write_staged_kpis
from musicpipe.pipeline.metrics import end_to_end_latency_seconds, put_pipeline_metrics
from musicpipe.pipeline.quarantine import QuarantineError, quarantine_file
from musicpipe.pipeline.retries import Judgement, RetrySettings, StreamObject, Verdict, judge
from musicpipe.pipeline.tracker import Tracker

# Task ids of the branch targets (docs/data-contract.md §7 names the main path; these two end a
# run early).
FIRST_TASK_AFTER_SELECT = "wait_for_streams_files"
NOTHING_DUE_TASK = "nothing_due"
ETL_TASK = "realtime_etl_processing"
VALIDATION_FAILED_TASK = "validation_failed"
NO_NEW_FILES_TASK = "no_new_files"


# -- select_due_files (docs/data-contract.md §8.1) ----------------------------------------------
LIVE_GLUE_STATES = ("STARTING", "RUNNING", "STOPPING", "WAITING")


def stream_objects(s3, raw_bucket: str) -> list[StreamObject]:
    """Every ``streams/**.csv`` object (nested folders too, as the S3 event filter sees them)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=raw_bucket, Prefix=STREAMS_PREFIX
    ):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".csv"):
                modified = obj["LastModified"].timestamp()
                found.append(StreamObject(obj["Key"], plain_etag(obj["ETag"]), modified))
    return sorted(found, key=lambda o: o.key)


def references_modified(s3, raw_bucket: str) -> float | None:
    """The newest LastModified of the songs and users files (None when neither exists)."""
    times = []
    for key in (SONGS_KEY, USERS_KEY):
        head = head_or_none(s3, raw_bucket, key)
        if head is not None:
            times.append(head["LastModified"].timestamp())
    return max(times) if times else None


def glue_run_alive(glue, job_name: str, run_id: str) -> bool:
    """Whether the Glue run holding a claim still runs (no run id, or an unknown one: not)."""
    if not run_id:
        return False
    try:
        run = glue.get_job_run(JobName=job_name, RunId=run_id)["JobRun"]
    except ClientError:
        return False
    return run.get("JobRunState") in LIVE_GLUE_STATES


def claim_alive(glue, etl_job: str, item: dict | None) -> bool:
    """Whether ``item`` is a PROCESSING or STAGED claim whose Glue run still runs."""
    if item is None or item.get("status") not in (TrackerStatus.PROCESSING, TrackerStatus.STAGED):
        return False
    return glue_run_alive(glue, etl_job, str(item.get("run_id") or ""))


def judge_streams(
    s3, tracker: Tracker, glue, *, raw_bucket: str, etl_job: str, settings: RetrySettings, now
) -> list[tuple[Judgement, dict | None]]:
    """The judge's verdict on every object of ``streams/``, with the tracker item it read."""
    refs = references_modified(s3, raw_bucket)
    verdicts = []
    for obj in stream_objects(s3, raw_bucket):
        item = tracker.get(obj.key)
        alive = claim_alive(glue, etl_job, item)
        verdicts.append((judge(obj, item, settings, now, refs, alive), item))
    return verdicts


@dataclass
class Selection:
    """What select_due_files decided: the keys to validate now, and every file's verdict."""

    stream_keys: list[str]
    judgements: list[Judgement]
    given_up: list[str] = field(default_factory=list)

    @property
    def branch(self) -> str:
        return FIRST_TASK_AFTER_SELECT if self.stream_keys else NOTHING_DUE_TASK


def select_due_files(
    s3,
    dynamodb_resource,
    glue,
    *,
    raw_bucket: str,
    quarantine_bucket: str,
    tracker_table: str,
    etl_job: str,
    batch_id: str,
    settings: RetrySettings,
    now: float,
    log=print,
) -> Selection:
    """select_due_files: judge every stream file; quarantine those given up; the rest of the
    run validates exactly the keys taken (so a file in its backoff is not taken early by an
    arrival)."""
    tracker = Tracker(dynamodb_resource, tracker_table)
    taken, judgements, given_up = [], [], []
    for verdict, item in judge_streams(
        s3, tracker, glue, raw_bucket=raw_bucket, etl_job=etl_job, settings=settings, now=now
    ):
        judgements.append(verdict)
        log(f"{verdict.verdict}: {verdict.key}: {verdict.reason}")
        if verdict.verdict == Verdict.TAKE:
            taken.append(verdict.key)
        elif verdict.verdict == Verdict.GIVE_UP and item is not None:
            if _give_up(s3, tracker, item, raw_bucket, quarantine_bucket, batch_id, verdict, log):
                given_up.append(verdict.key)
    return Selection(taken, judgements, given_up)


def _give_up(s3, tracker, item, raw_bucket, quarantine_bucket, batch_id, verdict, log) -> bool:
    """Move a file past the retry limit to quarantine (§2.3's move), then mark it QUARANTINED.
    A move that fails leaves it FAILED in place: the next run tries again."""
    reason = {
        "status": str(TrackerStatus.FAILED),
        "error": verdict.reason,
        "attempts": int(item.get("attempts") or 0),
        "batch_id_last_attempt": item.get("batch_id"),
    }
    try:
        moved = quarantine_file(
            s3, raw_bucket, verdict.key, quarantine_bucket, batch_id, reason, etag=item["etag"]
        )
    except QuarantineError as exc:
        log(f"not quarantined, left for the next run: {verdict.key}: {exc}")
        return False
    if not tracker.give_up(item, batch_id, verdict.reason):
        log(f"{verdict.key}: moved to {moved}, but its tracker item changed meanwhile")
        return False
    log(f"quarantined: {verdict.key} → {moved}")
    return True


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
