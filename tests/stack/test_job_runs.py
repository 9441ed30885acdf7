"""The pure parts of `musicpipe job run` / `job runs`: --arg parsing, a loose script's scratch
job, a run as a row (the CLI against a real stack: tests/cli/test_job_run.py)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from musicpipe.manifest import load_manifest
from musicpipe.stack.job_runs import RunUsageError, parse_arguments, run_row, scratch_spec


def test_arguments_become_glue_run_arguments():
    assert parse_arguments(["batch_id=x", "--day=2026-11-01", "empty=", "eq=a=b"]) == {
        "--batch_id": "x",
        "--day": "2026-11-01",
        "--empty": "",
        "--eq": "a=b",
    }


@pytest.mark.parametrize("bad", ["batch_id", "=x", "two words=x", "--=x", "é=x"])
def test_bad_arguments_say_what_is_expected(bad):
    with pytest.raises(RunUsageError, match="expected KEY=VALUE"):
        parse_arguments([bad])


def test_a_scratch_job_is_a_glueetl_job_with_the_pipelines_defaults(tmp_path):
    script = tmp_path / "my try (2).py"
    script.write_text("print(1)\n")
    manifest = load_manifest(cwd=tmp_path, environ={})
    spec = scratch_spec(manifest, script)
    etl = next(s for s in manifest.glue_jobs if s.command == "glueetl")
    assert spec.name == "scratch_my_try__2_"
    assert spec.command == "glueetl" and spec.glue_version == etl.glue_version
    assert spec.default_arguments == etl.default_arguments
    assert spec.script == str(script)
    assert spec.script_location == "s3://musicpipe.artifacts/scratch/scratch_my_try__2_.py"


def test_a_run_row_has_its_duration_and_error():
    start = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
    row = run_row(
        {
            "Id": "jr_1",
            "Attempt": 0,
            "JobRunState": "FAILED",
            "StartedOn": start,
            "CompletedOn": start + dt.timedelta(seconds=2.5),
            "ErrorMessage": "ValueError: boom",
        }
    )
    assert row["duration_s"] == 2.5 and row["error"] == "ValueError: boom"
    assert row["started"] == "2026-11-01T12:00:00+00:00"
    running = run_row(
        {"Id": "jr_2", "JobRunState": "RUNNING", "StartedOn": start},
        now=start + dt.timedelta(seconds=7),
    )
    assert running["duration_s"] == 7.0 and running["attempt"] == 0


@pytest.fixture
def moto_clients(monkeypatch):
    """In-process moto S3 and Logs (no server: these tests start nothing)."""
    from moto import mock_aws

    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        import boto3

        def client(service):
            return boto3.client(
                service,
                region_name="us-east-1",
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )

        yield client


def test_an_upload_happens_only_when_the_bytes_differ(moto_clients):
    from musicpipe.artifacts import upload_if_changed

    s3 = moto_clients("s3")
    s3.create_bucket(Bucket="art")
    assert upload_if_changed(s3, "art", "scripts/a.py", b"print(1)\n") == "created"
    first = s3.head_object(Bucket="art", Key="scripts/a.py")["LastModified"]
    assert upload_if_changed(s3, "art", "scripts/a.py", b"print(1)\n") == "unchanged"
    assert s3.head_object(Bucket="art", Key="scripts/a.py")["LastModified"] == first
    assert upload_if_changed(s3, "art", "scripts/a.py", b"print(2)\n") == "updated"
    assert s3.get_object(Bucket="art", Key="scripts/a.py")["Body"].read() == b"print(2)\n"
    # An object someone else put (a restored snapshot: no metadata) is compared by its ETag.
    s3.put_object(Bucket="art", Key="scripts/b.py", Body=b"x = 1\n")
    assert upload_if_changed(s3, "art", "scripts/b.py", b"x = 1\n") == "unchanged"
    assert upload_if_changed(s3, "art", "scripts/b.py", b"x = 2\n") == "updated"


def test_following_a_run_prints_each_line_once_and_the_last_ones_too(moto_clients):
    from musicpipe.stack.job_runs import follow_run

    logs = moto_clients("logs")
    for kind in ("output", "error"):
        logs.create_log_group(logGroupName=f"/aws-glue/python-jobs/{kind}")

    def put(kind: str, *lines: str) -> None:
        if not logs.describe_log_streams(
            logGroupName=f"/aws-glue/python-jobs/{kind}", logStreamNamePrefix="jr_1"
        )["logStreams"]:
            logs.create_log_stream(
                logGroupName=f"/aws-glue/python-jobs/{kind}", logStreamName="jr_1"
            )
        events = [{"timestamp": int(time.time() * 1000), "message": line} for line in lines]
        logs.put_log_events(
            logGroupName=f"/aws-glue/python-jobs/{kind}", logStreamName="jr_1", logEvents=events
        )

    # What the emulator does between polls: no stream yet, lines, more lines, the end.
    script = iter(
        [
            lambda: None,
            lambda: put("output", "one", "two"),
            lambda: put("error", "oops"),
            lambda: put("output", "three"),
        ]
    )
    states = iter(["STARTING", "RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"])

    class Glue:
        def get_job_run(self, JobName, RunId):
            state = next(states)
            return {
                "JobRun": {
                    "Id": RunId,
                    "JobName": JobName,
                    "JobRunState": state,
                    "LogGroupName": "/aws-glue/python-jobs",
                }
            }

    seen: list[tuple[str, str]] = []
    final = follow_run(
        Glue(),
        logs,
        "j",
        "jr_1",
        lambda kind, line: seen.append((kind, line)),
        sleep=lambda s: next(script, lambda: None)(),
    )
    assert final["JobRunState"] == "SUCCEEDED"
    assert seen == [("output", "one"), ("output", "two"), ("error", "oops"), ("output", "three")]
