"""Edit a job's script, see the result: from the edit to the end of `musicpipe job run`.

A private embedded stack (no Airflow) with the sample data in its raw bucket. Its config file
adds two [[jobs]] entries whose scripts are temporary copies of the pipeline's validation
(pythonshell) and ETL (glueetl) scripts, with the same commands and default arguments: the
checkout's own scripts stay untouched. Each measured round appends a harmless log line to a
copy and times the CLI (`musicpipe job run NAME --arg batch_id=…`, a new process, as a user
types it) until it exits, checking that the run SUCCEEDED and printed the new line: so the
figure holds the deploy of the edited script, the run, the live logs and the CLI's start.

The glueetl rounds run on a warm Spark driver (a first run warms it, not counted), each on
one sample stream file uploaded under a new key and validated first (not timed). Prints
job_edit_to_result_pythonshell_s and job_edit_to_result_glueetl_s (medians; goals ≤ 5 s and
≤ 12 s) and writes bench-results/job_edit.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import private_stack, timed_run, write_results
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"
console = Console()
JOBS = {
    "pythonshell": ("bench_edit_validation", "music_streaming_validation.py"),
    "glueetl": ("bench_edit_etl", "music_streaming_etl_complete.py"),
}
GOALS = {"pythonshell": 5.0, "glueetl": 12.0}


def write_config(folder: Path) -> Path:
    entries = []
    for command, (name, script) in JOBS.items():
        shutil.copy(REPO / "spark_jobs" / script, folder / script)
        entries.append(f'[[jobs]]\nname = "{name}"\ncommand = "{command}"\nscript = "{script}"\n')
    config = folder / "musicpipe.toml"
    config.write_text("\n".join(entries))
    return config


def job_run(folder: Path, name: str, arguments: dict[str, str], expect: str) -> float:
    """Seconds from now to the end of `musicpipe job run`; stops the benchmark unless the run
    succeeded and printed ``expect``."""
    command = [sys.executable, "-m", "musicpipe.cli", "job", "run", name]
    for key, value in arguments.items():
        command += ["--arg", f"{key}={value}"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - started
    if done.returncode != 0 or expect not in done.stdout:
        raise SystemExit(f"{name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return took


def edit(script: Path, round_: int) -> str:
    line = f"bench edit {round_}"
    with script.open("a") as fh:
        fh.write(f"\nprint({line!r}, flush=True)\n")
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="measured edits per job type")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="musicpipe-job-edit-") as tmp:
        folder = Path(tmp)
        os.environ["MUSICPIPE_CONFIG"] = str(write_config(folder))
        os.environ["MUSICPIPE_STACK"] = "embedded"
        with private_stack() as stack:
            figures = measure(stack, folder, args.rounds)
    table = Table(title="edit a job's script → `musicpipe job run` ends")
    for col in ("job type", "median (s)", "goal (s)", "rounds (s)"):
        table.add_column(col)
    out = []
    for command, rounds in figures.items():
        median = statistics.median(rounds)
        table.add_row(
            command, f"{median:.2f}", f"{GOALS[command]:.0f}", ", ".join(f"{r:.2f}" for r in rounds)
        )
        out.append(
            {"name": f"job_edit_to_result_{command}_s", "unit": "s", "value": round(median, 3)}
        )
    console.print(table)
    console.print(f"written to {write_results('job_edit', out)}")


def measure(stack, folder: Path, rounds: int) -> dict[str, list[float]]:
    s3 = stack.aws.client("s3")
    glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
    raw = stack.manifest.raw_bucket
    s3.upload_file(str(SAMPLES / "songs.csv"), raw, "songs/songs.csv")
    s3.upload_file(str(SAMPLES / "users.csv"), raw, "users/users.csv")
    validation, etl = JOBS["pythonshell"][0], JOBS["glueetl"][0]
    figures: dict[str, list[float]] = {"pythonshell": [], "glueetl": []}

    with console.status("pythonshell: edit → job run…"):
        job_run(folder, validation, {"batch_id": "warm"}, "validation report")
        for i in range(rounds):
            line = edit(folder / JOBS["pythonshell"][1], i)
            figures["pythonshell"].append(job_run(folder, validation, {"batch_id": "x"}, line))

    for i in range(rounds + 1):  # round 0 warms the Spark driver
        key = f"streams/bench_edit_{i}.csv"
        s3.upload_file(str(SAMPLES / "streams" / "streams1.csv"), raw, key)
        batch = f"edit-{i}"
        timed_run(glue, validation, {"--batch_id": batch, "--stream_keys": key})
        line = edit(folder / JOBS["glueetl"][1], i)
        with console.status(f"glueetl: edit → job run ({'warm-up' if i == 0 else i})…"):
            took = job_run(folder, etl, {"batch_id": batch, "stream_keys": key}, line)
        if i:
            figures["glueetl"].append(took)
    return figures


if __name__ == "__main__":
    main()
