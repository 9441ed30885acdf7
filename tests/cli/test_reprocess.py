"""`musicpipe reprocess` against the session's moto server and Glue emulator, run as a user
runs it (docs/data-contract.md §8.1): the table, --json, the exit codes, the one arrival
message."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from musicpipe.bootstrap import bootstrap
from musicpipe.contract.status import TrackerStatus
from musicpipe.manifest import load_manifest
from musicpipe.pipeline.tracker import Tracker

from ..conftest import run_cli

RAW, TRACKER, QUEUE = "rds.data", "kpi.table_file_tracker", "music-arrivals"
STREAM = b"user_id,track_id,listen_time\nu1,t1,2026-06-01 10:00:00\n"


@pytest.fixture
def env(aws, local_stack, tmp_path):
    bootstrap(aws.client, load_manifest(cwd=tmp_path, environ={}))
    s3, sqs = aws.client("s3"), aws.client("sqs")
    # Only the command's own message may reach the queue: no S3 events for the test's uploads.
    s3.put_bucket_notification_configuration(Bucket=RAW, NotificationConfiguration={})
    queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    sqs.purge_queue(QueueUrl=queue_url)
    ddb = aws.session.resource("dynamodb", endpoint_url=aws.endpoint, config=aws.config)
    return s3, ddb, sqs, queue_url, local_stack_env(local_stack.settings)


def local_stack_env(settings) -> dict[str, str]:
    """The CLI's environment for the session's stack (its state folder and ports)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICPIPE_")}
    env.update(
        MUSICPIPE_STATE_DIR=str(settings.state_dir),
        MUSICPIPE_STACK="embedded",
        MUSICPIPE_AWS_PORT=str(settings.aws_port),
        MUSICPIPE_GLUE_PORT=str(settings.glue_port),
        MUSICPIPE_AIRFLOW_PORT=str(settings.airflow_port),
        MUSICPIPE_AIRFLOW="false",
    )
    return env


def put(s3, key: str) -> str:
    return s3.put_object(Bucket=RAW, Key=key, Body=STREAM)["ETag"].strip('"')


def tracked(ddb, key: str, etag: str, status: str, attempts: int = 1, **extra) -> None:
    tracker = Tracker(ddb, TRACKER)
    for n in range(attempts):
        assert tracker.claim(key, etag, f"b{n}", run_is_alive=lambda run_id: False)
    tracker.set_status(key, status, f"b{attempts - 1}", error="ValueError: boom")
    if extra:
        names = {f"#{k}": k for k in extra}
        tracker.table.update_item(
            Key={"file_key": key},
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in extra),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":{k}": v for k, v in extra.items()},
        )


def messages(sqs, queue_url: str) -> list[dict]:
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def test_named_keys_table_marks_and_one_arrival(env):
    s3, ddb, sqs, queue_url, cli_env = env
    failed_etag = put(s3, "streams/failed.csv")
    tracked(ddb, "streams/failed.csv", failed_etag, TrackerStatus.FAILED, attempts=4)
    done_etag = put(s3, "streams/done.csv")
    tracked(ddb, "streams/done.csv", done_etag, TrackerStatus.COMPLETED)
    tracked(ddb, "streams/old.csv", "e0", TrackerStatus.COMPLETED, archived_key="archive/x.csv")
    before = time.time()

    result = run_cli(
        "reprocess",
        "streams/failed.csv",
        "streams/done.csv",
        "streams/old.csv",
        "streams/nowhere.csv",
        env=cli_env,
    )

    assert result.returncode == 1, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "yes" in rows["streams/failed.csv"] and "FAILED after 4" in rows["streams/failed.csv"]
    assert "COMPLETED at this ETag" in rows["streams/done.csv"]
    assert "archived to archive/x.csv" in rows["streams/old.csv"]
    assert "not found in streams/" in rows["streams/nowhere.csv"]
    assert "3 key(s) not taken" in result.stderr
    item = Tracker(ddb, TRACKER).get("streams/failed.csv")
    assert item["attempts"] == 0 and float(item["reprocess_epoch"]) >= before - 1
    assert item["status"] == TrackerStatus.FAILED  # the run, not the command, processes it
    [event] = messages(sqs, queue_url)
    assert [r["s3"]["object"]["key"] for r in event["Records"]] == ["streams/failed.csv"]
    assert event["Records"][0]["eventName"].startswith("ObjectCreated")


def test_failed_and_date_as_json(env):
    s3, ddb, sqs, queue_url, cli_env = env
    for name in ("a", "b"):
        etag = put(s3, f"streams/{name}.csv")
        tracked(ddb, f"streams/{name}.csv", etag, TrackerStatus.FAILED, attempts=2)
    tracked(ddb, "streams/gone.csv", "e0", TrackerStatus.FAILED)  # its object was deleted

    out = run_cli("reprocess", "--failed", "--json", env=cli_env)
    assert out.returncode == 0, out.stderr  # only a *named* key not taken is an error
    result = json.loads(out.stdout)
    assert [r["key"] for r in result["taken"]] == ["streams/a.csv", "streams/b.csv"]
    assert result["not_taken"] == [{"key": "streams/gone.csv", "reason": "not found in streams/"}]
    assert result["arrival_sent"] is True and result["queue_url"] == queue_url
    assert len(messages(sqs, queue_url)) == 1  # one event for both files

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    by_day = json.loads(run_cli("reprocess", "--date", today, "--json", env=cli_env).stdout)
    assert sorted(r["key"] for r in by_day["taken"]) == ["streams/a.csv", "streams/b.csv"]
    none = json.loads(run_cli("reprocess", "--date", "2001-01-01", "--json", env=cli_env).stdout)
    assert none == {"taken": [], "not_taken": [], "arrival_sent": False, "queue_url": ""}


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ((), "exactly one of KEY…, --failed or --date"),
        (("streams/a.csv", "--failed"), "got KEY and --failed"),
        (("--date", "2026-13-01"), "--date '2026-13-01'"),
        (("songs/songs.csv",), "KEY 'songs/songs.csv'"),
    ],
)
def test_usage_errors_exit_2_naming_the_argument(env, args, names):
    *_, cli_env = env
    result = run_cli("reprocess", *args, env=cli_env)
    assert result.returncode == 2
    assert names in result.stderr
