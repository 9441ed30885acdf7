"""Bootstrap creates every manifest resource on a real moto server, and only once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import unquote_plus

import pytest

from musicpipe.bootstrap import (
    CREATED,
    MISSING,
    UNCHANGED,
    BootstrapError,
    bootstrap,
    summarize,
)
from musicpipe.manifest import load_manifest

from .conftest import REPO


@pytest.fixture
def manifest(tmp_path):
    return load_manifest(cwd=tmp_path, environ={})


def test_first_run_creates_everything_second_changes_nothing(aws, manifest):
    first = bootstrap(aws.client, manifest)
    assert {c.action for c in first} == {CREATED}
    assert {c.name for c in first if c.kind == "s3 bucket"} == set(manifest.buckets.values())
    assert len(first) == 12

    second = bootstrap(aws.client, manifest)
    assert {c.action for c in second} == {UNCHANGED}
    assert summarize(second) == "No changes: all 12 resources already in place."

    ddb = aws.client("dynamodb")
    kpi = ddb.describe_table(TableName="kpi.table")["Table"]
    assert kpi["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in kpi["KeySchema"]] == ["pk", "sk"]
    assert kpi["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    tracker = ddb.describe_table(TableName="kpi.table_file_tracker")["Table"]
    assert tracker["KeySchema"] == [{"AttributeName": "file_key", "KeyType": "HASH"}]
    groups = aws.client("logs").describe_log_groups(logGroupNamePrefix="/aws-glue/")
    assert {g["logGroupName"] for g in groups["logGroups"]} >= {
        "/aws-glue/jobs/output",
        "/aws-glue/jobs/error",
    }


def test_plan_mode_reports_without_creating(aws, manifest):
    plan = bootstrap(aws.client, manifest, apply=False)
    assert {c.action for c in plan} == {MISSING}
    assert aws.client("s3").list_buckets()["Buckets"] == []


def test_stream_arrivals_reach_the_queue(aws, manifest):
    bootstrap(aws.client, manifest)
    s3, sqs = aws.client("s3"), aws.client("sqs")
    url = sqs.get_queue_url(QueueName="music-arrivals")["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)  # the s3:TestEvent sent when the notification was put
    s3.put_object(Bucket="rds.data", Key="streams/streams1.csv", Body=b"user_id\n")
    s3.put_object(Bucket="rds.data", Key="songs/songs.csv", Body=b"track_id\n")
    s3.put_object(Bucket="rds.data", Key="streams/notes.txt", Body=b"x")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    # Event keys are URL-encoded (moto even encodes '/'); consumers must unquote_plus them.
    keys = [
        unquote_plus(record["s3"]["object"]["key"])
        for m in messages.get("Messages", [])
        for record in json.loads(m["Body"]).get("Records", [])
    ]
    assert keys == ["streams/streams1.csv"]


def test_other_notifications_on_the_bucket_are_kept(aws, manifest):
    bootstrap(aws.client, manifest)
    s3, sqs = aws.client("s3"), aws.client("sqs")
    other = sqs.create_queue(QueueName="someone-else")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])
    config = s3.get_bucket_notification_configuration(Bucket="rds.data")
    config.pop("ResponseMetadata")
    config["QueueConfigurations"].append(
        {
            "Id": "theirs",
            "QueueArn": other_arn["Attributes"]["QueueArn"],
            "Events": ["s3:ObjectRemoved:*"],
        }
    )
    s3.put_bucket_notification_configuration(Bucket="rds.data", NotificationConfiguration=config)
    changes = bootstrap(aws.client, manifest)
    assert {c.action for c in changes} == {UNCHANGED}
    ids = {
        q["Id"]
        for q in s3.get_bucket_notification_configuration(Bucket="rds.data")["QueueConfigurations"]
    }
    assert ids == {"theirs", "musicpipe-stream-arrivals"}


def test_a_changed_filter_is_repaired(aws, manifest):
    bootstrap(aws.client, manifest)
    s3 = aws.client("s3")
    s3.put_bucket_notification_configuration(Bucket="rds.data", NotificationConfiguration={})
    changes = {c.kind: c.action for c in bootstrap(aws.client, manifest)}
    assert changes["s3 notification"] == CREATED
    assert bootstrap(aws.client, manifest, apply=False)[-5].action == UNCHANGED


def test_a_table_with_other_keys_is_an_error_not_a_silent_drop(aws, manifest):
    aws.client("dynamodb").create_table(
        TableName="kpi.table",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    with pytest.raises(BootstrapError, match="kpi.table exists with key schema"):
        bootstrap(aws.client, manifest)
    assert aws.client("dynamodb").describe_table(TableName="kpi.table")["Table"]


def test_localstack_hook_creates_the_same_resources(aws, manifest):
    """The LocalStack ready hook runs the same bootstrap, from the same manifest."""
    hook = REPO / "localstack_init" / "ready.d" / "10-musicpipe-bootstrap.sh"
    env = {
        **os.environ,
        "MUSICPIPE_SRC": str(REPO / "src"),
        "MUSICPIPE_HOOK_PYTHON": sys.executable,
        "MUSICPIPE_HOOK_ENDPOINT": aws.endpoint,
    }
    out = subprocess.run(["bash", str(hook)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "12 created" in out.stdout
    again = subprocess.run(["bash", str(hook)], env=env, capture_output=True, text=True)
    assert "No changes" in again.stdout
