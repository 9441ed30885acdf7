"""Glue Python shell job ``music_streaming_validation`` (docs/data-contract.md §2).

Arguments (the manifest's DefaultArguments supply all but ``--batch_id``):
  --batch_id                     the run's batch id (one path segment)
  --raw_bucket --processed_bucket --quarantine_bucket --tracker_table
  --validation_reject_threshold  share of rejected rows above which a stream file FAILS
  --stream_keys (optional)       comma-separated raw keys (``streams/...csv`` or
                                 ``s3://<raw_bucket>/streams/...csv``) to validate; when absent
                                 or empty, every ``streams/**.csv`` object in the raw bucket
                                 that the tracker does not hold as COMPLETED with the same ETag

What it does: reads ``songs/songs.csv`` and ``users/users.csv`` and the stream files, validates
them with :mod:`musicpipe.contract.validation`, moves each FAILED stream file whole to
``s3://<quarantine>/quarantine/files/<batch_id>/<key>`` with a ``.reason.json`` beside it and
marks it QUARANTINED in the tracker, writes ``s3://<processed>/validation_reports/<batch_id>/
report.json``, and prints one line per file plus the report's path. If a reference file fails,
no stream file is evaluated or moved (they are reported NOT_VALIDATED). It exits 0 whatever
``overall_status`` is: the DAG branches on the report. It fails (non-zero) only when it cannot
do its work at all (bad arguments, S3 or DynamoDB unreachable, report not writable).

Runs on Glue's Python shell (Python 3.9): stdlib, boto3, and the ``musicpipe.contract`` and
``musicpipe.pipeline`` packages from ``--extra-py-files``. Plain boto3 clients: on Glue they
reach AWS; locally the emulator sets ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import json
import sys

import boto3
from awsglue.utils import getResolvedOptions
from botocore.exceptions import ClientError

from musicpipe.contract.columns import SONGS, STREAMS, USERS
from musicpipe.contract.keys import key_problem, refused_key_message
from musicpipe.contract.layout import SONGS_KEY, STREAMS_PREFIX, USERS_KEY, report_key
from musicpipe.contract.status import TrackerStatus, ValidationStatus
from musicpipe.contract.validation import (
    build_report,
    failed_file,
    not_validated,
    summary_line,
    threshold_fraction,
    validate_reference_file,
    validate_stream_file,
)
from musicpipe.pipeline.quarantine import QuarantineError, plain_etag, quarantine_file
from musicpipe.pipeline.tracker import Tracker

REQUIRED_ARGS = [
    "JOB_NAME",
    "batch_id",
    "raw_bucket",
    "processed_bucket",
    "quarantine_bucket",
    "tracker_table",
    "validation_reject_threshold",
]
MISSING_CODES = ("NoSuchKey", "404", "NotFound", "NoSuchBucket")


def resolve_args(argv: list[str]) -> dict[str, str]:
    args = getResolvedOptions(argv, REQUIRED_ARGS)
    args["stream_keys"] = ""
    if "--stream_keys" in argv:
        args["stream_keys"] = getResolvedOptions(argv, ["stream_keys"])["stream_keys"] or ""
    if not args["batch_id"] or "/" in args["batch_id"]:
        raise ValueError(f"--batch_id must be one path segment, got {args['batch_id']!r}")
    threshold_fraction(args["validation_reject_threshold"])  # fails early on a bad value
    return args


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _read_error(bucket: str, key: str, exc: ClientError) -> str:
    if _code(exc) in MISSING_CODES:
        return f"s3://{bucket}/{key} does not exist"
    return f"s3://{bucket}/{key} cannot be read: {_code(exc) or exc}"


def explicit_keys(text: str, raw_bucket: str) -> list[str]:
    keys: list[str] = []
    url_prefix = f"s3://{raw_bucket}/"
    for item in text.split(","):
        key = item.strip()
        if key.startswith(url_prefix):
            key = key[len(url_prefix) :]
        if key and key not in keys:
            keys.append(key)
    return keys


def pending_keys(s3, tracker: Tracker, raw_bucket: str) -> dict[str, str]:
    """Stream files (``streams/**.csv``, nested folders included, as the S3 event filter sees
    them) that the tracker does not hold as COMPLETED with their current ETag: key -> ETag."""
    keys = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=raw_bucket, Prefix=STREAMS_PREFIX
    ):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if not key.endswith(".csv"):
                continue
            if tracker.is_completed(key, plain_etag(obj["ETag"])):
                print(f"skipping {key}: already COMPLETED with this ETag", flush=True)
                continue
            keys[key] = plain_etag(obj["ETag"])
    return dict(sorted(keys.items()))


def validate_references(s3, raw_bucket: str):
    results, ids = [], {}
    for kind, key in ((SONGS, SONGS_KEY), (USERS, USERS_KEY)):
        try:
            obj = s3.get_object(Bucket=raw_bucket, Key=key)
        except ClientError as exc:
            results.append(failed_file(key, kind, _read_error(raw_bucket, key, exc)))
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


def validate_stream(s3, raw_bucket: str, key: str, ids: dict, threshold: str):
    problem = key_problem(key)
    if problem is not None:
        # Refused before anything reads it: Spark would read another path. The ETag makes
        # the file movable to quarantine (a key outside streams/ is not ours to move).
        etag = None
        if key.startswith(STREAMS_PREFIX):
            try:
                etag = plain_etag(s3.head_object(Bucket=raw_bucket, Key=key)["ETag"])
            except ClientError as exc:
                return failed_file(key, STREAMS, _read_error(raw_bucket, key, exc))
        return failed_file(key, STREAMS, refused_key_message(key, problem), etag=etag)
    try:
        obj = s3.get_object(Bucket=raw_bucket, Key=key)
    except ClientError as exc:
        return failed_file(key, STREAMS, _read_error(raw_bucket, key, exc))
    try:
        return validate_stream_file(
            obj["Body"],
            key,
            known_tracks=ids[SONGS],
            known_users=ids[USERS],
            threshold=float(threshold),
            etag=plain_etag(obj["ETag"]),
        )
    finally:
        obj["Body"].close()


def quarantine(s3, tracker: Tracker, args: dict[str, str], result) -> None:
    """Move a FAILED stream file to quarantine and mark it QUARANTINED in the tracker.

    The tracker claim comes first (a conditional write), so a file another run is processing
    is not moved under it; a file that cannot be moved stays in place, marked FAILED, and is
    validated again by the next run."""
    key, batch_id = result.key, args["batch_id"]
    if tracker.claim(key, result.etag, batch_id) is None:
        item = tracker.get(key) or {}
        result.error += (
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
        "threshold": float(args["validation_reject_threshold"]),
        "report": report_url(args),
    }
    try:
        result.quarantined_to = quarantine_file(
            s3,
            args["raw_bucket"],
            key,
            args["quarantine_bucket"],
            batch_id,
            reason,
            etag=result.etag,
        )
    except QuarantineError as exc:
        result.error += f"; not quarantined: {exc}"
        failed = TrackerStatus.FAILED
        tracker.set_status(key, failed, batch_id, error=result.error, etag=result.etag)
        return
    except Exception as exc:
        crashed = f"quarantine crashed: {exc!r}"
        tracker.set_status(key, TrackerStatus.FAILED, batch_id, error=crashed, etag=result.etag)
        raise
    tracker.set_status(
        key,
        TrackerStatus.QUARANTINED,
        batch_id,
        counts={"rows_read": result.rows_read, "rows_rejected": result.total_rejected},
        error=result.error,
        etag=result.etag,
    )


def report_url(args: dict[str, str]) -> str:
    return f"s3://{args['processed_bucket']}/{report_key(args['batch_id'])}"


def run(args: dict[str, str]) -> dict:
    s3 = boto3.client("s3")
    tracker = Tracker(boto3.resource("dynamodb"), args["tracker_table"])
    raw = args["raw_bucket"]

    references, ids = validate_references(s3, raw)
    if args["stream_keys"].strip():
        keys = dict.fromkeys(explicit_keys(args["stream_keys"], raw))
    else:
        keys = pending_keys(s3, tracker, raw)

    if all(r.status != ValidationStatus.FAILED for r in references):
        streams = [
            validate_stream(s3, raw, key, ids, args["validation_reject_threshold"]) for key in keys
        ]
        for result in streams:
            # Only a file that was read (it has an ETag) has something to move.
            if result.status == ValidationStatus.FAILED and result.etag is not None:
                quarantine(s3, tracker, args, result)
    else:
        streams = [not_validated(key, etag=etag) for key, etag in keys.items()]

    report = build_report(
        args["batch_id"],
        references,
        streams,
        threshold=float(args["validation_reject_threshold"]),
    )
    s3.put_object(
        Bucket=args["processed_bucket"],
        Key=report_key(args["batch_id"]),
        Body=(json.dumps(report, indent=2) + "\n").encode(),
        ContentType="application/json",
    )
    for result in references + streams:
        print(summary_line(result), flush=True)
    print(
        f"validation report: {report_url(args)} overall_status={report['overall_status']}"
        + (f" ({report['error']})" if report["error"] else ""),
        flush=True,
    )
    return report


def main(argv: list[str] | None = None) -> dict:
    return run(resolve_args(list(sys.argv if argv is None else argv)))


if __name__ == "__main__":
    main()
