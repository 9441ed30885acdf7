"""Moving a FAILED file whole to the quarantine bucket (docs/data-contract.md §2.3).

``s3://<raw>/<key>`` goes to ``s3://<quarantine>/quarantine/files/<batch_id>/<key>``, and next to
it ``<key>.reason.json`` (the original key plus ``.reason.json``, e.g.
``quarantine/files/b1/streams/x.csv.reason.json``) says what failed. The order is: copy (only
if the source still has the ETag that was validated), verify the copy, write the reason, and
only then delete the original. Any failure before the delete raises
:class:`QuarantineError` and leaves the original where it was: a file is never lost and never
half-moved. A re-run for the same batch simply does it again (the copy is overwritten).

The one window this cannot close is a re-upload between the final ETag check and the delete
(S3 has no conditional delete for general-purpose buckets here); it is milliseconds wide.

boto3 and the standard library only, Python 3.9-compatible (the validation job uses it).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from musicpipe.aws.s3 import (
    copy_mismatches,
    error_code,
    head_or_none,
    is_precondition_failed,
    plain_etag,
)
from musicpipe.contract.layout import QUARANTINE_FILES_PREFIX, REASON_SUFFIX

MAX_SINGLE_COPY_BYTES = 5 * 1024**3  # CopyObject's limit


class QuarantineError(RuntimeError):
    """The file could not be quarantined; the original was left untouched."""


def quarantine_key(batch_id: str, key: str) -> str:
    if not batch_id or "/" in batch_id or batch_id in (".", ".."):
        raise ValueError(f"batch_id {batch_id!r} cannot be a single path segment")
    # A key ending in '/' is a legal object key too (the key rule refuses it, and its file
    # must still reach quarantine); the copy keeps the key as it is.
    if not key:
        raise ValueError("an empty key is not an object key")
    return f"{QUARANTINE_FILES_PREFIX}{batch_id}/{key}"


def quarantine_file(
    s3,
    raw_bucket: str,
    key: str,
    quarantine_bucket: str,
    batch_id: str,
    reason: dict,
    etag: str | None = None,
) -> str:
    """Move ``s3://raw_bucket/key`` to quarantine; return the ``s3://`` URL of the copy.

    ``etag`` is the ETag the file had when it was validated: the copy is made only if the
    object still has it (``CopySourceIfMatch``), so a file re-uploaded in between is left
    alone. Without it, the ETag found now is used. ``reason`` is written as JSON, with the
    source, its size and ETag, the batch and the time added.
    """
    destination = quarantine_key(batch_id, key)
    try:
        head = s3.head_object(Bucket=raw_bucket, Key=key)
    except ClientError as exc:
        raise QuarantineError(
            f"s3://{raw_bucket}/{key} cannot be quarantined: {error_code(exc) or exc}"
        ) from exc
    current = plain_etag(head["ETag"])
    expected = plain_etag(etag) or current
    if current != expected:
        raise QuarantineError(
            f"s3://{raw_bucket}/{key} changed since it was validated (ETag {current}, "
            f"validated {expected}): left in place for the next run"
        )
    size = int(head["ContentLength"])
    if size > MAX_SINGLE_COPY_BYTES:
        raise QuarantineError(
            f"s3://{raw_bucket}/{key} is {size} bytes, more than one CopyObject can move; "
            "left in place"
        )

    try:
        s3.copy_object(
            Bucket=quarantine_bucket,
            Key=destination,
            CopySource={"Bucket": raw_bucket, "Key": key},
            CopySourceIfMatch=f'"{expected}"',
            MetadataDirective="COPY",
        )
    except ClientError as exc:
        if is_precondition_failed(exc):
            raise QuarantineError(
                f"s3://{raw_bucket}/{key} changed since it was validated: left in place"
            ) from exc
        raise QuarantineError(f"copying s3://{raw_bucket}/{key} failed: {exc}") from exc

    copied = s3.head_object(Bucket=quarantine_bucket, Key=destination)
    # A single-part source copied with CopyObject keeps its MD5 ETag; a multipart one does not.
    problems = copy_mismatches(head, copied, compare_etags="-" not in expected)
    if problems:
        raise QuarantineError(
            f"the copy of s3://{raw_bucket}/{key} at s3://{quarantine_bucket}/{destination} "
            f"does not match ({', '.join(problems)}): original left in place"
        )

    document = dict(reason)
    document.update(
        {
            "batch_id": batch_id,
            "source": f"s3://{raw_bucket}/{key}",
            "source_key": key,
            "etag": expected,
            "content_length": size,
            "quarantined_to": f"s3://{quarantine_bucket}/{destination}",
            "quarantined_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    )
    s3.put_object(
        Bucket=quarantine_bucket,
        Key=destination + REASON_SUFFIX,
        Body=(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n").encode(),
        ContentType="application/json",
    )

    # Last look before the delete: a re-upload since the copy must not be deleted.
    latest = head_or_none(s3, raw_bucket, key)
    if latest is None:
        return f"s3://{quarantine_bucket}/{destination}"  # already gone (a re-run)
    if plain_etag(latest["ETag"]) != expected:
        raise QuarantineError(
            f"s3://{raw_bucket}/{key} was re-uploaded while being quarantined: the old version "
            f"is at s3://{quarantine_bucket}/{destination}, the new one left in place"
        )
    s3.delete_object(Bucket=raw_bucket, Key=key)
    return f"s3://{quarantine_bucket}/{destination}"
