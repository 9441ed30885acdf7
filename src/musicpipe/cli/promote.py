"""`musicpipe promote`: plan, apply and the promoter's IAM policy, against a real account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.markup import escape
from rich.table import Table

from musicpipe.cli.console import EXIT_USAGE, cli_errors, console, err, fail
from musicpipe.manifest import load_manifest
from musicpipe.stack.base import StackError

promote_app = typer.Typer(
    help="Bring a real AWS account in line with the manifest: plan (default), then apply.",
    no_args_is_help=False,
)

ACCOUNT = typer.Option(..., "--account", help="The 12-digit account id; STS must agree.")
PROFILE = typer.Option(None, "--profile", help="An AWS profile (default: the usual chain).")
ENDPOINT = typer.Option(None, "--endpoint-url", help="Another endpoint for every service.")
MWAA_ENV = typer.Option(None, "--mwaa-environment", help="Deploy the DAG to this MWAA env.")
UPDATE_ENV = typer.Option(
    False, "--update-environment", help="Also update the MWAA environment (it restarts)."
)
PROMOTE_STYLE = {"create": "green", "update": "yellow", "refuse": "red", "skipped": "dim"}


def _planned(account, profile, endpoint_url, mwaa_environment, update_environment):
    """The promotion for the account (after STS agrees it is that account) and its plan,
    shown as a table."""
    from musicpipe.promote.plan import Promotion
    from musicpipe.promote.target import check_account_id, require_account, target_clients

    manifest = load_manifest()
    check_account_id(account)
    clients = target_clients(manifest.region, profile, endpoint_url)
    arn = require_account(clients, account)
    console.print(f"account {account} as {arn}, region {manifest.region}")
    promotion = Promotion(clients, manifest, account, mwaa_environment, update_environment)
    steps = promotion.plan()
    console.print(_plan_table(steps, f"plan for account {account}"))
    return promotion, steps


def _plan_table(steps, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("resource", "name", "action", "detail"):
        table.add_column(col)
    for step in steps:
        style = PROMOTE_STYLE.get(step.action, "dim")
        table.add_row(step.kind, step.name, f"[{style}]{step.action}[/]", escape(step.detail))
    return table


def _plan_summary(steps) -> str:
    from musicpipe.promote.plan import pending

    counts: dict[str, int] = {}
    for step in steps:
        counts[step.action] = counts.get(step.action, 0) + 1
    if not pending(steps):
        return f"No changes: all {counts.get('unchanged', 0)} resources in line with the manifest."
    return ", ".join(
        f"{n} to {a}" if a in ("create", "update") else f"{n} {a}"
        for a, n in sorted(counts.items())
    )


@contextmanager
def promote_errors() -> Iterator[None]:
    from musicpipe.promote.plan import PromoteError, PromoteUsageError

    with cli_errors():
        try:
            yield
        except PromoteUsageError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except PromoteError as exc:
            raise StackError(str(exc)) from None


@promote_app.callback(invoke_without_command=True)
def promote(
    ctx: typer.Context,
    account: str = typer.Option(None, "--account", help="With no command: plan for it."),
    profile: str = PROFILE,
    endpoint_url: str = ENDPOINT,
    mwaa_environment: str = MWAA_ENV,
) -> None:
    """`musicpipe promote --account ID` plans (changes nothing); `promote apply` applies."""
    if ctx.invoked_subcommand is not None:
        return
    if account is None:
        err.print(
            "[bold red]error:[/] --account ID is required: musicpipe promote plan --account ID"
        )
        raise typer.Exit(2)
    promote_plan(account, profile, endpoint_url, mwaa_environment, False)


@promote_app.command("plan")
def promote_plan(
    account: str = ACCOUNT,
    profile: str = PROFILE,
    endpoint_url: str = ENDPOINT,
    mwaa_environment: str = MWAA_ENV,
    update_environment: bool = UPDATE_ENV,
) -> None:
    """Show what apply would create or change; changes nothing."""
    with promote_errors():
        _, steps = _planned(account, profile, endpoint_url, mwaa_environment, update_environment)
    console.print(_plan_summary(steps))


@promote_app.command("apply")
def promote_apply(
    account: str = ACCOUNT,
    profile: str = PROFILE,
    endpoint_url: str = ENDPOINT,
    mwaa_environment: str = MWAA_ENV,
    update_environment: bool = UPDATE_ENV,
) -> None:
    """Plan, then make the changes (never deletes anything); then plan again to confirm."""
    from musicpipe.promote.plan import apply, pending

    with promote_errors():
        promotion, steps = _planned(
            account, profile, endpoint_url, mwaa_environment, update_environment
        )
        if not pending(steps):
            console.print(_plan_summary(steps))
            return
        with console.status("applying…"):
            ran = apply(steps)
        after = promotion.plan()
    console.print(f"[green]applied[/] {ran} change(s)")
    left = [s for s in after if s.run is not None]  # what a second apply would still do
    if left:
        console.print(_plan_table(left, "still differing after apply"))
        raise typer.Exit(1)
    console.print(_plan_summary(after))


@promote_app.command("policy")
def promote_policy(
    account: str = ACCOUNT,
    mwaa_environment: str = MWAA_ENV,
    mwaa_source_bucket: str = typer.Option(
        None, "--mwaa-source-bucket", help="The MWAA environment's source bucket."
    ),
) -> None:
    """Print the IAM policy the promoter needs (JSON); calls no AWS API."""
    from musicpipe.promote.policies import promoter_policy
    from musicpipe.promote.target import check_account_id

    with promote_errors():
        check_account_id(account)
        policy = promoter_policy(load_manifest(), account, mwaa_environment, mwaa_source_bucket)
    print(json.dumps(policy, indent=2))
