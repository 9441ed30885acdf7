"""The Glue job emulator over the wire: boto3 drives it, botocore's model judges every answer,
and the jobs really run (Python shell and Spark against the local S3)."""

from __future__ import annotations

import io
import json
import os
import signal
import time
import uuid
import zipfile

import duckdb
import pytest

from musicpipe.bootstrap import bootstrap
from musicpipe.manifest import load_manifest
from musicpipe.processes import is_alive
from musicpipe.testing import environment

from ..conftest import GLUE_MINUTE_SECONDS, SAMPLES, run_cli
from .botocore_shapes import ContractRecorder

ROLE = "arn:aws:iam::123456789012:role/musicpipe-glue-job-role"
ARTIFACTS = "musicpipe.artifacts"

ECHO_ARGS = """\
import json, sys
from awsglue.utils import getResolvedOptions
args = getResolvedOptions(sys.argv, ["JOB_NAME", "greeting", "target"])
print("ARGS " + json.dumps(args, sort_keys=True))
"""

USES_LIBS = """\
import sys
import helperlib
import plainmod
print("LIB", helperlib.shout("hello"), plainmod.VALUE)
"""

FAILS = """\
import sys
print("about to fail")
def load():
    raise ValueError("bad input row 42 in streams1.csv")
load()
"""

SLEEPS = """\
import time
print("sleeping", flush=True)
time.sleep(300)
"""

CSV_TO_PARQUET = """\
import sys
from awsglue.utils import getResolvedOptions
from pyspark.sql import SparkSession
args = getResolvedOptions(sys.argv, ["JOB_NAME", "src", "dst"])
spark = SparkSession.builder.appName(args["JOB_NAME"]).getOrCreate()
df = spark.read.option("header", True).csv(args["src"])
df.write.mode("overwrite").parquet(args["dst"])
print("ROWS", df.count())
"""


@pytest.fixture
def env(aws, local_stack):
    """Resources bootstrapped on a clean moto, and a Glue client checked against the model."""
    bootstrap(aws.client, load_manifest())
    glue = aws.client("glue", endpoint=local_stack.settings.glue_endpoint)
    recorder = ContractRecorder(glue)
    yield aws, glue
    assert recorder.errors == [], recorder.errors


def put_script(aws, name: str, code: str) -> str:
    key = f"scripts/{name}-{uuid.uuid4().hex[:8]}.py"
    aws.client("s3").put_object(Bucket=ARTIFACTS, Key=key, Body=code.encode())
    return f"s3://{ARTIFACTS}/{key}"


def create_job(glue, script: str, command: str = "pythonshell", **extra) -> str:
    name = f"job-{uuid.uuid4().hex[:8]}"
    definition = {
        "Name": name,
        "Role": ROLE,
        "Command": {"Name": command, "ScriptLocation": script, "PythonVersion": "3.9"},
        **extra,
    }
    if command == "glueetl":
        definition["Command"]["PythonVersion"] = "3"
        definition.update(GlueVersion="5.1", WorkerType="G.1X", NumberOfWorkers=2)
    glue.create_job(**definition)
    return name


def wait(glue, job: str, run_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        if run["JobRunState"] not in ("STARTING", "RUNNING", "STOPPING"):
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still {run['JobRunState']} after {timeout} s")


def log_lines(aws, group: str, run_id: str) -> list[str]:
    events = aws.client("logs").get_log_events(
        logGroupName=group, logStreamName=run_id, startFromHead=True
    )["events"]
    return [e["message"] for e in events]


def test_job_lifecycle_answers_fit_botocore_model(env):
    aws, glue = env
    script = put_script(aws, "echo", ECHO_ARGS)
    name = create_job(
        glue,
        script,
        DefaultArguments={"--greeting": "hi", "--target": "default"},
        Timeout=10,
        Description="lifecycle",
    )
    job = glue.get_job(JobName=name)["Job"]
    assert job["Command"]["ScriptLocation"] == script
    assert job["Timeout"] == 10
    assert job["DefaultArguments"] == {"--greeting": "hi", "--target": "default"}
    assert job["CreatedOn"] <= job["LastModifiedOn"]

    # CreateJob again with the same definition is harmless; with another it is refused.
    glue.create_job(
        Name=name,
        Role=ROLE,
        Command={"Name": "pythonshell", "ScriptLocation": script, "PythonVersion": "3.9"},
        DefaultArguments={"--greeting": "hi", "--target": "default"},
        Timeout=10,
        Description="lifecycle",
    )
    with pytest.raises(glue.exceptions.IdempotentParameterMismatchException):
        glue.create_job(Name=name, Role=ROLE, Command={"Name": "glueetl", "ScriptLocation": script})

    glue.update_job(
        JobName=name,
        JobUpdate={
            "Role": ROLE,
            "Command": {"Name": "pythonshell", "ScriptLocation": script},
            "DefaultArguments": {"--greeting": "hello", "--target": "default"},
        },
    )
    updated = glue.get_job(JobName=name)["Job"]
    assert updated["DefaultArguments"]["--greeting"] == "hello"
    assert updated["Timeout"] == 2880  # UpdateJob replaces: unset members return to defaults
    assert updated["CreatedOn"] == job["CreatedOn"]

    names = [
        j["Name"]
        for j in glue.get_paginator("get_jobs").paginate(MaxResults=1).build_full_result()["Jobs"]
    ]
    assert name in names
    assert name in glue.list_jobs()["JobNames"]

    run_id = glue.start_job_run(JobName=name, Arguments={"--target": "run"})["JobRunId"]
    assert run_id.startswith("jr_") and len(run_id) == 67
    run = wait(glue, name, run_id)
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert run["Arguments"] == {"--target": "run"}
    assert run["CompletedOn"] >= run["StartedOn"]
    assert run["ExecutionTime"] >= 0
    assert run["LogGroupName"] == "/aws-glue/python-jobs"
    runs = glue.get_job_runs(JobName=name)["JobRuns"]
    assert [r["Id"] for r in runs] == [run_id]

    assert glue.delete_job(JobName=name)["JobName"] == name
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_job(JobName=name)
    glue.delete_job(JobName=name)  # deleting a missing job is not an error on Glue either


def test_arguments_reach_getresolvedoptions_merged_as_on_glue(env):
    aws, glue = env
    name = create_job(
        glue,
        put_script(aws, "echo", ECHO_ARGS),
        DefaultArguments={"--greeting": "from-default", "--target": "from-default"},
        NonOverridableArguments={"--locked": "yes"},
    )
    run_id = glue.start_job_run(JobName=name, Arguments={"--target": "from-run"})["JobRunId"]
    run = wait(glue, name, run_id)
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    lines = log_lines(aws, "/aws-glue/python-jobs/output", run_id)
    args = json.loads(next(line for line in lines if line.startswith("ARGS "))[5:])
    assert args["greeting"] == "from-default"
    assert args["target"] == "from-run"
    assert args["JOB_NAME"] == name
    assert args["JOB_RUN_ID"] == run_id
    assert args["TempDir"].startswith(f"s3://{ARTIFACTS}/temporary/")


def test_extra_py_files_are_fetched_and_importable(env):
    aws, glue = env
    s3 = aws.client("s3")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("helperlib/__init__.py", "def shout(s):\n    return s.upper() + '!'\n")
    s3.put_object(Bucket=ARTIFACTS, Key="libs/helperlib.zip", Body=buf.getvalue())
    s3.put_object(Bucket=ARTIFACTS, Key="libs/plainmod.py", Body=b"VALUE = 42\n")
    name = create_job(
        glue,
        put_script(aws, "libs", USES_LIBS),
        DefaultArguments={
            "--extra-py-files": f"s3://{ARTIFACTS}/libs/helperlib.zip,s3://{ARTIFACTS}/libs/plainmod.py"
        },
    )
    run = wait(glue, name, glue.start_job_run(JobName=name)["JobRunId"])
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert "LIB HELLO! 42" in log_lines(aws, "/aws-glue/python-jobs/output", run["Id"])


def test_failure_carries_the_scripts_own_error(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "fails", FAILS))
    run = wait(glue, name, glue.start_job_run(JobName=name)["JobRunId"])
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "ValueError: bad input row 42 in streams1.csv"
    errors = log_lines(aws, "/aws-glue/python-jobs/error", run["Id"])
    assert any("Traceback" in line for line in errors)
    assert "about to fail" in log_lines(aws, "/aws-glue/python-jobs/output", run["Id"])


def test_missing_script_fails_the_run_saying_so(env):
    aws, glue = env
    name = create_job(glue, f"s3://{ARTIFACTS}/scripts/not-uploaded.py")
    run = wait(glue, name, glue.start_job_run(JobName=name)["JobRunId"])
    assert run["JobRunState"] == "FAILED"
    assert "not-uploaded.py does not exist" in run["ErrorMessage"]


def test_timeout_stops_the_run(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "sleeps", SLEEPS), Timeout=1)
    started = time.monotonic()
    run = wait(glue, name, glue.start_job_run(JobName=name)["JobRunId"], timeout=60)
    assert run["JobRunState"] == "TIMEOUT"
    assert "timeout of 1 minutes" in run["ErrorMessage"]
    assert time.monotonic() - started < GLUE_MINUTE_SECONDS + 15


def test_concurrency_limit_and_stop(env):
    aws, glue = env
    name = create_job(
        glue, put_script(aws, "sleeps", SLEEPS), ExecutionProperty={"MaxConcurrentRuns": 1}
    )
    first = glue.start_job_run(JobName=name)["JobRunId"]
    with pytest.raises(glue.exceptions.ConcurrentRunsExceededException):
        glue.start_job_run(JobName=name)
    deadline = time.monotonic() + 30
    while glue.get_job_run(JobName=name, RunId=first)["JobRun"]["JobRunState"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    answer = glue.batch_stop_job_run(JobName=name, JobRunIds=[first, "jr_unknown"])
    assert answer["SuccessfulSubmissions"] == [{"JobName": name, "JobRunId": first}]
    assert answer["Errors"][0]["JobRunId"] == "jr_unknown"
    assert answer["Errors"][0]["ErrorDetail"]["ErrorCode"] == "EntityNotFoundException"
    run = wait(glue, name, first, timeout=30)
    assert run["JobRunState"] == "STOPPED"
    # The slot is free again once the run stopped.
    second = glue.start_job_run(JobName=name)["JobRunId"]
    glue.batch_stop_job_run(JobName=name, JobRunIds=[second])
    assert wait(glue, name, second, timeout=30)["JobRunState"] == "STOPPED"
    again = glue.batch_stop_job_run(JobName=name, JobRunIds=[first])
    assert "already STOPPED" in again["Errors"][0]["ErrorDetail"]["ErrorMessage"]


def test_unknown_job_and_run_are_entity_not_found(env):
    _, glue = env
    with pytest.raises(glue.exceptions.EntityNotFoundException, match="nope not found"):
        glue.get_job(JobName="nope")
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.start_job_run(JobName="nope")
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_job_runs(JobName="nope")
    name = create_job(glue, "s3://x/y.py")
    with pytest.raises(glue.exceptions.EntityNotFoundException, match="jr_missing"):
        glue.get_job_run(JobName=name, RunId="jr_missing")
    with pytest.raises(glue.exceptions.InvalidInputException, match="ScriptLocation"):
        glue.create_job(Name="no-script", Role=ROLE, Command={"Name": "glueetl"})


def test_logs_command_prints_a_runs_logs(env, local_stack):
    aws, glue = env
    name = create_job(glue, put_script(aws, "fails", FAILS))
    run = wait(glue, name, glue.start_job_run(JobName=name)["JobRunId"])
    cli_env = {
        **__import__("os").environ,
        "MUSICPIPE_STATE_DIR": str(local_stack.settings.state_dir),
        "MUSICPIPE_AWS_PORT": str(local_stack.settings.aws_port),
        "MUSICPIPE_GLUE_PORT": str(local_stack.settings.glue_port),
    }
    out = run_cli("logs", name, env=cli_env, check=True).stdout
    assert f"{name} run {run['Id']}: FAILED" in out
    assert "ValueError: bad input row 42" in out
    assert "about to fail" in out
    only_errors = run_cli("logs", name, "--stream", "error", env=cli_env, check=True).stdout
    assert "about to fail" not in only_errors and "Traceback" in only_errors
    missing = run_cli("logs", "no-such-job", env=cli_env)
    assert missing.returncode == 1 and "no Glue job named 'no-such-job'" in missing.stderr
    as_json = json.loads(run_cli("logs", name, "--json", env=cli_env, check=True).stdout)
    assert as_json["job"] == name and as_json["run_id"] == run["Id"]
    assert as_json["state"] == "FAILED" and "bad input row 42" in as_json["error"]
    lines = [line for section in as_json["sections"] for line in section["lines"]]
    assert any("about to fail" in line for line in lines)
    bad = run_cli("logs", name, "--stream", "stdout", env=cli_env)
    assert bad.returncode == 2 and "output" in bad.stderr and "error" in bad.stderr  # choices


def test_spark_job_reads_csv_from_s3_and_writes_parquet(env, tmp_path):
    aws, glue = env
    s3 = aws.client("s3")
    s3.upload_file(str(SAMPLES / "streams" / "streams1.csv"), "rds.data", "streams/streams1.csv")
    name = create_job(glue, put_script(aws, "etl", CSV_TO_PARQUET), command="glueetl")
    run_id = glue.start_job_run(
        JobName=name,
        Arguments={"--src": "s3://rds.data/streams/streams1.csv", "--dst": "s3://trial.data/out/"},
    )["JobRunId"]
    run = wait(glue, name, run_id, timeout=600)
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert run["LogGroupName"] == "/aws-glue/jobs"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="trial.data", Prefix="out/")["Contents"]]
    parts = [k for k in keys if k.endswith(".parquet")]
    assert "out/_SUCCESS" in keys and parts
    files = []
    for key in parts:
        files.append(str(tmp_path / key.replace("/", "_")))
        s3.download_file("trial.data", key, files[-1])
    rows = duckdb.sql(f"select count(*) from read_parquet({files})").fetchall()[0][0]
    expected = sum(1 for _ in open(SAMPLES / "streams" / "streams1.csv")) - 1
    assert rows == expected
    assert f"ROWS {expected}" in log_lines(aws, "/aws-glue/jobs/output", run_id)

    # A Spark failure surfaces Spark's own error, not its shutdown chatter.
    failing = glue.start_job_run(
        JobName=name, Arguments={"--src": "s3://rds.data/nope.csv", "--dst": "s3://trial.data/x/"}
    )["JobRunId"]
    failed = wait(glue, name, failing, timeout=600)
    assert failed["JobRunState"] == "FAILED"
    assert "PATH_NOT_FOUND" in failed["ErrorMessage"] and "nope.csv" in failed["ErrorMessage"]


PRINTS_PID_AND_SLEEPS = """\
import os, time
print("PID", os.getpid(), flush=True)
time.sleep(300)
"""


def _pid_from_log(aws, run_id: str) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            for line in log_lines(aws, "/aws-glue/python-jobs/output", run_id):
                if line.startswith("PID "):
                    return int(line.split()[1])
        except aws.client("logs").exceptions.ResourceNotFoundException:
            pass
        time.sleep(0.3)
    raise AssertionError("the run never printed its PID")


def restart(local_stack) -> None:
    """`up` again, in the environment the session's stack was started with (its shortened
    Timeout minute among it: later tests count on it); `up` starts the stack's supervisor
    again too, which a test that stops the emulator stops first, or it would restart the
    emulator itself, racing the test's own start (seen: "port … in use by PID …")."""
    with environment(local_stack.test_env):
        local_stack.up()


def test_jobs_and_runs_survive_a_restart_and_runs_in_flight_end_honestly(env, local_stack):
    aws, glue = env
    done = create_job(
        glue,
        put_script(aws, "echo", ECHO_ARGS),
        DefaultArguments={"--greeting": "a", "--target": "b"},
    )
    finished = wait(glue, done, glue.start_job_run(JobName=done)["JobRunId"])
    sleeper = create_job(glue, put_script(aws, "sleeps", PRINTS_PID_AND_SLEEPS))
    in_flight = glue.start_job_run(JobName=sleeper)["JobRunId"]
    pid = _pid_from_log(aws, in_flight)

    local_stack.stop_supervisor()  # else it restarts the emulator first (restart() says)
    assert local_stack.glue.stop(timeout=30)
    assert not is_alive(pid), "the run's process outlived the emulator"
    restart(local_stack)  # moto is still up; this starts the Glue emulator again
    assert local_stack.glue_healthy()

    assert glue.get_job(JobName=done)["Job"]["Name"] == done
    again = glue.get_job_run(JobName=done, RunId=finished["Id"])["JobRun"]
    assert again["JobRunState"] == "SUCCEEDED"
    assert again["CompletedOn"] == finished["CompletedOn"]
    stopped = glue.get_job_run(JobName=sleeper, RunId=in_flight)["JobRun"]
    assert stopped["JobRunState"] == "STOPPED"
    # The slot is free: a new run of the same job can start.
    second = glue.start_job_run(JobName=sleeper)["JobRunId"]
    glue.batch_stop_job_run(JobName=sleeper, JobRunIds=[second])
    assert wait(glue, sleeper, second, timeout=30)["JobRunState"] == "STOPPED"


def test_a_run_cut_off_by_a_crash_is_failed_with_the_reason(env, local_stack):
    """SIGKILL gives the emulator no time to stop its runs; the next start says what happened."""

    aws, glue = env
    sleeper = create_job(glue, put_script(aws, "sleeps", PRINTS_PID_AND_SLEEPS))
    in_flight = glue.start_job_run(JobName=sleeper)["JobRunId"]
    pid = _pid_from_log(aws, in_flight)
    local_stack.stop_supervisor()  # else it restarts the emulator first (restart() says)
    emulator = local_stack.glue.pid()
    os.killpg(emulator, signal.SIGKILL)
    deadline = time.monotonic() + 10  # SIGKILL is delivered, not done
    while is_alive(emulator) and time.monotonic() < deadline:
        time.sleep(0.05)
    local_stack.glue.stop()  # reaps the PID file
    restart(local_stack)
    run = glue.get_job_run(JobName=sleeper, RunId=in_flight)["JobRun"]
    assert run["JobRunState"] == "FAILED"
    assert "restarted while this run was in progress" in run["ErrorMessage"]
    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not is_alive(pid), "the orphaned run was not cleaned up"


REPORTS_JVM = """\
import sys
from awsglue.utils import getResolvedOptions
from pyspark.sql import SparkSession
args = getResolvedOptions(sys.argv, ["JOB_NAME", "fail"])
spark = SparkSession.builder.appName(args["JOB_NAME"]).getOrCreate()
spark.createDataFrame([(1,), (2,)], ["x"]).createOrReplaceTempView("leftover")
print("JVM", spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid(), flush=True)
print("SUM", spark.sql("select sum(x) from leftover").collect()[0][0], flush=True)
if args["fail"] == "yes":
    raise RuntimeError("failing on purpose, without stopping Spark")
spark.stop()
"""


def _jvm_of(aws, run_id: str) -> int:
    lines = log_lines(aws, "/aws-glue/jobs/output", run_id)
    return int(next(line.split()[1] for line in lines if line.startswith("JVM ")))


def test_spark_runs_reuse_a_warm_driver_only_after_a_success(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "jvm", REPORTS_JVM), command="glueetl")

    def run(fail: str) -> tuple[dict, int]:
        run_id = glue.start_job_run(JobName=name, Arguments={"--fail": fail})["JobRunId"]
        done = wait(glue, name, run_id, timeout=600)
        return done, _jvm_of(aws, run_id)

    first, jvm1 = run("no")
    second, jvm2 = run("no")
    assert first["JobRunState"] == second["JobRunState"] == "SUCCEEDED"
    assert jvm1 == jvm2  # the second run got the JVM the first one left
    assert os.getpid() != jvm1
    # Each run has a SparkContext of its own: the first run's temp view is gone (SUM is 3,
    # not an error about a view that already exists or a doubled table).
    assert "SUM 3" in log_lines(aws, "/aws-glue/jobs/output", second["Id"])

    failed, jvm3 = run("yes")
    assert failed["JobRunState"] == "FAILED"
    assert "failing on purpose" in failed["ErrorMessage"]
    assert jvm3 == jvm1
    # A failed run's JVM is not trusted again: it is killed, the next run gets a new one.
    deadline = time.monotonic() + 20
    while _alive(jvm3) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(jvm3)
    after, jvm4 = run("no")
    assert after["JobRunState"] == "SUCCEEDED"
    assert jvm4 != jvm3


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
