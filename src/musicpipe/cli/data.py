"""The data commands: `drop` (CSVs into the raw bucket), `kpis` (read back) and `generate`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from enum import StrEnum
from pathlib import Path

import botocore.exceptions
import typer
from rich.table import Table

from musicpipe.cli.console import EXIT_USAGE, JSON, cli_errors, console, err, fail, print_json
from musicpipe.cli.context import ANSWER_TIMEOUT, current_stack, require_running
from musicpipe.drop import plan_drops, upload
from musicpipe.manifest import load_manifest
from musicpipe.stack.base import StackError


class Kind(StrEnum):
    streams = "streams"
    songs = "songs"
    users = "users"


def drop(
    files: list[Path] = typer.Argument(..., help="CSV files, or folders of CSV files."),
    kind: Kind = typer.Option(
        None, "--kind", help="The files' kind (default: told by the header)."
    ),
) -> None:
    """Upload CSVs to the raw bucket under the prefix their columns call for."""
    with cli_errors():
        stack = current_stack()
        drops = plan_drops(files, kind.value if kind else None)
        require_running(stack)
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
        stack = current_stack()
        require_running(stack, timeout)
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
            console.print(
                kpi_report.top_songs_table(items, f"top songs, {genre}, by date", by_date=True)
            )
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
