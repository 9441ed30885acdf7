"""User code that makes its clients the LocalStack way reaches the local stack unchanged.

``localstack_client.session`` (and ``awslocal``, built on it) take their endpoint from
``AWS_ENDPOINT_URL`` when it is set, which is what ``eval "$(musicpipe env)"`` exports: nothing
else needs configuring. Both run here against the session's embedded stack (moto + the Glue
emulator), with the environment `musicpipe env` gives and nothing more.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from musicpipe.aws.local import local_environment
from musicpipe.bootstrap import bootstrap

DAY_KEY = {"pk": "DATE#2026-03-01", "sk": "TOP_GENRES"}
STREAM_KEY = "streams/streams1.csv"
BODY = b"user_id,track_id,listen_time\n1,t1,2026-03-01 10:00:00\n"


@pytest.fixture
def seeded(aws, local_stack):
    """The manifest's resources, one stream file and one KPI item, written by musicpipe."""
    manifest = local_stack.manifest
    bootstrap(aws.client, manifest)
    aws.client("s3").put_object(Bucket=manifest.raw_bucket, Key=STREAM_KEY, Body=BODY)
    aws.client("dynamodb").put_item(
        TableName=manifest.kpi_table,
        Item={
            "pk": {"S": DAY_KEY["pk"]},
            "sk": {"S": DAY_KEY["sk"]},
            "date": {"S": "2026-03-01"},
            "genres": {"L": []},
        },
    )
    return manifest


@pytest.fixture
def musicpipe_env(local_stack) -> dict[str, str]:
    """The process environment after `eval "$(musicpipe env)"`."""
    s = local_stack.settings
    return local_environment(
        dict(os.environ), s.aws_endpoint, local_stack.manifest.region, s.glue_endpoint
    )


def test_localstack_client_session_reaches_the_stack(seeded, musicpipe_env, monkeypatch):
    for key in list(os.environ):
        if key not in musicpipe_env:
            monkeypatch.delenv(key)
    for key, value in musicpipe_env.items():
        monkeypatch.setenv(key, value)
    # As user code does it: the library's session, default arguments.
    import localstack_client.session

    session = localstack_client.session.Session()
    s3 = session.client("s3")
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(seeded.buckets.values()) <= buckets
    body = s3.get_object(Bucket=seeded.raw_bucket, Key=STREAM_KEY)["Body"].read()
    assert body == BODY

    table = session.resource("dynamodb").Table(seeded.kpi_table)
    item = table.get_item(Key=DAY_KEY, ConsistentRead=True)["Item"]
    assert item["date"] == "2026-03-01"


def _awslocal() -> Path | None:
    """awslocal next to this interpreter (the project's venv), when the aws CLI is there too."""
    here = Path(sys.executable).parent
    awslocal = here / "awslocal"
    aws = (here / "aws") if (here / "aws").exists() else shutil.which("aws")
    return awslocal if awslocal.exists() and aws else None


@pytest.mark.skipif(_awslocal() is None, reason="awslocal or the aws CLI is not installed")
def test_awslocal_reaches_the_stack(seeded, musicpipe_env):
    env = {**musicpipe_env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def awslocal(*args: str) -> dict:
        done = subprocess.run(
            [str(_awslocal()), *args, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    buckets = {b["Name"] for b in awslocal("s3api", "list-buckets")["Buckets"]}
    assert set(seeded.buckets.values()) <= buckets
    listed = awslocal("s3api", "list-objects-v2", "--bucket", seeded.raw_bucket)
    assert [o["Key"] for o in listed["Contents"]] == [STREAM_KEY]
    item = awslocal(
        "dynamodb",
        "get-item",
        "--table-name",
        seeded.kpi_table,
        "--key",
        json.dumps({k: {"S": v} for k, v in DAY_KEY.items()}),
    )["Item"]
    assert item["date"] == {"S": "2026-03-01"}
