"""State that survives a restart: moto keeps everything in memory, so `down` saves the
manifest's buckets and tables to the state folder and `up` loads them back.

Layout of ``<state>/snapshot/``::

    meta.json                      when, what, how many
    s3/<bucket>/objects/<n>        object bytes, numbered (keys need not be valid file names)
    s3/<bucket>/index.jsonl        one line per object: key, file, content type, metadata, ETag,
                                   part sizes (objects uploaded in parts: same ETag on restore)
    dynamodb/<table>.jsonl         one item per line, in DynamoDB's typed JSON

A snapshot is written to a temporary folder and renamed into place, so a `down` that dies half
way never leaves a half snapshot behind. SQS messages in flight are not saved: the DAG's guard
sensor finds unprocessed stream files in S3 on the next run.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from musicpipe.aws.local import LocalAws
from musicpipe.aws.s3 import plain_etag
from musicpipe.manifest import Manifest


@dataclass
class SnapshotSummary:
    objects: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    taken_at: float = 0.0
    # What a journal names as its base; snapshots from before journals had none.
    id: str = ""

    def describe(self) -> str:
        objects = sum(self.objects.values())
        items = sum(self.items.values())
        return f"{objects} S3 objects in {len(self.objects)} buckets, {items} DynamoDB items"


def save_snapshot(aws: LocalAws, manifest: Manifest, snapshot_dir: Path) -> SnapshotSummary:
    tmp = snapshot_dir.with_name(snapshot_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    summary = SnapshotSummary(taken_at=time.time(), id=uuid.uuid4().hex)

    s3 = aws.client("s3")
    for bucket in manifest.buckets.values():
        bucket_dir = tmp / "s3" / bucket
        objects_dir = bucket_dir / "objects"
        objects_dir.mkdir(parents=True)
        count = 0
        with (bucket_dir / "index.jsonl").open("w") as index:
            try:
                pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))
            except ClientError:
                continue  # bucket not there: nothing to save
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    resp = s3.get_object(Bucket=bucket, Key=key)
                    with (objects_dir / str(count)).open("wb") as fh:
                        for chunk in resp["Body"].iter_chunks(1 << 20):
                            fh.write(chunk)
                    entry = {
                        "key": key,
                        "file": str(count),
                        "content_type": resp.get("ContentType"),
                        "metadata": resp.get("Metadata", {}),
                        "etag": resp.get("ETag"),
                    }
                    parts = _part_sizes(s3, bucket, key, resp.get("ETag", ""))
                    if parts:
                        entry["parts"] = parts
                    index.write(json.dumps(entry) + "\n")
                    count += 1
        summary.objects[bucket] = count

    ddb = aws.client("dynamodb")
    (tmp / "dynamodb").mkdir()
    for spec in manifest.tables:
        count = 0
        with (tmp / "dynamodb" / f"{spec.name}.jsonl").open("w") as out:
            try:
                for page in ddb.get_paginator("scan").paginate(TableName=spec.name):
                    for item in page["Items"]:
                        out.write(json.dumps(item) + "\n")
                        count += 1
            except ClientError:
                pass
        summary.items[spec.name] = count

    (tmp / "meta.json").write_text(
        json.dumps(
            {
                "id": summary.id,
                "taken_at": summary.taken_at,
                "objects": summary.objects,
                "items": summary.items,
            }
        )
    )
    shutil.rmtree(snapshot_dir, ignore_errors=True)
    tmp.rename(snapshot_dir)
    return summary


def _part_sizes(s3, bucket: str, key: str, etag: str) -> list[int] | None:
    """The part sizes of an object uploaded in parts (its ETag ends in -N), else None.

    An object's ETag is part of its identity: the archiver copies with CopySourceIfMatch and
    the journal's replay repeats such copies. Restored with the same part sizes, a multipart
    object gets the same ETag back; any other object is restored with one PUT (its ETag is
    the MD5 of its bytes, as before)."""
    bare = plain_etag(etag)
    if "-" not in bare:
        return None
    count = int(bare.rsplit("-", 1)[1])
    return [
        s3.head_object(Bucket=bucket, Key=key, PartNumber=n)["ContentLength"]
        for n in range(1, count + 1)
    ]


def _restore_object(s3, bucket: str, entry: dict, path: Path) -> None:
    extra = {"Metadata": entry.get("metadata") or {}}
    if entry.get("content_type"):
        extra["ContentType"] = entry["content_type"]
    with path.open("rb") as fh:
        if not entry.get("parts"):
            s3.put_object(Bucket=bucket, Key=entry["key"], Body=fh, **extra)
            return
        upload = s3.create_multipart_upload(Bucket=bucket, Key=entry["key"], **extra)
        done = []
        for number, size in enumerate(entry["parts"], start=1):
            part = s3.upload_part(
                Bucket=bucket,
                Key=entry["key"],
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=fh.read(size),
            )
            done.append({"PartNumber": number, "ETag": part["ETag"]})
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=entry["key"],
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": done},
        )


def read_summary(snapshot_dir: Path) -> SnapshotSummary | None:
    try:
        meta = json.loads((snapshot_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return SnapshotSummary(
        objects=meta["objects"],
        items=meta["items"],
        taken_at=meta["taken_at"],
        id=meta.get("id") or repr(meta["taken_at"]),
    )


def restore_snapshot(
    aws: LocalAws, manifest: Manifest, snapshot_dir: Path
) -> SnapshotSummary | None:
    """Load a snapshot into freshly bootstrapped resources. None when there is no snapshot."""
    saved = read_summary(snapshot_dir)
    if saved is None:
        return None
    summary = SnapshotSummary(taken_at=saved.taken_at, id=saved.id)
    s3 = aws.client("s3")
    for bucket in manifest.buckets.values():
        index = snapshot_dir / "s3" / bucket / "index.jsonl"
        if not index.exists():
            continue
        count = 0
        for line in index.read_text().splitlines():
            entry = json.loads(line)
            path = snapshot_dir / "s3" / bucket / "objects" / entry["file"]
            _restore_object(s3, bucket, entry, path)
            count += 1
        summary.objects[bucket] = count

    dynamodb = aws.session.resource("dynamodb", endpoint_url=aws.endpoint, config=aws.config)
    deserializer = TypeDeserializer()
    for spec in manifest.tables:
        path = snapshot_dir / "dynamodb" / f"{spec.name}.jsonl"
        if not path.exists():
            continue
        count = 0
        # batch_writer batches puts and resends UnprocessedItems itself.
        with dynamodb.Table(spec.name).batch_writer() as writer, path.open() as lines:
            for line in lines:
                if line.strip():
                    item = json.loads(line)
                    writer.put_item(Item={k: deserializer.deserialize(v) for k, v in item.items()})
                    count += 1
        summary.items[spec.name] = count
    return summary
