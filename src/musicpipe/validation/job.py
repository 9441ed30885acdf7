"""The ``music_streaming_validation`` job's steps (docs/data-contract.md §2), as a job object.

What it does: reads ``songs/songs.csv`` and ``users/users.csv`` and the stream files, validates
them with :mod:`musicpipe.contract.validation`, moves each FAILED stream file whole to
``s3://<quarantine>/quarantine/files/<batch_id>/<key>`` with a ``.reason.json`` beside it and
marks it QUARANTINED in the tracker, writes ``s3://<processed>/validation_reports/<batch_id>/
report.json``, and prints one line per file plus the report's path. If a reference file fails,
no stream file is evaluated or moved (they are reported NOT_VALIDATED). The run succeeds
whatever ``overall_status`` is: the DAG branches on the report. It fails (raises) only when it
cannot do its work at all (bad arguments, S3 or DynamoDB unreachable, report not writable).

Stream files: the explicit ``stream_keys`` (comma-separated raw keys, ``streams/...csv`` or
``s3://<raw_bucket>/streams/...csv``) or, when there are none, every ``streams/**.csv`` object
in the raw bucket that the tracker does not hold as COMPLETED with the same ETag.

Python 3.9-compatible; boto3 and the standard library only (Glue's Python shell).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from botocore.exceptions import ClientError

from musicpipe.aws.s3 import NOT_FOUND_CODES, error_code, plain_etag
from musicpipe.contract.columns import SONGS, STREAMS, USERS
from musicpipe.contract.keys import key_problem, refused_key_message
from musicpipe.contract.layout import SONGS_KEY, STREAMS_PREFIX, USERS_KEY, report_key
from musicpipe.contract.report import (
    FileResult,
    build_report,
    failed_file,
    not_validated,
    summary_line,
)
from musicpipe.contract.status import TrackerStatus, ValidationStatus
from musicpipe.contract.validation import (
    threshold_fraction,
    validate_reference_file,
    validate_stream_file,
)
from musicpipe.pipeline.quarantine import QuarantineError, quarantine_file
from musicpipe.pipeline.tracker import STALE_CLAIM_SECONDS, Tracker

# A missing object, or a missing bucket: either way the file "does not exist".
MISSING_CODES = (*NOT_FOUND_CODES, "NoSuchBucket")


@dataclass
class ValidationArgs:
    batch_id: str
    raw_bucket: str
    processed_bucket: str
    quarantine_bucket: str
    tracker_table: str
    # --validation_reject_threshold as given: the share of rejected rows above which a stream
    # file FAILS.
    reject_threshold: str
    stream_keys: str = ""
    claim_window_s: int = STALE_CLAIM_SECONDS

    def __post_init__(self) -> None:
        if not self.batch_id or "/" in self.batch_id:
            raise ValueError(f"--batch_id must be one path segment, got {self.batch_id!r}")
        threshold_fraction(self.reject_threshold)  # fails early on a bad value

    @property
    def threshold(self) -> float:
        return float(self.reject_threshold)

    @property
    def report_key(self) -> str:
        return report_key(self.batch_id)

    @property
    def report_url(self) -> str:
        return f"s3://{self.processed_bucket}/{self.report_key}"


def explicit_keys(text: str, raw_bucket: str) -> list[str]:
    """The keys of ``--stream_keys``: trimmed, ``s3://<raw_bucket>/`` removed, each once."""
    keys: list[str] = []
    url_prefix = f"s3://{raw_bucket}/"
    for item in text.split(","):
        key = item.strip()
        if key.startswith(url_prefix):
            key = key[len(url_prefix) :]
        if key and key not in keys:
            keys.append(key)
    return keys


def read_error(bucket: str, key: str, exc: ClientError) -> str:
    if error_code(exc) in MISSING_CODES:
        return f"s3://{bucket}/{key} does not exist"
    return f"s3://{bucket}/{key} cannot be read: {error_code(exc) or exc}"


class ValidationJob:
    def __init__(self, args: ValidationArgs, s3, dynamodb) -> None:
        self.args = args
        self.s3 = s3
        self.tracker = Tracker(dynamodb, args.tracker_table, args.claim_window_s)

    def log(self, message: str) -> None:
        print(message, flush=True)

    # -- entry point -------------------------------------------------------------------------
    def run(self) -> dict:
        references, ids = self.validate_references()
        if self.args.stream_keys.strip():
            keys = dict.fromkeys(explicit_keys(self.args.stream_keys, self.args.raw_bucket))
        else:
            keys = self.pending_keys()

        if all(r.status != ValidationStatus.FAILED for r in references):
            streams = [self.validate_stream(key, ids) for key in keys]
            for result in streams:
                # Only a file that was read (it has an ETag) has something to move.
                if result.status == ValidationStatus.FAILED and result.etag is not None:
                    self.quarantine(result)
        else:
            streams = [not_validated(key, etag=etag) for key, etag in keys.items()]
            self.mark_not_validated(streams, references)
        return self.write_report(references, streams)

    def mark_not_validated(self, streams: list[FileResult], references: list[FileResult]) -> None:
        """NOT_VALIDATED in the tracker, so the retry judge takes these files again once a
        reference file is newer than the mark (docs/data-contract.md §8.1)."""
        failed = "; ".join(f"{r.key}: {r.error}" for r in references if r.error)
        reason = f"not validated: reference files failed: {failed}"
        for result in streams:
            etag = result.etag
            if etag is None:  # an explicit key: its ETag was not listed
                try:
                    etag = plain_etag(
                        self.s3.head_object(Bucket=self.args.raw_bucket, Key=result.key)["ETag"]
                    )
                except ClientError:
                    continue  # gone: nothing to come back to
            if not self.tracker.mark_not_validated(result.key, etag, self.args.batch_id, reason):
                self.log(f"{result.key}: not marked NOT_VALIDATED (completed or held by a run)")

    # -- which files -------------------------------------------------------------------------
    def pending_keys(self) -> dict[str, str | None]:
        """Stream files (``streams/**.csv``, nested folders included, as the S3 event filter
        sees them) that the tracker does not hold as COMPLETED with their current ETag:
        key -> ETag."""
        keys = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.args.raw_bucket, Prefix=STREAMS_PREFIX
        ):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not key.endswith(".csv"):
                    continue
                if self.tracker.is_completed(key, plain_etag(obj["ETag"])):
                    self.log(f"skipping {key}: already COMPLETED with this ETag")
                    continue
                keys[key] = plain_etag(obj["ETag"])
        return dict(sorted(keys.items()))

    # -- validation --------------------------------------------------------------------------
    def validate_references(self) -> tuple[list[FileResult], dict[str, set[str]]]:
        raw = self.args.raw_bucket
        results: list[FileResult] = []
        ids: dict[str, set[str]] = {}
        for kind, key in ((SONGS, SONGS_KEY), (USERS, USERS_KEY)):
            try:
                obj = self.s3.get_object(Bucket=raw, Key=key)
            except ClientError as exc:
                results.append(failed_file(key, kind, read_error(raw, key, exc)))
                ids[kind] = set()
                continue
            try:
                result, found = validate_reference_file(
                    obj["Body"], kind, key, etag=plain_etag(obj["ETag"])
                )
            finally:
                obj["Body"].close()
            results.append(result)
            ids[kind] = found
        return results, ids

    def validate_stream(self, key: str, ids: dict[str, set[str]]) -> FileResult:
        raw = self.args.raw_bucket
        problem = key_problem(key)
        if problem is not None:
            # Refused before anything reads it: Spark would read another path. The ETag makes
            # the file movable to quarantine (a key outside streams/ is not ours to move).
            etag = None
            if key.startswith(STREAMS_PREFIX):
                try:
                    etag = plain_etag(self.s3.head_object(Bucket=raw, Key=key)["ETag"])
                except ClientError as exc:
                    return failed_file(key, STREAMS, read_error(raw, key, exc))
            return failed_file(key, STREAMS, refused_key_message(key, problem), etag=etag)
        try:
            obj = self.s3.get_object(Bucket=raw, Key=key)
        except ClientError as exc:
            return failed_file(key, STREAMS, read_error(raw, key, exc))
        try:
            return validate_stream_file(
                obj["Body"],
                key,
                known_tracks=ids[SONGS],
                known_users=ids[USERS],
                threshold=self.args.threshold,
                etag=plain_etag(obj["ETag"]),
            )
        finally:
            obj["Body"].close()

    # -- quarantine --------------------------------------------------------------------------
    def quarantine(self, result: FileResult) -> None:
        """Move a FAILED stream file to quarantine and mark it QUARANTINED in the tracker.

        The tracker claim comes first (a conditional write), so a file another run is
        processing is not moved under it; a file that cannot be moved stays in place, marked
        FAILED, and is validated again by the next run."""
        a, tracker = self.args, self.tracker
        key, batch_id, etag = result.key, a.batch_id, result.etag
        assert etag is not None  # only a file that was read is quarantined
        if not tracker.claim(key, etag, batch_id):
            item = tracker.get(key) or {}
            result.error = (result.error or "") + (
                f"; not quarantined: the tracker holds it as {item.get('status')} "
                f"(batch {item.get('batch_id')}, etag {item.get('etag')})"
            )
            return
        reason = {
            "status": result.status,
            "error": result.error,
            "missing_columns": result.missing_columns,
            "rows_read": result.rows_read,
            "rows_rejected": result.rows_rejected,
            "threshold": a.threshold,
            "report": a.report_url,
        }
        try:
            result.quarantined_to = quarantine_file(
                self.s3, a.raw_bucket, key, a.quarantine_bucket, batch_id, reason, etag=etag
            )
        except QuarantineError as exc:
            result.error = (result.error or "") + f"; not quarantined: {exc}"
            tracker.set_status(key, TrackerStatus.FAILED, batch_id, error=result.error, etag=etag)
            return
        except Exception as exc:
            crashed = f"quarantine crashed: {exc!r}"
            tracker.set_status(key, TrackerStatus.FAILED, batch_id, error=crashed, etag=etag)
            raise
        tracker.set_status(
            key,
            TrackerStatus.QUARANTINED,
            batch_id,
            counts={"rows_read": result.rows_read, "rows_rejected": result.total_rejected},
            error=result.error,
            etag=etag,
        )

    # -- the report --------------------------------------------------------------------------
    def write_report(self, references: list[FileResult], streams: list[FileResult]) -> dict:
        a = self.args
        report = build_report(a.batch_id, references, streams, threshold=a.threshold)
        self.s3.put_object(
            Bucket=a.processed_bucket,
            Key=a.report_key,
            Body=(json.dumps(report, indent=2) + "\n").encode(),
            ContentType="application/json",
        )
        for result in references + streams:
            self.log(summary_line(result))
        self.log(
            f"validation report: {a.report_url} overall_status={report['overall_status']}"
            + (f" ({report['error']})" if report["error"] else "")
        )
        return report
