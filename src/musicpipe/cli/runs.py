"""The DAG's runs: `wait`, and the run table `status` shows too."""

from __future__ import annotations

import time
from datetime import UTC

import typer
from rich.table import Table

from musicpipe.cli.console import EXIT_FAILURE, JSON, cli_errors, console, err, print_json
from musicpipe.cli.context import Stack, current_stack, require_airflow, require_running
from musicpipe.stack.base import StackError


def run_dict(run) -> dict[str, object]:
    return {
        "run_id": run.run_id,
        "state": run.state,
        "run_type": run.run_type,
        "started": run.started,
        "ended": run.ended,
        "duration_s": run.duration_s,
        "tasks": run.tasks,
        "failed_tasks": run.failed_tasks(),
    }


STATE_STYLE = {"success": "green", "failed": "red", "running": "yellow", "queued": "yellow"}


def runs_table(runs, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("run", "state", "started (UTC)", "took", "tasks"):
        table.add_column(col)
    for r in runs:
        style = STATE_STYLE.get(r.state, "")
        took = f"{r.duration_s:.0f} s" if r.duration_s is not None else "-"
        started = r.started.strftime("%Y-%m-%d %H:%M:%S") if r.started else "-"
        tasks = " ".join(
            f"[{STATE_STYLE.get(state, 'dim')}]{task}[/]"
            for task, state in r.tasks.items()
            if state not in ("none", "skipped")
        )
        if r.tasks and all(state == "skipped" for state in r.tasks.values()):
            tasks = "[dim]all skipped: nothing new[/]"
        table.add_row(r.run_id, f"[{style}]{r.state}[/]", started, took, tasks)
    if not runs:
        table.add_row("(none yet)", "", "", "", "")
    return table


def wait(
    timeout: float = typer.Option(
        600, help="Seconds to wait (for busy components, then for the runs) before giving up."
    ),
    since: float = typer.Option(
        None, help="Only runs after this UNIX time (default: the last drop's time)."
    ),
    as_json: bool = JSON,
) -> None:
    """Wait until the DAG has processed everything that arrived, showing its progress. Exits 1
    when a run failed."""
    from datetime import datetime

    from musicpipe.stack.runs import WaitTimeout, wait_until_idle

    # The spinner goes to stderr, so stdout holds only the result (and only JSON with --json).
    with cli_errors(), err.status("waiting for the DAG…") as spinner:
        stack = current_stack()
        deadline = time.monotonic() + timeout
        # Right after `up` (or beside a Spark job) Airflow may take seconds to answer: only a
        # component that is not running ends the wait at once.
        require_running(stack, timeout, on_busy=spinner.update)
        require_airflow(stack, max(deadline - time.monotonic(), 1), on_busy=spinner.update)
        start = since if since is not None else _last_drop_time(stack)
        sqs = stack.aws.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=stack.manifest.arrivals_queue)["QueueUrl"]
        try:
            runs = wait_until_idle(
                stack.airflow,
                sqs,
                queue_url,
                datetime.fromtimestamp(start, UTC),
                max(deadline - time.monotonic(), 1),
                on_progress=lambda runs: spinner.update(_run_progress(runs)),
                alive=lambda: stack.airflow.is_running() and stack.aws_alive(),
                on_busy=spinner.update,
            )
        except WaitTimeout as exc:
            raise StackError(str(exc)) from None
    failed = [r for r in runs if r.state == "failed"]
    if as_json:
        print_json({"runs": [run_dict(r) for r in runs], "failed": [r.run_id for r in failed]})
        raise typer.Exit(EXIT_FAILURE if failed else 0)
    console.print(runs_table(runs, "DAG runs since the drop"))
    if failed:
        err.print(
            f"[bold red]{len(failed)} run(s) failed[/]: "
            + "; ".join(f"{r.run_id}: {', '.join(r.failed_tasks())}" for r in failed)
            + f". Task logs: the Airflow UI ({stack.airflow.url}) or "
            f"{stack.airflow.logs_hint}; Glue job logs: `musicpipe logs`."
        )
        raise typer.Exit(EXIT_FAILURE)


def _run_progress(runs) -> str:
    """One line on the newest run: how many tasks are done, which are under way."""
    if not runs:
        return "waiting for the arrival to start a DAG run…"
    r = runs[0]
    done = [t for t, st in r.tasks.items() if st in ("success", "skipped")]
    doing = [
        t
        for t, st in r.tasks.items()
        if st in ("running", "queued", "deferred", "scheduled", "up_for_retry")
    ]
    took = f"{r.duration_s:.0f} s" if r.duration_s is not None else "queued"
    return f"run {r.run_id} ({took}): {len(done)}/{len(r.tasks)} tasks done" + (
        f", now {', '.join(doing)}" if doing else ""
    )


def _last_drop_time(stack: Stack) -> float:
    marker = stack.settings.state_dir / "last_drop"
    try:
        return float(marker.read_text())
    except (OSError, ValueError):
        return time.time() - 3600
