"""Failures heal themselves (issue #17), on the real embedded stack with the DAG running.

One stack (moto, the Glue emulator, Airflow, the supervisor) for the module, with a short
retry timer. Each test drops its own small stream files (its own listen day and key prefix),
breaks something in the middle of their run — kill -9 of the Glue emulator, of the Spark
driver, of the Airflow scheduler or triggerer, `musicpipe down` + `musicpipe up`, a file the
ETL cannot read — and then takes NO manual step: no reprocess, no new upload. It ends with
every file COMPLETED, the KPIs of its day equal to the DuckDB oracle, every row accounted for,
each file archived once, and nothing left of the process tree that was killed.

Driven only as a user could: the CLI, S3, DynamoDB, Airflow's REST API and psutil.
"""

from __future__ import annotations

import json
from datetime import date

import psutil
import pytest

from musicpipe.dag.config import batch_id_for

from .conftest import isolated_env, run_cli, started_stack
from .healing_helpers import (
    RETRY_ENV,
    SONGS,
    USERS,
    Batch,
    Healing,
    alive,
    day_files,
    etl_cannot_read,
    etl_script,
    kill9,
    prepare_airflow_home,
    service_pid,
    spark_driver,
    tree,
    wait_for,
)
from .test_pipeline_e2e import RAW

# Generous bounds; a healthy run of these small files takes ~40 s on 2 busy cores.
HEAL_TIMEOUT = 360


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("healing") / "state"
    env = {**isolated_env(state), **RETRY_ENV, "MUSICPIPE_AIRFLOW": "true"}
    prepare_airflow_home(state)
    with started_stack(env) as stack:
        stack.env = env
        run_cli("drop", str(SONGS), str(USERS), env=env, check=True)
        yield stack


@pytest.fixture
def view(stack):
    # No waiting for the stack to be idle between tests: each waits until its own files are
    # done, and after that only timer runs with nothing due (no Glue job) are left in flight.
    return Healing(stack)


def batch(tmp_path, day: date, prefix: str, *names: str) -> Batch:
    return Batch(day, day_files(tmp_path, day, names), prefix)


def restarts(env, name: str) -> int:
    services = json.loads(run_cli("status", "--json", env=env, timeout=120).stdout)["services"]
    return next(s for s in services if s["name"] == name)["restarts"]


def kill_and_heal(stack, view: Healing, files: Batch, service: str, pid: int = 0) -> None:
    """kill -9 ``service`` (PID ``pid`` if known) now; then the files must heal with no manual
    step, nothing of its process tree may be left, and the supervisor must have started it
    again."""
    pid = pid or service_pid(stack.env, service)
    doomed = tree(pid)
    kill9(psutil.Process(pid))
    view.wait_done(files.keys, HEAL_TIMEOUT)
    view.assert_healed(files)
    assert not alive(doomed)
    assert restarts(stack.env, service) >= 1


def test_glue_emulator_killed_while_the_etl_runs(stack, view, tmp_path):
    files = batch(tmp_path, date(2026, 3, 1), "glue-kill", "g1.csv", "g2.csv")
    view.upload(files)
    glue = service_pid(stack.env, "glue (emulator)")
    wait_for(lambda: etl_script(glue), 240, "the ETL script running", poll=0.2)
    kill_and_heal(stack, view, files, "glue (emulator)", glue)


def test_spark_driver_killed_while_the_etl_runs(stack, view, tmp_path):
    files = batch(tmp_path, date(2026, 3, 2), "driver-kill", "d1.csv", "d2.csv")
    view.upload(files)
    glue = service_pid(stack.env, "glue (emulator)")
    script = wait_for(lambda: etl_script(glue), 240, "the ETL script running", poll=0.2)
    driver = wait_for(lambda: spark_driver(script), 60, "the ETL's Spark driver JVM", poll=0.2)
    # Once the files are claimed (their pinned copies are written after the claim), so the
    # kill costs them an attempt: killed earlier, the script dies before it claims anything.
    wait_for(lambda: view.pinned(files.keys), 120, "the files pinned by the ETL", poll=0.2)
    doomed = tree(driver.pid)
    kill9(driver)

    view.wait_done(files.keys, HEAL_TIMEOUT)
    tracker = view.assert_healed(files)
    assert all(item["attempts"] >= 2 for item in tracker.values()), tracker
    assert not alive(doomed)


def test_airflow_scheduler_killed_mid_run(stack, view, tmp_path):
    files = batch(tmp_path, date(2026, 3, 3), "scheduler-kill", "s1.csv", "s2.csv")
    view.upload(files)
    wait_for(lambda: view.task_running("realtime_etl_processing"), 240, "the ETL task running")
    # Its tree holds the LocalExecutor workers and the running task.
    kill_and_heal(stack, view, files, "airflow scheduler")


def test_airflow_triggerer_killed_while_it_holds_the_arrivals(stack, view, tmp_path):
    """The triggerer runs the deferred work of the DAG: the AssetWatcher on the arrivals queue
    (and a deferred sensor, which select_due_files no longer lets happen: the sensor only runs
    for files it found). Killed right after the upload, the arrival may die with it; the
    restarted triggerer or the retry timer still takes the files."""
    files = batch(tmp_path, date(2026, 3, 4), "triggerer-kill", "t1.csv", "t2.csv")
    view.upload(files)
    kill_and_heal(stack, view, files, "airflow triggerer")  # its tree: the trigger runner


def test_down_in_the_middle_of_a_run_then_up(stack, view, tmp_path):
    files = batch(tmp_path, date(2026, 3, 5), "down-up", "u1.csv", "u2.csv")
    view.upload(files)
    glue = service_pid(stack.env, "glue (emulator)")
    wait_for(lambda: etl_script(glue), 240, "the ETL script running", poll=0.2)
    services = json.loads(run_cli("status", "--json", env=stack.env).stdout)["services"]
    doomed = [p for s in services if s["pid"] for p in tree(s["pid"])]

    run_cli("down", env=stack.env, check=True)
    assert not alive(doomed), "`down` left processes running"
    run_cli("up", env=stack.env, check=True, timeout=600)

    view.wait_done(files.keys, HEAL_TIMEOUT)
    view.assert_healed(files)


def test_one_file_failing_in_the_etl_fails_alone_and_the_timer_retries_it(stack, view, tmp_path):
    files = batch(tmp_path, date(2026, 3, 6), "etl-fault", "f1.csv", "f2.csv", "f3.csv")
    good, bad = [files.keys[0], files.keys[2]], files.keys[1]
    with etl_cannot_read(stack, [bad]):
        view.upload(files)
        view.wait_done(good, HEAL_TIMEOUT)
        item = wait_for(
            lambda: view.tracker().get(bad, {}).get("status") == "FAILED" and view.tracker()[bad],
            60,
            f"{bad} FAILED",
        )
        assert bad in item["error"] or "Access Denied" in item["error"], item
        # The run that failed it: red at the end, its good work written and archived. (Not
        # "attempts == 1": on a busy machine the 15 s timer can take the file again, still
        # under the fault, before the test looks; the item names the run that failed it.)
        run = wait_for(
            lambda: next(
                (
                    r
                    # Not runs(since): a timer run due just before the upload took the files.
                    for r in view.runs()
                    if batch_id_for(r.run_id) == item["batch_id"] and r.state == "failed"
                ),
                None,
            ),
            120,
            f"run {item['batch_id']} red",
        )
        assert run.tasks["fail_on_failed_files"] == "failed", run
        for task in (
            "realtime_etl_processing",
            "write_kpis_to_dynamodb",
            "archive_processed_files",
        ):
            assert run.tasks[task] == "success", run
        assert bad in view.keys(RAW, "streams/")
    # The fault is gone; no upload, no reprocess: the timer takes the FAILED file again.
    view.wait_done(files.keys, HEAL_TIMEOUT)
    tracker = view.assert_healed(files)
    assert tracker[bad]["attempts"] >= 2
    assert all(tracker[k]["attempts"] == 1 for k in good), tracker


def test_a_burst_of_files_dropped_at_once(stack, view, tmp_path):
    names = [f"b{n:02d}.csv" for n in range(8)]
    files = batch(tmp_path, date(2026, 3, 7), "burst", *names)
    seconds = view.burst(files, HEAL_TIMEOUT)
    print(f"burst of {len(names)} files: {seconds:.1f} s")
