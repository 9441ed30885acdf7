"""select_due_files against a real moto server and the Glue emulator (docs/data-contract.md
§8.1): what a run takes, what waits, a file given up is quarantined, and NOT_VALIDATED files
come back when a reference file is replaced."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from musicpipe.bootstrap import bootstrap
from musicpipe.contract.status import TrackerStatus
from musicpipe.dag.steps import NOTHING_DUE_TASK, select_due_files
from musicpipe.manifest import load_manifest
from musicpipe.pipeline.retries import RetrySettings, Verdict
from musicpipe.pipeline.tracker import Tracker
from musicpipe.validation.job import ValidationArgs, ValidationJob

RAW, QUARANTINE, TRACKER = "rds.data", "warehouse.bucket", "kpi.table_file_tracker"
STREAM = b"user_id,track_id,listen_time\nu1,t1,2026-06-01 10:00:00\n"
SONGS = b"track_id,track_genre,track_name,artists\nt1,jazz,Song,A\n"
USERS = b"user_id,user_name,user_age,user_country\nu1,Ann,30,FR\n"
SETTINGS = RetrySettings(base_seconds=60, max_seconds=3600, max_attempts=3)


@pytest.fixture
def env(aws, local_stack, tmp_path):
    bootstrap(aws.client, load_manifest(cwd=tmp_path, environ={}))
    ddb = aws.session.resource("dynamodb", endpoint_url=aws.endpoint, config=aws.config)
    glue = aws.client("glue", endpoint=local_stack.settings.glue_endpoint)
    return aws.client("s3"), ddb, glue


def select(env, batch_id="b-select", now=None, lines=None):
    s3, ddb, glue = env
    return select_due_files(
        s3,
        ddb,
        glue,
        raw_bucket=RAW,
        quarantine_bucket=QUARANTINE,
        tracker_table=TRACKER,
        etl_job="music_streaming_etl_complete",
        batch_id=batch_id,
        settings=SETTINGS,
        now=time.time() if now is None else now,
        log=(lines.append if lines is not None else lambda line: None),
    )


def failed(ddb, s3, key: str, attempts: int, error: str = "ValueError: boom") -> None:
    """A FAILED item as the ETL leaves it, ``attempts`` claims so far."""
    etag = s3.head_object(Bucket=RAW, Key=key)["ETag"].strip('"')
    tracker = Tracker(ddb, TRACKER)
    for n in range(attempts):
        assert tracker.claim(key, etag, f"b{n}", run_is_alive=lambda run_id: False)
    tracker.set_status(key, TrackerStatus.FAILED, f"b{attempts - 1}", error=error)


def test_takes_new_files_keeps_backoffs_and_gives_up_at_the_limit(env):
    s3, ddb, _ = env
    for name in ("new", "backoff", "limit", "done"):
        s3.put_object(Bucket=RAW, Key=f"streams/{name}.csv", Body=STREAM)
    failed(ddb, s3, "streams/backoff.csv", attempts=1)
    failed(ddb, s3, "streams/limit.csv", attempts=3, error="ValueError: header lacks listen_time")
    tracker = Tracker(ddb, TRACKER)
    done_etag = s3.head_object(Bucket=RAW, Key="streams/done.csv")["ETag"].strip('"')
    tracker.claim("streams/done.csv", done_etag, "b0")
    tracker.set_status("streams/done.csv", TrackerStatus.COMPLETED, "b0")
    lines: list[str] = []

    selection = select(env, lines=lines)

    assert selection.stream_keys == ["streams/new.csv"]
    assert selection.branch == "wait_for_streams_files"
    verdicts = {j.key: j.verdict for j in selection.judgements}
    assert verdicts == {
        "streams/backoff.csv": Verdict.WAIT,
        "streams/done.csv": Verdict.SKIP,
        "streams/limit.csv": Verdict.GIVE_UP,
        "streams/new.csv": Verdict.TAKE,
    }
    assert any(line.startswith("wait: streams/backoff.csv: FAILED 1 of 3") for line in lines)
    # Given up: moved whole to quarantine with the reason, QUARANTINED in the tracker.
    reason = "gave up after 3 attempts: ValueError: header lacks listen_time"
    assert selection.given_up == ["streams/limit.csv"]
    assert not s3.list_objects_v2(Bucket=RAW, Prefix="streams/limit.csv").get("KeyCount")
    moved = "quarantine/files/b-select/streams/limit.csv"
    assert s3.get_object(Bucket=QUARANTINE, Key=moved)["Body"].read() == STREAM
    document = json.loads(
        s3.get_object(Bucket=QUARANTINE, Key=moved + ".reason.json")["Body"].read()
    )
    assert document["error"] == reason and document["attempts"] == 3
    item = tracker.get("streams/limit.csv")
    assert (item["status"], item["error"]) == (TrackerStatus.QUARANTINED, reason)

    # Once the backoff has passed (60 s after one attempt), a later run takes it.
    later = select(env, now=time.time() + 61)
    assert "streams/backoff.csv" in later.stream_keys


def test_nothing_due_ends_the_run_without_a_glue_job(env):
    s3, ddb, _ = env
    s3.put_object(Bucket=RAW, Key="streams/backoff.csv", Body=STREAM)
    failed(ddb, s3, "streams/backoff.csv", attempts=2)
    selection = select(env)
    assert selection.stream_keys == []
    assert selection.branch == NOTHING_DUE_TASK
    assert select(env).branch == NOTHING_DUE_TASK  # an empty streams/ too, once it is gone


def test_a_claim_whose_glue_run_is_gone_is_taken(env):
    s3, ddb, _ = env
    s3.put_object(Bucket=RAW, Key="streams/held.csv", Body=STREAM)
    etag = s3.head_object(Bucket=RAW, Key="streams/held.csv")["ETag"].strip('"')
    Tracker(ddb, TRACKER).claim("streams/held.csv", etag, "b-dead", run_id="jr_no_such_run")
    selection = select(env)
    assert selection.stream_keys == ["streams/held.csv"]
    assert "not running" in selection.judgements[0].reason


def test_not_validated_files_come_back_when_a_reference_file_is_replaced(env):
    s3, ddb, _ = env
    s3.put_object(Bucket=RAW, Key="songs/songs.csv", Body=b"track_id\nt1\n")  # lacks columns
    s3.put_object(Bucket=RAW, Key="users/users.csv", Body=USERS)
    s3.put_object(Bucket=RAW, Key="streams/s1.csv", Body=STREAM)
    args = ValidationArgs(
        batch_id="b-refs",
        raw_bucket=RAW,
        processed_bucket="trial.data",
        quarantine_bucket=QUARANTINE,
        tracker_table=TRACKER,
        reject_threshold="0.5",
        stream_keys="streams/s1.csv",
    )
    report = ValidationJob(args, s3, ddb).run()
    assert report["summary"]["stream_files_not_validated"] == 1

    item = Tracker(ddb, TRACKER).get("streams/s1.csv")
    assert item["status"] == TrackerStatus.NOT_VALIDATED
    assert "songs/songs.csv" in item["error"] and item["batch_id"] == "b-refs"
    assert select(env).stream_keys == []  # the same bad references: nothing to gain

    time.sleep(1.1)  # S3's LastModified has whole seconds: the new songs file is newer
    s3.put_object(Bucket=RAW, Key="songs/songs.csv", Body=SONGS)
    selection = select(env)
    assert selection.stream_keys == ["streams/s1.csv"]
    assert "reference file changed" in selection.judgements[0].reason


def test_a_reprocess_mark_makes_a_waiting_file_due(env):
    s3, ddb, _ = env
    s3.put_object(Bucket=RAW, Key="streams/s1.csv", Body=STREAM)
    failed(ddb, s3, "streams/s1.csv", attempts=3)
    tracker = Tracker(ddb, TRACKER)
    assert tracker.mark_reprocess(tracker.get("streams/s1.csv"), time.time())
    item = tracker.get("streams/s1.csv")
    assert item["attempts"] == Decimal(0) and item["status"] == TrackerStatus.FAILED
    assert select(env).stream_keys == ["streams/s1.csv"]
    # The next claim counts from 1 again.
    assert tracker.claim("streams/s1.csv", item["etag"], "b-again")
    assert tracker.get("streams/s1.csv")["attempts"] == 1


def test_the_claim_window_of_the_manifest_is_the_jobs_too(env, tmp_path):
    """The judge takes a claim older than claim_window_seconds; the job that then claims it must
    agree (its Tracker gets the window from --claim_window_seconds), or the taken file would be
    refused by the ETL and wait for the fixed two hours."""
    s3, ddb, _ = env
    key = "streams/window.csv"
    s3.put_object(Bucket=RAW, Key=key, Body=STREAM)
    etag = s3.head_object(Bucket=RAW, Key=key)["ETag"].strip('"')
    assert Tracker(ddb, TRACKER).claim(key, etag, "b-hung", run_id="jr_hung")
    ddb.Table(TRACKER).update_item(  # claimed ten minutes ago by a run Glue says still runs
        Key={"file_key": key},
        UpdateExpression="SET claimed_epoch = :e",
        ExpressionAttributeValues={":e": Decimal(int(time.time()) - 600)},
    )

    def alive(run_id: str) -> bool:
        return True

    assert not Tracker(ddb, TRACKER).claim(key, etag, "b-next", run_is_alive=alive)
    assert Tracker(ddb, TRACKER, claim_window_seconds=300).claim(
        key, etag, "b-next", run_is_alive=alive
    )
    manifest = load_manifest(cwd=tmp_path, environ={"MUSICPIPE_CLAIM_WINDOW_SECONDS": "300"})
    for job in manifest.glue_jobs:
        assert job.default_arguments["--claim_window_seconds"] == "300"


def test_an_item_written_by_hand_can_be_claimed_once(env):
    """An item without the tracker's own `updated_at` (written by a person or an older tool)
    does not block the file for ever: one claim wins, a second one on what it read loses."""
    _, ddb, _ = env
    table = ddb.Table(TRACKER)
    table.put_item(Item={"file_key": "streams/by-hand.csv", "status": "FAILED", "etag": "e1"})
    tracker = Tracker(ddb, TRACKER)
    stale = tracker.get("streams/by-hand.csv")
    assert tracker.claim("streams/by-hand.csv", "e1", "b-one")
    assert tracker.get("streams/by-hand.csv")["batch_id"] == "b-one"
    # A writer that read the item before that claim must not overwrite it.
    assert not tracker._update_if_unchanged(
        "streams/by-hand.csv", stale, "SET batch_id = :b", {":b": "b-two"}
    )
    assert tracker.get("streams/by-hand.csv")["batch_id"] == "b-one"
