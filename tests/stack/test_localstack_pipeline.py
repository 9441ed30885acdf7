"""The pipeline's jobs against LocalStack (the Compose stack's AWS), started by testcontainers:
the bootstrap, the S3 → SQS arrival event, the validation job and the ETL job on the Glue
emulator, and the KPIs held to the DuckDB oracle.

Needs a Docker engine: skipped, with the reason, where none answers (as on the project's CI
machine, which has the docker client but no daemon).
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import pytest

from musicpipe.aws.local import LocalAws, UnsafeEndpointError
from musicpipe.bootstrap import bootstrap, drop_test_events
from musicpipe.stack.choice import probe_docker
from musicpipe.stack.embedded import EmbeddedStack
from musicpipe.stack.settings import load_settings
from musicpipe.testing import environment

from ..conftest import SAMPLES, isolated_env
from ..pipeline_helpers import (
    MANIFEST,
    Pipeline,
    assert_rows_accounted,
    assert_same_kpis,
    oracle_items,
)

DOCKER = probe_docker()
pytestmark = pytest.mark.skipif(
    not DOCKER.engine, reason=f"needs a Docker engine for LocalStack: {DOCKER.detail}"
)
LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"  # the Compose stack's image


@pytest.fixture(scope="module")
def localstack_url():
    from testcontainers.localstack import LocalStackContainer

    container = (
        LocalStackContainer(image=LOCALSTACK_IMAGE, region_name=MANIFEST.region)
        .with_services("s3", "sqs", "dynamodb", "cloudwatch", "logs", "sts")
        .with_env("SQS_ENDPOINT_STRATEGY", "dynamic")
    )
    with container:
        url = container.get_url()
        try:
            LocalAws(url)
        except UnsafeEndpointError:
            pytest.skip(f"LocalStack is published on {url}, not on loopback (remote engine)")
        yield url


@pytest.fixture(scope="module")
def glue_on_localstack(localstack_url, tmp_path_factory):
    """The Glue job emulator on the host, its S3 and logs on LocalStack."""
    env = isolated_env(tmp_path_factory.mktemp("localstack-glue"))
    env["MUSICPIPE_AWS_PORT"] = localstack_url.rsplit(":", 1)[1]
    with environment(env):
        stack = EmbeddedStack(load_settings(), MANIFEST)
        stack._start_glue(health_timeout=60)
    try:
        yield stack
    finally:
        stack.glue.stop(timeout=30)


def test_jobs_on_localstack_give_the_oracle_s_kpis(glue_on_localstack, localstack_url):
    aws = LocalAws(localstack_url, MANIFEST.region)
    # The bootstrap as LocalStack's ready hook runs it, and again: nothing left to do.
    changes = bootstrap(aws.client, MANIFEST)
    drop_test_events(aws.client("sqs"), MANIFEST, changes)
    assert all(c.action == "unchanged" for c in bootstrap(aws.client, MANIFEST))
    pipe = Pipeline(aws, glue_on_localstack)

    songs, users = SAMPLES / "songs.csv", SAMPLES / "users.csv"
    streams = sorted((SAMPLES / "streams").glob("*.csv"))
    pipe.put_references(songs, users)
    for path in streams:
        pipe.put(path, f"streams/{path.name}")

    # LocalStack's S3 tells the queue about each stream file (not the reference files).
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=MANIFEST.arrivals_queue)["QueueUrl"]
    arrived: set[str] = set()
    for _ in range(10):
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get(
            "Messages", []
        ):
            body = json.loads(m["Body"])
            arrived |= {unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])}
        if len(arrived) == len(streams):
            break
    assert arrived == {f"streams/{p.name}" for p in streams}

    validation = pipe.run_job(MANIFEST.validation_job, {"--batch_id": "ls-1"})
    assert validation["JobRunState"] == "SUCCEEDED", validation.get("ErrorMessage")
    pipe.etl_and_write("ls-1")
    assert_same_kpis(pipe.kpi_table(), oracle_items(songs, users, streams))
    tracker = pipe.tracker_items()
    assert {i["status"] for i in tracker.values()} == {"COMPLETED"}
    assert_rows_accounted(tracker)
    # The job logs went to LocalStack's CloudWatch Logs, as on AWS.
    logs = aws.client("logs")
    streams_seen = logs.describe_log_streams(logGroupName="/aws-glue/jobs/output")["logStreams"]
    assert streams_seen
