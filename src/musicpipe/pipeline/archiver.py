"""The ``archive_processed_files`` step (docs/data-contract.md §6.2): COMPLETED stream files →
the archive.

For each tracker item with status ``COMPLETED`` (or each of ``keys``), while the object
``s3://<raw>/<file_key>`` still exists with the etag the tracker records:

1. copy it to ``s3://<raw>/archive/streams/<YYYY>/<MM>/<DD>/<name>`` with
   ``CopySourceIfMatch=<etag>``. ``<name>`` is the key below ``streams/`` (the file name for the
   usual flat layout). The date is the object's ``LastModified`` in UTC, i.e. the day the current
   version **arrived** in the raw bucket (not the listen dates inside it, not the day it was
   archived), so re-running the step on another day archives to the same place.
2. verify the copy with a HEAD: same ``ContentLength`` and same ``ETag`` as the original (or,
   where the ETag is not an MD5 of the bytes, e.g. SSE-KMS, the same full-object checksum).
   A copy that does not verify is removed again and the original is kept.
   Single-part objects are copied with CopyObject (the copy's ETag is the MD5 of the bytes, equal
   to the original's). Multipart originals (ETag ``<md5>-<parts>``) are copied part for part
   with UploadPartCopy using the original's part sizes, so the copy gets the same ETag too (and
   objects over CopyObject's 5 GB limit work).
3. record ``archived_key`` / ``archived_at`` on the tracker item (a plain UpdateItem; the status
   stays ``COMPLETED``).
4. delete the original with ``IfMatch=<etag>``, so a version re-uploaded meanwhile is never
   deleted.

Outcomes per file (:class:`ArchiveResult.status`):

* ``archived``: copied, verified, original deleted.
* ``skipped_changed``: the object under ``streams/`` has another etag than the tracker's: it was
  re-uploaded since it was processed, it is new data for the next run, and it stays.
* ``already_archived``: the original is gone and the object named by the tracker's
  ``archived_key`` (recorded only after a verified copy) exists: a re-run is a no-op.
* ``missing``: the original is gone and no verified archive copy is known.
* ``not_completed``: (only for explicit ``keys``) the tracker has no COMPLETED item for it.
* ``failed``: the copy did not verify, or S3 refused a step; the original is kept and
  ``detail`` says why. Other files are still processed; the caller decides whether to fail.

**Unchanged re-uploads.** A COMPLETED file uploaded again under its key with the same bytes
(same ETag) is never processed again: its rows are already counted. Validation skips it, so
no run names it as completed; :func:`archive_already_counted` finds such files waiting under
``streams/`` and archives them the same way (a second archive copy when it arrived on another
day), with ``detail`` saying it was already counted. The DAG runs it at the end of every run
that did not fail, so such a file leaves ``streams/`` with the next arrival's run.

If the archive key already holds *different* bytes (the same file name arrived twice on one day
with different content), the copy goes to ``<stem>.<etag>.<ext>`` next to it instead of
overwriting it. Archive keys are under ``archive/``, outside the ``streams/`` prefix of the S3
event notification, so archiving never looks like an arrival.

Python 3.9-compatible; boto3 and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from musicpipe.aws.s3 import (
    CONDITIONAL_CHECK_FAILED,
    error_code,
    head_or_none,
    is_precondition_failed,
    plain_etag,
    same_object,
)
from musicpipe.contract.layout import ARCHIVE_PREFIX, STREAMS_PREFIX
from musicpipe.contract.status import ArchiveOutcome, TrackerStatus
from musicpipe.pipeline.tracker import Tracker, now_iso

MAX_COPY_OBJECT_BYTES = 5 * 1024**3  # larger objects need a multipart copy
ALREADY_COUNTED = "unchanged re-upload of a COMPLETED file (same key and ETag): already counted"


@dataclass
class ArchiveResult:
    file_key: str
    status: ArchiveOutcome
    archived_key: str | None = None
    etag: str | None = None
    detail: str = ""


class CopyVerificationError(RuntimeError):
    pass


def archive_key_for(file_key: str, arrived: datetime) -> str:
    """``archive/streams/YYYY/MM/DD/<name>`` for a stream key and its arrival time (UTC)."""
    if not file_key.startswith(STREAMS_PREFIX):
        raise ValueError(f"{file_key!r} is not under {STREAMS_PREFIX}")
    if arrived.tzinfo is None:
        arrived = arrived.replace(tzinfo=timezone.utc)
    day = arrived.astimezone(timezone.utc)
    return f"{ARCHIVE_PREFIX}{day:%Y/%m/%d}/{file_key[len(STREAMS_PREFIX) :]}"


def _alternate_key(key: str, etag: str) -> str:
    folder, _, name = key.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    tagged = f"{stem}.{plain_etag(etag)}" + (f".{ext}" if ext else "")
    return f"{folder}/{tagged}"


def _copy(s3, bucket: str, key: str, dest: str, source: dict) -> None:
    """Copy ``key`` to ``dest`` so that the copy has the same ETag (see module docstring)."""
    etag = source["ETag"]
    size = source["ContentLength"]
    copy_source = {"Bucket": bucket, "Key": key}
    if "-" not in plain_etag(etag) and size <= MAX_COPY_OBJECT_BYTES:
        s3.copy_object(
            Bucket=bucket,
            Key=dest,
            CopySource=copy_source,
            CopySourceIfMatch=etag,
            MetadataDirective="COPY",
        )
        return
    parts = int(plain_etag(etag).rsplit("-", 1)[1]) if "-" in plain_etag(etag) else 1
    sizes = []
    for number in range(1, parts + 1):
        # No IfMatch here: emulators compare it with the part's ETag. The part copies below
        # carry CopySourceIfMatch, and the copy's ETag is verified afterwards.
        head = s3.head_object(Bucket=bucket, Key=key, PartNumber=number)
        sizes.append(head["ContentLength"])
    if sum(sizes) != size:
        raise CopyVerificationError(f"part sizes {sizes} do not add up to {size} bytes")
    create: dict = {"Bucket": bucket, "Key": dest, "Metadata": source.get("Metadata", {})}
    if source.get("ContentType"):
        create["ContentType"] = source["ContentType"]
    upload_id = s3.create_multipart_upload(**create)["UploadId"]
    try:
        done = []
        start = 0
        for number, part_size in enumerate(sizes, start=1):
            result = s3.upload_part_copy(
                Bucket=bucket,
                Key=dest,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=copy_source,
                CopySourceIfMatch=etag,
                CopySourceRange=f"bytes={start}-{start + part_size - 1}",
            )
            done.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
            start += part_size
        s3.complete_multipart_upload(
            Bucket=bucket, Key=dest, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    except Exception:
        s3.abort_multipart_upload(Bucket=bucket, Key=dest, UploadId=upload_id)
        raise


def _archive_one(s3, tracker: Tracker, bucket: str, item: dict) -> ArchiveResult:
    file_key = item["file_key"]
    etag = plain_etag(item.get("etag")) or ""
    result = ArchiveResult(file_key=file_key, status=ArchiveOutcome.MISSING, etag=etag or None)
    if not file_key.startswith(STREAMS_PREFIX):
        result.status, result.detail = (
            ArchiveOutcome.FAILED,
            f"not a stream file (outside {STREAMS_PREFIX})",
        )
        return result

    source = head_or_none(s3, bucket, file_key, ChecksumMode="ENABLED")
    if source is None:
        known = item.get("archived_key")
        # archived_key is only recorded after the copy was verified.
        if known and head_or_none(s3, bucket, known) is not None:
            result.status, result.archived_key = ArchiveOutcome.ALREADY_ARCHIVED, known
            return result
        result.detail = "original gone and no archived copy recorded on the tracker"
        return result
    if plain_etag(source["ETag"]) != etag:
        result.status = ArchiveOutcome.SKIPPED_CHANGED
        result.detail = f"object etag {plain_etag(source['ETag'])} != tracker etag {etag}: new data"
        return result

    dest = archive_key_for(file_key, source["LastModified"])
    existing = head_or_none(s3, bucket, dest, ChecksumMode="ENABLED")
    if existing is not None and not same_object(source, existing):
        dest = _alternate_key(dest, etag)
        existing = head_or_none(s3, bucket, dest, ChecksumMode="ENABLED")
    result.archived_key = dest
    copied = False
    try:
        if existing is None or not same_object(source, existing):
            _copy(s3, bucket, file_key, dest, source)
            copied = True
        copy = head_or_none(s3, bucket, dest, ChecksumMode="ENABLED")
        if copy is None:
            raise CopyVerificationError("copy not found after the copy")
        if not same_object(source, copy):
            if copied:
                s3.delete_object(Bucket=bucket, Key=dest)  # our own unverified copy
            raise CopyVerificationError(
                f"copy has {copy['ContentLength']} bytes / etag {plain_etag(copy['ETag'])}, "
                f"original {source['ContentLength']} bytes / etag {etag}"
            )
        _record_archive(tracker, file_key, dest)
        s3.delete_object(Bucket=bucket, Key=file_key, IfMatch=source["ETag"])
    except CopyVerificationError as exc:
        result.status, result.detail = (
            ArchiveOutcome.FAILED,
            f"copy not verified, original kept: {exc}",
        )
        return result
    except ClientError as exc:
        if is_precondition_failed(exc):
            # Re-uploaded between the HEAD and the copy or the delete: the new version stays.
            result.status = ArchiveOutcome.SKIPPED_CHANGED
            result.detail = "object changed while archiving; the new version stays in streams/"
            return result
        result.status, result.detail = ArchiveOutcome.FAILED, f"{error_code(exc)}: {exc}"
        return result
    result.status = ArchiveOutcome.ARCHIVED
    return result


def _record_archive(tracker: Tracker, file_key: str, archived_key: str) -> None:
    """Note where the file went, unless the item left COMPLETED meanwhile (a new claim)."""
    try:
        tracker.table.update_item(
            Key={"file_key": file_key},
            UpdateExpression="SET archived_key = :key, archived_at = :now",
            ConditionExpression="attribute_exists(file_key) AND #s = :completed",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":key": archived_key,
                ":now": now_iso(),
                ":completed": TrackerStatus.COMPLETED,
            },
        )
    except ClientError as exc:
        if error_code(exc) != CONDITIONAL_CHECK_FAILED:
            raise


def archive_completed_files(
    s3,
    dynamodb_resource,
    raw_bucket: str,
    tracker_table: str,
    keys: list[str] | None = None,
) -> list[ArchiveResult]:
    """Archive COMPLETED stream files (all of them, or only ``keys``); one result per file."""
    tracker = Tracker(dynamodb_resource, tracker_table)
    if keys is not None:
        keys = list(dict.fromkeys(keys))  # each file once, in the given order
    if keys is None:
        items = sorted(tracker.items(status=TrackerStatus.COMPLETED), key=lambda i: i["file_key"])
    else:
        items = []
        results_for_missing: list[ArchiveResult] = []
        for key in keys:
            item = tracker.get(key)
            if item is None or item.get("status") != TrackerStatus.COMPLETED:
                status = item.get("status") if item else "no tracker item"
                results_for_missing.append(
                    ArchiveResult(
                        key, ArchiveOutcome.NOT_COMPLETED, detail=f"tracker status: {status}"
                    )
                )
            else:
                items.append(item)
    results = [_archive_one(s3, tracker, raw_bucket, item) for item in items]
    if keys is not None:
        by_key = {r.file_key: r for r in results + results_for_missing}
        results = [by_key[k] for k in keys]
    return results


def already_counted_keys(s3, tracker: Tracker, raw_bucket: str) -> list[str]:
    """Stream files waiting under ``streams/`` whose key and ETag the tracker holds as
    COMPLETED: their rows are counted, and no run will process them again."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=raw_bucket, Prefix=STREAMS_PREFIX
    ):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".csv"):
                continue
            item = tracker.get(obj["Key"]) or {}
            current = plain_etag(obj["ETag"])
            if (
                item.get("status") == TrackerStatus.COMPLETED
                and plain_etag(item.get("etag")) == current
            ):
                keys.append(obj["Key"])
    return sorted(keys)


def archive_already_counted(
    s3, dynamodb_resource, raw_bucket: str, tracker_table: str, skip: list[str] | None = None
) -> list[ArchiveResult]:
    """Archive every file of :func:`already_counted_keys` (but ``skip``: the files the caller
    archives itself); each result's ``detail`` says the file was already counted."""
    tracker = Tracker(dynamodb_resource, tracker_table)
    skipped = set(skip or ())
    keys = [k for k in already_counted_keys(s3, tracker, raw_bucket) if k not in skipped]
    results = archive_completed_files(s3, dynamodb_resource, raw_bucket, tracker_table, keys)
    for result in results:
        result.detail = f"{ALREADY_COUNTED}; {result.detail}" if result.detail else ALREADY_COUNTED
    return results
