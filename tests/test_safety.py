"""The local stack only talks to loopback, with dummy credentials, whatever the shell holds."""

from __future__ import annotations

import pytest

from musicpipe.stack.safety import (
    LocalAws,
    UnsafeEndpointError,
    local_environment,
    require_loopback,
)


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
