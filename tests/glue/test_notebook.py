"""`musicpipe notebook` on the session's real stack: the notebook extra installed on first use,
JupyterLab on loopback listing AWS's Glue PySpark kernel, a cell run by that kernel (through
JupyterLab's own kernel API, as the browser runs it) on a Glue session of the local emulator
reading the local S3, the session stopped with the kernel, and nothing left after Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from musicpipe.bootstrap import bootstrap
from musicpipe.glue import notebook
from musicpipe.manifest import load_manifest
from musicpipe.stack.preflight import free_ports

from ..conftest import run_cli
from .test_workbench import cli_env, left_nothing, start_command

ARTIFACTS = "musicpipe.artifacts"

# Runs in the notebook venv: what JupyterLab's front end does for a cell, over its REST and
# websocket API (websocket-client comes with jupyter_server). Prints the cell's outputs.
FRONT_END = r"""
import json, sys, urllib.request, uuid
import websocket

base, token, cells = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
auth = {"Authorization": f"token {token}"}

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={**auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None

def execute(ws, code):
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False},
    }))
    outputs, reply, idle = [], None, False
    while not (reply and idle):
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            outputs.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            outputs.append(content["data"].get("text/plain", ""))
        elif kind == "execute_reply":
            reply = content
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return {"status": reply["status"], "ename": reply.get("ename"), "outputs": "".join(outputs)}

kernel = call("POST", "/api/kernels", {"name": "glue_pyspark"})
ws = websocket.create_connection(
    base.replace("http", "ws") + f"/api/kernels/{kernel['id']}/channels", header=auth, timeout=300
)
results = [execute(ws, code) for code in cells]
ws.close()
call("DELETE", f"/api/kernels/{kernel['id']}")  # shutting the kernel down stops its session
print(json.dumps(results))
"""

CELLS = [
    "df = spark.read.csv('s3://musicpipe.artifacts/nb/songs.csv', header=True)\n"
    "print('POP', df.where(df.genre == 'pop').count())\n",
    "spark.sql('SELECT * FROM no_such_table')",
    "print('STILL', df.count())",
]


def start_notebook(env: dict[str, str], port: int, folder) -> subprocess.Popen:
    return start_command(env, "notebook", "--port", str(port), "--dir", str(folder))


def read_until(cli: subprocess.Popen, prefix: str, timeout: float = 600) -> tuple[str, list[str]]:
    """The first line of the command's stdout starting with ``prefix``, and the lines before it."""
    assert cli.stdout is not None and cli.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = cli.stdout.readline()
        if not line:
            cli.wait(timeout=30)
            raise AssertionError(
                f"the command ended ({cli.returncode}) before {prefix!r}: {seen}"
                f" {cli.stderr.read()}"
            )
        if line.startswith(prefix):
            return line.strip(), seen
        seen.append(line)
    raise AssertionError(f"no {prefix!r} within {timeout} s: {seen}")


@pytest.fixture
def notebook_env(local_stack, tmp_path):
    """The CLI's environment, with the notebook extra cached in this test's own folder: its
    first use, so the install is seen (a few seconds from uv's cache)."""
    bootstrap(local_stack.aws.client, load_manifest())
    body = "song_id,genre\ns1,pop\ns2,rock\ns3,pop\n"
    local_stack.aws.client("s3").put_object(Bucket=ARTIFACTS, Key="nb/songs.csv", Body=body)
    return {**cli_env(local_stack), "MUSICPIPE_NOTEBOOK_CACHE": str(tmp_path / "cache")}


def test_notebook_runs_a_cell_with_the_glue_kernel_on_the_local_stack(
    local_stack, notebook_env, tmp_path
):
    (port,) = free_ports(1)
    cli = start_notebook(notebook_env, port, tmp_path)
    with left_nothing(cli) as started:
        line, before = read_until(cli, "JupyterLab: ")
        url = line.removeprefix("JupyterLab: ")
        base, _, token = url.partition("/lab?token=")
        assert base == f"http://127.0.0.1:{port}" and token
        started += psutil.Process(cli.pid).children(recursive=True)
        assert any("jupyterlab" in " ".join(p.cmdline()) for p in started), started
        specs = notebook.kernel_specs(base, token)["kernelspecs"]
        assert specs["glue_pyspark"]["spec"]["display_name"] == "Glue PySpark (local stack)"
        # Without the token JupyterLab refuses.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/kernelspecs", timeout=10)
        assert refused.value.code == 403

        glue = local_stack.aws.client("glue", endpoint=local_stack.settings.glue_endpoint)
        sessions_before = {s["Id"] for s in glue.list_sessions()["Sessions"]}
        python = notebook.python_of(next((tmp_path / "cache").glob("env-*")))
        done = subprocess.run(
            [str(python), "-c", FRONT_END, base, token, json.dumps(CELLS)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        read, failed, after = json.loads(done.stdout.strip().splitlines()[-1])
        assert read["status"] == "ok" and "POP 2\n" in read["outputs"], read
        assert "Trying to create a Glue session for the kernel." in read["outputs"], read
        # An error is the cell's, with Spark's exception, and the session goes on.
        assert failed["status"] == "error" and failed["ename"] == "AnalysisException", failed
        assert "no_such_table" in failed["outputs"], failed
        assert after["status"] == "ok" and "STILL 3" in after["outputs"], after
        # The kernel created a session on the local Glue and stopped it when it was shut down.
        new = [s for s in glue.list_sessions()["Sessions"] if s["Id"] not in sessions_before]
        assert len(new) == 1, new
        deadline = time.monotonic() + 60
        while glue.get_session(Id=new[0]["Id"])["Session"]["Status"] not in ("STOPPED",):
            assert time.monotonic() < deadline, glue.get_session(Id=new[0]["Id"])
            time.sleep(1)

        cli.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err
        assert "stopping JupyterLab" in err
        assert "Installing the notebook extra (jupyterlab==" in "".join(before) + err
        _, alive = psutil.wait_procs(started, timeout=20)
        assert alive == []


def test_notebook_refuses_a_port_in_use_and_a_missing_folder(notebook_env, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("notebook", "--port", str(port), env=notebook_env, timeout=60)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    missing = run_cli("notebook", "--dir", str(tmp_path / "nope"), env=notebook_env, timeout=60)
    assert missing.returncode == 2
    assert "nope: no such folder" in missing.stderr
    assert not (tmp_path / "cache").exists()  # refused before anything was installed


def test_a_failed_install_keeps_nothing_and_says_what_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICPIPE_NOTEBOOK_CACHE", str(tmp_path))
    packages = ("no-such-package-musicpipe==0.0.1",)
    with pytest.raises(notebook.NotebookError) as failed:
        notebook.ensure_environment(lambda message: None, packages)
    assert "installing the notebook extra failed" in str(failed.value)
    assert "no-such-package-musicpipe" in str(failed.value)  # the installer's own message
    assert list(tmp_path.iterdir()) == []  # no half environment taken for a finished one


FIRST_START = """
from musicpipe.glue import notebook
env = notebook.ensure_environment(lambda message: print("LOG", message, flush=True))
print("ENV", env)
"""


def test_two_first_starts_at_once_install_once_and_both_get_the_environment(tmp_path):
    env = {**os.environ, "MUSICPIPE_NOTEBOOK_CACHE": str(tmp_path)}
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_START], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [start.communicate(timeout=600)[0] for start in starts]
    assert [start.returncode for start in starts] == [0, 0], outs
    # Without the lock both install into the same .partial folder and break each other.
    assert sum(out.count("LOG Installing the notebook extra") for out in outs) == 1, outs
    envs = {line for out in outs for line in out.splitlines() if line.startswith("ENV ")}
    assert len(envs) == 1, outs
    python = notebook.python_of(Path(envs.pop().removeprefix("ENV ")))
    done = subprocess.run(
        [str(python), "-c", "import jupyterlab, aws_glue_interactive_sessions_kernel"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
