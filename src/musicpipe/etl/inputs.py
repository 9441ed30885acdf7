"""What the ETL reads: each input at the version validation passed (docs/data-contract.md §3.2).

The batch's validation report names every file with its ETag. The ETL reads each input with
GetObject ``IfMatch=<that ETag>`` and writes those bytes to a per-batch pinned copy,
``s3://<processed>/pinned/<batch_id>/<key>``; Spark reads only the pinned copies, so a file
replaced after validation can never reach the ETL unvalidated. (CopyObject with
CopySourceIfMatch would save the download, but moto ignores that condition, so the tests could
not tell the two apart.) The pinned copies are deleted when the batch ends.

A run without a report for its batch (the job started by hand, not by the DAG, whose
``check_validation_status`` stops without one) pins each file at the ETag it has when the run
starts: the bytes are still one consistent version, but nothing validated them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from musicpipe.aws.s3 import is_not_found, is_precondition_failed, plain_etag
from musicpipe.contract.columns import STREAMS
from musicpipe.contract.layout import pinned_key, pinned_prefix, report_key
from musicpipe.contract.status import ValidationStatus


@dataclass
class Validated:
    """The batch's validation report, reduced to what the ETL needs: key → validated ETag."""

    report_url: str | None  # None: no report for this batch (a run by hand)
    references: dict[str, str] = field(default_factory=dict)
    streams: dict[str, str] = field(default_factory=dict)  # the PASSED stream files only


def validated_from_report(report: dict | None, report_url: str) -> Validated:
    """The ETags the report gives the reference files and the stream files that PASSED."""
    if report is None:
        return Validated(None)
    found = Validated(report_url)
    for entry in report.get("files", []):
        key, etag = entry.get("key"), entry.get("etag")
        if not key or not etag:
            continue
        if entry.get("kind") != STREAMS:
            found.references[key] = plain_etag(etag)
        elif entry.get("status") == ValidationStatus.PASSED:
            found.streams[key] = plain_etag(etag)
    return found


class ReferenceChanged(RuntimeError):
    """songs.csv or users.csv is not what validation passed: the run stops before any claim."""


class Changed(Exception):
    """The object's ETag is not the one asked for (S3 412 PreconditionFailed)."""

    def __init__(self, key: str, wanted: str, now: str | None) -> None:
        super().__init__(f"{key}: validated ETag {wanted}, now {now or 'gone'}")
        self.key, self.wanted, self.now = key, wanted, now


class Gone(Exception):
    """The object no longer exists."""


class Pinner:
    """Pins a batch's inputs into ``pinned/<batch_id>/`` of the processed bucket."""

    def __init__(self, s3, raw_bucket: str, processed_bucket: str, batch_id: str) -> None:
        self.s3 = s3
        self.raw_bucket = raw_bucket
        self.bucket = processed_bucket
        self.batch_id = batch_id

    def read_validated(self) -> Validated:
        key = report_key(self.batch_id)
        url = f"s3://{self.bucket}/{key}"
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if is_not_found(exc):
                return Validated(None)
            raise
        return validated_from_report(json.loads(body), url)

    def current_etag(self, key: str) -> str | None:
        """The object's ETag now; None when it is gone."""
        try:
            return plain_etag(self.s3.head_object(Bucket=self.raw_bucket, Key=key)["ETag"])
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

    def pin(self, key: str, etag: str) -> str:
        """Copy raw ``key`` at ``etag`` to its pinned key (returned). Raises Changed when the
        object has another ETag now, Gone when it no longer exists, else S3's own error."""
        try:
            obj = self.s3.get_object(Bucket=self.raw_bucket, Key=key, IfMatch=f'"{etag}"')
        except ClientError as exc:
            if is_precondition_failed(exc):
                raise Changed(key, etag, self.current_etag(key)) from exc
            if is_not_found(exc):
                raise Gone(key) from exc
            raise
        target = pinned_key(self.batch_id, key)
        # Streamed, not held in memory; botocore checks the body's length as it reads.
        self.s3.upload_fileobj(obj["Body"], self.bucket, target)
        return target

    def url(self, key: str) -> str:
        """The s3:// URL of raw ``key``'s pinned copy (for Spark)."""
        return f"s3://{self.bucket}/{pinned_key(self.batch_id, key)}"

    def root(self) -> str:
        """What a pinned copy's key starts with (the batch's folder)."""
        return pinned_prefix(self.batch_id)

    def delete_all(self) -> int:
        """Delete the batch's pinned copies; how many were deleted."""
        deleted = 0
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=pinned_prefix(self.batch_id)
        )
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
                deleted += len(keys)
        return deleted
