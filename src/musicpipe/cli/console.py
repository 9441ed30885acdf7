"""What every command shares: the consoles, the exit codes, known errors as one line, `--json`.

Stdout (``console``) holds a command's result, stderr (``err``) errors and spinners. Known
failures end with ``fail``: one line and exit 2 (usage) or 1 (runtime), never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import botocore.exceptions
import typer
from rich.console import Console
from rich.markup import escape

from musicpipe.aws.local import UnsafeEndpointError
from musicpipe.drop import DropError
from musicpipe.manifest import ConfigError
from musicpipe.stack import choice
from musicpipe.stack.airflow_api import AirflowError
from musicpipe.stack.base import StackError
from musicpipe.stack.preflight import PreflightError

console = Console()
err = Console(stderr=True)


# Exit codes: 0 success; 1 a runtime failure (a failed run, a stack that is down or busy, an
# AWS error); 2 a usage error (a bad argument, option or configuration), as click uses it.
EXIT_FAILURE = 1
EXIT_USAGE = 2
USAGE_ERRORS = (ConfigError, UnsafeEndpointError, DropError)
RUNTIME_ERRORS = (PreflightError, StackError, AirflowError, choice.StackChoiceError)
# AWS error codes that mean a resource of the manifest is not there.
MISSING_CODES = {
    "ResourceNotFoundException",
    "NoSuchBucket",
    "NoSuchKey",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "EntityNotFoundException",
}


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def aws_error_message(exc: Exception) -> str:
    """One line for an AWS error a command did not expect, saying what to do."""
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        where = exc.kwargs.get("endpoint_url")
        return f"the stack is not running (nothing answers at {where}): make up"
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        text = f"{exc.operation_name}: {code}: {error.get('Message', '')}".strip()
        if code in MISSING_CODES:
            return f"{text}; a resource of the pipeline is missing: run `make up` to create it"
        return text
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def cli_errors() -> Iterator[None]:
    """Known failures end with one line and their exit code, never a traceback."""
    try:
        yield
    except USAGE_ERRORS as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except RUNTIME_ERRORS as exc:
        raise fail(str(exc)) from None
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise fail(aws_error_message(exc)) from None


def print_json(value: object) -> None:
    """Machine-readable output: DynamoDB's Decimals as numbers, datetimes as ISO text."""

    def plain(obj: object) -> object:
        if isinstance(obj, Decimal):
            return int(obj) if obj == obj.to_integral_value() else float(obj)
        if isinstance(obj, dt.date | dt.datetime):
            return obj.isoformat()
        raise TypeError(f"not JSON: {type(obj).__name__}")

    print(json.dumps(value, default=plain, indent=2, sort_keys=True))


JSON = typer.Option(False, "--json", help="Print JSON (stable keys, see docs/cli.md).")
