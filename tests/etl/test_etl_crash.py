"""Crashes in the middle of the pipeline, then a successful run: the invariant of
docs/data-contract.md §3.8 holds.

Each ETL crash test kills the real ETL job's code (tests/etl/etl_crash_runner.py, in a child
process that dies with os._exit(137) like ``kill -9``) between two of its steps, checks the
traces the crash left behind, then runs the real job through the Glue emulator and the DynamoDB
writer for a new batch: every KPI must equal the DuckDB oracle computed from scratch over the
current versions of all files, and every file's rows must be accounted for. The writer crash
test kills ``write_staged_kpis`` after its first BatchWriteItem chunk and re-runs it.

Every ETL run costs 40-90 s on a 2-core machine, so the data is the small committed sample set
and only the crash points where the state differs materially are covered.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from musicpipe.aws.local import local_environment
from musicpipe.pipeline.kpi_writer import BATCH_WRITE_LIMIT, staging_keys

from ..conftest import REPO, SAMPLES
from ..pipeline_helpers import (
    MANIFEST,
    PROCESSED,
    Pipeline,
    assert_rows_accounted,
    assert_same_kpis,
    oracle_items,
)
from .etl_crash_runner import CRASH_EXIT

SONGS = SAMPLES / "songs.csv"
USERS = SAMPLES / "users.csv"
STREAMS1 = SAMPLES / "streams" / "streams1.csv"
STREAMS2 = SAMPLES / "streams" / "streams2.csv"
A_KEY, B_KEY = "streams/a.csv", "streams/b.csv"
EVENTS_PREFIX = "processed/streams/"
CHILD_TIMEOUT_S = 600

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture
def pipe(aws, local_stack):
    return Pipeline(aws, local_stack)


@pytest.fixture
def child_env(aws, local_stack) -> dict[str, str]:
    """The environment of a crashing child: boto3 and Spark pointed at the session's stack."""
    env = local_environment(
        dict(os.environ), aws.endpoint, aws.region, local_stack.settings.glue_endpoint
    )
    env["PYTHONUNBUFFERED"] = "1"
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return env


# -- helpers -----------------------------------------------------------------------------------
def run_child(args: list[str], env: dict[str, str], log: Path) -> tuple[int, str]:
    """Run ``python <args>`` from the repo root in its own process group, output to ``log``.

    Returns (exit code, output). The whole group (the Spark JVM included) is killed afterwards
    whatever happens, so nothing outlives the test even when it fails or times out."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=CHILD_TIMEOUT_S)
        finally:
            _kill_group(process)
    return code, log.read_text(errors="replace")


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group this test started, by its id
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def crash_etl(point: str, batch_id: str, env: dict[str, str], tmp_path: Path) -> str:
    """Run the ETL job for ``batch_id`` until it dies at ``point``; its output."""
    code, output = run_child(
        ["-m", "tests.etl.etl_crash_runner", point, batch_id],
        env,
        tmp_path / f"crash-{point}-{batch_id}.log",
    )
    assert code == CRASH_EXIT, f"crash runner exited {code}, not {CRASH_EXIT}:\n{output[-6000:]}"
    return output


def etl_stdout(local_stack, run_id: str) -> str:
    path = local_stack.glue_state_dir / "work" / run_id / "stdout.log"
    return path.read_text(errors="replace") if path.is_file() else f"(no {path})"


def etl_and_write(pipe: Pipeline, local_stack, batch_id: str) -> tuple[dict, str]:
    """The real ETL through the Glue emulator, then the writer; (run, the job's stdout)."""
    run = pipe.run_job(MANIFEST.etl_job, {"--batch_id": batch_id})
    log = etl_stdout(local_stack, run["Id"])
    assert run["JobRunState"] == "SUCCEEDED", (
        f"{batch_id}: {run['JobRunState']}: {run.get('ErrorMessage')}\n{log}"
    )
    pipe.write_kpis(batch_id)
    return run, log


def write_prefix(path: Path, lines_kept: float, out: Path) -> Path:
    """The first ``lines_kept`` of ``path``'s lines (header included), bytes kept as they are."""
    lines = path.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[: int(len(lines) * lines_kept)]))
    return out


def data_rows(path: Path) -> int:
    return len(path.read_bytes().splitlines()) - 1


def source_keys(pipe: Pipeline, source: str) -> list[str]:
    return [k for k in pipe.keys(PROCESSED, EVENTS_PREFIX) if f"/source={source}/" in k]


def staged_manifest(pipe: Pipeline, batch_id: str) -> dict | None:
    manifest_key, _ = staging_keys(batch_id)
    if manifest_key not in pipe.keys(PROCESSED, manifest_key):
        return None
    body = pipe.s3.get_object(Bucket=PROCESSED, Key=manifest_key)["Body"].read()
    return json.loads(body)


def staged_items(pipe: Pipeline, batch_id: str) -> list[dict]:
    _, items_key = staging_keys(batch_id)
    body = pipe.s3.get_object(Bucket=PROCESSED, Key=items_key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


# -- 1. the ETL job killed between two steps ---------------------------------------------------
# The points where what the crash leaves behind differs materially; "old_events_deleted" and
# "events_stored" need a.csv's earlier version already stored (batch-1) to mean anything.
ETL_CRASH_POINTS = ["claimed", "old_events_deleted", "events_stored", "tracker_staged"]
NEEDS_HISTORY = {"old_events_deleted", "events_stored"}


def check_crash_traces(point: str, pipe: Pipeline, history: bool) -> None:
    """What the killed batch-2 left behind: nothing after the crash point ran."""
    tracker = pipe.tracker_items()
    for key in (A_KEY, B_KEY):
        item = tracker[key]
        assert item["batch_id"] == "batch-2", (key, item)
        wanted = "STAGED" if point == "tracker_staged" else "PROCESSING"
        # No exception handler ran: the files are not FAILED, the claim is simply left there.
        assert item["status"] == wanted, (point, key, item)
        if wanted == "PROCESSING":
            assert item["run_id"] == f"jr_crash_{point}", item
    staged = staged_manifest(pipe, "batch-2")
    if point == "claimed":
        assert staged is None
        assert not source_keys(pipe, "b.csv")
        if history:  # nothing deleted yet
            assert source_keys(pipe, "a.csv")
    elif point == "old_events_deleted":
        assert staged is None
        assert not source_keys(pipe, "a.csv"), "a.csv's earlier events should be deleted"
        assert not source_keys(pipe, "b.csv")
    elif point == "events_stored":
        assert staged is None
        assert source_keys(pipe, "a.csv") and source_keys(pipe, "b.csv")
    elif point == "tracker_staged":
        assert staged is not None and staged["item_count"] > 0
        assert {f["file_key"] for f in staged["files"]} == {A_KEY, B_KEY}
        assert_rows_accounted(tracker)


@pytest.mark.parametrize("point", ETL_CRASH_POINTS)
def test_a_killed_etl_run_is_repaired_by_the_next_run(
    point, pipe, local_stack, child_env, tmp_path
):
    """Simulates the ETL job's Glue run killed like `kill -9` (no exception handler, no
    cleanup) right after the step named by ``point`` while processing batch-2 (a changed
    re-upload of a.csv plus a new b.csv):

    * claimed: the files' tracker claims are written (PROCESSING), nothing else;
    * old_events_deleted: a.csv's earlier stored events are deleted, its new ones not written;
    * events_stored: both files' new events are stored, no KPIs computed or staged;
    * tracker_staged: KPIs are staged and the files STAGED, but the writer never runs for
      batch-2, so its staging is stale.

    A normal batch-3 (ETL through the Glue emulator, then the writer) must take the killed
    run's claims over and leave every KPI equal to the from-scratch oracle over the current
    a.csv and b.csv.
    """
    history = point in NEEDS_HISTORY
    pipe.put_references(SONGS, USERS)
    if history:
        pipe.put(STREAMS1, A_KEY)
        etl_and_write(pipe, local_stack, "batch-1")
        assert_same_kpis(pipe.kpi_table(), oracle_items(SONGS, USERS, [STREAMS1]))
        assert source_keys(pipe, "a.csv")

    changed_a = write_prefix(STREAMS1, 2 / 3, tmp_path / "a.csv")
    pipe.put(changed_a, A_KEY)
    pipe.put(STREAMS2, B_KEY)
    kpis_before = pipe.kpi_table()

    crash_output = crash_etl(point, "batch-2", child_env, tmp_path)
    assert "finished without reaching its crash point" not in crash_output
    check_crash_traces(point, pipe, history)
    # The KPI table is only ever written by the writer, which did not run for batch-2.
    assert pipe.kpi_table() == kpis_before

    run, log = etl_and_write(pipe, local_stack, "batch-3")
    try:
        assert_same_kpis(pipe.kpi_table(), oracle_items(SONGS, USERS, [changed_a, STREAMS2]))
        tracker = pipe.tracker_items()
        assert {k: (i["status"], i["batch_id"]) for k, i in tracker.items()} == {
            A_KEY: ("COMPLETED", "batch-3"),
            B_KEY: ("COMPLETED", "batch-3"),
        }
        assert_rows_accounted(tracker)
        assert tracker[A_KEY]["rows_read"] == data_rows(changed_a)
        assert tracker[B_KEY]["rows_read"] == data_rows(STREAMS2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- ETL stdout of batch-3 ({run['Id']}):\n{log}") from exc

    if point == "tracker_staged":
        # batch-2's staging is stale: batch-3 owns the files now. A late retry of batch-2's
        # write step must not take the files back, and the table must still be the oracle's.
        late = pipe.write_kpis("batch-2")
        assert late.files_completed == []
        assert sorted(late.files_skipped) == [A_KEY, B_KEY]
        assert_same_kpis(pipe.kpi_table(), oracle_items(SONGS, USERS, [changed_a, STREAMS2]))
        tracker = pipe.tracker_items()
        assert {i["batch_id"] for i in tracker.values()} == {"batch-3"}
        assert {i["status"] for i in tracker.values()} == {"COMPLETED"}


# -- 2. the DynamoDB writer killed between two BatchWriteItem chunks ---------------------------
WRITER_CHILD = textwrap.dedent(
    """
    import os, sys
    import boto3
    from musicpipe.pipeline import kpi_writer

    processed, kpi_table, tracker_table, batch_id = sys.argv[1:5]
    original = kpi_writer.batch_write

    def first_chunk_then_die(resource, table_name, requests, **kwargs):
        written = original(resource, table_name, requests[: kpi_writer.BATCH_WRITE_LIMIT], **kwargs)
        print(f"wrote {written} of {len(requests)} requests, dying", flush=True)
        os._exit(137)

    kpi_writer.batch_write = first_chunk_then_die
    kpi_writer.write_staged_kpis(
        boto3.client("s3"), boto3.resource("dynamodb"), processed, kpi_table, tracker_table,
        batch_id,
    )
    print("write_staged_kpis finished without crashing", flush=True)
    sys.exit(3)
    """
)


def test_a_killed_kpi_writer_is_repaired_by_its_rerun(pipe, local_stack, child_env, tmp_path):
    """Simulates the write_kpis_to_dynamodb task killed like `kill -9` after its first
    BatchWriteItem chunk of 25 puts: the KPI table is partly written (some items new, the rest
    missing, a stale item of a recomputed date not yet deleted) and the files stay STAGED.
    Re-running the write step for the same batch must give the oracle's table and COMPLETED
    files."""
    pipe.put_references(SONGS, USERS)
    pipe.put(STREAMS1, A_KEY)
    pipe.put(STREAMS2, B_KEY)
    run = pipe.etl("batch-1")
    manifest = staged_manifest(pipe, "batch-1")
    assert manifest is not None
    assert manifest["item_count"] > BATCH_WRITE_LIMIT, "need at least two chunks"
    items = staged_items(pipe, "batch-1")
    # An item the table holds from earlier for a recomputed date, whose genre has no events
    # now: the writer must delete it (deletes come after every put).
    stale_key = (f"DATE#{manifest['dates'][0]}", "GENRE#no-such-genre")
    table = pipe.dynamodb.Table(MANIFEST.kpi_table)
    table.put_item(
        Item={
            "pk": stale_key[0],
            "sk": stale_key[1],
            "gsi1pk": stale_key[1],
            "gsi1sk": stale_key[0],
            "genre": "no-such-genre",
        }
    )

    code, output = run_child(
        [
            "-c",
            WRITER_CHILD,
            PROCESSED,
            MANIFEST.kpi_table,
            MANIFEST.tracker_table,
            "batch-1",
        ],
        child_env,
        tmp_path / "writer-crash.log",
    )
    assert code == CRASH_EXIT, f"writer child exited {code}:\n{output[-6000:]}"

    # The crash's traces: the first chunk written, the rest not, the stale item still there.
    after_crash = pipe.kpi_table()
    staged_keys = [(i["pk"], i["sk"]) for i in items]
    written = [k for k in staged_keys if k in after_crash]
    assert written == staged_keys[:BATCH_WRITE_LIMIT], output
    assert stale_key in after_crash
    assert set(after_crash) == set(written) | {stale_key}
    tracker = pipe.tracker_items()
    assert {k: (i["status"], i["batch_id"]) for k, i in tracker.items()} == {
        A_KEY: ("STAGED", "batch-1"),
        B_KEY: ("STAGED", "batch-1"),
    }

    result = pipe.write_kpis("batch-1")
    try:
        assert result.items_written == len(items)
        assert result.items_deleted == 1
        assert sorted(result.files_completed) == [A_KEY, B_KEY]
        assert_same_kpis(pipe.kpi_table(), oracle_items(SONGS, USERS, [STREAMS1, STREAMS2]))
        tracker = pipe.tracker_items()
        assert {i["status"] for i in tracker.values()} == {"COMPLETED"}
        assert_rows_accounted(tracker)
    except AssertionError as exc:
        log = etl_stdout(local_stack, run["Id"])
        raise AssertionError(f"{exc}\n--- ETL stdout of batch-1 ({run['Id']}):\n{log}") from exc
