"""The Compose stack's driver, without a Docker engine: what it reads from `docker compose ps`,
how it judges LocalStack's ready hook (served here by a small HTTP server with LocalStack's
answer shape), the manifest check, and `up` failing fast when a one-shot container failed (the
`docker` command played by a script)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from musicpipe.aws.local import LocalAws
from musicpipe.manifest import ConfigError, load_manifest
from musicpipe.processes import ManagedProcess
from musicpipe.stack.base import http_ok
from musicpipe.stack.compose import (
    ComposeError,
    ComposeStack,
    airflow_environment,
    check_manifest_reaches_containers,
    parse_ps,
)
from musicpipe.stack.settings import load_settings


@contextmanager
def moto_server(port: str, tmp_path, env: dict[str, str]):
    """A plain moto server on ``port`` (as moto's image runs it), answering before the block
    and stopped after it, also when the block fails."""
    moto = ManagedProcess("moto", tmp_path / "moto-state")
    moto.start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port], env=env)
    try:
        deadline = time.monotonic() + 30
        while not http_ok(f"http://127.0.0.1:{port}/moto-api/"):
            assert time.monotonic() < deadline, moto.tail()
            time.sleep(0.2)
        yield moto
    finally:
        moto.stop()


PS_ROWS = [
    {"Service": "localstack", "State": "running", "Health": "healthy", "ExitCode": 0},
    {"Service": "glue-jobs", "State": "exited", "Health": "", "ExitCode": 1},
]


def test_ps_output_is_read_in_both_formats_compose_has_printed():
    as_lines = "\n".join(json.dumps(r) for r in PS_ROWS) + "\n"
    as_array = json.dumps(PS_ROWS)
    for text in (as_lines, as_array):
        states = parse_ps(text)
        assert states["glue-jobs"]["ExitCode"] == 1
        assert states["localstack"]["Health"] == "healthy"
    assert parse_ps("") == {}


@pytest.fixture
def localstack_init():
    """A stand-in for LocalStack's /_localstack/init/ready; set .answer to what it returns."""

    class Handler(BaseHTTPRequestHandler):
        answer: dict = {}

        def do_GET(self):
            body = json.dumps(Handler.answer).encode()
            self.send_response(200 if self.path == "/_localstack/init/ready" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Handler, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _stack(env: dict[str, str]) -> ComposeStack:
    return ComposeStack(load_settings(environ=env), load_manifest(environ=env))


def test_localstack_is_ready_only_when_the_bootstrap_hook_succeeded(localstack_init, stack_env):
    handler, port = localstack_init
    stack = _stack({**stack_env, "MUSICPIPE_AWS_PORT": str(port)})
    hook = "10-musicpipe-bootstrap.sh"
    handler.answer = {
        "completed": False,
        "scripts": [{"stage": "READY", "name": hook, "state": "RUNNING"}],
    }
    assert stack.localstack_ready() is False
    handler.answer = {"completed": True, "scripts": []}  # the hook was not mounted
    assert stack.localstack_ready() is False
    handler.answer = {
        "completed": True,
        "scripts": [{"stage": "READY", "name": hook, "state": "SUCCESSFUL"}],
    }
    assert stack.localstack_ready() is True
    # LocalStack calls the stage completed even when the hook failed: that must not pass.
    handler.answer = {
        "completed": True,
        "scripts": [{"stage": "READY", "name": hook, "state": "ERROR"}],
    }
    with pytest.raises(ComposeError, match=f"{hook} failed.*logs localstack"):
        stack.localstack_ready()


def test_a_name_set_only_in_the_shell_is_refused_for_compose(stack_env):
    manifest = load_manifest(environ={**stack_env, "MUSICPIPE_RAW_BUCKET": "my-raw"})
    with pytest.raises(ConfigError, match="raw_bucket.*musicpipe.toml"):
        check_manifest_reaches_containers(manifest)
    check_manifest_reaches_containers(load_manifest(environ=stack_env))  # defaults: fine


def test_compose_gets_the_stack_ports_and_a_stable_airflow_password(stack_env):
    stack = _stack(stack_env)
    first = stack.environment()
    assert first["MUSICPIPE_AWS_PORT"] == stack_env["MUSICPIPE_AWS_PORT"]
    assert first["MUSICPIPE_AIRFLOW_PORT"] == stack_env["MUSICPIPE_AIRFLOW_PORT"]
    assert len(first["MUSICPIPE_AIRFLOW_PASSWORD"]) >= 12
    again = _stack(stack_env).environment()
    assert again["MUSICPIPE_AIRFLOW_PASSWORD"] == first["MUSICPIPE_AIRFLOW_PASSWORD"]
    assert stack.airflow.login() == ("admin", first["MUSICPIPE_AIRFLOW_PASSWORD"])


FAKE_DOCKER = """#!/bin/sh
# Plays `docker compose`: `up` exits $FAKE_UP_EXIT (0 unless set), `ps` prints $FAKE_PS,
# `logs` prints a traceback's last line, every call is logged.
echo "$@" >> "$FAKE_DOCKER_LOG"
case "$*" in
  *" ps "*) cat "$FAKE_PS" ;;
  *" up "*) exit "${FAKE_UP_EXIT:-0}" ;;
  *" logs "*) echo "EndpointConnectionError: Could not connect to http://localstack:4566" ;;
  *) exit 0 ;;
esac
"""


def fake_docker(tmp_path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    ps = tmp_path / "ps.json"
    ps.write_text("\n".join(json.dumps(r) for r in PS_ROWS))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PS", str(ps))
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "calls.log"))


@pytest.mark.parametrize("aws", ["localstack", "moto"])
def test_up_stops_waiting_when_a_one_shot_container_failed(stack_env, tmp_path, monkeypatch, aws):
    fake_docker(tmp_path, monkeypatch)
    stack = _stack({**stack_env, "MUSICPIPE_COMPOSE_AWS": aws})
    with pytest.raises(
        ComposeError, match=r"glue-jobs container exited \(exit 1\).*logs glue-jobs"
    ):
        stack.up(timeout=60)
    calls = (tmp_path / "calls.log").read_text()
    assert "up --detach --build" in calls and "ps --all --format json" in calls
    # moto's image comes in as an override file on top of the compose file.
    assert ("docker-compose.moto.yml" in calls) == (aws == "moto")


def test_when_compose_up_fails_on_a_one_shot_its_log_is_in_the_error(
    stack_env, tmp_path, monkeypatch
):
    """Compose itself fails `up` when a one-shot dependency (aws-bootstrap, glue-jobs) exits
    non-zero, saying only "didn't complete successfully": the error shows that log's end."""
    fake_docker(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_UP_EXIT", "1")
    stack = _stack({**stack_env, "MUSICPIPE_COMPOSE_AWS": "moto"})
    with pytest.raises(ComposeError) as failure:
        stack.up(timeout=60)
    message = str(failure.value)
    assert "--- glue-jobs exited 1; the end of its log:" in message
    assert "EndpointConnectionError: Could not connect to http://localstack:4566" in message
    assert "localstack exited" not in message  # a running service's log is not shown
    assert "logs --no-color --tail 30 glue-jobs" in (tmp_path / "calls.log").read_text()


def test_moto_with_localstack_s_account_serves_the_dag_s_queue_url(tmp_path, stack_env):
    """What docker-compose.moto.yml relies on, with a real moto server: the bootstrap its
    one-shot container runs wires S3 to the queue, and the arrival reaches the queue URL the
    Airflow containers are given. (moto finds a queue by its name, not the URL's account;
    MOTO_ACCOUNT_ID keeps its ARNs the same as LocalStack's.)"""
    port = stack_env["MUSICPIPE_AWS_PORT"]
    endpoint = f"http://127.0.0.1:{port}"
    env = {**stack_env, "MOTO_ACCOUNT_ID": "000000000000"}
    with moto_server(port, tmp_path, env):
        done = subprocess.run(
            [sys.executable, "-m", "musicpipe.bootstrap", "--endpoint", endpoint],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        aws = LocalAws(endpoint)
        aws.client("s3").put_object(Bucket="rds.data", Key="streams/a.csv", Body=b"x\n")
        variable = json.loads(
            airflow_environment(load_manifest(environ=stack_env))[
                "AIRFLOW_VAR_MUSIC_STREAMING_PIPELINE"
            ]
        )
        # The URL as the containers see it, on this host's port.
        url = variable["arrivals_queue_url"].replace("http://localstack:4566", endpoint)
        messages = aws.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]
        assert "streams%2Fa.csv" in messages[0]["Body"]  # S3 event keys are URL-encoded


FAKE_DOCKER_STOPPING = """#!/bin/sh
# Plays `docker compose`; stopping the glue container lets a run finish its last write.
echo "$@" >> "$FAKE_DOCKER_LOG"
case "$*" in
  *" stop "*glue*) "$PYTHON" -c "$LATE_WRITE" ;;
  *) exit 0 ;;
esac
"""


def test_down_stops_airflow_and_glue_before_it_saves(stack_env, tmp_path, monkeypatch):
    """The Compose `down`: Airflow's and the emulator's containers stop first (a run finishing
    in the grace period still writes), then the snapshot, then `compose down`. A second `up`
    after a stop without `down` says which window the journal-less AWS lost."""
    port = stack_env["MUSICPIPE_AWS_PORT"]
    endpoint = f"http://127.0.0.1:{port}"
    with moto_server(port, tmp_path, stack_env):
        LocalAws(endpoint).client("s3").create_bucket(Bucket="trial.data")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        docker = bin_dir / "docker"
        docker.write_text(FAKE_DOCKER_STOPPING)
        docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("PYTHON", sys.executable)
        monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "calls.log"))
        monkeypatch.setenv(
            "LATE_WRITE",
            "from musicpipe.aws.local import LocalAws; "
            f"LocalAws('{endpoint}').client('s3').put_object("
            "Bucket='trial.data', Key='late/finished', Body=b'done')",
        )
        stack = _stack({**stack_env, "MUSICPIPE_COMPOSE_AWS": "moto"})
        stack.session_file.parent.mkdir(parents=True)
        stack.session_file.write_text(json.dumps({"started_at": time.time()}))
        saved = stack.down()
        calls = (tmp_path / "calls.log").read_text().splitlines()
        assert [c.split(" -p musicpipe ")[1].split()[0] for c in calls] == ["stop", "stop", "down"]
        assert "airflow-scheduler" in calls[0] and calls[1].endswith("glue")
        assert saved.objects["trial.data"] == 1  # the late write is in the snapshot
        assert not stack.session_file.exists()
        # A session that ended without `down` is named at the next `up`.
        stack.session_file.write_text(json.dumps({"started_at": 0}))
        recovery = stack._unclean_stop()
        assert recovery is not None and "keeps no journal" in recovery.missing
