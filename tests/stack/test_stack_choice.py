"""Which stack `up` starts: Compose where a Docker engine answers, embedded otherwise, and a
clear refusal when Compose is forced where it cannot run. A small `docker` script on PATH plays
the Docker client in its three states (no engine, engine without compose, engine with compose).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from musicpipe.stack import choice

from ..conftest import REPO, run_cli

FAKE_DOCKER = """#!/bin/sh
# Plays `docker` for the tests: FAKE_DOCKER=none|engine|compose
case "$1 $2" in
  "version --format")
    if [ "$FAKE_DOCKER" = none ]; then
      echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1
    fi
    if [ -n "$FAKE_PODMAN" ]; then echo "linux/amd64/debian-12|Podman Engine,Conmon,Engine,|4.3.1"
    else echo 27.3.1; fi ;;
  "compose version")
    if [ "$FAKE_DOCKER" = compose ]; then echo 2.29.7; else
      echo "docker: 'compose' is not a docker command." >&2; exit 1; fi ;;
  "compose "*)
    echo "$@" >> "$FAKE_DOCKER_LOG"
    echo "Error response from daemon: pull access denied (the fake engine pulls nothing)" >&2
    exit 1 ;;
  *) echo "fake docker: unexpected $*" >&2; exit 3 ;;
esac
"""


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(FAKE_DOCKER)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "docker-calls.log"))

    def use(mode: str) -> None:
        monkeypatch.setenv("FAKE_DOCKER", mode)

    return use


def test_auto_uses_compose_only_where_an_engine_and_the_plugin_answer(fake_docker):
    fake_docker("compose")
    chosen = choice.choose("auto")
    assert chosen.kind == "compose" and "Docker engine 27.3.1" in chosen.reason
    fake_docker("engine")
    chosen = choice.choose("auto")
    assert chosen.kind == "embedded" and "no `docker compose` plugin" in chosen.reason
    fake_docker("none")
    chosen = choice.choose("auto")
    assert chosen.kind == "embedded" and "Cannot connect to the Docker daemon" in chosen.reason


def test_without_a_docker_command_auto_is_embedded(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker here
    chosen = choice.choose("auto")
    assert chosen.kind == "embedded" and "no `docker` command" in chosen.reason


def test_embedded_is_chosen_without_asking_docker():
    def probe():
        raise AssertionError("STACK=embedded must not probe Docker")

    assert choice.choose("embedded", probe=probe).kind == "embedded"


@pytest.mark.parametrize("mode", ["none", "engine"])
def test_forced_compose_without_an_engine_says_why_and_what_to_do(fake_docker, mode):
    fake_docker(mode)
    with pytest.raises(choice.StackChoiceError) as caught:
        choice.choose("compose")
    message = str(caught.value)
    assert "STACK=compose" in message and "make up STACK=embedded" in message
    assert ("Cannot connect" if mode == "none" else "no `docker compose` plugin") in message


def test_up_forced_to_compose_fails_at_once_and_starts_nothing(fake_docker, stack_env, tmp_path):
    fake_docker("none")
    env = {**os.environ, "MUSICPIPE_STACK": "compose"}
    result = run_cli("up", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no Docker engine answers" in result.stderr
    assert "make up STACK=embedded" in result.stderr
    state = Path(stack_env["MUSICPIPE_STATE_DIR"])
    assert not (state / "pids").exists() or not any((state / "pids").iterdir())
    assert choice.recorded(state) is None


def test_the_choice_names_the_engine_that_answers(fake_docker, monkeypatch):
    fake_docker("compose")
    monkeypatch.setenv("FAKE_PODMAN", "1")
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/some/podman.sock")
    chosen = choice.choose("compose")
    assert chosen.engine == "Podman 4.3.1"
    assert chosen.host == "unix:///run/some/podman.sock"
    assert "Podman 4.3.1 on unix:///run/some/podman.sock" in chosen.reason
    assert choice.engine_name("Docker Desktop 4.40.0 (187762)|Engine,containerd,|28.0.4") == (
        "Docker Desktop 4.40.0 (187762) 28.0.4"
    )


def test_without_docker_host_docker_s_socket_comes_first_then_podman_s(tmp_path, monkeypatch):
    import socket

    run = tmp_path / "run"
    (run / "podman").mkdir(parents=True)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(run / "podman" / "podman.sock"))
    try:
        hosts = choice.engine_hosts({"XDG_RUNTIME_DIR": str(run)})
        assert hosts[0] == ""  # the docker CLI's own default (context, /var/run/docker.sock)
        assert f"unix://{run}/podman/podman.sock" in hosts
        # A DOCKER_HOST set is the only one tried.
        assert choice.engine_hosts({"DOCKER_HOST": "tcp://10.0.0.1:2375"}) == [
            "tcp://10.0.0.1:2375"
        ]
    finally:
        sock.close()


def test_a_failing_docker_compose_up_is_reported_with_its_error(fake_docker, stack_env, tmp_path):
    fake_docker("compose")
    env = {**os.environ, "MUSICPIPE_STACK": "auto"}
    result = run_cli("up", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "stack: compose" in result.stdout
    # Compose's own output reaches the user, then musicpipe's error naming the command.
    assert "pull access denied" in result.stderr
    assert "up --detach --build` failed (exit 1)" in result.stderr
    calls = (tmp_path / "docker-calls.log").read_text()
    assert "docker-compose.yml -p musicpipe up --detach --build" in calls
    # Recorded all the same: `down` must reach whatever Compose did start.
    assert choice.recorded(Path(stack_env["MUSICPIPE_STATE_DIR"])) == "compose"
    status = run_cli("status", env=env)
    # `status` names the engine `up` found.
    assert "services (compose stack on Docker engine 27.3.1)" in status.stdout, (
        status.stdout + status.stderr
    )


def test_an_unknown_stack_is_refused_naming_the_setting(stack_env):
    result = run_cli("up", env={**stack_env, "MUSICPIPE_STACK": "kubernetes"})
    assert result.returncode == 2
    assert "stack must be auto, embedded or compose, got 'kubernetes'" in result.stderr


def test_make_passes_stack_to_the_cli():
    def env_seen(*args: str) -> str:
        probe = 'include Makefile\nshow:\n\t@echo "[$$MUSICPIPE_STACK]"\n'
        done = subprocess.run(
            ["make", "-s", "-f", "-", "show", *args],
            input=probe,
            cwd=REPO,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "MUSICPIPE_STACK"},
            check=True,
        )
        return done.stdout.strip()

    assert env_seen("STACK=compose") == "[compose]"
    assert env_seen() == "[]"  # unset: the CLI decides (auto)
