"""The Glue job commands: `deploy`, `logs`, and the `job` group (`job run`, `job runs`,
`job logs`): edit a job's script, run it through the Glue API and watch its logs."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from musicpipe.bootstrap import summarize
from musicpipe.cli.console import (
    EXIT_USAGE,
    JSON,
    cli_errors,
    console,
    err,
    fail,
    print_json,
)
from musicpipe.cli.context import Stack, current_stack, require_running
from musicpipe.cli.stack import changes_table
from musicpipe.stack.base import StackError

job_app = typer.Typer(
    help="Run a Glue job of the manifest (or a loose script) and watch its logs.",
    no_args_is_help=True,
)

# The run's final states, coloured.
STATE_STYLE = {"SUCCEEDED": "green", "RUNNING": "yellow", "STARTING": "yellow"}
# Exit code after Ctrl-C while following a run (the run goes on).
EXIT_INTERRUPTED = 130


class LogStream(StrEnum):
    output = "output"
    error = "error"
    all = "all"


def logs(
    job: str = typer.Argument(None, help="Glue job name (default: the most recent run of any)."),
    run_id: str = typer.Option(None, "--run", help="A run id (default: the job's latest run)."),
    stream: LogStream = typer.Option(LogStream.all, "--stream", help="Which log group."),
    as_json: bool = JSON,
) -> None:
    """Print a Glue job run's logs from CloudWatch Logs (stream = run id)."""
    from musicpipe.stack.job_logs import LogsError, read_run_logs

    with cli_errors():
        stack = current_stack()
        require_running(stack)
        try:
            run, sections = read_run_logs(stack, job, run_id, stream.value)
        except LogsError as exc:
            raise StackError(str(exc)) from None
    state = run["JobRunState"]
    if as_json:
        print_json(
            {
                "job": run["JobName"],
                "run_id": run["Id"],
                "state": state,
                "error": run.get("ErrorMessage"),
                "sections": [{"title": title, "lines": lines} for title, lines in sections],
            }
        )
        return
    console.print(
        f"[bold]{run['JobName']}[/] run {run['Id']}: {state}"
        + (f" — {escape(run['ErrorMessage'])}" if run.get("ErrorMessage") else "")
    )
    for title, lines in sections:
        console.rule(title)
        for line in lines:
            console.out(line, highlight=False)


def deploy(as_json: bool = JSON) -> None:
    """Upload the Glue jobs' scripts and library where they changed (by content) and create or
    update the manifest's jobs: the `Glue jobs` stage of `up` alone."""
    with cli_errors():
        stack = current_stack()
        require_running(stack)
        started = time.monotonic()
        changes = stack.deploy_jobs()
        took = time.monotonic() - started
    if as_json:
        print_json(
            {
                "changes": [
                    {"kind": c.kind, "name": c.name, "state": c.action, "detail": c.detail}
                    for c in changes
                ],
                "seconds": round(took, 3),
            }
        )
        return
    console.print(changes_table(changes, "Glue jobs"))
    console.print(f"{summarize(changes)} ({took:.1f} s)")


def _deploy_quietly(stack: Stack) -> None:
    """Deploy what changed, saying in one line what was (stderr: stdout is the job's output)."""
    changes = [c for c in stack.deploy_jobs() if c.action != "unchanged"]
    for c in changes:
        err.print(
            f"[yellow]{c.action}[/] {c.kind} {escape(c.name)} {escape(c.detail)}", soft_wrap=True
        )


def _known_job(stack: Stack, glue, name: str) -> None:
    """The job is in the manifest or at least on the emulator; else a usage error."""
    if any(spec.name == name for spec in stack.manifest.glue_jobs):
        return
    try:
        glue.get_job(JobName=name)
    except glue.exceptions.EntityNotFoundException:
        known = ", ".join(spec.name for spec in stack.manifest.glue_jobs)
        raise fail(
            f"no Glue job named {name!r}; the manifest's jobs are {known} (add one with a "
            "[[jobs]] entry in musicpipe.toml, or run a loose script with --script PATH)",
            EXIT_USAGE,
        ) from None


@job_app.command("run")
def run(
    name: str = typer.Argument(None, help="A job of the manifest (`musicpipe manifest`)."),
    script: Path = typer.Option(
        None, "--script", help="Run this script under a scratch glueetl job instead of NAME."
    ),
    arg: list[str] = typer.Option(
        [], "--arg", help="KEY=VALUE: the run's argument --KEY VALUE (repeatable)."
    ),
    wait_for_it: bool = typer.Option(
        True, "--wait/--no-wait", help="Follow the run's logs until it ends (or just start it)."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="The script waits for a debugger (debugpy, DAP) on loopback."
    ),
    debug_port: int = typer.Option(
        0, "--debug-port", min=0, max=65535, help="With --debug: this port (0: a free one)."
    ),
) -> None:
    """Deploy what changed, start a run through the Glue API, stream its output (stdout) and
    error (stderr) logs live, and end with its state, duration and error. Exits 0 only when
    the run SUCCEEDED."""
    from musicpipe.artifacts import deploy_job, upload_if_changed
    from musicpipe.stack.job_runs import (
        RunUsageError,
        follow_run,
        next_attempt,
        parse_arguments,
        scratch_spec,
    )

    if (name is None) == (script is None):
        raise fail("give a job NAME or --script PATH (one of them)", EXIT_USAGE)
    from musicpipe.glue.debugging import DEBUG_ARGUMENT

    try:
        arguments = parse_arguments(arg)
        if debug:
            arguments[DEBUG_ARGUMENT] = str(debug_port)
        if script is not None and not script.is_file():
            raise RunUsageError(f"--script {script}: no such file")
    except RunUsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    with cli_errors():
        stack = current_stack()
        require_running(stack)
        glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
        _deploy_quietly(stack)
        if script is not None:
            try:
                spec = scratch_spec(stack.manifest, script)
            except RunUsageError as exc:
                raise fail(str(exc), EXIT_USAGE) from None
            bucket, _, key = spec.script_location.removeprefix("s3://").partition("/")
            uploaded = upload_if_changed(stack.aws.client("s3"), bucket, key, script.read_bytes())
            role = stack.manifest.glue_role_arn(stack.account_id)
            deploy_job(glue, spec, role, uploaded)
            name = spec.name
        _known_job(stack, glue, name)
        run_id = glue.start_job_run(JobName=name, Arguments=arguments)["JobRunId"]
        shown = " ".join(f"{k} {v}" for k, v in arguments.items())
        err.print(
            f"started [bold]{escape(name)}[/] run {run_id} {escape(shown)}",
            highlight=False,
            soft_wrap=True,
        )
        if debug:
            err.print(
                "the script waits for a debugger: attach to the address its log names "
                "(docs/developing-jobs.md, 'Debugging a run')",
                highlight=False,
                soft_wrap=True,
            )
        if not wait_for_it:
            console.print(run_id)
            return
        logs_client = stack.aws.client("logs")
        try:
            final = follow_run(glue, logs_client, name, run_id, _print_line)
            # MaxRetries: follow each retry to the end of the chain.
            while (retry := next_attempt(glue, name, final)) is not None:
                err.print(
                    f"{final['JobRunState']}; attempt {retry['Attempt']} (MaxRetries): "
                    f"run {retry['Id']}",
                    highlight=False,
                    soft_wrap=True,
                )
                run_id = retry["Id"]
                final = follow_run(glue, logs_client, name, run_id, _print_line)
        except KeyboardInterrupt:
            err.print(
                f"stopped following; the run goes on: musicpipe job logs {name} --run {run_id}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
    _end_of_run(final)


def _print_line(stream: str, line: str) -> None:
    (console if stream == "output" else err).out(line, highlight=False)


def _end_of_run(final: dict) -> None:
    from musicpipe.stack.job_runs import run_duration

    state = final["JobRunState"]
    took = run_duration(final)
    took_text = f" in {took:.1f} s" if took is not None else ""
    line = f"{final['JobName']} run {final['Id']} {state}{took_text}"
    if state == "SUCCEEDED":
        err.print(f"[green]{escape(line)}[/]", highlight=False, soft_wrap=True)
        return
    raise fail(f"{line}: {final.get('ErrorMessage') or 'no error message'}")


@job_app.command("runs")
def runs(
    name: str = typer.Argument(..., help="A Glue job name."),
    limit: int = typer.Option(10, "--limit", min=1, max=200, help="How many runs, newest first."),
    as_json: bool = JSON,
) -> None:
    """The job's recent runs: id, attempt (and which run a retry retries), state, started,
    duration, error."""
    from musicpipe.stack.job_runs import run_row

    with cli_errors():
        stack = current_stack()
        require_running(stack)
        glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
        _known_job(stack, glue, name)
        found = glue.get_job_runs(JobName=name, MaxResults=limit)["JobRuns"]
    rows = [run_row(r) for r in found]
    if as_json:
        print_json({"job": name, "runs": rows})
        return
    table = Table(title=f"runs of {name}", title_justify="left")
    for col in ("run", "attempt", "state", "started (UTC)", "took", "error"):
        table.add_column(col, overflow="fold")
    retried = {r["previous_run_id"] for r in rows if r["previous_run_id"]}
    for row in rows:
        style = STATE_STYLE.get(str(row["state"]), "red")
        took = row["duration_s"]
        attempt = str(row["attempt"])
        if row["previous_run_id"]:  # which one: --json's previous_run_id
            attempt += " (retry)"
        if row["run_id"] in retried:
            attempt += " → retried"
        table.add_row(
            str(row["run_id"]),
            attempt,
            f"[{style}]{row['state']}[/]",
            str(row["started"] or "-").replace("T", " ")[:19],
            f"{took:.1f} s" if isinstance(took, float) else "-",
            escape(str(row["error"] or "")),
        )
    if not rows:
        table.add_row("(none yet)", "", "", "", "", "")
    console.print(table)


job_app.command("logs")(logs)
