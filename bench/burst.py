"""A burst: 50 small stream files dropped at once on a fresh embedded stack with Airflow.

The files (~60 rows each, one listen day, ids from the sample set's songs and users; written
by musicpipe.data's stream generator) are uploaded together, a few at a time in flight, as
when a producer flushes its backlog. The benchmark waits until every file is COMPLETED and
archived, then checks what issue #17 asks of a burst: each file processed once (attempts 1,
archived once), every row accounted for, the KPIs equal to the DuckDB oracle's. Any miss
stops it with the reason.

Prints the time from the first upload to the last file archived and writes
bench-results/burst.json with burst_50_files_s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date
from pathlib import Path

from common import private_stack, write_results
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.healing_helpers import SONGS, USERS, Batch, Healing, day_files  # noqa: E402

console = Console()
DAY = date(2026, 11, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50, help="stream files in the burst")
    parser.add_argument("--rows", type=int, default=60, help="rows per stream file")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait at most")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="musicpipe-burst-") as tmp:
        names = [f"burst{n:03d}.csv" for n in range(args.files)]
        batch = Batch(DAY, day_files(Path(tmp), DAY, names, rows=args.rows), "burst")
        with private_stack(airflow=True) as stack:
            s3 = stack.aws.client("s3")
            s3.upload_file(str(SONGS), stack.manifest.raw_bucket, "songs/songs.csv")
            s3.upload_file(str(USERS), stack.manifest.raw_bucket, "users/users.csv")
            console.print(f"dropping {args.files} stream files of {args.rows} rows at once…")
            try:
                seconds = Healing(stack).burst(batch, args.timeout)
            except AssertionError as exc:
                raise SystemExit(f"burst failed: {exc}") from None
            runs = Healing(stack).runs()
    worked = [r for r in runs if r.tasks.get("write_kpis_to_dynamodb") == "success"]
    console.print(
        f"{args.files} files: {seconds:.1f} s from the first upload to the last archived, "
        f"in {len(worked)} DAG runs that wrote KPIs ({len(runs)} runs in all); each file "
        "once, KPIs equal to the oracle"
    )
    name = f"burst_{args.files}_files_s"
    figures = [{"name": name, "unit": "s", "value": round(seconds, 2)}]
    console.print(f"wrote {write_results('burst', figures)}")


if __name__ == "__main__":
    main()
