"""Bringing the embedded stack's AWS state back at ``up``: the snapshot the last ``down`` saved,
plus, after an unclean stop (moto killed or crashed), the journal of every write since.

The journal (``stack/journal.py``) names the snapshot it continues (its base). At ``up``:

* no journal: the last stop was a ``down``, whose snapshot holds everything; restore it;
* a journal on the saved snapshot (or on an empty start): an unclean stop; restore the
  snapshot, replay the journal, then hand the DAG the stream files still waiting (the queue's
  messages died with moto, and the replay's own S3 events name files long archived);
* a journal on another base: a ``down`` that saved a newer snapshot but died before deleting
  the journal (the snapshot is newer than the last write: nothing is missing), or a journal
  whose base is gone (its writes cannot be applied: kept aside, and ``up`` says which window
  is missing).

Then journaling starts again, on top of what was restored, before anything else writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from musicpipe.aws.local import LocalAws
from musicpipe.manifest import Manifest
from musicpipe.stack import journal
from musicpipe.stack.persistence import SnapshotSummary, read_summary, restore_snapshot


@dataclass
class Recovery:
    """What ``up`` found and did after the local AWS stopped without ``down``."""

    scan: journal.JournalScan | None  # None: a stack without a journal (Compose)
    replay: journal.ReplayResult | None = None
    objects: dict[str, int] = field(default_factory=dict)  # in each bucket, after recovery
    items: dict[str, int] = field(default_factory=dict)  # in each table, after recovery
    redelivered: list[str] = field(default_factory=list)  # stream files handed to the DAG
    missing: str | None = None  # a window of writes that could not be brought back, and why
    stale: bool = False  # a journal the saved snapshot already covers (interrupted `down`)

    def describe(self) -> list[str]:
        """What the CLI prints, one line each."""
        if self.stale:
            return [
                "a `down` was interrupted after saving the state; the saved state holds every "
                "write, the leftover journal was dropped"
            ]
        lines = []
        scan, rep = self.scan, self.replay
        if rep is not None and scan is not None:
            services = ", ".join(f"{n} {s}" for s, n in sorted(scan.by_service.items()))
            last = _when(scan.last_write) if scan.last_write else "-"
            lines.append(
                f"replayed {rep.applied} of {scan.writes} journaled writes "
                f"({services or 'none'}; {scan.valid_length / 1e6:.1f} MB; last write {last}) "
                f"in {rep.seconds:.1f} s"
            )
            objects, items = sum(self.objects.values()), sum(self.items.values())
            lines.append(
                f"now: {objects} S3 objects in {len(self.objects)} buckets, {items} DynamoDB items"
            )
            for failure in rep.failed[:5]:
                lines.append(f"NOT restored: {failure}")
            if len(rep.failed) > 5:
                lines.append(f"NOT restored: {len(rep.failed) - 5} more writes")
        if scan is not None and scan.torn_bytes:
            what = journal.describe_write(scan.torn_head) if scan.torn_head else "a write"
            lines.append(
                f"not restored: {what}, which moto was applying when it died "
                f"({scan.torn_bytes} bytes of the journal cut off); its client was never told "
                "it succeeded"
            )
        if self.missing:
            lines.append(f"MISSING: {self.missing}")
        if self.redelivered:
            lines.append(
                f"re-delivered the S3 events of {len(self.redelivered)} waiting stream "
                f"file{'' if len(self.redelivered) == 1 else 's'}"
            )
        if rep is not None and not rep.failed and not self.missing:
            lines.append("every write moto acknowledged before it stopped is back")
        return lines


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def restore_state(
    aws: LocalAws, manifest: Manifest, snapshot_dir: Path, journal_file: Path
) -> tuple[SnapshotSummary | None, Recovery | None]:
    """Restore the saved state (and replay the journal after an unclean stop) into a moto
    just started and bootstrapped, then start journaling. Returns what was restored from the
    snapshot, and the recovery when the last stop was unclean."""
    saved = read_summary(snapshot_dir)
    scan = journal.scan(journal_file)
    if scan is None:
        # Restoring streams/ fires S3 events for the files that were still waiting at the
        # last `down` (processed ones are archived): the DAG picks them up again.
        restored = restore_snapshot(aws, manifest, snapshot_dir)
        start_journal(aws, saved.id if saved else None)
        return restored, None
    base = saved.id if saved else None
    if scan.base == base:
        restored = restore_snapshot(aws, manifest, snapshot_dir) if base else None
        recovery = Recovery(scan, journal.replay(journal_file, aws.endpoint, scan.valid_length))
        # Go on appending to the same journal: the snapshot plus all of it is the state. The
        # re-delivery below writes, so it comes after (journaled like any other write).
        journal.control(aws.endpoint, "resume", {"valid_length": scan.valid_length})
        recovery.redelivered = redeliver_waiting(aws, manifest)
        recovery.objects, recovery.items = count_state(aws, manifest)
        return restored, recovery
    if saved is not None and (scan.last_write or 0) <= saved.taken_at:
        restored = restore_snapshot(aws, manifest, snapshot_dir)
        start_journal(aws, saved.id)
        return restored, Recovery(scan, stale=True)
    # The journal continues a snapshot that is no longer there: its writes cannot be applied
    # on anything else. Kept aside, never deleted.
    aside = journal_file.with_name(f"{journal_file.name}.unapplied-{int(time.time())}")
    journal_file.rename(aside)
    restored = restore_snapshot(aws, manifest, snapshot_dir)
    start_journal(aws, saved.id if saved else None)
    first = _when(scan.first_write) if scan.first_write else "-"
    last = _when(scan.last_write) if scan.last_write else "-"
    recovery = Recovery(
        scan,
        missing=(
            f"{scan.writes} writes from {first} to {last} continue a saved state "
            f"({scan.base}) that is gone, so they were not replayed; journal kept in {aside}"
        ),
    )
    recovery.objects, recovery.items = count_state(aws, manifest)
    return restored, recovery


def start_journal(aws: LocalAws, base: str | None) -> None:
    journal.control(aws.endpoint, "new", {"base": base})


def redeliver_waiting(aws: LocalAws, manifest: Manifest) -> list[str]:
    """Empty the queue, then fire one S3 event per stream file still waiting, so the DAG gets
    exactly the files it has yet to process (the restore and the replay fired events for
    every file they put, most of them archived since)."""
    spec = manifest.notification
    sqs = aws.client("sqs")
    sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=spec.queue)["QueueUrl"])
    s3 = aws.client("s3")
    waiting = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=spec.bucket, Prefix=spec.prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(spec.suffix):
                waiting.append(obj["Key"])
    for key in waiting:
        # A put of the same bytes and metadata is what fires the event on moto.
        got = s3.get_object(Bucket=spec.bucket, Key=key)
        extra = {"Metadata": got.get("Metadata", {})}
        if got.get("ContentType"):
            extra["ContentType"] = got["ContentType"]
        s3.put_object(Bucket=spec.bucket, Key=key, Body=got["Body"].read(), **extra)
    return waiting


def count_state(aws: LocalAws, manifest: Manifest) -> tuple[dict[str, int], dict[str, int]]:
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    objects = {}
    for bucket in manifest.buckets.values():
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        objects[bucket] = sum(p.get("KeyCount", 0) for p in pages)
    items = {}
    for spec in manifest.tables:
        pages = ddb.get_paginator("scan").paginate(TableName=spec.name, Select="COUNT")
        items[spec.name] = sum(p["Count"] for p in pages)
    return objects, items
