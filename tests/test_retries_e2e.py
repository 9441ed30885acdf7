"""Retries without an arrival, end to end (docs/data-contract.md §8.1): on the embedded stack
with Airflow, the raw bucket's S3→SQS notification removed, so only the retry timer can start a
run. A FAILED file is taken by a timed run and COMPLETED; a FAILED file at the attempt limit is
quarantined with the reason "gave up after N attempts: …".
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from musicpipe.contract.status import TrackerStatus
from musicpipe.pipeline.tracker import Tracker

from .conftest import SAMPLES, isolated_env, started_stack
from .pipeline_helpers import assert_same_kpis, kpi_table_items, oracle_items

RAW, QUARANTINE, TRACKER = "rds.data", "warehouse.bucket", "kpi.table_file_tracker"
LIMIT = 3
LAST_ERROR = "ValueError: streams/streams2.csv: header lacks listen_time"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = isolated_env(tmp_path_factory.mktemp("retries-e2e-state"))
    env.update(
        MUSICPIPE_AIRFLOW="true",
        MUSICPIPE_RETRY_TIMER_SECONDS="15",
        MUSICPIPE_RETRY_BASE_SECONDS="5",
        MUSICPIPE_RETRY_MAX_SECONDS="10",
        MUSICPIPE_MAX_FILE_ATTEMPTS=str(LIMIT),
    )
    with started_stack(env) as stack:
        yield stack


def failed(tracker: Tracker, key: str, etag: str, attempts: int, error: str) -> None:
    """The item an ETL failure leaves: ``attempts`` claims of dead runs, then FAILED."""
    for n in range(attempts):
        assert tracker.claim(key, etag, f"b-earlier-{n}", run_is_alive=lambda run_id: False)
    tracker.set_status(key, TrackerStatus.FAILED, f"b-earlier-{attempts - 1}", error=error)


def test_the_timer_retries_a_failed_file_and_gives_up_at_the_limit(stack):
    s3, sqs = stack.aws.client("s3"), stack.aws.client("sqs")
    dynamodb = stack.aws.session.resource(
        "dynamodb", endpoint_url=stack.aws.endpoint, config=stack.aws.config
    )
    tracker = Tracker(dynamodb, TRACKER)
    # No S3 event reaches the queue: a run can only be a timed one.
    s3.put_bucket_notification_configuration(Bucket=RAW, NotificationConfiguration={})
    sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName="music-arrivals")["QueueUrl"])
    s3.upload_file(str(SAMPLES / "songs.csv"), RAW, "songs/songs.csv")
    s3.upload_file(str(SAMPLES / "users.csv"), RAW, "users/users.csv")
    # The timer runs every 15 s: the tracker items are made whole before their files exist,
    # or a timed run may judge a file half-way through its setup (measured: one took over
    # streams2's second claim and processed it). A small upload's ETag is its MD5.
    etags = {
        name: hashlib.md5((SAMPLES / "streams" / name).read_bytes()).hexdigest()
        for name in ("streams1.csv", "streams2.csv")
    }
    failed(tracker, "streams/streams1.csv", etags["streams1.csv"], 1, "RuntimeError: driver lost")
    failed(tracker, "streams/streams2.csv", etags["streams2.csv"], LIMIT, LAST_ERROR)
    for name, etag in etags.items():
        s3.upload_file(str(SAMPLES / "streams" / name), RAW, f"streams/{name}")
        assert s3.head_object(Bucket=RAW, Key=f"streams/{name}")["ETag"].strip('"') == etag
    started = time.monotonic()

    deadline = started + 300
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = {k: tracker.get(f"streams/{k}")["status"] for k in etags}
        archived = tracker.get("streams/streams1.csv").get("archived_key")
        if statuses["streams1.csv"] == "COMPLETED" and archived:
            if statuses["streams2.csv"] == "QUARANTINED":
                break
        time.sleep(2)
    print(f"retried and given up in {time.monotonic() - started:.0f} s")
    assert statuses == {"streams1.csv": "COMPLETED", "streams2.csv": "QUARANTINED"}, statuses

    # The retried file: processed once more (its second attempt), KPIs equal the oracle.
    item = tracker.get("streams/streams1.csv")
    assert item["attempts"] == 2
    expected = oracle_items(
        SAMPLES / "songs.csv", SAMPLES / "users.csv", [SAMPLES / "streams" / "streams1.csv"]
    )
    assert_same_kpis(kpi_table_items(dynamodb), expected)

    # The given-up file: whole in quarantine, with the reason, and out of streams/.
    reason = f"gave up after {LIMIT} attempts: {LAST_ERROR}"
    assert tracker.get("streams/streams2.csv")["error"] == reason
    listing = s3.list_objects_v2(Bucket=QUARANTINE, Prefix="quarantine/files/")
    quarantined = [o["Key"] for o in listing["Contents"]]
    (reason_key,) = [k for k in quarantined if k.endswith("streams2.csv.reason.json")]
    document = json.loads(s3.get_object(Bucket=QUARANTINE, Key=reason_key)["Body"].read())
    assert document["error"] == reason
    assert s3.list_objects_v2(Bucket=RAW, Prefix="streams/").get("KeyCount", 0) == 0

    # Only the timer started runs; a run with nothing due started no Glue job.
    runs = stack.airflow.dag_runs(limit=25)
    assert runs and all(r["run_type"] == "scheduled" for r in runs), runs
    batches = {item["batch_id"], tracker.get("streams/streams2.csv")["batch_id"]}
    assert all(b.startswith("scheduled__") for b in batches), batches
    idle = [r for r in runs if _task_state(stack, r["dag_run_id"], "nothing_due") == "success"]
    for run in idle:
        assert _task_state(stack, run["dag_run_id"], "validate_data_quality") == "skipped"


def _task_state(stack, run_id: str, task_id: str) -> str | None:
    for ti in stack.airflow.task_instances(run_id):
        if ti["task_id"] == task_id:
            return ti["state"]
    return None
