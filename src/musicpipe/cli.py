"""`musicpipe`: start, inspect and feed the local AWS mirror of the pipeline."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

import botocore.exceptions
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from musicpipe.aws.local import CREDENTIAL_VARIABLES, UnsafeEndpointError, local_exports
from musicpipe.bootstrap import CREATED, DRIFTED, MISSING, UNCHANGED, UPDATED, summarize
from musicpipe.drop import DropError, plan_drops, upload
from musicpipe.manifest import ConfigError, Manifest, load_manifest
from musicpipe.processes import PRIVATE_UMASK
from musicpipe.stack import choice
from musicpipe.stack.airflow_api import AirflowError
from musicpipe.stack.base import StackError
from musicpipe.stack.compose import ComposeStack
from musicpipe.stack.embedded import EmbeddedStack
from musicpipe.stack.preflight import PreflightError
from musicpipe.stack.probe import NotRunning, await_up
from musicpipe.stack.settings import StackSettings, load_settings

app = typer.Typer(
    help="Local-first AWS mirror for the music-streaming pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


@app.callback()
def _private_state() -> None:
    # What the CLI writes (the state folder, snapshots, PID and log files) is the user's
    # alone; the services it starts get the same umask (processes.py).
    os.umask(PRIVATE_UMASK)


ACTION_STYLE = {
    CREATED: "green",
    UPDATED: "yellow",
    UNCHANGED: "dim",
    MISSING: "red",
    DRIFTED: "red",
}


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


class Kind(StrEnum):
    streams = "streams"
    songs = "songs"
    users = "users"


class LogStream(StrEnum):
    output = "output"
    error = "error"
    all = "all"


def _context() -> tuple[StackSettings, Manifest]:
    return load_settings(), load_manifest()


Stack = EmbeddedStack | ComposeStack
STACKS: dict[str, type[EmbeddedStack] | type[ComposeStack]] = {
    choice.EMBEDDED: EmbeddedStack,
    choice.COMPOSE: ComposeStack,
}


def _stack() -> Stack:
    """The stack the last `up` started (or the one STACK forces; embedded if none yet)."""
    settings, manifest = _context()
    kind = settings.stack
    if kind == choice.AUTO:
        kind = choice.recorded(settings.state_dir) or choice.EMBEDDED
    return STACKS[kind](settings, manifest)


# How long a command waits for a busy component before it gives up (`wait` uses its own).
ANSWER_TIMEOUT = 60.0


def _require_running(stack: Stack, timeout: float = ANSWER_TIMEOUT, on_busy=None) -> None:
    """The local AWS answers: at once when it is not running, within ``timeout`` when busy."""
    await_up(
        f"the local AWS ({stack.settings.aws_endpoint})",
        stack.aws_probe,
        stack.aws_alive,
        timeout,
        on_busy=on_busy or (lambda message: None),
    )


def _require_airflow(stack: Stack, timeout: float, on_busy=None) -> None:
    """Our own Airflow answers (another program may hold its port)."""
    what = f"Airflow ({stack.airflow.url})"
    if not stack.airflow.is_running():
        if isinstance(stack, EmbeddedStack) and not stack.settings.airflow:
            raise NotRunning(
                f"{what} is not running: this stack runs without it (MUSICPIPE_AIRFLOW=0 or "
                "[stack] airflow = false); turn it on and run `make up`"
            )
        raise NotRunning(f"{what} is not running; start it with `make up` (or `musicpipe up`)")
    await_up(
        what,
        stack.airflow.probe,
        stack.airflow.is_running,
        timeout,
        on_busy=on_busy or (lambda message: None),
    )


class UpProgress:
    """`up`'s stages as they happen: the spinner shows the current step, and a line with its
    time is printed when a stage ends (also where no terminal shows the spinner, as in CI)."""

    def __init__(self, spinner) -> None:
        self.spinner = spinner
        self.started = time.monotonic()
        self.stage: str | None = None
        self.stage_started = self.started

    def __call__(self, message: str) -> None:
        stage = message.split(":", 1)[0]
        now = time.monotonic()
        if stage != self.stage:
            self.done()
            self.stage, self.stage_started = stage, now
        if self.spinner is not None:
            self.spinner.update(f"{escape(message)} [dim]({now - self.started:.0f} s)[/]")

    def done(self) -> None:
        if self.stage is not None:
            took = time.monotonic() - self.stage_started
            console.print(f"  [green]✓[/] {escape(self.stage)} [dim]{took:.1f} s[/]")
        self.stage = None


def _changes_table(changes, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("resource", "name", "state", "detail"):
        table.add_column(col)
    for c in changes:
        style = ACTION_STYLE.get(c.action, "")
        table.add_row(c.kind, c.name, f"[{style}]{c.action}[/]", c.detail)
    return table


@app.command()
def up(
    fresh: bool = typer.Option(False, "--fresh", help="Start empty: ignore the saved state."),
    timeout: float = typer.Option(
        900, "--timeout", help="Seconds the whole start may take before `up` gives up."
    ),
) -> None:
    """Start the stack (Compose if a Docker engine answers, else embedded) and create every
    pipeline resource. STACK=embedded|compose forces one."""
    with cli_errors():
        settings, manifest = _context()
        chosen = choice.choose(settings.stack)
        console.print(f"stack: [bold]{chosen.kind}[/] ({escape(chosen.reason)})")
        stack = STACKS[chosen.kind](settings, manifest)
        # Recorded first: if `up` fails half-way, `down` still reaches what it started.
        choice.record(settings.state_dir, chosen.kind)
        if chosen.kind == choice.COMPOSE:
            choice.record_engine(settings.state_dir, chosen.host, chosen.engine)
        with console.status(f"starting the {chosen.kind} stack…") as spinner:
            progress = UpProgress(spinner)
            report = stack.up(fresh=fresh, timeout=timeout, progress=progress)
            progress.done()
        console.print(f"ready in {time.monotonic() - progress.started:.0f} s")
    s = stack.settings
    what = "embedded AWS (moto)"
    if isinstance(stack, ComposeStack):
        what = "moto (image)" if stack.on_moto else "LocalStack"
    if report.already_running:
        console.print(f"{what} already running on {s.aws_endpoint}")
    else:
        console.print(f"[green]{what} up[/] on {s.aws_endpoint}")
    console.print(f"Glue job emulator on {s.glue_endpoint}")
    console.print(_changes_table(report.changes, "resources"))
    console.print(summarize(report.changes))
    if report.recovery is not None and not report.recovery.stale:
        console.print(
            f"[bold yellow]unclean stop:[/] {what} was not stopped by `down` (killed or crashed)"
        )
    if report.restored is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.restored.taken_at))
        console.print(f"restored the saved state: {report.restored.describe()} (saved {when})")
    if report.recovery is not None:
        for line in report.recovery.describe():
            console.print(escape(line), highlight=False)
    elif fresh:
        console.print("started fresh: the saved state was not loaded")
    if isinstance(stack, ComposeStack) or s.airflow:
        user, password = stack.airflow.login()
        console.print(
            f"[green]Airflow[/] UI on [bold]{stack.airflow.url}[/] "
            f"(login {user} / {escape(password)}); DAG {stack.manifest.dag_id} is unpaused and "
            f"starts when a file lands in s3://{stack.manifest.raw_bucket}/streams/"
        )
    console.print('point your shell at it: [bold]eval "$(musicpipe env)"[/]')
    if isinstance(stack, EmbeddedStack):
        console.print(f"service logs: {stack.settings.logs_dir}")
    else:
        console.print("service logs: docker compose -p musicpipe logs [service]")


@app.command()
def down(
    save: bool = typer.Option(True, "--save/--no-save", help="Save buckets and tables first."),
) -> None:
    """Save the state and stop every process `up` started."""
    with cli_errors():
        stack = _stack()
        running = stack.is_running()
        with console.status("saving state and stopping…"):
            saved = stack.down(save=save) if running else None
    if not running:
        console.print(f"the {stack.kind} stack was not running; nothing to stop")
        return
    if saved is not None:
        console.print(f"saved {saved.describe()} to {stack.settings.snapshot_dir}")
    elif save and isinstance(stack, EmbeddedStack) and stack.settings.journal_file.exists():
        console.print(
            "[yellow]not saved:[/] the AWS was not answering, or the journal of an unclean stop "
            f"was not replayed yet; the next `up` replays {stack.settings.journal_file}"
        )
    console.print(f"[green]stopped[/] the {stack.kind} stack (Airflow, Glue emulator, AWS)")


@app.command()
def status(
    timeout: float = typer.Option(
        30, "--timeout", help="Seconds to give a busy component to answer."
    ),
    as_json: bool = JSON,
) -> None:
    """What runs, where, and which pipeline resources exist. Exits 1 when a component is
    down (stopped)."""
    from musicpipe.stack.runs import is_busy_error, run_views

    with cli_errors():
        stack = _stack()
        busy = _settle(stack, timeout)
        st = stack.status()
        runs, runs_note = None, None
        # Only our own Airflow: another program may answer on the port.
        if stack.airflow.is_running() and "Airflow" not in busy:
            try:
                runs = run_views(stack.airflow, limit=5)
            except Exception as exc:
                if not is_busy_error(exc):
                    raise
                runs_note = f"Airflow is busy ({type(exc).__name__}): runs not shown"
        engine = stack.engine().get("name") if isinstance(stack, ComposeStack) else None
    states = {svc.name: _service_state(svc) for svc in st.services}
    # Down means stopped; a component that runs but answers slowly is busy, not down.
    down = [name for name, state in states.items() if state == "stopped"]
    if as_json:
        print_json(
            {
                "stack": stack.kind,
                "services": [
                    {
                        "name": svc.name,
                        "state": states[svc.name],
                        "pid": svc.pid,
                        "endpoint": svc.endpoint,
                        "uptime_s": svc.uptime_s,
                        "log": svc.log,
                    }
                    for svc in st.services
                ],
                "resources": [
                    {"kind": r.kind, "name": r.name, "state": r.action, "detail": r.detail}
                    for r in st.resources
                ],
                "snapshot": None if st.snapshot is None else dataclasses.asdict(st.snapshot),
                "runs": None if runs is None else [_run_dict(r) for r in runs],
                "airflow_url": stack.airflow.url,
                "engine": engine,
            }
        )
        raise typer.Exit(EXIT_FAILURE if down else 0)
    title = f"services ({stack.kind} stack{f' on {engine}' if engine else ''})"
    table = Table(title=title, title_justify="left")
    for col in ("service", "state", "pid", "endpoint", "uptime", "log"):
        table.add_column(col, overflow="fold")
    for svc in st.services:
        state = {
            "healthy": "[green]healthy[/]",
            "busy": f"[yellow]running, busy (no answer in {timeout:.0f} s)[/]",
            "stopped": "[red]stopped[/]",
        }[states[svc.name]]
        uptime = f"{svc.uptime_s:.0f} s" if svc.uptime_s is not None else "-"
        table.add_row(svc.name, state, str(svc.pid or "-"), svc.endpoint, uptime, svc.log)
    console.print(table)
    if st.resources:
        console.print(_changes_table(st.resources, "resources"))
        missing = [r for r in st.resources if r.action != UNCHANGED]
        if missing:
            console.print(
                f"[red]{len(missing)} resources missing or drifted[/]: run `musicpipe up`"
            )
        else:
            console.print(f"all {len(st.resources)} resources in place")
    if st.snapshot is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.snapshot.taken_at))
        console.print(f"saved state: {st.snapshot.describe()} (saved {when})")
    if runs is not None:
        console.print(_runs_table(runs, f"last runs of {stack.manifest.dag_id}"))
    if runs_note:
        console.print(f"[yellow]{runs_note}[/]")
    if stack.airflow.is_running():
        console.print(f"Airflow UI: {stack.airflow.url}")
    if down:
        raise typer.Exit(EXIT_FAILURE)


def _service_state(svc) -> str:
    """healthy, busy (runs but does not answer) or stopped."""
    if svc.healthy:
        return "healthy"
    return "busy" if svc.running else "stopped"


def _run_dict(run) -> dict[str, object]:
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


def _settle(stack: Stack, timeout: float) -> set[str]:
    """Give each running component up to ``timeout`` to answer, so a busy one is not shown as
    down; the names of those that stayed busy."""
    from musicpipe.stack.probe import StillBusy

    busy = set()
    for name, running, wait_for in (
        ("AWS", stack.aws_alive, _require_running),
        ("Airflow", stack.airflow.is_running, _require_airflow),
    ):
        if running():
            try:
                wait_for(stack, timeout)
            except StillBusy:
                busy.add(name)
            except NotRunning:
                pass  # it stopped meanwhile: the table says so
    return busy


STATE_STYLE = {"success": "green", "failed": "red", "running": "yellow", "queued": "yellow"}


def _runs_table(runs, title: str) -> Table:
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


@app.command()
def env() -> None:
    """Print shell exports for the local stack: eval "$(musicpipe env)"."""
    with cli_errors():
        settings, manifest = _context()
        exports = local_exports(settings.aws_endpoint, manifest.region, settings.glue_endpoint)
    print("unset " + " ".join(CREDENTIAL_VARIABLES))
    for key, value in exports.items():
        print(f"export {key}={shlex.quote(value)}")


@app.command()
def drop(
    files: list[Path] = typer.Argument(..., help="CSV files, or folders of CSV files."),
    kind: Kind = typer.Option(
        None, "--kind", help="The files' kind (default: told by the header)."
    ),
) -> None:
    """Upload CSVs to the raw bucket under the prefix their columns call for."""
    with cli_errors():
        stack = _stack()
        drops = plan_drops(files, kind.value if kind else None)
        _require_running(stack)
        bucket = stack.manifest.raw_bucket
        stack.settings.state_dir.mkdir(parents=True, exist_ok=True)
        (stack.settings.state_dir / "last_drop").write_text(str(time.time()))
        upload(stack.aws.client("s3"), bucket, drops)
    table = Table(title=f"dropped into s3://{bucket}", title_justify="left")
    for col in ("file", "kind", "key"):
        table.add_column(col)
    for d in drops:
        table.add_row(str(d.path), d.kind, d.key)
    console.print(table)


@app.command()
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
        stack = _stack()
        deadline = time.monotonic() + timeout
        # Right after `up` (or beside a Spark job) Airflow may take seconds to answer: only a
        # component that is not running ends the wait at once.
        _require_running(stack, timeout, on_busy=spinner.update)
        _require_airflow(stack, max(deadline - time.monotonic(), 1), on_busy=spinner.update)
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
        print_json({"runs": [_run_dict(r) for r in runs], "failed": [r.run_id for r in failed]})
        raise typer.Exit(EXIT_FAILURE if failed else 0)
    console.print(_runs_table(runs, "DAG runs since the drop"))
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


@app.command()
def kpis(
    day: str = typer.Option(None, "--date", help="YYYY-MM-DD (default: the latest date)."),
    genre: str = typer.Option(None, "--genre", help="One genre: its KPIs over every date."),
    limit: int = typer.Option(10, "--limit", help="Genres to list for a day (0: all)."),
    timeout: float = typer.Option(
        ANSWER_TIMEOUT, "--timeout", help="Seconds to give a busy local AWS to answer."
    ),
    as_json: bool = JSON,
) -> None:
    """Print KPIs from the local DynamoDB table as tables (or the items, with --json)."""
    from musicpipe import kpi_report
    from musicpipe.pipeline.kpi_writer import kpi_items_for_date

    if day is not None:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise fail(f"--date {day!r} is not YYYY-MM-DD", EXIT_USAGE) from None
    with cli_errors(), _table_named(load_manifest().kpi_table):
        stack = _stack()
        _require_running(stack, timeout)
        dynamodb = stack.aws.session.resource(
            "dynamodb", endpoint_url=stack.aws.endpoint, config=stack.aws.config
        )
        table = stack.manifest.kpi_table
        if genre is not None and day is None:
            items = kpi_report.genre_items(dynamodb, table, genre)
            if not items:
                raise StackError(f"no KPIs for genre {genre!r} in {table}")
            if as_json:
                print_json({"genre": genre, "items": items})
                return
            console.print(kpi_report.genres_table(items, f"{genre}, by date", by_date=True))
            return
        dates = kpi_report.kpi_dates(dynamodb, table)
        if not dates:
            raise StackError(
                f"{table} holds no KPIs yet: drop stream files (`make drop`) and wait for the DAG"
            )
        chosen = day or dates[-1]
        items = kpi_items_for_date(dynamodb, table, chosen)
        if not items:
            raise StackError(f"no KPIs for {chosen}; dates with KPIs: {', '.join(dates)}")
        if genre is not None and not any(i.get("genre") == genre for i in items):
            raise StackError(f"no KPIs for genre {genre!r} on {chosen}")
    if as_json:
        print_json({"date": chosen, "dates": dates, "items": items})
        return
    for t in kpi_report.day_tables(items, chosen, genre, limit):
        console.print(t)
    if day is None and len(dates) > 1:
        console.print(f"other dates: {', '.join(d for d in dates if d != chosen)} (--date)")


@contextmanager
def _table_named(table: str) -> Iterator[None]:
    """A missing table is named, with what to do."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        raise StackError(f"table {table} not found: run `make up` to create it") from None


@app.command()
def logs(
    job: str = typer.Argument(None, help="Glue job name (default: the most recent run of any)."),
    run_id: str = typer.Option(None, "--run", help="A run id (default: the job's latest run)."),
    stream: LogStream = typer.Option(LogStream.all, "--stream", help="Which log group."),
    as_json: bool = JSON,
) -> None:
    """Print a Glue job run's logs from CloudWatch Logs (stream = run id)."""
    from musicpipe.stack.job_logs import LogsError, read_run_logs

    with cli_errors():
        stack = _stack()
        _require_running(stack)
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


@app.command()
def manifest(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The resource names and settings in force (defaults, config file, environment)."""
    with cli_errors():
        settings, m = _context()
    if as_json:
        print(json.dumps({**m.as_dict(), "stack": _stack_dict(settings)}, indent=2))
        return
    table = Table(title="manifest", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    for key, value in {**m.names, **m.settings, **_stack_dict(settings)}.items():
        table.add_row(key, str(value))
    console.print(table)
    console.print("overrides from: " + (", ".join(m.source) or "none (all defaults)"))


def _stack_dict(settings: StackSettings) -> dict[str, object]:
    return {
        "host": settings.host,
        "aws_port": settings.aws_port,
        "glue_port": settings.glue_port,
        "airflow_port": settings.airflow_port,
        "airflow": settings.airflow,
        "state_dir": str(settings.state_dir),
    }


promote_app = typer.Typer(
    help="Bring a real AWS account in line with the manifest: plan (default), then apply.",
    no_args_is_help=False,
)
app.add_typer(promote_app, name="promote")

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


@app.command()
def generate(
    out_dir: Path = typer.Argument(Path("generated"), help="Folder to write the CSVs into."),
    seed: int = typer.Option(42, help="Same seed, same bytes."),
    songs: int = typer.Option(89_741, help="Songs in songs.csv."),
    users: int = typer.Option(50_000, help="Users in users.csv."),
    files: int = typer.Option(3, help="Stream files."),
    rows_per_file: int = typer.Option(11_346, help="Rows per stream file."),
    days: int = typer.Option(1, help="Days the stream files cover."),
    start_date: str = typer.Option("2026-11-01", help="First day (YYYY-MM-DD)."),
    duplicate_rate: float = typer.Option(0.0, help="Share of exact duplicate events."),
    sample: bool = typer.Option(False, "--sample", help="Write the committed sample set."),
) -> None:
    """Write realistic songs, users and stream files (deterministic by seed)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from musicpipe.data import generator

    try:
        first_day = date.fromisoformat(start_date)
    except ValueError:
        err.print(f"[bold red]error:[/] --start-date {start_date!r} is not YYYY-MM-DD")
        raise typer.Exit(2) from None
    for name, value in (("songs", songs), ("users", users), ("files", files), ("days", days)):
        if value < 1:
            err.print(f"[bold red]error:[/] --{name} must be at least 1, got {value}")
            raise typer.Exit(2)
    if rows_per_file < 0 or not 0 <= duplicate_rate < 1:
        err.print("[bold red]error:[/] --rows-per-file ≥ 0 and 0 ≤ --duplicate-rate < 1")
        raise typer.Exit(2)
    if sample:
        written = generator.write_sample_set(out_dir)
        console.print(f"wrote the sample set ({len(written.paths)} files) to {out_dir}")
        return
    total = songs + users + files * rows_per_file
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("rows", total=total)
        written = generator.generate_dataset(
            out_dir,
            seed=seed,
            songs=songs,
            users=users,
            stream_files=files,
            rows_per_file=rows_per_file,
            start_date=first_day,
            days=days,
            duplicate_rate=duplicate_rate,
            progress=lambda n: progress.advance(task, n),
        )
    console.print(
        f"wrote {written.songs_rows:,} songs, {written.users_rows:,} users and "
        f"{written.total_stream_rows:,} stream rows in {len(written.stream_paths)} files "
        f"to {out_dir}"
    )


if __name__ == "__main__":
    app()
