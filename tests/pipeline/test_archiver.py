"""The archive_processed_files step against a real moto server (docs/data-contract.md §6.2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from musicpipe.bootstrap import bootstrap
from musicpipe.contract.status import ArchiveOutcome, TrackerStatus
from musicpipe.manifest import load_manifest
from musicpipe.pipeline.archiver import archive_completed_files, archive_key_for
from musicpipe.pipeline.tracker import Tracker

RAW, TRACKER = "rds.data", "kpi.table_file_tracker"
CSV = b"user_id,track_id,listen_time\nu1,t1,2024-06-01 10:00:00\n"


@pytest.fixture
def env(aws, tmp_path):
    bootstrap(aws.client, load_manifest(cwd=tmp_path, environ={}))
    ddb = aws.session.resource("dynamodb", endpoint_url=aws.endpoint, config=aws.config)
    return aws.client("s3"), ddb


def upload(s3, key: str, body: bytes = CSV) -> str:
    return s3.put_object(Bucket=RAW, Key=key, Body=body)["ETag"]


def track(
    ddb, key: str, etag: str, status: str = TrackerStatus.COMPLETED, batch: str = "b1"
) -> None:
    tracker = Tracker(ddb, TRACKER)
    assert tracker.claim(key, etag, batch) is not None
    tracker.set_status(key, status, batch)


def archive_keys(s3) -> list[str]:
    page = s3.list_objects_v2(Bucket=RAW, Prefix="archive/")
    return sorted(o["Key"] for o in page.get("Contents", []))


def exists(s3, key: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=RAW, Prefix=key).get("KeyCount"))


def expected_key(s3, key: str) -> str:
    arrived = s3.head_object(Bucket=RAW, Key=key)["LastModified"]
    return f"archive/streams/{arrived:%Y/%m/%d}/{key.split('/', 1)[1]}"


def test_archive_key_uses_the_utc_arrival_date():
    late = datetime(2024, 6, 1, 23, 30, tzinfo=UTC)
    assert archive_key_for("streams/s1.csv", late) == "archive/streams/2024/06/01/s1.csv"
    assert archive_key_for("streams/sub/s1.csv", late.replace(tzinfo=None)).endswith(
        "2024/06/01/sub/s1.csv"
    )
    with pytest.raises(ValueError, match="not under streams/"):
        archive_key_for("songs/songs.csv", late)


def test_completed_file_is_copied_verified_and_removed(env):
    s3, ddb = env
    etag = upload(s3, "streams/streams1.csv")
    track(ddb, "streams/streams1.csv", etag)
    dest = expected_key(s3, "streams/streams1.csv")

    [result] = archive_completed_files(s3, ddb, RAW, TRACKER)

    assert (result.status, result.archived_key) == (ArchiveOutcome.ARCHIVED, dest)
    assert s3.get_object(Bucket=RAW, Key=dest)["Body"].read() == CSV
    assert s3.head_object(Bucket=RAW, Key=dest)["ETag"] == etag
    assert not exists(s3, "streams/streams1.csv")
    item = Tracker(ddb, TRACKER).get("streams/streams1.csv")
    assert item["status"] == TrackerStatus.COMPLETED and item["archived_key"] == dest


def test_rerun_is_a_noop(env):
    s3, ddb = env
    track(ddb, "streams/a.csv", upload(s3, "streams/a.csv"))
    archive_completed_files(s3, ddb, RAW, TRACKER)
    before = archive_keys(s3)
    [again] = archive_completed_files(s3, ddb, RAW, TRACKER)
    assert again.status == ArchiveOutcome.ALREADY_ARCHIVED and again.archived_key == before[0]
    assert archive_keys(s3) == before


def test_reuploaded_file_is_new_data_and_stays(env):
    s3, ddb = env
    old = upload(s3, "streams/a.csv")
    track(ddb, "streams/a.csv", old)
    new = upload(s3, "streams/a.csv", CSV + b"u2,t2,2024-06-01 11:00:00\n")
    assert new != old

    [result] = archive_completed_files(s3, ddb, RAW, TRACKER)

    assert result.status == ArchiveOutcome.SKIPPED_CHANGED
    assert s3.head_object(Bucket=RAW, Key="streams/a.csv")["ETag"] == new
    assert archive_keys(s3) == []


def test_files_not_completed_are_untouched(env):
    s3, ddb = env
    track(ddb, "streams/staged.csv", upload(s3, "streams/staged.csv"), status=TrackerStatus.STAGED)
    Tracker(ddb, TRACKER).claim("streams/busy.csv", upload(s3, "streams/busy.csv"), "b2")
    upload(s3, "streams/untracked.csv")
    track(ddb, "streams/done.csv", upload(s3, "streams/done.csv"))

    results = archive_completed_files(s3, ddb, RAW, TRACKER)
    assert [(r.file_key, r.status) for r in results] == [
        ("streams/done.csv", ArchiveOutcome.ARCHIVED)
    ]
    for key in ("streams/staged.csv", "streams/busy.csv", "streams/untracked.csv"):
        assert exists(s3, key)

    explicit = archive_completed_files(
        s3, ddb, RAW, TRACKER, keys=["streams/staged.csv", "streams/untracked.csv"]
    )
    assert [r.status for r in explicit] == [
        ArchiveOutcome.NOT_COMPLETED,
        ArchiveOutcome.NOT_COMPLETED,
    ]
    assert len(archive_keys(s3)) == 1


def test_only_the_given_keys_are_archived(env):
    s3, ddb = env
    for name in ("a", "b", "c"):
        track(ddb, f"streams/{name}.csv", upload(s3, f"streams/{name}.csv"))
    results = archive_completed_files(
        s3, ddb, RAW, TRACKER, keys=["streams/c.csv", "streams/a.csv", "streams/c.csv"]
    )
    assert [(r.file_key, r.status) for r in results] == [
        ("streams/c.csv", ArchiveOutcome.ARCHIVED),
        ("streams/a.csv", ArchiveOutcome.ARCHIVED),
    ]
    assert exists(s3, "streams/b.csv")


def test_completed_file_that_vanished_is_reported_missing(env):
    s3, ddb = env
    track(ddb, "streams/gone.csv", '"0123"')
    [result] = archive_completed_files(s3, ddb, RAW, TRACKER)
    assert result.status == ArchiveOutcome.MISSING and result.archived_key is None


def test_crash_between_copy_and_delete_is_finished_by_the_next_run(env):
    s3, ddb = env
    etag = upload(s3, "streams/a.csv")
    track(ddb, "streams/a.csv", etag)
    dest = expected_key(s3, "streams/a.csv")
    s3.copy_object(Bucket=RAW, Key=dest, CopySource={"Bucket": RAW, "Key": "streams/a.csv"})

    [result] = archive_completed_files(s3, ddb, RAW, TRACKER)
    assert (result.status, result.archived_key) == (ArchiveOutcome.ARCHIVED, dest)
    assert not exists(s3, "streams/a.csv") and archive_keys(s3) == [dest]


def test_same_name_twice_in_one_day_keeps_both_versions(env):
    s3, ddb = env
    first = upload(s3, "streams/a.csv")
    track(ddb, "streams/a.csv", first)
    archive_completed_files(s3, ddb, RAW, TRACKER)
    second = upload(s3, "streams/a.csv", CSV + b"u9,t9,2024-06-02 00:00:00\n")
    track(ddb, "streams/a.csv", second, batch="b2")

    [result] = archive_completed_files(s3, ddb, RAW, TRACKER)

    assert result.status == ArchiveOutcome.ARCHIVED
    assert result.archived_key.endswith(f"/a.{second.strip(chr(34))}.csv")
    keys = archive_keys(s3)
    assert len(keys) == 2
    assert {s3.head_object(Bucket=RAW, Key=k)["ETag"] for k in keys} == {first, second}


def test_multipart_original_keeps_its_etag(env):
    s3, ddb = env
    key = "streams/big.csv"
    part1, part2 = b"a" * (5 * 1024 * 1024), b"b" * 1024
    upload_id = s3.create_multipart_upload(Bucket=RAW, Key=key)["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket=RAW, Key=key, UploadId=upload_id, PartNumber=n, Body=body
            )["ETag"],
        }
        for n, body in ((1, part1), (2, part2))
    ]
    etag = s3.complete_multipart_upload(
        Bucket=RAW, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )["ETag"]
    assert etag.strip('"').endswith("-2")
    track(ddb, key, etag)

    [result] = archive_completed_files(s3, ddb, RAW, TRACKER)

    assert result.status == ArchiveOutcome.ARCHIVED, result.detail
    head = s3.head_object(Bucket=RAW, Key=result.archived_key)
    assert (head["ETag"], head["ContentLength"]) == (etag, len(part1) + len(part2))
    assert s3.get_object(Bucket=RAW, Key=result.archived_key)["Body"].read() == part1 + part2


def drain(sqs, url: str) -> list[dict]:
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = got.get("Messages", [])
        if not messages:
            return bodies
        for m in messages:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_archive_keys_never_reach_the_arrivals_queue(aws, env):
    s3, ddb = env
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName="music-arrivals")["QueueUrl"]
    etag = upload(s3, "streams/a.csv")
    track(ddb, "streams/a.csv", etag)
    arrivals = drain(sqs, url)  # the s3:TestEvent of bootstrap, and streams/a.csv itself
    assert any(b.get("Event") == "s3:TestEvent" for b in arrivals)
    assert any("Records" in b for b in arrivals)

    [result] = archive_completed_files(s3, ddb, RAW, TRACKER)
    assert result.status == ArchiveOutcome.ARCHIVED
    s3.put_object(Bucket=RAW, Key="archive/streams/2024/06/01/extra.csv", Body=CSV)
    assert drain(sqs, url) == []


class CorruptingS3:
    """The real client, except that CopyObject writes other bytes (a copy that won't verify)."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def copy_object(self, Bucket, Key, **kwargs):  # noqa: N803 - boto3 parameter names
        return self.real.put_object(Bucket=Bucket, Key=Key, Body=b"truncated")


def test_copy_that_does_not_verify_keeps_the_original_and_drops_the_copy(env):
    s3, ddb = env
    etag = upload(s3, "streams/a.csv")
    track(ddb, "streams/a.csv", etag)

    [result] = archive_completed_files(CorruptingS3(s3), ddb, RAW, TRACKER)

    assert result.status == "failed" and "original kept" in result.detail
    assert s3.head_object(Bucket=RAW, Key="streams/a.csv")["ETag"] == etag
    assert archive_keys(s3) == []
    assert "archived_key" not in Tracker(ddb, TRACKER).get("streams/a.csv")
    [retry] = archive_completed_files(s3, ddb, RAW, TRACKER)
    assert retry.status == ArchiveOutcome.ARCHIVED


def test_unchanged_reupload_of_a_completed_file_is_archived_as_already_counted(env, caplog):
    from musicpipe.dag import steps

    s3, ddb = env
    etag = upload(s3, "streams/a.csv")
    track(ddb, "streams/a.csv", etag)
    archive_completed_files(s3, ddb, RAW, TRACKER, keys=["streams/a.csv"])
    first = archive_keys(s3)
    # The same bytes under the same key again: never processed (validation skips it), and a
    # run that processes nothing still ends with the archive step, for no completed keys.
    assert upload(s3, "streams/a.csv") == etag
    other = upload(s3, "streams/b.csv", CSV + b"u2,t2,2024-06-01 11:00:00\n")
    track(ddb, "streams/b.csv", other)
    upload(s3, "streams/new.csv", CSV + b"u3,t3,2024-06-01 12:00:00\n")  # not processed yet

    results = steps.archive(s3, ddb, raw_bucket=RAW, tracker_table=TRACKER, keys=[])

    assert {r["file_key"]: r["status"] for r in results} == {
        "streams/a.csv": ArchiveOutcome.ARCHIVED,
        "streams/b.csv": ArchiveOutcome.ARCHIVED,
    }
    assert all("already counted" in r["detail"] for r in results)
    assert not exists(s3, "streams/a.csv") and not exists(s3, "streams/b.csv")
    assert exists(s3, "streams/new.csv")  # new data waits for its run
    assert set(first) <= set(archive_keys(s3))
    item = Tracker(ddb, TRACKER).get("streams/a.csv")
    assert (item["status"], item["etag"]) == (TrackerStatus.COMPLETED, etag)


def test_a_reupload_with_other_bytes_is_not_already_counted(env):
    from musicpipe.dag import steps

    s3, ddb = env
    track(ddb, "streams/a.csv", upload(s3, "streams/a.csv"))
    archive_completed_files(s3, ddb, RAW, TRACKER)
    upload(s3, "streams/a.csv", CSV + b"u2,t2,2024-06-01 11:00:00\n")
    assert steps.archive(s3, ddb, raw_bucket=RAW, tracker_table=TRACKER, keys=[]) == []
    assert exists(s3, "streams/a.csv")


def test_files_of_the_run_are_archived_once_not_again_as_already_counted(env):
    from musicpipe.dag import steps

    s3, ddb = env
    track(ddb, "streams/a.csv", upload(s3, "streams/a.csv"))
    results = steps.archive(s3, ddb, raw_bucket=RAW, tracker_table=TRACKER, keys=["streams/a.csv"])
    assert [(r["file_key"], r["status"], r["detail"]) for r in results] == [
        ("streams/a.csv", ArchiveOutcome.ARCHIVED, "")
    ]
