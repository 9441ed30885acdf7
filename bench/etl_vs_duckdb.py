"""The ETL job against the DuckDB oracle, and the cost of one new file on a long history.

1. For 1 M and 10 M generated stream rows (files of 1 M rows, real-size songs and users): the
   ETL's wall time (StartJobRun → SUCCEEDED on the Glue emulator, data in the local S3) and
   rows/s, beside the DuckDB oracle's time on the same files in the same run.
2. One new 11,346-row file when 30 days of history (≥ 1 M rows) are already processed, beside
   the same file on an empty store.

Prints a table and writes bench-results/etl.json (benchmark-action format), including
etl_vs_duckdb_ratio_10m and incremental_vs_empty_ratio. `--quick` runs 100 k / 300 k rows
(to try the benchmark itself, not for the targets).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from common import private_stack, timed_run, write_results
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import oracle  # noqa: E402

from musicpipe.artifacts import deploy_jobs  # noqa: E402
from musicpipe.aws.local import LOCAL_ACCOUNT_ID  # noqa: E402
from musicpipe.data.catalogue import Catalogue  # noqa: E402
from musicpipe.data.common import DEFAULT_ROWS_PER_FILE, DEFAULT_SEED  # noqa: E402
from musicpipe.data.songs import write_songs  # noqa: E402
from musicpipe.data.streams import write_streams  # noqa: E402
from musicpipe.data.users import write_users  # noqa: E402
from musicpipe.pipeline.kpi_writer import write_staged_kpis  # noqa: E402

console = Console()
ROWS_PER_FILE = 1_000_000
FIRST_DAY = date(2026, 10, 1)
# Every streams file references the real-size catalogue written by write_songs/write_users.
CATALOGUE = Catalogue.generated(DEFAULT_SEED, 89_741, 50_000)


def run_etl(stack, batch_id: str) -> float:
    glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
    return timed_run(glue, stack.manifest.etl_job, {"--batch_id": batch_id}, poll=0.5)


def prepared_stack(stack, songs: Path, users: Path) -> None:
    s3 = stack.aws.client("s3")
    glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
    deploy_jobs(s3, glue, stack.manifest, LOCAL_ACCOUNT_ID)
    s3.upload_file(str(songs), stack.manifest.raw_bucket, "songs/songs.csv")
    s3.upload_file(str(users), stack.manifest.raw_bucket, "users/users.csv")


def upload_streams(stack, paths: list[Path]) -> None:
    s3 = stack.aws.client("s3")
    for path in paths:
        s3.upload_file(str(path), stack.manifest.raw_bucket, f"streams/{path.name}")


def scale_run(work: Path, songs: Path, users: Path, total_rows: int) -> dict:
    files = []
    for i in range(max(1, total_rows // ROWS_PER_FILE)):
        rows = min(ROWS_PER_FILE, total_rows)
        path = work / f"scale{total_rows}_{i + 1}.csv"
        with console.status(f"generating {path.name} ({rows:,} rows)…"):
            write_streams(path, rows, seed=100 + i, catalogue=CATALOGUE, days=7)
        files.append(path)
    with private_stack() as stack:
        prepared_stack(stack, songs, users)
        with console.status(f"uploading {total_rows:,} rows to the local S3…"):
            upload_streams(stack, files)
        with console.status(f"ETL over {total_rows:,} rows…"):
            etl_s = run_etl(stack, f"scale-{total_rows}")
    with console.status(f"DuckDB oracle over {total_rows:,} rows…"):
        started = time.perf_counter()
        oracle.kpis_from_files(songs, users, files)
        duckdb_s = time.perf_counter() - started
    for path in files:
        path.unlink()
    console.print(
        f"{total_rows:,} rows: ETL {etl_s:.1f} s, DuckDB {duckdb_s:.1f} s ({etl_s / duckdb_s:.1f}×)"
    )
    return {"rows": total_rows, "etl_s": etl_s, "duckdb_s": duckdb_s}


def incremental_run(work: Path, songs: Path, users: Path, history_rows: int) -> dict:
    """30 daily files of history (one day each, as deliveries are), then one new file on the
    last day, which touches that one date."""
    history = []
    files = 30
    for day in range(files):
        path = work / f"history_{day + 1:02d}.csv"
        write_streams(
            path,
            history_rows // files,
            seed=500 + day,
            catalogue=CATALOGUE,
            start_date=FIRST_DAY + timedelta(days=day),
        )
        history.append(path)
    new_file = work / "new_file.csv"
    write_streams(
        new_file,
        DEFAULT_ROWS_PER_FILE,
        seed=999,
        catalogue=CATALOGUE,
        start_date=FIRST_DAY + timedelta(days=files - 1),
    )
    with private_stack() as stack:
        prepared_stack(stack, songs, users)
        upload_streams(stack, [new_file])
        with console.status("new file on an empty store…"):
            empty_s = run_etl(stack, "new-on-empty")
    with private_stack() as stack:
        prepared_stack(stack, songs, users)
        upload_streams(stack, history)
        with console.status(f"processing {history_rows:,} rows of history…"):
            run_etl(stack, "history")
            # As the DAG does: the writer marks the files COMPLETED, so they are history.
            write_staged_kpis(
                stack.aws.client("s3"),
                stack.aws.session.resource(
                    "dynamodb", endpoint_url=stack.aws.endpoint, config=stack.aws.config
                ),
                stack.manifest.processed_bucket,
                stack.manifest.kpi_table,
                stack.manifest.tracker_table,
                "history",
            )
        upload_streams(stack, [new_file])
        with console.status("new file on 30 days of history…"):
            history_s = run_etl(stack, "new-on-history")
    for path in [*history, new_file]:
        path.unlink()
    return {"empty_s": empty_s, "history_s": history_s, "history_rows": history_rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the bench")
    parser.add_argument("--only", choices=["scale", "incremental"], help="run one part")
    args = parser.parse_args()
    sizes = [100_000, 300_000] if args.quick else [1_000_000, 10_000_000]
    history_rows = 150_000 if args.quick else 1_050_000
    os.environ.setdefault("MUSICPIPE_SPARK_DRIVER_MEMORY", "8g")
    os.environ.setdefault("MUSICPIPE_GLUE_MINUTE_SECONDS", "600")  # no Timeout in the bench

    with tempfile.TemporaryDirectory(prefix="musicpipe-etl-bench-") as tmp:
        work = Path(tmp)
        songs, users = work / "songs.csv", work / "users.csv"
        write_songs(songs)
        write_users(users)
        scale = (
            [] if args.only == "incremental" else [scale_run(work, songs, users, n) for n in sizes]
        )
        incremental = (
            None if args.only == "scale" else incremental_run(work, songs, users, history_rows)
        )

    table = Table(title="ETL (Glue emulator, Spark) vs DuckDB oracle")
    for col in ("stream rows", "ETL (s)", "ETL rows/s", "DuckDB (s)", "ETL / DuckDB"):
        table.add_column(col, justify="right")
    figures = []
    for r in scale:
        ratio = r["etl_s"] / r["duckdb_s"]
        label = f"{r['rows'] // 1_000_000}m" if r["rows"] >= 1_000_000 else f"{r['rows'] // 1000}k"
        table.add_row(
            f"{r['rows']:,}",
            f"{r['etl_s']:.1f}",
            f"{r['rows'] / r['etl_s']:,.0f}",
            f"{r['duckdb_s']:.1f}",
            f"{ratio:.1f}×",
        )
        figures += [
            {"name": f"etl_wall_s_{label}", "unit": "s", "value": round(r["etl_s"], 2)},
            {
                "name": f"etl_rows_per_s_{label}",
                "unit": "rows/s",
                "value": round(r["rows"] / r["etl_s"]),
            },
            {"name": f"duckdb_wall_s_{label}", "unit": "s", "value": round(r["duckdb_s"], 2)},
            {"name": f"etl_vs_duckdb_ratio_{label}", "unit": "ratio", "value": round(ratio, 2)},
        ]
    console.print(table)
    inc = incremental
    if inc is None:
        console.print(f"written to {write_results('etl', figures)}")
        return
    ratio = inc["history_s"] / inc["empty_s"]
    console.print(
        f"one new {DEFAULT_ROWS_PER_FILE:,}-row file: {inc['empty_s']:.1f} s on an empty store, "
        f"{inc['history_s']:.1f} s on 30 days of history ({inc['history_rows']:,} rows): "
        f"{ratio:.2f}× (target ≤ 1.5×)"
    )
    figures += [
        {"name": "incremental_new_file_empty_s", "unit": "s", "value": round(inc["empty_s"], 2)},
        {
            "name": "incremental_new_file_history_s",
            "unit": "s",
            "value": round(inc["history_s"], 2),
        },
        {"name": "incremental_vs_empty_ratio", "unit": "ratio", "value": round(ratio, 2)},
    ]
    console.print(f"written to {write_results('etl', figures)}")


if __name__ == "__main__":
    main()
