"""The AWS account promotion talks to: the ordinary credential chain (or a profile), the
manifest's region, botocore's standard retries, and a check that the account is the one asked
for before anything is read or written."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from musicpipe.promote.plan import PromoteError, PromoteUsageError

# Standard retries ride out throttling; 5 attempts keep an unreachable endpoint to ~30 s.
CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10)


def check_account_id(account: str) -> str:
    if not re.fullmatch(r"\d{12}", account or ""):
        raise PromoteUsageError(f"--account {account!r}: an AWS account id is 12 digits")
    return account


def target_clients(
    region: str, profile: str | None = None, endpoint_url: str | None = None
) -> Callable[[str], Any]:
    """service → client, one per service. ``endpoint_url`` (tests) goes to every client;
    AWS_ENDPOINT_URL_<SERVICE> variables work as boto3 documents them."""
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise PromoteError(f"--profile: {exc}") from None
    made: dict[str, Any] = {}

    def client(service: str):
        if service not in made:
            # boto3-stubs types client() for literal service names only.
            made[service] = session.client(service, endpoint_url=endpoint_url, config=CONFIG)  # type: ignore[call-overload]
        return made[service]

    return client


def require_account(clients: Callable[[str], Any], expected: str) -> str:
    """The caller's ARN, if STS says the credentials belong to ``expected``; else refuse."""
    try:
        identity = clients("sts").get_caller_identity()
    except NoCredentialsError:
        raise PromoteError(
            "no AWS credentials found: use a profile (--profile NAME or AWS_PROFILE), "
            "`aws sso login`, or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables"
        ) from None
    except (ClientError, BotoCoreError) as exc:
        raise PromoteError(f"STS could not tell who these credentials are: {exc}") from None
    if identity["Account"] != expected:
        raise PromoteError(
            f"these credentials belong to account {identity['Account']} "
            f"({identity['Arn']}), not {expected}: nothing was read or changed. "
            "Check --account, or pick the profile of the account you mean."
        )
    return identity["Arn"]
