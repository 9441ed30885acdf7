"""Nothing is lost: the embedded AWS killed with SIGKILL comes back whole at the next `up`
(snapshot + journal of writes), and `down` saves only after what writes has stopped.

Each test starts its own stack with the CLI, as a user does, and stops everything it started
even when it fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote_plus

import pytest

from musicpipe.aws.local import LocalAws
from musicpipe.pipeline.archiver import archive_completed_files
from musicpipe.processes import ManagedProcess
from musicpipe.stack import journal
from musicpipe.stack.base import http_ok

from ..conftest import SAMPLES, run_cli
from ..pipeline_helpers import MANIFEST, PROCESSED, QUARANTINE, RAW, Pipeline

ROLE = "arn:aws:iam::123456789012:role/musicpipe-glue-job-role"


@pytest.fixture
def cli_env(stack_env):
    """A private stack; whatever happens, nothing it started outlives the test."""
    yield stack_env
    run_cli("down", "--no-save", env=stack_env)
    state = Path(stack_env["MUSICPIPE_STATE_DIR"])
    for name in ("supervisor", "glue", "moto"):
        ManagedProcess(name, state).stop()


def aws_of(env) -> LocalAws:
    return LocalAws(f"http://127.0.0.1:{env['MUSICPIPE_AWS_PORT']}", MANIFEST.region)


def kill_moto(env) -> None:
    """SIGKILL, as the issue's probe did: no handler runs, nothing is flushed by moto."""
    moto = ManagedProcess("moto", Path(env["MUSICPIPE_STATE_DIR"]))
    pid = moto.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while moto.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not moto.is_running()


def everything(aws: LocalAws) -> tuple[dict, dict]:
    """Every object of the manifest's buckets (by bucket and key: a digest of its bytes, its
    content type and metadata) and every item of its tables, in DynamoDB's typed JSON."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    objects = {}
    for bucket in MANIFEST.buckets.values():
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                got = s3.get_object(Bucket=bucket, Key=obj["Key"])
                digest = hashlib.sha256(got["Body"].read()).hexdigest()
                objects[(bucket, obj["Key"])] = (
                    digest,
                    obj["ETag"],
                    got.get("ContentType"),
                    got.get("Metadata"),
                )
    items = {}
    for spec in MANIFEST.tables:
        for page in ddb.get_paginator("scan").paginate(TableName=spec.name):
            for item in page["Items"]:
                items[(spec.name, json.dumps(item, sort_keys=True))] = True
    return objects, items


def queued_keys(aws: LocalAws) -> list[str]:
    """The stream files the queue's S3 events name (what the DAG would be handed)."""
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=MANIFEST.notification.queue)["QueueUrl"]
    keys = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not got.get("Messages"):
            return sorted(keys)
        for message in got["Messages"]:
            for record in json.loads(message["Body"]).get("Records", []):
                keys.append(unquote_plus(record["s3"]["object"]["key"]))


def run_completed_pipeline(env) -> Pipeline:
    """One pipeline run as the DAG runs it: validation (a bad file quarantined), the ETL,
    the KPI writer, the archiver."""
    aws = aws_of(env)
    stack = SimpleNamespace(settings=SimpleNamespace(glue_endpoint=env["GLUE_ENDPOINT"]))
    pipe = Pipeline(aws, stack)
    pipe.put_references(SAMPLES / "songs.csv", SAMPLES / "users.csv")
    good = ["streams1.csv", "streams2.csv"]
    for name in good:
        pipe.put(SAMPLES / "streams" / name, f"streams/{name}")
    pipe.put(SAMPLES / "bad" / "missing_column.csv", "streams/missing_column.csv")
    run = pipe.run_job(MANIFEST.validation_job, {"--batch_id": "b1"})
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    keys = [f"streams/{n}" for n in good]
    pipe.etl_and_write("b1", keys)
    archive_completed_files(pipe.s3, pipe.dynamodb, RAW, MANIFEST.tracker_table, keys)
    return pipe


def test_moto_killed_after_a_run_comes_back_whole_at_up(cli_env):
    env = {**cli_env, "GLUE_ENDPOINT": f"http://127.0.0.1:{cli_env['MUSICPIPE_GLUE_PORT']}"}
    run_cli("up", env=cli_env, check=True)
    # A snapshot to build on: the journal continues it.
    run_cli("down", env=cli_env, check=True)
    run_cli("up", env=cli_env, check=True)
    pipe = run_completed_pipeline(env)
    # One file arrives after the run: still waiting when moto dies.
    pipe.put(SAMPLES / "streams" / "streams3.csv", "streams/streams3.csv")
    aws = aws_of(cli_env)
    before_objects, before_items = everything(aws)
    # What the run left, so the comparison below means something.
    tracker = pipe.tracker_items()
    assert tracker["streams/streams1.csv"]["status"] == "COMPLETED"
    assert tracker["streams/missing_column.csv"]["status"] == "QUARANTINED"
    assert pipe.keys(RAW, "archive/streams/") and pipe.keys(QUARANTINE, "quarantine/files/")
    assert pipe.keys(PROCESSED, "kpis/") and pipe.kpi_table()

    kill_moto(cli_env)
    up = run_cli("up", env=cli_env, check=True)
    print(up.stdout)
    assert "unclean stop" in up.stdout
    assert "restored the saved state" in up.stdout
    assert "every write moto acknowledged before it stopped is back" in up.stdout
    assert "re-delivered the S3 events of 1 waiting stream file" in up.stdout
    assert "NOT restored" not in up.stdout and "MISSING" not in up.stdout

    after_objects, after_items = everything(aws)
    missing = sorted(set(before_objects) - set(after_objects))
    assert not missing, missing[:10]
    changed = [k for k in before_objects if before_objects[k] != after_objects[k]]
    assert not changed, [(k, before_objects[k], after_objects[k]) for k in changed[:3]]
    assert set(after_objects) == set(before_objects)
    assert after_items == before_items
    # The DAG is handed exactly the file that was waiting, not the archived ones.
    assert queued_keys(aws) == ["streams/streams3.csv"]

    # The journal goes on after the recovery: a write now survives a second kill.
    aws.client("s3").put_object(Bucket=RAW, Key="songs/after.txt", Body=b"after")
    kill_moto(cli_env)
    again = run_cli("up", env=cli_env, check=True)
    assert "unclean stop" in again.stdout
    assert aws.client("s3").get_object(Bucket=RAW, Key="songs/after.txt")["Body"].read() == (
        b"after"
    )
    assert everything(aws)[1] == before_items
    # A clean down then up: the snapshot has it all, no journal is left behind.
    run_cli("down", env=cli_env, check=True)
    assert not Path(cli_env["MUSICPIPE_STATE_DIR"], "journal", "aws.journal").exists()
    clean = run_cli("up", env=cli_env, check=True)
    assert "unclean stop" not in clean.stdout
    assert set(everything(aws)[0]) == set(before_objects) | {(RAW, "songs/after.txt")}


def test_moto_killed_while_writes_pour_in_keeps_every_acknowledged_one(cli_env):
    """SIGKILL at an arbitrary moment of a stream of writes: every write whose response came
    back is there after `up`; the one moto was applying may or may not be, and `up` says
    which it cut off."""
    run_cli("up", env=cli_env, check=True)
    aws = aws_of(cli_env)
    s3 = aws.client("s3")
    table = aws.session.resource("dynamodb", endpoint_url=aws.endpoint, config=aws.config).Table(
        MANIFEST.tracker_table
    )
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            try:
                s3.put_object(Bucket=PROCESSED, Key=f"burst/{i}", Body=os.urandom(50_000))
                table.put_item(Item={"file_key": f"burst/{i}", "status": "COMPLETED"})
            except Exception:  # the server died under us: this write was never acknowledged
                return
            acknowledged.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(acknowledged) < 40:
            time.sleep(0.05)
        kill_moto(cli_env)
    finally:
        stop.set()
        thread.join(timeout=120)
    up = run_cli("up", env=cli_env, check=True)
    print(up.stdout)
    assert "unclean stop" in up.stdout and "MISSING" not in up.stdout
    keys = set(
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=PROCESSED, Prefix="burst/")
        for o in p.get("Contents", [])
    )
    tracked = {i["file_key"] for i in table.scan()["Items"]}
    for i in acknowledged:
        assert f"burst/{i}" in keys and f"burst/{i}" in tracked, i
    # At most the write in flight at the kill is there without having been acknowledged.
    assert len(keys) - len(acknowledged) <= 1


def test_a_torn_last_record_is_cut_off_and_named(cli_env):
    """A kill in the middle of writing a record (the window between moto applying a write and
    its record being whole on file) leaves a torn frame: `up` cuts it, names the write, and
    brings back everything before it."""
    run_cli("up", env=cli_env, check=True)
    aws = aws_of(cli_env)
    s3 = aws.client("s3")
    s3.put_object(Bucket=RAW, Key="streams/kept.csv", Body=b"user_id,track_id,listen_time\n")
    glue = ManagedProcess("glue", Path(cli_env["MUSICPIPE_STATE_DIR"]))
    glue_before = glue.pid()
    kill_moto(cli_env)
    path = Path(cli_env["MUSICPIPE_STATE_DIR"], "journal", "aws.journal")
    head = {
        "t": time.time(),
        "service": "s3",
        "method": "PUT",
        "uri": "/rds.data/streams/torn.csv",
        "headers": [],
    }
    frame = journal.encode_frame(head, b"x" * 1000)
    with path.open("ab") as fh:
        fh.write(frame[:-300])  # the body only half written
    up = run_cli("up", env=cli_env, check=True)
    print(up.stdout)
    assert "not restored: S3 PUT /rds.data/streams/torn.csv" in up.stdout
    assert "cut off" in up.stdout
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=RAW).get("Contents", [])]
    assert "streams/kept.csv" in keys and "streams/torn.csv" not in keys
    # The emulator, still running when moto died, was stopped while the state came back (no
    # write may land on half a state) and started again.
    assert glue.is_running() and glue.pid() != glue_before
    # The journal was cut at the last whole record and goes on from there.
    s3.put_object(Bucket=RAW, Key="streams/later.csv", Body=b"user_id,track_id,listen_time\n")
    scanned = journal.scan(path)
    assert scanned.torn_bytes == 0 and scanned.writes >= 2


def test_down_saves_what_a_glue_run_writes_while_it_stops(cli_env):
    """A Glue run that finishes in the stop's grace period writes to S3 after `down` began:
    `down` stops Glue before it saves, so the write is in the snapshot."""
    run_cli("up", env=cli_env, check=True)
    aws = aws_of(cli_env)
    s3 = aws.client("s3")
    glue = aws.client("glue", endpoint=f"http://127.0.0.1:{cli_env['MUSICPIPE_GLUE_PORT']}")
    script = (
        "import signal, time, boto3\n"
        "s3 = boto3.client('s3')\n"
        "stopping = []\n"
        "signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))\n"
        "s3.put_object(Bucket='trial.data', Key='late/started', Body=b'1')\n"
        "while not stopping:\n"
        "    time.sleep(0.1)\n"
        "time.sleep(2)  # finishing its work inside the grace period\n"
        "s3.put_object(Bucket='trial.data', Key='late/finished', Body=b'done')\n"
    )
    s3.put_object(Bucket=MANIFEST.artifacts_bucket, Key="tests/late.py", Body=script.encode())
    glue.create_job(
        Name="late-writer",
        Role=ROLE,
        Command={
            "Name": "pythonshell",
            "ScriptLocation": f"s3://{MANIFEST.artifacts_bucket}/tests/late.py",
            "PythonVersion": "3.9",
        },
    )
    glue.start_job_run(JobName="late-writer")
    deadline = time.monotonic() + 120
    while "Contents" not in s3.list_objects_v2(Bucket=PROCESSED, Prefix="late/started"):
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)
    run_cli("down", env=cli_env, check=True)
    run_cli("up", env=cli_env, check=True)
    assert s3.get_object(Bucket=PROCESSED, Key="late/finished")["Body"].read() == b"done"


def test_a_restored_object_keeps_its_etag(cli_env):
    """The snapshot restores an object uploaded in parts with the same parts, and any other
    with one PUT: ETags survive `down`/`up`, so the archiver's CopySourceIfMatch (and the
    journal's replay of such copies on top of a snapshot) still match."""
    run_cli("up", env=cli_env, check=True)
    s3 = aws_of(cli_env).client("s3")
    s3.put_object(Bucket=RAW, Key="streams/single.csv", Body=os.urandom(9_000_000))
    s3.upload_fileobj(io.BytesIO(os.urandom(20_000_000)), RAW, "streams/parts.csv")
    before = {
        k: s3.head_object(Bucket=RAW, Key=k)["ETag"]
        for k in ("streams/single.csv", "streams/parts.csv")
    }
    assert before["streams/parts.csv"].endswith('-3"')
    run_cli("down", env=cli_env, check=True)
    run_cli("up", env=cli_env, check=True)
    after = {k: s3.head_object(Bucket=RAW, Key=k)["ETag"] for k in before}
    assert after == before
    s3.copy_object(
        Bucket=RAW,
        Key="archive/single.csv",
        CopySource={"Bucket": RAW, "Key": "streams/single.csv"},
        CopySourceIfMatch=before["streams/single.csv"],
    )


def test_down_never_saves_over_a_journal_not_yet_replayed(cli_env):
    """An `up` after an unclean stop that failed before its replay finished leaves a moto
    with half the state: `down` then keeps the old snapshot and the journal (and says so), and
    the next `up` brings everything back."""
    run_cli("up", env=cli_env, check=True)
    aws = aws_of(cli_env)
    aws.client("s3").put_object(Bucket=RAW, Key="songs/kept.csv", Body=b"track_id\n")
    kill_moto(cli_env)
    state = Path(cli_env["MUSICPIPE_STATE_DIR"])
    # moto back, bootstrapped, but its journal never resumed: as if `up` died in the replay.
    port = cli_env["MUSICPIPE_AWS_PORT"]
    moto = ManagedProcess("moto", state)
    moto.start(
        [sys.executable, "-m", "musicpipe.stack.journal", "-p", port]
        + ["--journal", str(state / "journal" / "aws.journal")],
        env=cli_env,
    )
    deadline = time.monotonic() + 30
    while not http_ok(aws.endpoint + "/moto-api/"):
        assert time.monotonic() < deadline, moto.tail()
        time.sleep(0.2)
    down = run_cli("down", env=cli_env, check=True)
    assert "not saved" in down.stdout
    assert (state / "journal" / "aws.journal").exists()
    up = run_cli("up", env=cli_env, check=True)
    assert "unclean stop" in up.stdout
    assert aws.client("s3").get_object(Bucket=RAW, Key="songs/kept.csv")["Body"].read() == (
        b"track_id\n"
    )
