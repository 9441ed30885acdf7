"""The DAG's runs: `wait`, `reprocess`, and the run table `status` shows too."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

import typer
from rich.table import Table

from musicpipe.cli.console import (
    EXIT_FAILURE,
    EXIT_USAGE,
    JSON,
    cli_errors,
    console,
    err,
    fail,
    print_json,
)
from musicpipe.cli.context import Stack, current_stack, require_airflow, require_running
from musicpipe.contract.layout import STREAMS_PREFIX
from musicpipe.contract.status import TrackerStatus
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


# -- reprocess (docs/data-contract.md §8.1) ------------------------------------------------------
KEY_ARGUMENT = typer.Argument(None, help="Stream file keys (streams/….csv) to retry now.")


def reprocess(
    keys: list[str] = KEY_ARGUMENT,
    failed: bool = typer.Option(False, "--failed", help="Every file the tracker holds FAILED."),
    day: str = typer.Option(
        None,
        "--date",
        help="Every stream file waiting in streams/ that arrived on YYYY-MM-DD (UTC).",
    ),
    as_json: bool = JSON,
) -> None:
    """Retry stream files now: reset their attempts, mark them for the next run and send one
    arrival event so that run starts. Exits 1 when a named key could not be taken."""
    chosen = [
        name
        for name, given in (("KEY", bool(keys)), ("--failed", failed), ("--date", day))
        if given
    ]
    if len(chosen) != 1:
        raise fail(
            "reprocess needs exactly one of KEY…, --failed or --date YYYY-MM-DD"
            + (f" (got {' and '.join(chosen)})" if chosen else ""),
            EXIT_USAGE,
        )
    if keys:
        for key in keys:
            if not key.startswith(STREAMS_PREFIX) or not key.endswith(".csv"):
                raise fail(
                    f"KEY {key!r}: a stream file key is streams/….csv (as `aws s3 ls` shows it)",
                    EXIT_USAGE,
                )
    if day is not None:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise fail(f"--date {day!r}: give a day as YYYY-MM-DD", EXIT_USAGE) from None
    with cli_errors():
        stack = current_stack()
        require_running(stack)
        result = reprocess_files(stack, keys=keys, failed=failed, day=day)
    if as_json:
        print_json(result)
    else:
        _print_reprocess(result)
    missed = [d["key"] for d in result["not_taken"]] if keys else []
    if missed:
        err.print(f"[bold red]{len(missed)} key(s) not taken[/]: {', '.join(missed)}")
        raise typer.Exit(EXIT_FAILURE)


def reprocess_files(stack: Stack, *, keys: list[str], failed: bool, day: str | None) -> dict:
    """Judge each file (pipeline.retries.reprocess_decision), mark the taken ones, then send one
    arrival event for them all."""
    from musicpipe.dag.steps import claim_alive, stream_objects
    from musicpipe.pipeline.retries import reprocess_decision
    from musicpipe.pipeline.tracker import Tracker

    m = stack.manifest
    s3 = stack.aws.client("s3")
    dynamodb = stack.aws.session.resource(
        "dynamodb", endpoint_url=stack.aws.endpoint, config=stack.aws.config
    )
    glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
    tracker = Tracker(dynamodb, m.tracker_table)
    waiting = {o.key: o for o in stream_objects(s3, m.raw_bucket)}
    if failed:
        keys = sorted(i["file_key"] for i in tracker.items(TrackerStatus.FAILED))
    elif day is not None:
        keys = [k for k, o in waiting.items() if _utc_day(o.last_modified) == day]
    taken: list[dict[str, str]] = []
    not_taken: list[dict[str, str]] = []
    for key in dict.fromkeys(keys):
        item = tracker.get(key)
        obj = waiting.get(key)
        alive = claim_alive(glue, m.etl_job, item)
        decision = reprocess_decision(key, obj.etag if obj else None, item, claim_alive=alive)
        ok, reason = decision.taken, decision.reason
        if decision.mark and item is not None and not tracker.mark_reprocess(item, time.time()):
            ok, reason = False, "its tracker item changed meanwhile: try again"
        (taken if ok else not_taken).append({"key": key, "reason": reason})
    queue_url = ""
    if taken:
        sqs = stack.aws.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=m.arrivals_queue)["QueueUrl"]
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(arrival_event(m.raw_bucket, [row["key"] for row in taken])),
        )
    return {
        "taken": taken,
        "not_taken": not_taken,
        "arrival_sent": bool(taken),
        "queue_url": queue_url,
    }


def arrival_event(bucket: str, keys: list[str]) -> dict:
    """One message as S3 would send for these uploads (the AssetWatcher only needs a message;
    the run's select_due_files decides what it takes)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": now,
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "musicpipe-reprocess"},
                "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
            }
            for key in keys
        ]
    }


def _utc_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def _print_reprocess(result: dict) -> None:
    table = Table(title="reprocess", title_justify="left")
    for col in ("file", "taken", "why"):
        table.add_column(col)
    for row in result["taken"]:
        table.add_row(row["key"], "[green]yes[/]", row["reason"])
    for row in result["not_taken"]:
        table.add_row(row["key"], "[red]no[/]", row["reason"])
    if not result["taken"] and not result["not_taken"]:
        table.add_row("(no file matched)", "", "")
    console.print(table)
    if result["arrival_sent"]:
        console.print(f"one arrival event sent to {result['queue_url']}: a run starts now")
