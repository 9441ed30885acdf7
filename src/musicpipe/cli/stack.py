"""The stack's commands: `up`, `down`, `status`, `env` and `manifest`."""

from __future__ import annotations

import dataclasses
import json
import shlex
import time

import typer
from rich.markup import escape
from rich.table import Table

from musicpipe.aws.local import CREDENTIAL_VARIABLES, local_exports
from musicpipe.bootstrap import CREATED, DRIFTED, MISSING, UNCHANGED, UPDATED, summarize
from musicpipe.cli.console import EXIT_FAILURE, JSON, cli_errors, console, print_json
from musicpipe.cli.context import (
    STACKS,
    Stack,
    current_stack,
    load_context,
    require_airflow,
    require_running,
)
from musicpipe.cli.runs import run_dict, runs_table
from musicpipe.stack import choice
from musicpipe.stack.base import SUPERVISOR_ROW
from musicpipe.stack.compose import ComposeStack
from musicpipe.stack.embedded import EmbeddedStack
from musicpipe.stack.probe import NotRunning
from musicpipe.stack.settings import StackSettings

ACTION_STYLE = {
    CREATED: "green",
    UPDATED: "yellow",
    UNCHANGED: "dim",
    MISSING: "red",
    DRIFTED: "red",
}


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


def changes_table(changes, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("resource", "name", "state", "detail"):
        table.add_column(col)
    for c in changes:
        style = ACTION_STYLE.get(c.action, "")
        table.add_row(c.kind, escape(c.name), f"[{style}]{c.action}[/]", escape(c.detail))
    return table


def up(
    fresh: bool = typer.Option(False, "--fresh", help="Start empty: ignore the saved state."),
    timeout: float = typer.Option(
        900, "--timeout", help="Seconds the whole start may take before `up` gives up."
    ),
) -> None:
    """Start the stack (Compose if a Docker engine answers, else embedded) and create every
    pipeline resource. STACK=embedded|compose forces one."""
    with cli_errors():
        settings, manifest = load_context()
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
    console.print(changes_table(report.changes, "resources"))
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


def down(
    save: bool = typer.Option(True, "--save/--no-save", help="Save buckets and tables first."),
) -> None:
    """Save the state and stop every process `up` started."""
    with cli_errors():
        stack = current_stack()
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
    parts = "Airflow, Glue emulator, AWS"
    parts = f"supervisor, {parts}" if isinstance(stack, EmbeddedStack) else parts
    console.print(f"[green]stopped[/] the {stack.kind} stack ({parts})")


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
        stack = current_stack()
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
                        "restarts": svc.restarts,
                        "last_death": svc.last_death,
                        "last_exit": svc.last_exit,
                        "supervision": svc.supervision,
                        "note": svc.note,
                    }
                    for svc in st.services
                ],
                "resources": [
                    {"kind": r.kind, "name": r.name, "state": r.action, "detail": r.detail}
                    for r in st.resources
                ],
                "snapshot": None if st.snapshot is None else dataclasses.asdict(st.snapshot),
                "runs": None if runs is None else [run_dict(r) for r in runs],
                "airflow_url": stack.airflow.url,
                "engine": engine,
            }
        )
        raise typer.Exit(EXIT_FAILURE if down else 0)
    title = f"services ({stack.kind} stack{f' on {engine}' if engine else ''})"
    table = Table(title=title, title_justify="left")
    supervised = any(svc.name == SUPERVISOR_ROW for svc in st.services)
    columns = ("service", "state", "pid", "endpoint", "uptime", "restarts", "log")
    for col in columns if supervised else (c for c in columns if c != "restarts"):
        table.add_column(col, overflow="fold")
    for svc in st.services:
        state = {
            "healthy": "[green]healthy[/]",
            "busy": f"[yellow]running, busy (no answer in {timeout:.0f} s)[/]",
            "stopped": "[red]stopped[/]",
            "running": "[green]running[/]",
            "given up": "[red]given up[/]",
        }[states[svc.name]]
        uptime = f"{svc.uptime_s:.0f} s" if svc.uptime_s is not None else "-"
        restarts = [str(svc.restarts) if svc.name != SUPERVISOR_ROW else "-"] if supervised else []
        table.add_row(
            svc.name, state, str(svc.pid or "-"), svc.endpoint, uptime, *restarts, svc.log
        )
    console.print(table)
    for line in _supervision_lines(st.services):
        console.print(line, highlight=False)
    if st.resources:
        console.print(changes_table(st.resources, "resources"))
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
        console.print(runs_table(runs, f"last runs of {stack.manifest.dag_id}"))
    if runs_note:
        console.print(f"[yellow]{runs_note}[/]")
    if stack.airflow.is_running():
        console.print(f"Airflow UI: {stack.airflow.url}")
    if down:
        raise typer.Exit(EXIT_FAILURE)


def _supervision_lines(services) -> list[str]:
    """What the supervisor saw: each service's last death, and what to do about a dead one."""
    lines = []
    for svc in services:
        if svc.last_death is not None:
            when = time.strftime("%H:%M:%S", time.localtime(svc.last_death))
            lines.append(
                f"{escape(svc.name)}: last died at {when} ({escape(svc.last_exit or '?')}); "
                f"restarted {svc.restarts} time(s) since `up`; {escape(svc.supervision or '')}"
            )
        if svc.note and not svc.running:
            lines.append(f"[red]{escape(svc.name)}[/]: {escape(svc.note)}")
    return lines


def _service_state(svc) -> str:
    """healthy, busy (runs but does not answer) or stopped; the supervisor's row: running,
    given up (on a service) or stopped."""
    if svc.name == SUPERVISOR_ROW:
        return svc.supervision or ("running" if svc.running else "stopped")
    if svc.healthy:
        return "healthy"
    return "busy" if svc.running else "stopped"


def _settle(stack: Stack, timeout: float) -> set[str]:
    """Give each running component up to ``timeout`` to answer, so a busy one is not shown as
    down; the names of those that stayed busy."""
    from musicpipe.stack.probe import StillBusy

    busy = set()
    for name, running, wait_for in (
        ("AWS", stack.aws_alive, require_running),
        ("Airflow", stack.airflow.is_running, require_airflow),
    ):
        if running():
            try:
                wait_for(stack, timeout)
            except StillBusy:
                busy.add(name)
            except NotRunning:
                pass  # it stopped meanwhile: the table says so
    return busy


def env() -> None:
    """Print shell exports for the local stack: eval "$(musicpipe env)"."""
    with cli_errors():
        settings, manifest = load_context()
        exports = local_exports(settings.aws_endpoint, manifest.region, settings.glue_endpoint)
    print("unset " + " ".join(CREDENTIAL_VARIABLES))
    for key, value in exports.items():
        print(f"export {key}={shlex.quote(value)}")


def manifest(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The resource names, settings and Glue jobs in force (defaults, config file,
    environment)."""
    with cli_errors():
        settings, m = load_context()
    if as_json:
        print(json.dumps({**m.as_dict(), "stack": _stack_dict(settings)}, indent=2))
        return
    table = Table(title="manifest", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    for key, value in {**m.names, **m.settings, **_stack_dict(settings)}.items():
        table.add_row(key, str(value))
    console.print(table)
    jobs = Table(title="glue jobs", title_justify="left")
    for col in ("name", "command", "script", "from"):
        jobs.add_column(col, overflow="fold")
    for spec in m.glue_jobs:
        jobs.add_row(spec.name, spec.command, escape(spec.script), escape(spec.source))
    console.print(jobs)
    console.print("overrides from: " + (", ".join(m.source) or "none (all defaults)"))


def _stack_dict(settings: StackSettings) -> dict[str, object]:
    return {
        "host": settings.host,
        "aws_port": settings.aws_port,
        "glue_port": settings.glue_port,
        "airflow_port": settings.airflow_port,
        "airflow": settings.airflow,
        "state_dir": str(settings.state_dir),
        "restart_backoff_seconds": settings.restart_backoff_seconds,
        "restart_max_backoff_seconds": settings.restart_max_backoff_seconds,
        "restart_limit": settings.restart_limit,
        "restart_window_seconds": settings.restart_window_seconds,
    }
