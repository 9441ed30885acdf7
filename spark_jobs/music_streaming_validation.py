"""Glue Python shell job ``music_streaming_validation`` (docs/data-contract.md §2).

Validates the batch's reference and stream files, quarantines the stream files that fail,
marks them in the tracker and writes ``validation_reports/<batch_id>/report.json``; it exits 0
whatever the report says (the DAG branches on it). The logic lives in
:mod:`musicpipe.validation.job`, which this job receives through --extra-py-files; this script
reads the arguments and wires the AWS clients.

Arguments (the manifest's DefaultArguments supply all but ``--batch_id``):
  --batch_id                     the run's batch id (one path segment)
  --raw_bucket --processed_bucket --quarantine_bucket --tracker_table
  --validation_reject_threshold  share of rejected rows above which a stream file FAILS
  --stream_keys (optional)       comma-separated raw keys (``streams/...csv`` or
                                 ``s3://<raw_bucket>/streams/...csv``) to validate; when absent
                                 or empty, every ``streams/**.csv`` object in the raw bucket
                                 that the tracker does not hold as COMPLETED with the same ETag

Runs on Glue's Python shell (Python 3.9): stdlib, boto3, and the ``musicpipe`` package from
``--extra-py-files``. Plain boto3 clients: on Glue they reach AWS; locally the emulator sets
``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import sys

import boto3
from awsglue.utils import getResolvedOptions

# What the job reads (musicpipe.contract.layout); tests/validation/test_validation_job.py holds
# them to the manifest's.
from musicpipe.contract.layout import SONGS_KEY, STREAMS_PREFIX, USERS_KEY  # noqa: F401
from musicpipe.validation.job import ValidationArgs, ValidationJob

REQUIRED_ARGS = [
    "JOB_NAME",
    "batch_id",
    "raw_bucket",
    "processed_bucket",
    "quarantine_bucket",
    "tracker_table",
    "validation_reject_threshold",
]


def resolve_args(argv: list[str]) -> ValidationArgs:
    args = getResolvedOptions(argv, REQUIRED_ARGS)
    stream_keys = ""
    if "--stream_keys" in argv:
        stream_keys = getResolvedOptions(argv, ["stream_keys"])["stream_keys"] or ""
    window: dict[str, int] = {}
    if "--claim_window_seconds" in argv:
        seconds = getResolvedOptions(argv, ["claim_window_seconds"])["claim_window_seconds"]
        window["claim_window_s"] = int(seconds)
    return ValidationArgs(
        batch_id=args["batch_id"],
        raw_bucket=args["raw_bucket"],
        processed_bucket=args["processed_bucket"],
        quarantine_bucket=args["quarantine_bucket"],
        tracker_table=args["tracker_table"],
        reject_threshold=args["validation_reject_threshold"],
        stream_keys=stream_keys,
        **window,
    )


def main(argv: list[str] | None = None) -> dict:
    args = resolve_args(list(sys.argv if argv is None else argv))
    job = ValidationJob(args, s3=boto3.client("s3"), dynamodb=boto3.resource("dynamodb"))
    return job.run()


if __name__ == "__main__":
    main()
