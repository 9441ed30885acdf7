"""The DAG file as Airflow's DagBag sees it: imports cleanly, the tasks and branch of
docs/data-contract.md §7, no cycles, scheduled by the arrivals asset, and no I/O while it is
parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from musicpipe.dag.steps import (
    ETL_TASK,
    NO_NEW_FILES_TASK,
    NOTHING_DUE_TASK,
    VALIDATION_FAILED_TASK,
)
from musicpipe.manifest import DAG_TASK_IDS, DEFAULT_NAMES
from musicpipe.stack.airflow import DAGS_FOLDER

PROBE = Path(__file__).parent / "dag_integrity_probe.py"
DAG_ID = DEFAULT_NAMES["dag_id"]
QUEUE = "https://sqs.us-east-1.amazonaws.com/111122223333/music-arrivals"


def probe(
    tmp_path: Path,
    dags_folder: Path,
    variable: str | None,
    python: str = sys.executable,
    pythonpath: str | None = None,
) -> dict:
    # Nothing of this machine's AWS or Airflow settings leaks in; no endpoint is reachable.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW"))}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    if variable is not None:
        env["AIRFLOW_VAR_MUSIC_STREAMING_PIPELINE"] = variable
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [python, str(PROBE), str(dags_folder), DAG_ID],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("PROBE ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("PROBE ") :])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict:
    return probe(
        tmp_path_factory.mktemp("dagbag"), DAGS_FOLDER, json.dumps({"arrivals_queue_url": QUEUE})
    )


def test_dag_imports_without_errors_or_io(loaded):
    assert loaded["import_errors"] == {}
    assert loaded["io"] == []
    assert "dag" in loaded


def test_spec_tasks_and_branch(loaded):
    tasks = loaded["dag"]["tasks"]
    assert set(DAG_TASK_IDS) <= set(tasks)
    assert set(tasks) == set(DAG_TASK_IDS) | {
        VALIDATION_FAILED_TASK,
        NO_NEW_FILES_TASK,
        NOTHING_DUE_TASK,
    }
    down = {t: set(v["downstream"]) for t, v in tasks.items()}
    # The judge first: nothing due ends the run without a Glue job (but with the archive).
    assert down["select_due_files"] == {"wait_for_streams_files", NOTHING_DUE_TASK}
    assert down[NOTHING_DUE_TASK] == {"archive_processed_files"}
    assert "Branch" in tasks["select_due_files"]["operator"]
    assert down["wait_for_streams_files"] == {"validate_data_quality"}
    assert down["validate_data_quality"] == {"check_validation_status"}
    assert down["check_validation_status"] == {ETL_TASK, VALIDATION_FAILED_TASK, NO_NEW_FILES_TASK}
    assert down[ETL_TASK] == {"write_kpis_to_dynamodb"}
    assert down["write_kpis_to_dynamodb"] == {"archive_processed_files"}
    # Every branch ends with the archive step (unchanged re-uploads take the other two).
    assert down[VALIDATION_FAILED_TASK] == {"archive_processed_files"}
    assert down[NO_NEW_FILES_TASK] == {"archive_processed_files"}
    # Then the verdict on files that failed alone; the last task, so the run's state.
    assert down["archive_processed_files"] == {"fail_on_failed_files"}
    assert down["fail_on_failed_files"] == set()
    assert (
        tasks["archive_processed_files"]["trigger_rule"]
        .lower()
        .endswith("none_failed_min_one_success")
    )
    # Not all_done: a green last task after a failed archive would make the failed run green.
    assert tasks["fail_on_failed_files"]["trigger_rule"].lower().endswith("all_success")
    assert "Branch" in tasks["check_validation_status"]["operator"]


def test_stock_operators_and_a_deferrable_guard(loaded):
    tasks = loaded["dag"]["tasks"]
    assert tasks["wait_for_streams_files"]["operator"] == "S3KeySensor"
    assert tasks["wait_for_streams_files"]["deferrable"] is True
    assert tasks["validate_data_quality"]["operator"] == "GlueJobOperator"
    assert tasks[ETL_TASK]["operator"] == "GlueJobOperator"


def test_no_cycle_one_root(loaded):
    down = {t: set(v["downstream"]) for t, v in loaded["dag"]["tasks"].items()}
    roots = set(down) - set().union(*down.values())
    assert roots == {"select_due_files"}
    # Kahn's algorithm consumes every task only when there is no cycle.
    indegree = {t: 0 for t in down}
    for targets in down.values():
        for t in targets:
            indegree[t] += 1
    ready, seen = [t for t, n in indegree.items() if n == 0], 0
    while ready:
        task = ready.pop()
        seen += 1
        for t in down[task]:
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    assert seen == len(down)


def test_scheduled_by_the_arrivals_queue_or_the_retry_timer_one_run_at_a_time(loaded):
    dag = loaded["dag"]
    # The manifest's default timer (300 s) beside the arrivals asset, on the same DAG.
    assert dag["timetable"] == "AssetOrTimeSchedule"
    assert dag["timer"] == "DeltaTriggerTimetable 0:05:00"
    assert dag["assets"] == [{"uri": "s3://rds.data/streams", "watchers": ["arrivals_queue"]}]
    assert dag["max_active_runs"] == 1
    assert dag["catchup"] is False


def test_a_timer_of_zero_leaves_the_arrivals_alone(tmp_path):
    variable = {"arrivals_queue_url": QUEUE, "retry_timer_seconds": 0}
    dag = probe(tmp_path, DAGS_FOLDER, json.dumps(variable))["dag"]
    assert dag["timetable"] == "AssetTriggeredTimetable"
    assert dag["timer"] is None
    assert dag["assets"] == [{"uri": "s3://rds.data/streams", "watchers": ["arrivals_queue"]}]


def test_task_retries_only_where_a_task_is_idempotent(loaded):
    tasks = loaded["dag"]["tasks"]
    idempotent = {
        "select_due_files",
        "check_validation_status",
        "write_kpis_to_dynamodb",
        "archive_processed_files",
    }
    for task in idempotent:
        assert tasks[task]["retries"] == 2, task
        assert tasks[task]["retry_delay_s"] == 5
        assert tasks[task]["retry_exponential_backoff"] is True
    # A Glue job is not run twice by Airflow (Glue's own MaxRetries is for that).
    assert tasks["validate_data_quality"]["retries"] == 0
    assert tasks[ETL_TASK]["retries"] == 0


def test_missing_variable_is_an_import_error_that_says_what_to_set(tmp_path):
    out = probe(tmp_path, DAGS_FOLDER, None)
    (error,) = out["import_errors"].values()
    assert "music_streaming_pipeline must set arrivals_queue_url" in error


def test_the_probe_sees_top_level_io(tmp_path):
    # The I/O check can fail: a DAG file that connects somewhere at parse time is caught.
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "chatty.py").write_text(
        "import socket\n"
        "from airflow.sdk import DAG\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=0.2)\n"
        "except OSError:\n"
        "    pass\n"
        f"dag = DAG('{DAG_ID}', schedule=None)\n"
    )
    out = probe(tmp_path, dags, None)
    assert any(e.startswith("socket.connect") for e in out["io"])
