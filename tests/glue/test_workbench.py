"""The Glue workbench on the session's real stack: `musicpipe pyspark` reads the local S3 as a
glueetl run does, a run's live Spark UI and event logs, and `musicpipe spark-history` serving
them with Spark's own history server."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import psutil
import pytest

from musicpipe.bootstrap import bootstrap
from musicpipe.glue.store import Store
from musicpipe.manifest import load_manifest
from musicpipe.stack.preflight import free_ports

from ..conftest import SAMPLES, as_from_a_terminal, run_cli
from .botocore_shapes import ContractRecorder
from .test_glue_emulator import create_job, log_lines, put_script, wait

ARTIFACTS = "musicpipe.artifacts"
SONGS_KEY = "songs/songs.csv"

# A glueetl script that checks its own live UI from inside the run and prints its URL.
UI_JOB = """\
import json, urllib.request
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
url = spark.sparkContext.uiWebUrl
with urllib.request.urlopen(url + "/api/v1/applications", timeout=10) as answer:
    apps = json.loads(answer.read())
print("UI", url, "APPS", len(apps))
print("ROWS", spark.read.csv("s3://rds.data/songs/songs.csv", header=True).count())
"""


def cli_env(local_stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICPIPE_")}
    s = local_stack.settings
    return {
        **env,
        "MUSICPIPE_STACK": "embedded",
        "MUSICPIPE_STATE_DIR": str(s.state_dir),
        "MUSICPIPE_AWS_PORT": str(s.aws_port),
        "MUSICPIPE_GLUE_PORT": str(s.glue_port),
        "MUSICPIPE_AIRFLOW": "false",
    }


@pytest.fixture(scope="module")
def stack(local_stack):
    """The session's stack with the pipeline's buckets and the sample songs in the raw one."""
    bootstrap(local_stack.aws.client, load_manifest())
    local_stack.aws.client("s3").upload_file(str(SAMPLES / "songs.csv"), "rds.data", SONGS_KEY)
    return local_stack


def sample_song_rows() -> int:
    with (SAMPLES / "songs.csv").open(newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def test_pyspark_c_reads_the_local_s3_as_a_glueetl_run(stack):
    code = (
        "import musicpipe\n"
        f"print('COUNT', spark.read.csv('s3://rds.data/{SONGS_KEY}', header=True).count())\n"
        "print('TZ', spark.conf.get('spark.sql.session.timeZone'))\n"
        "print('SC', sc is spark.sparkContext)\n"
    )
    result = run_cli("pyspark", "-c", code, env=cli_env(stack), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"COUNT {sample_song_rows()}" in result.stdout
    assert "TZ UTC" in result.stdout
    assert "SC True" in result.stdout


def test_pyspark_file_gets_its_arguments_and_its_exit_code(stack, tmp_path):
    script = tmp_path / "my job (draft) ü.py"
    out = f"s3://trial.data/workbench-{uuid.uuid4().hex[:8]}/"
    script.write_text(
        "import sys\n"
        "print('ARGV', sys.argv[1:])\n"
        f"spark.range(int(sys.argv[1])).write.parquet({out!r})\n"
        f"print('WROTE', spark.read.parquet({out!r}).count())\n"
        "sys.exit(3)\n",
        encoding="utf-8",
    )
    result = run_cli(
        "pyspark", str(script), "7", "--date", "a b", "-c", env=cli_env(stack), timeout=180
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ARGV ['7', '--date', 'a b', '-c']" in result.stdout
    assert "WROTE 7" in result.stdout


def test_pyspark_refuses_a_stack_that_is_down_and_a_missing_file(stack, tmp_path):
    aws_port, glue_port = free_ports(2)
    down = {
        **cli_env(stack),
        "MUSICPIPE_STATE_DIR": str(tmp_path / "state"),
        "MUSICPIPE_AWS_PORT": str(aws_port),
        "MUSICPIPE_GLUE_PORT": str(glue_port),
    }
    result = run_cli("pyspark", "-c", "print(1)", env=down, timeout=60)
    assert result.returncode == 1
    assert f"the local AWS (http://127.0.0.1:{aws_port}) is not running" in result.stderr
    assert "make up" in result.stderr
    missing = run_cli("pyspark", str(tmp_path / "nope.py"), env=cli_env(stack), timeout=60)
    assert missing.returncode == 2
    assert "nope.py: no such file" in missing.stderr


@pytest.fixture(scope="module")
def ui_run(stack):
    """One glueetl run with --enable-spark-ui true, its event logs under a prefix of its own."""
    aws = stack.aws
    glue = aws.client("glue", endpoint=stack.settings.glue_endpoint)
    recorder = ContractRecorder(glue)
    prefix = f"spark-event-logs/wb-{uuid.uuid4().hex[:8]}/"
    name = create_job(glue, put_script(aws, "ui", UI_JOB), command="glueetl")
    run_id = glue.start_job_run(
        JobName=name,
        Arguments={
            "--enable-spark-ui": "true",
            "--spark-event-logs-path": f"s3://{ARTIFACTS}/{prefix}",
        },
    )["JobRunId"]
    run = wait(glue, name, run_id)
    assert recorder.errors == [], recorder.errors
    return {"job": name, "run": run, "prefix": prefix, "glue": glue}


def test_a_glueetl_run_logs_its_live_ui_and_writes_its_event_log_to_s3(stack, ui_run):
    run = ui_run["run"]
    output = log_lines(stack.aws, "/aws-glue/jobs/output", run["Id"])
    assert run["JobRunState"] == "SUCCEEDED", output
    # The URL is in the first lines, the one the run's SparkContext served, and answered it.
    url = next(line.split("Spark UI: ")[1].split()[0] for line in output[:3] if "Spark UI" in line)
    assert url.startswith("http://127.0.0.1:")
    # The script's own SparkContext serves there (it may name the host localhost).
    port = url.rsplit(":", 1)[1]
    assert any(line.startswith("UI ") and line.endswith(f":{port} APPS 1") for line in output)
    assert f"ROWS {sample_song_rows()}" in output
    # Kept with the run for listing later, not in the Glue API's JobRun.
    stored = Store(stack.glue_state_dir).get_run(ui_run["job"], run["Id"])
    assert stored is not None and stored["_spark_ui_url"] == url
    assert not [key for key in run if key.startswith("_")]

    objects = stack.aws.client("s3").list_objects_v2(Bucket=ARTIFACTS, Prefix=ui_run["prefix"])
    keys = [o["Key"] for o in objects.get("Contents", [])]
    assert len(keys) == 1 and not keys[0].endswith(".inprogress"), keys
    body = stack.aws.client("s3").get_object(Bucket=ARTIFACTS, Key=keys[0])["Body"].read()
    events = [json.loads(line)["Event"] for line in body.decode().splitlines()]
    assert events[0] == "SparkListenerLogStart"
    assert "SparkListenerApplicationEnd" in events


def test_spark_ui_without_an_event_log_path_fails_the_run_clearly(stack, ui_run):
    glue = ui_run["glue"]
    run_id = glue.start_job_run(JobName=ui_run["job"], Arguments={"--enable-spark-ui": "true"})[
        "JobRunId"
    ]
    run = wait(glue, ui_run["job"], run_id)
    assert run["JobRunState"] == "FAILED"
    assert "--enable-spark-ui true needs --spark-event-logs-path" in run["ErrorMessage"]


def test_event_logs_for_a_missing_bucket_are_reported_and_the_run_still_succeeds(stack, ui_run):
    glue = ui_run["glue"]
    arguments = {
        "--enable-spark-ui": "true",
        "--spark-event-logs-path": "s3://no-such-bucket-wb/logs/",
    }
    run_id = glue.start_job_run(JobName=ui_run["job"], Arguments=arguments)["JobRunId"]
    run = wait(glue, ui_run["job"], run_id)
    errors = log_lines(stack.aws, "/aws-glue/jobs/error", run_id)
    assert run["JobRunState"] == "SUCCEEDED", errors
    assert any(
        "could not upload the Spark event logs to s3://no-such-bucket-wb/logs/" in line
        for line in errors
    ), errors


def start_command(env: dict[str, str], *args: str) -> subprocess.Popen:
    """`musicpipe ARGS` in the foreground as a user starts it, from a terminal (Ctrl-C is
    SIGINT), its two streams read by the test."""
    return subprocess.Popen(
        [sys.executable, "-m", "musicpipe.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        preexec_fn=as_from_a_terminal,
    )


def start_history(stack, prefix: str, port: int) -> subprocess.Popen:
    return start_command(
        cli_env(stack), "spark-history", "--port", str(port), "--path", f"s3://{ARTIFACTS}/{prefix}"
    )


@contextmanager
def left_nothing(cli: subprocess.Popen):
    """A foreground command's test: the processes it yields collect what the command started;
    whatever of the command and of them is left is killed after, also on failure."""
    started: list[psutil.Process] = []
    try:
        yield started
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
        for proc in started:
            if proc.is_running():
                proc.kill()


@contextmanager
def history_server(stack, prefix: str, port: int):
    """`musicpipe spark-history` as a user starts it."""
    cli = start_history(stack, prefix, port)
    with left_nothing(cli) as started:
        yield cli, started


def the_java_server(cli: subprocess.Popen) -> list[psutil.Process]:
    found = psutil.Process(cli.pid).children(recursive=True)
    assert any("HistoryServer" in " ".join(p.cmdline()) for p in found), found
    return found


def test_spark_history_lists_the_run_and_leaves_nothing_running(stack, ui_run):
    (port,) = free_ports(1)
    app_id = event_log_key(stack, ui_run["prefix"]).rsplit("/", 1)[1]
    with history_server(stack, ui_run["prefix"], port) as (cli, started):
        listed = wait_for_application(cli, f"http://127.0.0.1:{port}", app_id)
        assert listed["id"] == app_id
        assert listed["attempts"][0]["completed"] is True
        started += the_java_server(cli)
        # The server can answer before the command has seen it and said where it is: Ctrl-C
        # only after that line.
        assert cli.stdout is not None
        first = cli.stdout.readline()
        assert f"Spark history server: http://127.0.0.1:{port}" in first
        cli.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = cli.communicate(timeout=30)
        assert cli.returncode == 0, err
        _, alive = psutil.wait_procs(started, timeout=10)
        assert alive == []
        assert nothing_listens_on(port)


def test_a_killed_spark_history_command_takes_its_server_with_it(stack, ui_run):
    (port,) = free_ports(1)
    with history_server(stack, ui_run["prefix"], port) as (cli, started):
        wait_for_application(cli, f"http://127.0.0.1:{port}", None)
        started += the_java_server(cli)
        os.kill(cli.pid, signal.SIGKILL)  # only the command, not its process group
        cli.wait()
        _, alive = psutil.wait_procs(started, timeout=20)
        assert alive == [], "the history server outlived the command that started it"


def event_log_key(stack, prefix: str) -> str:
    objects = stack.aws.client("s3").list_objects_v2(Bucket=ARTIFACTS, Prefix=prefix)
    return objects["Contents"][0]["Key"]


def test_spark_history_refuses_a_port_in_use(stack):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("spark-history", "--port", str(port), env=cli_env(stack), timeout=60)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr


def wait_for_application(cli: subprocess.Popen, url: str, app_id: str | None, timeout=90.0):
    """The application ``app_id`` once the server lists it (None: once the server answers)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cli.poll() is not None:
            raise AssertionError(f"spark-history exited {cli.returncode}: {cli.communicate()}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/applications", timeout=5) as answer:
                apps = json.loads(answer.read())
            if app_id is None:
                return {}
            for app in apps:
                if app["id"] == app_id:
                    return app
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} did not list {app_id} within {timeout} s")


def nothing_listens_on(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
