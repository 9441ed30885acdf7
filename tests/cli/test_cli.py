"""The musicpipe CLI against a real moto server, run as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from musicpipe.processes import ManagedProcess, is_alive

from ..conftest import SAMPLES, run_cli


@pytest.fixture
def cli_env(stack_env, tmp_path):
    """A private stack for the test; whatever happens, nothing it started outlives it."""
    yield stack_env
    run_cli("down", "--no-save", env=stack_env)
    for name in ("supervisor", "glue", "moto"):
        ManagedProcess(name, Path(stack_env["MUSICPIPE_STATE_DIR"])).stop()


def client(env, service: str):
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{env['MUSICPIPE_AWS_PORT']}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


def s3_keys(env, bucket="rds.data") -> list[str]:
    s3 = client(env, "s3")
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def row_states(table: str) -> dict[str, str]:
    """`status`'s services table: each row's state, by service name (rows may be added)."""
    names = ("aws (moto)", "glue (emulator)", "supervisor")
    cells = [[c.strip() for c in line.split("│")] for line in table.splitlines()]
    return {c[1]: c[2] for c in cells if len(c) > 2 and c[1] in names}


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_up_status_drop_down_up_keeps_state(cli_env, tmp_path):
    up = run_cli("up", env=cli_env, check=True)
    assert "15 created" in up.stdout  # 12 AWS resources, the jobs' library and the 2 Glue jobs
    # Each stage is named, with its time, as it ends; then the whole start's time.
    for stage in ("preflight", "AWS", "resources", "S3A jars", "Glue emulator", "Glue jobs"):
        assert f"✓ {stage} " in up.stdout, up.stdout
    assert "ready in " in up.stdout
    again = run_cli("up", env=cli_env, check=True)
    assert "already running" in again.stdout
    assert "No changes: all 15 resources already in place." in again.stdout

    status = run_cli("status", env=cli_env, check=True)
    states = row_states(status.stdout)
    assert states["aws (moto)"] == states["glue (emulator)"] == "healthy", status.stdout
    assert states["supervisor"] == "running"
    for name in ("rds.data", "trial.data", "warehouse.bucket", "kpi.table_file_tracker"):
        assert name in status.stdout
    assert "all 15 resources in place" in status.stdout
    assert "music_streaming_etl_complete" in status.stdout

    songs = write_csv(
        tmp_path / "songs.csv", "track_id,track_genre,track_name,artists\nt1,pop,x,y\n"
    )
    streams = write_csv(
        tmp_path / "day1.csv", "user_id,track_id,listen_time\n1,t1,2026-11-01 1:00:00\n"
    )
    dropped = run_cli("drop", str(streams), str(songs), env=cli_env, check=True)
    assert "streams/day1.csv" in dropped.stdout
    assert s3_keys(cli_env) == ["songs/songs.csv", "streams/day1.csv"]

    state = Path(cli_env["MUSICPIPE_STATE_DIR"])
    moto_pid = ManagedProcess("moto", state).pid()
    down = run_cli("down", env=cli_env, check=True)
    # The 2 dropped files and the Glue artifacts (2 scripts, the library zip).
    assert "saved 5 S3 objects" in down.stdout
    assert not is_alive(moto_pid)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(cli_env["MUSICPIPE_AWS_PORT"]))) != 0
    assert (
        "not running" in run_cli("status", env=cli_env).stdout
        or "stopped" in run_cli("status", env=cli_env).stdout
    )

    restored = run_cli("up", env=cli_env, check=True)
    assert "restored the saved state: 5 S3 objects" in restored.stdout
    assert s3_keys(cli_env) == ["songs/songs.csv", "streams/day1.csv"]
    run_cli("down", env=cli_env, check=True)

    fresh = run_cli("up", "--fresh", env=cli_env, check=True)
    assert "started fresh" in fresh.stdout
    assert s3_keys(cli_env) == []


def test_dynamodb_items_survive_a_restart(cli_env):
    run_cli("up", env=cli_env, check=True)
    ddb = client(cli_env, "dynamodb")
    item = {
        "pk": {"S": "DATE#2026-11-01"},
        "sk": {"S": "GENRE#pop"},
        "listen_count": {"N": "3"},
        "top_songs": {"L": [{"M": {"rank": {"N": "1"}, "track_id": {"S": "t1"}}}]},
    }
    ddb.put_item(TableName="kpi.table", Item=item)
    run_cli("down", env=cli_env, check=True)
    run_cli("up", env=cli_env, check=True)
    got = ddb.get_item(TableName="kpi.table", Key={"pk": item["pk"], "sk": item["sk"]})["Item"]
    assert got == item


def test_json_output_and_exit_codes(cli_env, tmp_path):
    run_cli("up", env=cli_env, check=True)
    status = run_cli("status", "--json", env=cli_env, check=True)
    doc = json.loads(status.stdout)
    assert doc["stack"] == "embedded"
    assert {s["name"]: s["state"] for s in doc["services"]} == {
        "aws (moto)": "healthy",
        "glue (emulator)": "healthy",
        "supervisor": "running",
    }
    assert {r["name"] for r in doc["resources"]} >= {"rds.data", "kpi.table"}
    assert all(r["state"] == "unchanged" for r in doc["resources"])
    assert doc["runs"] is None  # no Airflow on this stack

    ddb = client(cli_env, "dynamodb")
    for hour, plays in ((7, 2), (8, 5)):
        ddb.put_item(
            TableName="kpi.table",
            Item={
                "pk": {"S": "DATE#2026-11-01"},
                "sk": {"S": f"HOUR#{hour:02d}"},
                "date": {"S": "2026-11-01"},
                "hour": {"N": str(hour)},
                "plays": {"N": str(plays)},
                "track_diversity_index": {"N": "0.5"},
            },
        )
    kpis = json.loads(run_cli("kpis", "--json", env=cli_env, check=True).stdout)
    assert kpis["date"] == "2026-11-01" and kpis["dates"] == ["2026-11-01"]
    hours = {i["sk"]: i for i in kpis["items"]}
    assert hours["HOUR#08"]["plays"] == 5 and hours["HOUR#07"]["track_diversity_index"] == 0.5

    assert run_cli("kpis", "--date", "2026-13-01", env=cli_env).returncode == 2  # usage
    assert run_cli("kpis", "--date", "2026-11-05", env=cli_env).returncode == 1  # no KPIs
    bad_kind = run_cli("drop", str(SAMPLES / "users.csv"), "--kind", "videos", env=cli_env)
    assert bad_kind.returncode == 2 and "streams" in bad_kind.stderr  # --help lists choices

    ddb.delete_table(TableName="kpi.table")
    missing = run_cli("kpis", env=cli_env)
    assert missing.returncode == 1
    assert "table kpi.table not found: run `make up` to create it" in missing.stderr
    assert "Traceback" not in missing.stderr

    run_cli("down", "--no-save", env=cli_env, check=True)
    stopped = run_cli("status", "--json", env=cli_env)
    assert stopped.returncode == 1
    assert {s["state"] for s in json.loads(stopped.stdout)["services"]} == {"stopped"}


# What only one command needs is imported in that command: `musicpipe --help` and a plain
# `musicpipe status` never pay for pyspark, numpy, the generator, promotion or the run views.
LAZY_MODULES = (
    "pyspark",
    "numpy",
    "musicpipe.data.generator",
    "musicpipe.promote.plan",
    "musicpipe.kpi_report",
    "musicpipe.stack.runs",
    "musicpipe.stack.job_logs",
    "musicpipe.glue.pyspark_session",
    "musicpipe.glue.spark_history",
    "musicpipe.stack.job_runs",
)


def test_the_cli_keeps_its_top_level_commands_and_imports_little():
    probe = (
        "import sys, json, typer.main, musicpipe.cli; "
        "group = typer.main.get_command(musicpipe.cli.app); "
        f"print(json.dumps([list(group.list_commands(None)), [m for m in {LAZY_MODULES!r} "
        "if m in sys.modules]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    commands, loaded = json.loads(out)
    assert commands == [
        "up",
        "down",
        "status",
        "env",
        "drop",
        "wait",
        "reprocess",
        "kpis",
        "deploy",
        "logs",
        "manifest",
        "generate",
        "pyspark",
        "spark-history",
        "notebook",
        "job",
        "promote",
    ]
    assert loaded == []


def test_aws_errors_become_one_line_with_what_to_do():
    from botocore.exceptions import ClientError, EndpointConnectionError

    from musicpipe.cli.console import aws_error_message

    gone = EndpointConnectionError(endpoint_url="http://127.0.0.1:4566/")
    assert aws_error_message(gone) == (
        "the stack is not running (nothing answers at http://127.0.0.1:4566/): make up"
    )
    no_bucket = ClientError(
        {"Error": {"Code": "NoSuchBucket", "Message": "The bucket does not exist"}},
        "ListObjectsV2",
    )
    assert aws_error_message(no_bucket).startswith("ListObjectsV2: NoSuchBucket: The bucket")
    assert "run `make up` to create it" in aws_error_message(no_bucket)


def test_drop_of_the_sample_set(cli_env):
    run_cli("up", env=cli_env, check=True)
    run_cli(
        "drop",
        str(SAMPLES / "songs.csv"),
        str(SAMPLES / "users.csv"),
        str(SAMPLES / "streams"),
        env=cli_env,
        check=True,
    )
    keys = s3_keys(cli_env)
    assert "songs/songs.csv" in keys and "users/users.csv" in keys
    stream_files = sorted(p.name for p in (SAMPLES / "streams").glob("*.csv"))
    assert [k for k in keys if k.startswith("streams/")] == [f"streams/{n}" for n in stream_files]
    # This stack runs without Airflow (MUSICPIPE_AIRFLOW=false): `wait` says so instead of
    # waiting, and `status` still works.
    waited = run_cli("wait", "--timeout", "5", env=cli_env)
    assert waited.returncode == 1
    assert "is not running" in waited.stderr and "make up" in waited.stderr
    assert "last runs of" not in run_cli("status", env=cli_env, check=True).stdout


def test_bad_drops_upload_nothing_and_say_why(cli_env, tmp_path):
    run_cli("up", env=cli_env, check=True)
    good = write_csv(tmp_path / "ok.csv", "user_id,track_id,listen_time\n")
    bad = write_csv(tmp_path / "weird.csv", "a,b,c\n1,2,3\n")
    result = run_cli("drop", str(good), str(bad), str(tmp_path / "missing.csv"), env=cli_env)
    assert result.returncode == 2
    assert "weird.csv: columns [a, b, c] match no input kind" in result.stderr
    assert "missing.csv: no such file" in result.stderr
    assert "Traceback" not in result.stderr
    assert s3_keys(cli_env) == []


def test_drop_without_a_running_stack(cli_env, tmp_path):
    good = write_csv(tmp_path / "ok.csv", "user_id,track_id,listen_time\n")
    for args in (["drop", str(good)], ["wait"], ["kpis"]):
        started = time.monotonic()
        result = run_cli(*args, env=cli_env)
        assert result.returncode == 1, args  # a runtime failure, not a usage error
        # Not running is said at once (a busy component would be given time).
        assert "is not running" in result.stderr and "make up" in result.stderr, args
        assert time.monotonic() - started < 20, args
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port_var", ["MUSICPIPE_AWS_PORT", "MUSICPIPE_GLUE_PORT"])
def test_port_taken_by_another_process(cli_env, port_var):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", int(cli_env[port_var])))
        sock.listen()
        result = run_cli("up", env=cli_env)
    assert result.returncode == 1
    assert f"port {cli_env[port_var]} on 127.0.0.1 is already in use" in result.stderr
    # The holder is named (here: this test's own process).
    assert f"by PID {os.getpid()}" in result.stderr, result.stderr
    assert port_var in result.stderr
    # Nothing was left half started.
    state = Path(cli_env["MUSICPIPE_STATE_DIR"])
    assert not any(ManagedProcess(n, state).is_running() for n in ("moto", "glue"))


def test_java_missing(cli_env, tmp_path):
    env = {**cli_env, "JAVA_HOME": str(tmp_path / "no-jdk")}
    result = run_cli("up", env=env)
    assert result.returncode == 1
    assert "Java not found" in result.stderr and "Java 17" in result.stderr
    assert not ManagedProcess("moto", Path(cli_env["MUSICPIPE_STATE_DIR"])).is_running()


def test_env_exports_point_boto3_at_the_local_stack(cli_env):
    run_cli("up", env=cli_env, check=True)
    out = run_cli("env", env={**cli_env, "AWS_PROFILE": "prod"}, check=True).stdout
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in out.splitlines()
        if line.startswith("export ")
    )
    assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{cli_env['MUSICPIPE_AWS_PORT']}"
    assert exports["AWS_ACCESS_KEY_ID"] == "test"
    assert exports["AWS_ENDPOINT_URL_GLUE"] == f"http://127.0.0.1:{cli_env['MUSICPIPE_GLUE_PORT']}"
    assert "AWS_PROFILE" in out.splitlines()[0]  # unset first
    # boto3 configured only by these variables reaches the stack's buckets.
    env_backup = dict(os.environ)
    try:
        os.environ.update(exports)
        names = {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]}
        # boto3 routes just Glue to the emulator.
        glue_jobs = {j["Name"] for j in boto3.client("glue").get_jobs()["Jobs"]}
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    assert "rds.data" in names
    assert glue_jobs == {"music_streaming_validation", "music_streaming_etl_complete"}


def test_manifest_command_shows_overrides(cli_env, tmp_path):
    (tmp_path / "musicpipe.toml").write_text('[names]\nraw_bucket = "my.raw"\n')
    out = run_cli("manifest", "--json", env=cli_env, cwd=tmp_path, check=True).stdout
    assert json.loads(out)["names"]["raw_bucket"] == "my.raw"
    bad = write_csv(tmp_path / "musicpipe.toml", '[names]\nraw = "x"\n')
    result = run_cli("status", env=cli_env, cwd=tmp_path)
    assert result.returncode == 2
    assert f"{bad} [names]: unknown key(s) ['raw']" in result.stderr


def test_generate_command_writes_deterministic_files(stack_env, tmp_path):
    args = ["--songs", "300", "--users", "50", "--files", "2", "--rows-per-file", "400"]
    out_a = run_cli("generate", str(tmp_path / "a"), *args, env=stack_env, check=True)
    run_cli("generate", str(tmp_path / "b"), *args, env=stack_env, check=True)
    assert "300 songs, 50 users and 800 stream rows in 2 files" in out_a.stdout
    names = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.csv"))
    assert len(names) == 4
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    bad = run_cli("generate", str(tmp_path / "c"), "--start-date", "1/11/2026", env=stack_env)
    assert bad.returncode == 2 and "--start-date '1/11/2026' is not YYYY-MM-DD" in bad.stderr


def test_a_paused_aws_is_busy_not_down(cli_env):
    """A process that runs but cannot answer (SIGSTOP plays a machine too loaded to schedule
    it) is waited for within --timeout; past it, the error says busy, not "make up"."""
    run_cli("up", env=cli_env, check=True)
    moto = ManagedProcess("moto", Path(cli_env["MUSICPIPE_STATE_DIR"])).pid()
    os.kill(moto, signal.SIGSTOP)
    try:
        status = subprocess.Popen(
            [sys.executable, "-m", "musicpipe.cli", "status", "--timeout", "90"],
            env={**cli_env, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(6)
        os.kill(moto, signal.SIGCONT)
        out, errors = status.communicate(timeout=120)
        assert status.returncode == 0, out + errors
        # moto answered once resumed: not "stopped"
        assert row_states(out)["aws (moto)"] == "healthy", out
        assert row_states(out)["glue (emulator)"] == "healthy", out

        os.kill(moto, signal.SIGSTOP)
        started = time.monotonic()
        result = run_cli("kpis", "--timeout", "3", env=cli_env)
        assert result.returncode == 1
        assert "is running but did not answer within 3 s" in result.stderr, result.stderr
        assert "make up" not in result.stderr
        assert time.monotonic() - started < 30
    finally:
        os.kill(moto, signal.SIGCONT)
