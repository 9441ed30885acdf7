"""End-to-end latency on the embedded stack with Airflow: a file lands in S3 → KPI items written.

A private stack (moto, the Glue emulator, Airflow) gets real-size songs and users, then one new
11,346-row stream file at a time. For each file: landed = when the PUT returned; written = the
end of the DAG's write_kpis_to_dynamodb task (its KPI items are in DynamoDB then). The first file
warms up (not counted); the figure is the median of the next ``--runs``.

Shares: where the time went, per task of the run (its duration) plus "arrival → run start"
(S3 event → SQS → AssetWatcher → scheduler) and "between tasks" (scheduling gaps).

Prints a table and writes bench-results/e2e.json with e2e_latency_s (and the shares).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import private_stack, write_results
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musicpipe.data.common import DEFAULT_ROWS_PER_FILE  # noqa: E402
from musicpipe.data.generator import generate_dataset  # noqa: E402
from musicpipe.stack.runs import wait_until_idle  # noqa: E402

console = Console()
MAIN_PATH = (
    "wait_for_streams_files",
    "validate_data_quality",
    "check_validation_status",
    "realtime_etl_processing",
    "write_kpis_to_dynamodb",
)


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def one_file(stack, sqs, queue_url: str, path: Path, key: str) -> dict[str, float]:
    s3 = stack.aws.client("s3")
    since = datetime.now(UTC)
    s3.upload_file(str(path), stack.manifest.raw_bucket, key)
    landed = datetime.now(UTC)
    runs = wait_until_idle(stack.airflow, sqs, queue_url, since, timeout=900)
    worked = [r for r in runs if r.tasks.get("write_kpis_to_dynamodb") == "success"]
    if len(worked) != 1 or any(r.state != "success" for r in runs):
        raise SystemExit(f"expected one successful run for {key}, got {runs}")
    run = worked[0]
    tis = {t["task_id"]: t for t in stack.airflow.task_instances(run.run_id)}
    written = _when(tis["write_kpis_to_dynamodb"]["end_date"])
    shares = {"arrival → run start": (run.started - landed).total_seconds()}
    for task in MAIN_PATH:
        shares[task] = float(tis[task]["duration"] or 0)
    total = (written - landed).total_seconds()
    shares["between tasks"] = total - sum(shares.values())
    return {"total": total, **shares}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured files (after a warm-up)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="musicpipe-e2e-") as tmp:
        console.print("generating real-size songs/users and the stream files…")
        data = generate_dataset(
            Path(tmp), stream_files=args.runs + 1, rows_per_file=DEFAULT_ROWS_PER_FILE
        )
        with private_stack(airflow=True) as stack:
            s3 = stack.aws.client("s3")
            raw = stack.manifest.raw_bucket
            s3.upload_file(str(data.songs_path), raw, "songs/songs.csv")
            s3.upload_file(str(data.users_path), raw, "users/users.csv")
            sqs = stack.aws.client("sqs")
            queue_url = sqs.get_queue_url(QueueName=stack.manifest.arrivals_queue)["QueueUrl"]
            results = []
            for i, path in enumerate(data.stream_paths):
                started = time.monotonic()
                figures = one_file(stack, sqs, queue_url, path, f"streams/{path.name}")
                label = "warm-up" if i == 0 else f"run {i}"
                console.print(
                    f"{label}: {figures['total']:.1f} s landed → KPIs written "
                    f"({time.monotonic() - started:.0f} s until idle)"
                )
                if i > 0:
                    results.append(figures)

    parts = [k for k in results[0] if k != "total"]
    median = {k: statistics.median(r[k] for r in results) for k in results[0]}
    table = Table(
        title=f"file landed → KPI items written, one {DEFAULT_ROWS_PER_FILE:,}-row file "
        f"(median of {len(results)})",
        title_justify="left",
    )
    for col in ("part", "median s", "share"):
        table.add_column(col, justify="right" if col != "part" else "left")
    for part in parts:
        table.add_row(part, f"{median[part]:.1f}", f"{median[part] / median['total']:.0%}")
    table.add_row("[bold]total[/]", f"[bold]{median['total']:.1f}[/]", "100%")
    console.print(table)
    goal = 30.0
    verdict = "met" if median["total"] <= goal else "missed"
    console.print(f"goal ≤ {goal:.0f} s: {verdict}")
    figures = [{"name": "e2e_latency_s", "unit": "s", "value": round(median["total"], 2)}]
    figures += [
        {
            "name": f"e2e_share_{p.replace(' → ', '_to_').replace(' ', '_')}_s",
            "unit": "s",
            "value": round(median[p], 2),
        }
        for p in parts
    ]
    console.print(f"wrote {write_results('e2e', figures)}")


if __name__ == "__main__":
    main()
