"""Safety rails: the local stack only talks to loopback, and only with dummy credentials.

Whatever the user's shell holds (a profile, real keys, a session token), clients made here use
the dummy ``test`` credentials and refuse any endpoint that is not on this machine, so the local
stack can never touch a real AWS account.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config

DUMMY_ACCESS_KEY = "test"
DUMMY_SECRET_KEY = "test"
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
# LocalStack's account for the dummy access key "test" (a 12-digit key would name another).
LOCALSTACK_ACCOUNT_ID = "000000000000"

# Variables that could point a client at a real account; removed from child processes.
CREDENTIAL_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


class UnsafeEndpointError(ValueError):
    """An endpoint of the local stack that is not on the loopback interface."""


# Inside the Compose stack the services reach each other by service name (localstack, glue).
# Such names are listed here by the containers themselves; only single-label names count, so no
# public endpoint (they all have dots) can ever be let through. They are honoured only where
# MUSICPIPE_IN_CONTAINER=1 says this is one of the Compose containers (docker-compose.yml sets
# both): on the host a name like "localstack" could resolve anywhere, so the embedded stack
# and the CLI take loopback only, whatever the shell exports.
LOCAL_HOSTS_ENV = "MUSICPIPE_LOCAL_HOSTS"
IN_CONTAINER_ENV = "MUSICPIPE_IN_CONTAINER"


def container_hosts(environ: dict[str, str] | None = None) -> set[str]:
    env = os.environ if environ is None else environ
    if env.get(IN_CONTAINER_ENV) != "1":
        return set()
    raw = env.get(LOCAL_HOSTS_ENV, "")
    return {h.strip().lower() for h in raw.split(",") if h.strip() and "." not in h}


def is_local_host(host: str) -> bool:
    if host.lower() == "localhost" or host.lower() in container_hosts():
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_loopback(url: str) -> str:
    """Return ``url`` if its host is a loopback address, else raise UnsafeEndpointError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeEndpointError(f"{url!r} is not an http(s) endpoint URL")
    if not is_local_host(parts.hostname):
        raise UnsafeEndpointError(
            f"refusing endpoint {url}: the local stack only talks to loopback addresses "
            f"(127.0.0.0/8, ::1, localhost; inside the Compose containers also the service "
            f"names in {LOCAL_HOSTS_ENV}). Use `musicpipe promote` for a real AWS account."
        )
    return url


def local_environment(
    base: dict[str, str], endpoint: str, region: str, glue_endpoint: str | None = None
) -> dict[str, str]:
    """``base`` with dummy credentials and the local endpoints, for child processes."""
    # The embedded stack's children are not in the Compose network: no service names for them.
    dropped = (*CREDENTIAL_VARIABLES, LOCAL_HOSTS_ENV, IN_CONTAINER_ENV)
    env = {k: v for k, v in base.items() if k not in dropped}
    env.update(local_exports(endpoint, region, glue_endpoint))
    return env


def local_exports(endpoint: str, region: str, glue_endpoint: str | None = None) -> dict[str, str]:
    """The variables that point boto3 and the aws CLI at the local stack."""
    require_loopback(endpoint)
    exports = {
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ENDPOINT_URL": endpoint,
    }
    if glue_endpoint:
        exports["AWS_ENDPOINT_URL_GLUE"] = require_loopback(glue_endpoint)
    return exports


class LocalAws:
    """boto3 clients for the local stack: loopback endpoint, dummy credentials, path-style S3."""

    def __init__(self, endpoint: str, region: str = "us-east-1") -> None:
        self.endpoint = require_loopback(endpoint)
        self.region = region
        # A botocore session that reads no profile and no ~/.aws files: a profile named in
        # AWS_PROFILE must neither break the local stack nor leak settings into it.
        isolated = botocore.session.Session(
            session_vars={
                "profile": (None, None, None, None),
                "config_file": (None, None, os.devnull, None),
                "credentials_file": (None, None, os.devnull, None),
            }
        )
        self.session = boto3.Session(
            botocore_session=isolated,
            aws_access_key_id=DUMMY_ACCESS_KEY,
            aws_secret_access_key=DUMMY_SECRET_KEY,
            region_name=region,
        )
        # Dotted bucket names (rds.data) only work path-style against a local endpoint.
        self.config = Config(
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=5,
            read_timeout=60,
        )

    def client(self, service: str, endpoint: str | None = None):
        url = require_loopback(endpoint) if endpoint else self.endpoint
        # boto3-stubs types client() for literal service names only.
        return self.session.client(service, endpoint_url=url, config=self.config)  # type: ignore[call-overload]
