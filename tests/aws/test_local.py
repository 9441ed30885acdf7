"""The local stack only talks to loopback, with dummy credentials, whatever the shell holds."""

from __future__ import annotations

import pytest

from musicpipe.aws.local import (
    LocalAws,
    UnsafeEndpointError,
    local_environment,
    require_loopback,
)

from ..conftest import isolated_env, run_cli


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:4566", "http://localhost:4566", "http://[::1]:4566", "http://127.9.8.7"],
)
def test_loopback_endpoints_are_accepted(url):
    assert require_loopback(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://s3.amazonaws.com",
        "https://dynamodb.us-east-1.amazonaws.com",
        "http://10.0.0.5:4566",
        "http://0.0.0.0:4566",
        "http://localstack:4566",
        "127.0.0.1:4566",
    ],
)
def test_other_endpoints_are_refused(url):
    with pytest.raises(UnsafeEndpointError):
        require_loopback(url)


def test_compose_service_names_are_accepted_only_when_listed(monkeypatch):
    with pytest.raises(UnsafeEndpointError, match="MUSICPIPE_LOCAL_HOSTS"):
        require_loopback("http://localstack:4566")
    # Inside the Compose network the containers list the service names they talk to.
    monkeypatch.setenv("MUSICPIPE_IN_CONTAINER", "1")
    monkeypatch.setenv("MUSICPIPE_LOCAL_HOSTS", "localstack, glue, s3.amazonaws.com")
    assert require_loopback("http://localstack:4566") == "http://localstack:4566"
    assert require_loopback("http://GLUE:4567") == "http://GLUE:4567"
    # A name with a dot can be a public endpoint: never let through, even when listed.
    with pytest.raises(UnsafeEndpointError):
        require_loopback("https://s3.amazonaws.com")
    with pytest.raises(UnsafeEndpointError):
        require_loopback("http://airflow:8080")


def test_clients_refuse_a_real_endpoint():
    with pytest.raises(UnsafeEndpointError, match="musicpipe promote"):
        LocalAws("https://s3.amazonaws.com")
    aws = LocalAws("http://127.0.0.1:4566")
    with pytest.raises(UnsafeEndpointError):
        aws.client("s3", endpoint="https://glue.us-east-1.amazonaws.com")


def test_real_credentials_in_the_shell_are_ignored(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-token")
    monkeypatch.setenv("AWS_PROFILE", "production")
    creds = LocalAws("http://127.0.0.1:4566").session.get_credentials()
    assert (creds.access_key, creds.secret_key, creds.token) == ("test", "test", None)


def test_child_environment_drops_profiles_and_tokens():
    env = local_environment(
        {
            "AWS_PROFILE": "prod",
            "AWS_SESSION_TOKEN": "t",
            "AWS_ACCESS_KEY_ID": "AKIA",
            "HOME": "/h",
        },
        "http://127.0.0.1:4566",
        "us-east-1",
        glue_endpoint="http://127.0.0.1:4567",
    )
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    assert env["AWS_ACCESS_KEY_ID"] == "test"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["AWS_ENDPOINT_URL_GLUE"] == "http://127.0.0.1:4567"
    assert env["HOME"] == "/h"


def test_service_names_are_ignored_outside_the_compose_containers(monkeypatch):
    """On the host (the embedded stack, the CLI) a listed name is not local: it could resolve
    to any machine. Only the containers, which say MUSICPIPE_IN_CONTAINER=1, honour it."""
    monkeypatch.delenv("MUSICPIPE_IN_CONTAINER", raising=False)
    monkeypatch.setenv("MUSICPIPE_LOCAL_HOSTS", "localstack,glue")
    with pytest.raises(UnsafeEndpointError):
        require_loopback("http://localstack:4566")
    monkeypatch.setenv("MUSICPIPE_IN_CONTAINER", "0")
    with pytest.raises(UnsafeEndpointError):
        LocalAws("http://glue:4567")
    monkeypatch.setenv("MUSICPIPE_IN_CONTAINER", "1")
    assert LocalAws("http://glue:4567").endpoint == "http://glue:4567"


def test_the_embedded_stack_s_children_get_no_service_names():
    env = local_environment(
        {"MUSICPIPE_LOCAL_HOSTS": "localstack", "MUSICPIPE_IN_CONTAINER": "1", "HOME": "/h"},
        "http://127.0.0.1:4566",
        "us-east-1",
    )
    assert "MUSICPIPE_LOCAL_HOSTS" not in env and "MUSICPIPE_IN_CONTAINER" not in env


def test_the_cli_on_the_host_refuses_a_listed_service_name(tmp_path):
    """As the README says: honoured inside the Compose network only, not on the embedded
    stack. `musicpipe env` for an AWS host named "localstack" is refused on the host, and
    accepted where the container marker is set."""
    env = isolated_env(tmp_path / "state")
    env.update(MUSICPIPE_HOST="localstack", MUSICPIPE_LOCAL_HOSTS="localstack,glue")
    refused = run_cli("env", env=env)
    assert refused.returncode == 2
    assert "refusing endpoint http://localstack:" in refused.stderr
    inside = run_cli("env", env={**env, "MUSICPIPE_IN_CONTAINER": "1"}, check=True)
    assert "export AWS_ENDPOINT_URL=http://localstack:" in inside.stdout
