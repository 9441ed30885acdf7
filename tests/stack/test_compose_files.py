"""The Compose stack's files, checked without a Docker engine: the compose file validated by
Docker Compose v2 (the Go binary users run) and by docker-compose 1.29.2, from a tool
environment of their own; the Dockerfiles linted by hadolint; the configuration as Compose v2
resolves it held to what the stack promises (loopback ports, pinned images, start order by
health checks, the names musicpipe uses for the services); and the Airflow image's entrypoint
run for real, with the image's own entrypoint played by a script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from musicpipe.dag.config import load_dag_config
from musicpipe.stack import compose

from ..conftest import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILES = sorted((REPO / "docker").glob("*/Dockerfile"))
# The stand-ins `make images` builds where no registry answers (tools/images.sh).
STANDIN_DOCKERFILES = sorted((REPO / "docker" / "standin").glob("*/Dockerfile"))
AIRFLOW_COMPONENTS = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor")
# The entrypoint calls `python`, as in the image: this venv's, with boto3.
HOST_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture(scope="session")
def tools() -> Path:
    """docker-compose 1.29.2 and hadolint, in a cached tool environment of their own."""
    done = subprocess.run(
        ["bash", str(REPO / "tools" / "compose-lint-env.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


def docker_compose(tools: Path, *args: str, env: dict[str, str] | None = None, v2=True):
    """Compose v2 (`compose-v2`), or docker-compose 1.29.2 with v2=False."""
    binary = tools / ("compose-v2" if v2 else "docker-compose")
    if not binary.exists():
        pytest.skip(f"{binary.name} is only fetched on Linux x86_64 (tools/compose-lint-env.sh)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MUSICPIPE_")}
    return subprocess.run(
        [str(binary), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**clean, **(env or {})},
        timeout=120,
    )


def resolve(tools: Path, env: dict[str, str] | None = None) -> dict:
    """The configuration as Compose v2 resolves it (anchors merged, variables filled in)."""
    done = docker_compose(tools, "config", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def resolved(tools) -> dict:
    return resolve(tools)


@pytest.mark.parametrize("v2", [True, False], ids=["compose-v2", "docker-compose-1.29"])
def test_the_compose_file_is_valid(tools, v2):
    done = docker_compose(tools, "config", "-q", v2=v2)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("binary", ["compose-v2", "docker-compose"])
def test_a_broken_compose_file_is_caught(tools, tmp_path, binary):
    """The validators are not rubber stamps: a misspelt key fails them."""
    if not (tools / binary).exists():
        pytest.skip(f"{binary} is only fetched on Linux x86_64")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("healthcheck:", "healthchek:", 1))
    done = subprocess.run(
        [str(tools / binary), "-f", str(broken), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode != 0 and "healthchek" in done.stderr


def test_dockerfiles_pass_hadolint(tools):
    assert DOCKERFILES, "no Dockerfiles under docker/"
    done = subprocess.run(
        [str(tools / "hadolint"), *map(str, DOCKERFILES)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _mounts(service: dict) -> dict[str, str]:
    """target → source (a host path, or a named volume's name)."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v["source"], v["target"]
        out[target] = source
    return out


def _ports(service: dict) -> list[str]:
    """host_ip:published:target of each published port."""
    return [
        f"{p.get('host_ip', '')}:{p['published']}:{p['target']}" for p in service.get("ports", [])
    ]


def test_every_published_port_is_on_loopback_and_follows_the_settings(tools, resolved):
    published = {name: _ports(svc) for name, svc in resolved["services"].items()}
    assert all(p.startswith("127.0.0.1:") for ports in published.values() for p in ports)
    assert published["localstack"] == ["127.0.0.1:4566:4566"]
    assert published["glue"] == ["127.0.0.1:4567:4567"]
    assert published["airflow-apiserver"] == ["127.0.0.1:8080:8080"]
    # The ports `make up` passes (the same settings as the embedded stack) reach the file.
    env = {"MUSICPIPE_AWS_PORT": "14566", "MUSICPIPE_AIRFLOW_PORT": "18080"}
    moved = resolve(tools, env)
    assert _ports(moved["services"]["localstack"]) == ["127.0.0.1:14566:4566"]
    assert _ports(moved["services"]["airflow-apiserver"]) == ["127.0.0.1:18080:8080"]


def _lock_version(package: str) -> str:
    lock = (REPO / "requirements.lock").read_text()
    return re.search(rf"^{re.escape(package)}==(\S+)$", lock, re.M).group(1)


def test_images_are_pinned_to_the_versions_the_project_runs(resolved):
    services = resolved["services"]
    # 4.14.0: the last LocalStack that runs without an auth token.
    assert services["localstack"]["image"] == "localstack/localstack:4.14.0"
    assert services["postgres"]["image"] == "postgres:16.15"
    # Each Dockerfile builds FROM a base image variable whose default is the official image;
    # the compose file passes the same default (or `make images`' stand-in) to the build.
    froms = {}
    for p in DOCKERFILES:
        text = p.read_text()
        arg = re.search(r"^FROM \$\{(\w+)\}$", text, re.M)[1]
        froms[p.parent.name] = re.search(rf"^ARG {arg}=(\S+)$", text, re.M)[1]
        service = services["glue" if p.parent.name == "glue" else "airflow-scheduler"]
        assert service["build"]["args"][arg] == froms[p.parent.name]
    airflow = _lock_version("apache-airflow")
    assert froms == {
        # MWAA's Airflow on MWAA's Python, at the version the embedded stack runs.
        "airflow": f"apache/airflow:{airflow}-python3.12",
        "glue": "public.ecr.aws/glue/aws-glue-libs:5.1.0",
    }
    # What the Airflow and Glue images add is pinned to requirements.lock.
    for image in ("airflow", "glue"):
        for line in (REPO / "docker" / image / "requirements.txt").read_text().splitlines():
            if line and not line.startswith("#"):
                name, version = re.match(r"([\w.-]+)(?:\[[^]]*\])?==(\S+)", line).groups()
                assert version == _lock_version(name), line


def test_image_variables_swap_in_the_stand_ins_and_nothing_else(tools):
    """`make images` points the compose file at its stand-ins through image variables only."""
    env = {
        "MUSICPIPE_POSTGRES_IMAGE": "localhost/musicpipe/postgres:15-standin",
        "MUSICPIPE_MOTO_IMAGE": "localhost/musicpipe/moto:standin",
        "MUSICPIPE_AIRFLOW_BASE_IMAGE": "localhost/musicpipe/airflow:standin",
        "MUSICPIPE_GLUE_BASE_IMAGE": "localhost/musicpipe/glue:5-standin",
    }
    done = docker_compose(tools, "-f", str(MOTO_OVERRIDE), "config", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert services["postgres"]["image"] == env["MUSICPIPE_POSTGRES_IMAGE"]
    assert services["localstack"]["image"] == env["MUSICPIPE_MOTO_IMAGE"]
    for name in (*AIRFLOW_COMPONENTS, "airflow-triggerer", "airflow-init"):
        assert (
            services[name]["build"]["args"]["AIRFLOW_BASE_IMAGE"]
            == env["MUSICPIPE_AIRFLOW_BASE_IMAGE"]
        )
    for name in ("glue", "glue-jobs", "aws-bootstrap"):
        assert (
            services[name]["build"]["args"]["GLUE_BASE_IMAGE"] == env["MUSICPIPE_GLUE_BASE_IMAGE"]
        )
    # What tools/images.sh exports is exactly these variables.
    line = subprocess.run(
        ["bash", str(REPO / "tools" / "images.sh"), "env"], capture_output=True, text=True
    ).stdout
    assert sorted(re.findall(r"(MUSICPIPE_\w+)=", line)) == sorted(env)


def _healthchecks(resolved: dict) -> dict[str, list[str]]:
    return {
        name: svc["healthcheck"]["test"]
        for name, svc in resolved["services"].items()
        if svc.get("healthcheck", {}).get("test")
    }


@pytest.mark.parametrize("variant", ["localstack", "moto"])
def test_no_health_check_is_exec_form_with_spaces_in_one_argument(tools, variant):
    """Podman's Docker API (4.x) joins an exec-form check's arguments and splits them again at
    spaces, so `["CMD", "python", "-c", "import a; b()"]` runs `python -c import` and the
    service never turns healthy. Exec form is fine only where no argument holds a space;
    CMD-SHELL strings are stored intact by both engines."""
    extra = ["-f", str(MOTO_OVERRIDE)] if variant == "moto" else []
    done = docker_compose(tools, *extra, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    checks = _healthchecks(json.loads(done.stdout))
    assert checks
    for name, test in checks.items():
        assert test[0] in ("CMD", "CMD-SHELL"), (name, test)
        if test[0] == "CMD":
            assert not any(" " in arg for arg in test[1:]), (name, test)
        else:
            assert len(test) == 2, (name, test)


def test_health_checks_are_cheap_and_patient(resolved):
    """A loaded laptop: no check starts the Airflow CLI (~25 s per call there), and every
    timeout leaves room for a slow answer."""
    for name, svc in resolved["services"].items():
        check = svc.get("healthcheck")
        if not check:
            continue
        assert not re.search(r"\bairflow\s+\w", " ".join(check["test"][1:])), name
        timeout = check["timeout"]
        seconds = int(timeout.removesuffix("s")) if isinstance(timeout, str) else timeout / 1e9
        assert seconds >= 20, (name, timeout)


AIRFLOW_SERVICES = (*AIRFLOW_COMPONENTS, "airflow-triggerer", "airflow-init")


def test_every_airflow_service_gets_the_same_secrets_from_the_same_place(resolved):
    """One Fernet key (a triggerer with another one crash-loops on InvalidToken), API secret and
    JWT secret for every Airflow container: none set in the compose file (no fixed default),
    all read by the entrypoint from one file in one shared volume."""
    services = resolved["services"]
    places = set()
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        for key in compose.SHARED_SECRETS:
            assert key not in env, (name, key)
        path = Path(env[compose.SECRETS_ENV])
        volume = _mounts(services[name]).get(str(path.parent))
        assert volume in resolved["volumes"], (name, path)
        places.add((str(path), volume))
    assert len(places) == 1, places
    # The other services never see them.
    for name, svc in services.items():
        if name not in AIRFLOW_SERVICES:
            assert compose.SECRETS_ENV not in svc.get("environment", {}), name


def _depends(resolved: dict, name: str) -> dict[str, str]:
    deps = resolved["services"][name].get("depends_on", {})
    return (
        {d: "service_started" for d in deps}
        if isinstance(deps, list)
        else {d: c["condition"] for d, c in deps.items()}
    )


def _upstream(resolved: dict, name: str) -> dict[str, str]:
    """Every service `name` waits for, transitively, with the condition it waits on."""
    seen: dict[str, str] = {}
    todo = [name]
    while todo:
        for dep, cond in _depends(resolved, todo.pop()).items():
            if dep not in seen:
                seen[dep] = cond
                todo.append(dep)
    return seen


def test_airflow_starts_only_after_the_resources_and_jobs_exist(resolved):
    for name in (*AIRFLOW_COMPONENTS, "airflow-triggerer"):
        up = _upstream(resolved, name)
        assert up["airflow-init"] == "service_completed_successfully"
        assert up["glue-jobs"] == "service_completed_successfully"
        assert up["glue"] == "service_healthy"
        assert up["localstack"] == "service_healthy"  # its ready hook created the resources
        assert up["postgres"] == "service_healthy"


def test_long_running_services_have_health_checks_and_one_shots_do_not_restart(resolved):
    services = resolved["services"]
    assert set(services) == set(compose.SERVICES) | set(compose.ONE_SHOT)
    for name in compose.SERVICES:
        assert services[name].get("healthcheck", {}).get("test"), name
        assert services[name]["restart"] == "unless-stopped"
    for name in compose.ONE_SHOT:
        assert services[name]["restart"] == "no"


def test_localstack_runs_the_bootstrap_hook_and_state_lives_in_named_volumes(resolved):
    localstack = resolved["services"]["localstack"]
    mounts = _mounts(localstack)
    assert Path(mounts["/etc/localstack/init/ready.d"]) == REPO / "localstack_init" / "ready.d"
    assert Path(mounts["/opt/musicpipe"]) == REPO  # the hook's musicpipe and musicpipe.toml
    hook = REPO / "localstack_init" / "ready.d" / "10-musicpipe-bootstrap.sh"
    assert os.access(hook, os.X_OK), "LocalStack runs only executable .sh hooks"
    health = " ".join(localstack["healthcheck"]["test"])
    assert "/_localstack/init/ready" in health and "SUCCESSFUL" in health
    assert localstack["environment"]["SQS_ENDPOINT_STRATEGY"] == "dynamic"
    assert {"localstack-data", "glue-state", "postgres-db", "airflow-logs"} <= set(
        resolved["volumes"]
    )
    named = {
        source
        for svc in resolved["services"].values()
        for source in _mounts(svc).values()
        if not source.startswith("/")
    }
    assert named == set(resolved["volumes"])  # every named volume is used, none undeclared


def test_the_names_musicpipe_uses_for_the_services_are_the_compose_file_s(resolved):
    services = resolved["services"]
    for url in (compose.AWS_IN_NETWORK, compose.GLUE_IN_NETWORK):
        host, port = url.removeprefix("http://").split(":")
        assert host in services and any(p.endswith(f":{port}") for p in _ports(services[host])), url
    for name in ("glue", "glue-jobs", *AIRFLOW_COMPONENTS):
        env = services[name]["environment"]
        assert set(env["MUSICPIPE_LOCAL_HOSTS"].split(",")) == {"localstack", "glue"}, name
        # The names are honoured only where this says the process runs in a container.
        assert env["MUSICPIPE_IN_CONTAINER"] == "1", name
    api = services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert api.startswith("http://airflow-apiserver:8080/")
    # `make up` hands the password it shows to the containers under this name.
    assert "MUSICPIPE_AIRFLOW_PASSWORD" in services["airflow-apiserver"]["environment"]


RECORDING_ENTRYPOINT = """#!/usr/bin/env python3
import json, os, sys
json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, open(os.environ["RECORD"], "w"))
"""


def test_the_airflow_entrypoint_sets_the_connection_variable_and_login(tmp_path):
    """docker/airflow/entrypoint.sh, run on the host with the image's entrypoint played by a
    script that records what it was given."""
    record = tmp_path / "seen.json"
    fake = tmp_path / "entrypoint"
    fake.write_text(RECORDING_ENTRYPOINT)
    fake.chmod(0o755)
    passwords = tmp_path / "passwords.json"
    env = {
        "PATH": HOST_PATH,
        "MUSICPIPE_ROOT": str(REPO),
        "AIRFLOW_IMAGE_ENTRYPOINT": str(fake),
        "RECORD": str(record),
        "MUSICPIPE_AIRFLOW_PASSWORD": "s3cret-pw",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    done = subprocess.run(
        ["bash", str(REPO / "docker" / "airflow" / "entrypoint.sh"), "api-server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(record.read_text())
    assert seen["argv"] == ["api-server"]
    assert json.loads(passwords.read_text()) == {"admin": "s3cret-pw"}
    config = load_dag_config(seen["env"]["AIRFLOW_VAR_MUSIC_STREAMING_PIPELINE"])
    # LocalStack's account for the dummy key, on the service name inside the network.
    assert config.arrivals_queue_url == "http://localstack:4566/000000000000/music-arrivals"
    assert config.raw_bucket == "rds.data" and config.etl_job == "music_streaming_etl_complete"
    extra = json.loads(seen["env"]["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]
    assert extra["endpoint_url"] == "http://localstack:4566"
    assert extra["service_config"]["glue"]["endpoint_url"] == "http://glue:4567"


def test_the_entrypoint_generates_the_shared_secrets_once_and_every_container_reads_them(
    tmp_path,
):
    """The first Airflow container writes the secrets file; the next ones (any component)
    read the same values; nothing is a fixed default."""
    fake = tmp_path / "entrypoint"
    fake.write_text(RECORDING_ENTRYPOINT)
    fake.chmod(0o755)
    secrets_file = tmp_path / "volume" / "airflow-secrets.env"
    seen = []
    for n, command in enumerate(["db", "triggerer", "scheduler"]):
        record = tmp_path / f"seen-{n}.json"
        env = {
            "PATH": HOST_PATH,
            "MUSICPIPE_ROOT": str(REPO),
            "AIRFLOW_IMAGE_ENTRYPOINT": str(fake),
            "RECORD": str(record),
            "MUSICPIPE_AIRFLOW_PASSWORD": "pw",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "pw.json"),
            compose.SECRETS_ENV: str(secrets_file),
        }
        done = subprocess.run(
            ["bash", str(REPO / "docker" / "airflow" / "entrypoint.sh"), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        got = json.loads(record.read_text())["env"]
        seen.append({k: got[k] for k in compose.SHARED_SECRETS})
    assert seen[0] == seen[1] == seen[2]
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    import base64

    assert len(base64.urlsafe_b64decode(seen[0]["AIRFLOW__CORE__FERNET_KEY"])) == 32
    # Another checkout (another volume) gets other secrets.
    other = compose.shared_airflow_secrets(tmp_path / "other" / "airflow-secrets.env")
    assert all(other[k] != seen[0][k] for k in compose.SHARED_SECRETS)


def test_the_entrypoint_fails_loudly_when_the_manifest_is_broken(tmp_path):
    (tmp_path / "src").symlink_to(REPO / "src")
    (tmp_path / "musicpipe.toml").write_text("[names]\nraw_bucket = 42\n")
    done = subprocess.run(
        ["bash", str(REPO / "docker" / "airflow" / "entrypoint.sh"), "scheduler"],
        env={"PATH": HOST_PATH, "MUSICPIPE_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "raw_bucket" in done.stderr


MOTO_OVERRIDE = REPO / "docker-compose.moto.yml"


@pytest.mark.parametrize("v2", [True, False], ids=["compose-v2", "docker-compose-1.29"])
def test_the_moto_override_is_valid(tools, v2):
    done = docker_compose(tools, "-f", str(MOTO_OVERRIDE), "config", "-q", v2=v2)
    assert done.returncode == 0, done.stderr


def test_the_moto_override_swaps_the_aws_and_bootstraps_before_the_emulator(tools):
    done = docker_compose(tools, "-f", str(MOTO_OVERRIDE), "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    aws = services["localstack"]
    assert aws["image"] == f"motoserver/moto:{_lock_version('moto')}"
    assert aws["entrypoint"][-2:] == ["-p", "4566"]
    # moto answers for LocalStack's account, the one the DAG's queue URL names.
    assert aws["environment"]["MOTO_ACCOUNT_ID"] == compose.LOCALSTACK_ACCOUNT_ID
    assert "/moto-api/" in " ".join(aws["healthcheck"]["test"])
    bootstrap = services["aws-bootstrap"]
    assert "musicpipe.bootstrap --endpoint http://localstack:4566" in " ".join(bootstrap["command"])
    assert bootstrap["depends_on"]["localstack"]["condition"] == "service_healthy"
    assert _depends({"services": services}, "glue")["aws-bootstrap"] == (
        "service_completed_successfully"
    )
    assert _ports(aws) == ["127.0.0.1:4566:4566"]  # still loopback only


@pytest.mark.parametrize("image_pythonpath", ["", "/usr/lib/spark/python"])
def test_glue_image_commands_put_musicpipe_before_the_image_s_python_path(tools, image_pythonpath):
    """The Glue image's login profile sets PYTHONPATH for pyspark and awsglue; the commands
    must keep it and put musicpipe's source in front. Each command runs in bash as the image's
    `bash -l -c` would run it, with the Python call replaced by a print."""
    done = docker_compose(tools, "-f", str(MOTO_OVERRIDE), "config", "--format", "json")
    services = json.loads(done.stdout)["services"]
    for name in ("glue", "glue-jobs", "aws-bootstrap"):
        flag, script = services[name]["command"]
        assert flag == "-c"
        # Compose hands the container `$` for `$$`; the Python call becomes a print.
        script = script.replace("$$", "$")
        script = re.sub(r"exec python3 -m \S+.*", 'echo "$PYTHONPATH"', script)
        env = {"PATH": os.environ["PATH"]}
        if image_pythonpath:
            env["PYTHONPATH"] = image_pythonpath
        out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        expected = "/opt/musicpipe/src" + (f":{image_pythonpath}" if image_pythonpath else "")
        assert out.stdout.strip() == expected, (name, out.stderr)
