"""`musicpipe deploy`, `job run`, `job runs` against a real embedded stack (moto + the Glue
emulator, no Airflow), through the CLI in a child process as a user runs it.

One stack for the module; its config file adds a third job (`hello_job`, a Python shell script
in the test's own folder) through a [[jobs]] entry only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from musicpipe.stack.embedded import EmbeddedStack

from ..conftest import REPO, SAMPLES, as_from_a_terminal, isolated_env, run_cli, started_stack
from ..dap import DapClient
from ..glue.test_glue_emulator import wait

HELLO = """\
import os, sys, time
from awsglue.utils import getResolvedOptions

args = getResolvedOptions(sys.argv, ["greeting", "marker"])
print(f"hello {args['greeting']}", flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
# Waits for the test to see the first line while the run is still running.
deadline = time.time() + 60
while args["marker"] != "-" and not os.path.exists(args["marker"]) and time.time() < deadline:
    time.sleep(0.1)
print("hello done", flush=True)
"""
CONFIG = """\
[[jobs]]
name = "hello_job"
command = "pythonshell"
script = "jobs/hello.py"
arguments = { greeting = "default", marker = "-" }

[[jobs]]
name = "flaky_job"
command = "pythonshell"
script = "jobs/flaky.py"
max_retries = 1
"""
# Fails on its first attempt only (a retry's run id ends in _attempt_<n>).
FLAKY = """\
import sys
from awsglue.utils import getResolvedOptions

run_id = getResolvedOptions(sys.argv, [])["JOB_RUN_ID"]  # always there
print(f"attempt of {run_id}", flush=True)
if "_attempt_" not in run_id:
    raise RuntimeError("upstream not ready")
"""
VALIDATION = "music_streaming_validation"


@dataclass
class Bench:
    root: Path
    env: dict[str, str]
    stack: EmbeddedStack
    hello: Path

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
        return run_cli(*args, env=env or self.env, cwd=self.root, timeout=timeout)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("workbench")
    (root / "jobs").mkdir()
    hello = root / "jobs" / "hello.py"
    hello.write_text(HELLO)
    (root / "jobs" / "flaky.py").write_text(FLAKY)
    (root / "musicpipe.toml").write_text(CONFIG)
    env = isolated_env(root / "state")
    env["MUSICPIPE_CONFIG"] = str(root / "musicpipe.toml")
    with started_stack(env) as stack:
        yield Bench(root, env, stack, hello)


def _script_versions(stack: EmbeddedStack) -> dict[str, object]:
    s3 = stack.aws.client("s3")
    listed = s3.list_objects_v2(Bucket=stack.manifest.artifacts_bucket)["Contents"]
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listed}


def test_a_second_deploy_uploads_nothing_and_says_unchanged(bench):
    before = _script_versions(bench.stack)
    started = time.monotonic()
    result = bench.cli("deploy", "--json")
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {c["state"] for c in report["changes"]} == {"unchanged"}
    names = {c["name"] for c in report["changes"]}
    assert {VALIDATION, "music_streaming_etl_complete", "hello_job"} <= names
    assert _script_versions(bench.stack) == before  # nothing was put again
    # The deploy step itself; the command adds the interpreter's start.
    assert report["seconds"] < 3, report
    print(f"deploy with nothing changed: {report['seconds']:.2f} s (command {wall:.1f} s)")
    table = bench.cli("deploy")
    assert "No changes" in table.stdout, table.stdout


def test_an_edited_script_is_updated_by_deploy_and_by_up(bench):
    bench.hello.write_text(HELLO + "print('edit 1')\n")
    result = bench.cli("deploy", "--json")
    assert result.returncode == 0, result.stderr
    states = {c["name"]: (c["state"], c["detail"]) for c in json.loads(result.stdout)["changes"]}
    assert states["hello_job"] == ("updated", "script changed")
    assert states[VALIDATION][0] == "unchanged"
    body = bench.stack.aws.client("s3").get_object(
        Bucket=bench.stack.manifest.artifacts_bucket, Key="scripts/hello_job.py"
    )["Body"]
    assert body.read().decode().endswith("print('edit 1')\n")
    # `up` on the running stack deploys the same way, and no longer says "No changes".
    bench.hello.write_text(HELLO + "print('edit 2')\n")
    up = bench.cli("up", timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "No changes" not in up.stdout
    assert "1 updated" in up.stdout, up.stdout


def test_a_job_with_a_missing_script_stops_the_deploy_and_names_it(bench):
    other = bench.root / "missing.toml"
    other.write_text(CONFIG.replace("hello_job", "ghost_job").replace("hello.py", "ghost.py"))
    result = bench.cli("deploy", env={**bench.env, "MUSICPIPE_CONFIG": str(other)})
    assert result.returncode == 2
    assert "ghost.py" in result.stderr and "ghost_job" in result.stderr
    assert "does not exist" in result.stderr
    assert "scripts/ghost_job.py" not in _script_versions(bench.stack)


def test_job_run_of_the_validation_job_streams_its_log_and_exits_0(bench):
    dropped = bench.cli(
        "drop",
        str(SAMPLES / "songs.csv"),
        str(SAMPLES / "users.csv"),
        str(SAMPLES / "streams" / "streams1.csv"),
    )
    assert dropped.returncode == 0, dropped.stderr
    result = bench.cli("job", "run", VALIDATION, "--arg", "batch_id=x")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validation report: s3://trial.data/validation_reports/x/" in result.stdout
    assert f"{VALIDATION} run jr_" in result.stderr and "SUCCEEDED in" in result.stderr


def _start_job_run(bench, *args: str) -> subprocess.Popen:
    """`musicpipe job run hello_job ARGS` as a user starts it, its two streams read by the test."""
    return subprocess.Popen(
        [sys.executable, "-m", "musicpipe.cli", "job", "run", "hello_job", *args],
        env={**bench.env, "COLUMNS": "200"},
        cwd=bench.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        preexec_fn=as_from_a_terminal,
    )


def test_a_third_job_from_the_manifest_is_run_and_its_lines_come_while_it_runs(bench):
    # Edited just before: `job run` deploys the change itself.
    bench.hello.write_text(HELLO + "print('edited for this run')\n")
    marker = bench.root / "go-on"
    proc = _start_job_run(bench, "--arg", "greeting=workbench", "--arg", f"marker={marker}")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # shown while the script waits for the marker
        assert first.strip() == "hello workbench"
        assert proc.poll() is None
        marker.write_text("")
        out, errors = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, errors
    assert "hello done" in out and "edited for this run" in out
    assert "a line on stderr" in errors


def test_ctrl_c_stops_following_and_the_run_goes_on(bench):
    marker = bench.root / "after-ctrl-c"
    proc = _start_job_run(bench, "--arg", f"marker={marker}")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "hello default"
        os.kill(proc.pid, signal.SIGINT)
        try:
            _, errors = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, errors = proc.communicate()
            raise AssertionError(f"job run did not stop on Ctrl-C: {out!r} {errors!r}") from None
    finally:
        proc.kill()
        proc.wait()
        # The run waits for the marker: written here too, so a failure here cannot leave a
        # run that holds the job for the tests after this one.
        marker.write_text("")
    assert proc.returncode == 130, errors
    assert "the run goes on: musicpipe job logs hello_job --run jr_" in errors
    run_id = errors.split("--run ")[1].split()[0]
    assert _final_state(bench, "hello_job", run_id) == "SUCCEEDED"


def _final_state(bench, job: str, run_id: str) -> str:
    glue = bench.stack.aws.client("glue", endpoint=bench.stack.settings.glue_endpoint)
    return wait(glue, job, run_id, timeout=60)["JobRunState"]


def test_debug_stops_at_a_breakpoint_in_a_run_started_through_the_api_then_completes(bench):
    stop_line = HELLO.splitlines().index('print("hello done", flush=True)') + 1
    proc = _start_job_run(bench, "--debug", "--arg", "greeting=debugged")
    client = None
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the run's first log line says where to attach
        found = re.search(r"DAP client on 127\.0\.0\.1:(\d+) \(runs as (.+)\)", first)
        assert found, first
        port, script = int(found[1]), found[2]
        assert script.endswith("/glue/debug/hello_job/hello_job.py")  # the same every run
        # As VS Code does: initialize, attach, breakpoints once the adapter is initialized.
        client = DapClient("127.0.0.1", port)
        client.request("initialize", adapterID="musicpipe-test", pathFormat="path")
        attach = client.send("attach", justMyCode=True)
        client.event("initialized")
        client.request("setBreakpoints", source={"path": script}, breakpoints=[{"line": stop_line}])
        client.request("configurationDone")
        client.response(attach)
        stopped = client.event("stopped")
        assert stopped["reason"] == "breakpoint", stopped
        frame = client.request("stackTrace", threadId=stopped["threadId"])["stackFrames"][0]
        assert frame["line"] == stop_line
        assert os.path.realpath(frame["source"]["path"]) == os.path.realpath(script)
        value = client.request("evaluate", expression="args['greeting']", frameId=frame["id"])
        assert value["result"] == "'debugged'"
        assert proc.poll() is None  # the run waits at the breakpoint
        client.request("continue", threadId=stopped["threadId"])
        out, errors = proc.communicate(timeout=120)
    finally:
        if client is not None:
            client.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, errors
    assert "hello debugged" in out and "hello done" in out, first + out
    assert "waits for a debugger" in errors and "SUCCEEDED" in errors


def test_a_debug_run_with_a_bad_port_fails_and_says_why(bench):
    result = bench.cli("job", "run", "hello_job", "--arg", "musicpipe-debug=x")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "--musicpipe-debug 'x': expected a port number" in result.stderr


def test_no_wait_returns_the_run_id_and_a_second_run_at_once_is_refused(bench):
    marker = bench.root / "after-second"
    first = bench.cli("job", "run", "hello_job", "--no-wait", "--arg", f"marker={marker}")
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.strip()
    assert run_id.startswith("jr_")
    try:
        # MaxConcurrentRuns is 1, as on Glue: the second start is an error that says so.
        second = bench.cli("job", "run", "hello_job")
        assert second.returncode == 1
        assert "ConcurrentRunsExceededException" in second.stderr, second.stderr
    finally:
        marker.write_text("")
    assert _final_state(bench, "hello_job", run_id) == "SUCCEEDED"


def test_a_failing_script_exits_1_with_its_error(bench):
    boom = bench.root / "boom.py"
    boom.write_text("print('about to fail', flush=True)\nraise ValueError('boom from scratch')\n")
    result = bench.cli("job", "run", "--script", str(boom))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "about to fail" in result.stdout
    assert "Traceback" in result.stderr  # the run's error log, streamed
    assert "scratch_boom run jr_" in result.stderr
    assert "FAILED" in result.stderr and "ValueError: boom from scratch" in result.stderr


def test_job_runs_lists_the_runs(bench):
    result = bench.cli("job", "runs", VALIDATION, "--json")
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert runs[0]["state"] == "SUCCEEDED" and runs[0]["arguments"]["--batch_id"] == "x"
    assert runs[0]["duration_s"] >= 0 and runs[0]["started"]
    table = bench.cli("job", "runs", "scratch_boom")
    assert table.returncode == 0, table.stderr
    assert "FAILED" in table.stdout and "ValueError: boom from scratch" in table.stdout
    hello = json.loads(bench.cli("job", "runs", "hello_job", "--json").stdout)["runs"]
    # Every run of the module's hello_job succeeded but the one given a bad debug port.
    states = {r["state"] for r in hello if r["arguments"].get("--musicpipe-debug") != "x"}
    bad_port = [r for r in hello if r["arguments"].get("--musicpipe-debug") == "x"]
    assert states == {"SUCCEEDED"}, hello
    assert [r["state"] for r in bad_port] == ["FAILED"], hello
    assert "expected a port number" in bad_port[0]["error"]


def test_job_run_follows_a_retry_to_the_end_of_the_chain(bench):
    """flaky_job's manifest entry says max_retries = 1: its first attempt fails, the retry
    succeeds, and `job run` follows both and exits 0."""
    result = bench.cli("job", "run", "flaky_job")
    assert result.returncode == 0, result.stdout + result.stderr
    first = result.stderr.split("flaky_job run ")[1].split()[0]
    assert f"attempt of {first}\n" in result.stdout
    assert f"attempt of {first}_attempt_1" in result.stdout
    assert "RuntimeError: upstream not ready" in result.stderr  # the first attempt's error log
    assert f"FAILED; attempt 1 (MaxRetries): run {first}_attempt_1" in result.stderr
    assert f"flaky_job run {first}_attempt_1 SUCCEEDED" in result.stderr
    runs = json.loads(bench.cli("job", "runs", "flaky_job", "--json").stdout)["runs"]
    assert [(r["run_id"], r["attempt"], r["previous_run_id"], r["state"]) for r in runs] == [
        (f"{first}_attempt_1", 1, first, "SUCCEEDED"),
        (first, 0, None, "FAILED"),
    ]
    table = bench.cli("job", "runs", "flaky_job")
    assert "1 (retry)" in table.stdout and "0 → retried" in table.stdout, table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("job", "run", "hello_job", "--arg", "greeting"), "expected KEY=VALUE"),
        (("job", "run", "nope"), "no Glue job named 'nope'"),
        (("job", "runs", "nope"), "no Glue job named 'nope'"),
        (("job", "run"), "give a job NAME or --script PATH"),
        (("job", "run", "--script", "no/such.py"), "no such file"),
        (("job", "run", "hello_job", "--debug", "--debug-port", "70000"), "--debug-port"),
    ],
)
def test_bad_input_is_a_usage_error_that_says_why(bench, args, message):
    result = bench.cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_checkout_scripts_are_what_the_pipeline_jobs_run(bench):
    # The pipeline's jobs are deployed from this checkout, whatever the working directory.
    s3 = bench.stack.aws.client("s3")
    key = f"scripts/{VALIDATION}.py"
    body = s3.get_object(Bucket=bench.stack.manifest.artifacts_bucket, Key=key)["Body"].read()
    assert body == (REPO / "spark_jobs" / f"{VALIDATION}.py").read_bytes()
