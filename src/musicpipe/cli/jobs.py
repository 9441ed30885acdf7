"""The Glue job commands: `logs` (a run's logs from CloudWatch Logs)."""

from __future__ import annotations

from enum import StrEnum

import typer
from rich.markup import escape

from musicpipe.cli.console import JSON, cli_errors, console, print_json
from musicpipe.cli.context import current_stack, require_running
from musicpipe.stack.base import StackError


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
