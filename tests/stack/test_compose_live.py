"""The Compose stack, started for real: `musicpipe up --stack compose` → drop the sample set →
`wait` → the KPIs equal the DuckDB oracle → `down` → `up` → the state is kept → `down` leaves
no container or network behind (and, asked to, no volume).

Runs whenever a Docker engine with Compose answers (Docker, or Podman's Docker API: see
tools/podman-engine.sh), skipped with the reason otherwise. `make test-compose` provides the
engine and the images from nothing. The AWS is LocalStack, or moto's image with
MUSICPIPE_COMPOSE_AWS=moto (this project's CI); the images come from the compose file's image
variables (MUSICPIPE_*_IMAGE, which `make images` sets to its stand-ins) or the official ones.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from musicpipe.aws.local import LocalAws
from musicpipe.stack.choice import probe_docker
from musicpipe.stack.compose import PROJECT

from ..conftest import REPO, SAMPLES, isolated_env, run_cli
from ..pipeline_helpers import MANIFEST, assert_same_kpis, kpi_table_items, oracle_items

ENGINE = probe_docker()
if os.environ.get("MUSICPIPE_COMPOSE_LIVE") == "required" and not ENGINE.compose:
    # `make test-compose` started an engine for this test: not finding it is a failure.
    raise RuntimeError(f"MUSICPIPE_COMPOSE_LIVE=required, but {ENGINE.detail}")
pytestmark = [
    pytest.mark.skipif(
        not (ENGINE.engine and ENGINE.compose),
        reason=f"needs a Docker engine with Compose (Docker, or `make test-compose`): "
        f"{ENGINE.detail}",
    ),
    # Two starts of the whole stack and a pipeline run; the first may build images.
    pytest.mark.timeout(3600),
]
# What the compose file reads from the environment and a test may set from outside.
PASSED_THROUGH = (
    "MUSICPIPE_COMPOSE_AWS",
    "MUSICPIPE_LOCALSTACK_IMAGE",
    "MUSICPIPE_POSTGRES_IMAGE",
    "MUSICPIPE_MOTO_IMAGE",
    "MUSICPIPE_AIRFLOW_BASE_IMAGE",
    "MUSICPIPE_GLUE_BASE_IMAGE",
)
LABEL = f"label=com.docker.compose.project={PROJECT}"


def docker(*args: str) -> list[str]:
    env = {**os.environ, **({"DOCKER_HOST": ENGINE.host} if ENGINE.host else {})}
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    return done.stdout.split()


def left_behind() -> dict[str, list[str]]:
    """The project's containers, networks and volumes that exist now."""
    return {
        "containers": docker("ps", "-aq", "--filter", LABEL),
        "networks": docker("network", "ls", "-q", "--filter", LABEL),
        "volumes": docker("volume", "ls", "-q", "--filter", LABEL),
    }


def cli(env: dict[str, str], *args: str, timeout: float = 1200) -> str:
    started = time.monotonic()
    done = run_cli(*args, env=env, cwd=REPO, timeout=timeout, check=True)
    print(f"musicpipe {' '.join(args)}: done in {time.monotonic() - started:.0f} s")
    return done.stdout


@pytest.fixture(scope="module")
def compose_env(tmp_path_factory):
    if left_behind()["containers"]:
        pytest.skip(
            f"a Compose project {PROJECT!r} already has containers on this engine (yours?): "
            "the live test would replace them; `make down` first"
        )
    env = isolated_env(tmp_path_factory.mktemp("compose-live"))
    env["MUSICPIPE_STACK"] = "compose"
    env.pop("MUSICPIPE_AIRFLOW", None)
    env.update({k: os.environ[k] for k in PASSED_THROUGH if os.environ.get(k)})
    try:
        yield env
    finally:
        # Whatever happened: no container, network or volume of the test's stack stays.
        files = ["-f", str(REPO / "docker-compose.yml")]
        if env.get("MUSICPIPE_COMPOSE_AWS") == "moto":
            files += ["-f", str(REPO / "docker-compose.moto.yml")]
        subprocess.run(
            ["docker", "compose", *files, "-p", PROJECT, "down", "--volumes", "--timeout", "30"],
            env={**env, **({"DOCKER_HOST": ENGINE.host} if ENGINE.host else {})},
            cwd=REPO,
            capture_output=True,
            timeout=300,
        )


def kpis(env: dict[str, str]) -> dict:
    aws = LocalAws(f"http://127.0.0.1:{env['MUSICPIPE_AWS_PORT']}", MANIFEST.region)
    dynamodb = aws.session.resource("dynamodb", endpoint_url=aws.endpoint, config=aws.config)
    return kpi_table_items(dynamodb)


def test_the_compose_stack_runs_the_sample_set_and_keeps_its_state(compose_env):
    env = compose_env
    started = time.monotonic()
    out = cli(env, "up", "--fresh", "--timeout", "1200")
    assert "stack: compose" in out
    print(out.splitlines()[0])  # which engine: "stack: compose (STACK=compose; Podman …)"
    status = cli(env, "status")
    assert ENGINE.name and ENGINE.name in status  # `status` names the engine

    songs, users = SAMPLES / "songs.csv", SAMPLES / "users.csv"
    streams = sorted((SAMPLES / "streams").glob("*.csv"))
    cli(env, "drop", str(songs), str(users), str(SAMPLES / "streams"))
    cli(env, "wait", "--timeout", "900")
    expected = oracle_items(songs, users, streams)
    assert_same_kpis(kpis(env), expected)
    print(f"{len(expected)} KPI items equal the oracle's, {time.monotonic() - started:.0f} s in")

    cli(env, "down")
    gone = left_behind()
    assert gone["containers"] == [] and gone["networks"] == [], gone
    # Kept on purpose (the Airflow database, logs, the emulator's runs); removed when asked.
    assert gone["volumes"], "down removed the named volumes, which it keeps unless asked"

    out = cli(env, "up", "--timeout", "1200")
    assert "restored the saved state" in out, out
    assert_same_kpis(kpis(env), expected)  # the state came back

    cli(env, "down")
    files = ["-f", str(REPO / "docker-compose.yml")]
    if env.get("MUSICPIPE_COMPOSE_AWS") == "moto":
        files += ["-f", str(REPO / "docker-compose.moto.yml")]
    subprocess.run(
        ["docker", "compose", *files, "-p", PROJECT, "down", "--volumes"],
        env={**env, **({"DOCKER_HOST": ENGINE.host} if ENGINE.host else {})},
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert left_behind() == {"containers": [], "networks": [], "volumes": []}
    print(f"live test: {time.monotonic() - started:.0f} s")
