"""The whole pipeline on the embedded stack with Airflow: files land in S3 and, with no manual
trigger, the DAG validates, transforms, writes KPIs, quarantines and archives.

One stack (moto, the Glue emulator, Airflow's four components) for the module; the tests run
in order on it: the sample set plus bad files, then a bad file alone, then an event with
nothing behind it, a late arrival with the CPU loaded, hostile CSV files and path-like keys.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from musicpipe.dag.config import batch_id_for
from musicpipe.manifest import METRIC_NAMES
from musicpipe.stack.runs import wait_until_idle

from .conftest import SAMPLES, cpu_load, isolated_env, run_cli, started_stack
from .csv_corpus import write_corpus
from .pipeline_helpers import (
    assert_rows_accounted,
    assert_same_kpis,
    kpi_table_items,
    oracle_items,
)

RAW, PROCESSED, QUARANTINE = "rds.data", "trial.data", "warehouse.bucket"
GOOD = ["streams1.csv", "streams2.csv", "streams3.csv"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = isolated_env(tmp_path_factory.mktemp("e2e-state"))
    env["MUSICPIPE_AIRFLOW"] = "true"
    with started_stack(env) as stack:
        stack.env = env
        yield stack


class View:
    """What a user would look at on the stack."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.s3 = stack.aws.client("s3")
        self.sqs = stack.aws.client("sqs")
        self.dynamodb = stack.aws.session.resource(
            "dynamodb", endpoint_url=stack.aws.endpoint, config=stack.aws.config
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def json(self, bucket: str, key: str) -> dict:
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def wait(self, since: datetime, timeout: float = 600):
        url = self.sqs.get_queue_url(QueueName="music-arrivals")["QueueUrl"]
        return wait_until_idle(self.stack.airflow, self.sqs, url, since, timeout)

    def kpis(self) -> dict:
        return kpi_table_items(self.dynamodb)

    def tracker(self) -> dict[str, dict]:
        return {
            i["file_key"]: i for i in self.dynamodb.Table("kpi.table_file_tracker").scan()["Items"]
        }


def now() -> datetime:
    return datetime.now(UTC)


def test_dropped_files_become_kpis_without_a_manual_trigger(stack):
    view = View(stack)
    since = now()
    # As a user does it: the CLI, references first, then the stream files and two bad ones.
    run_cli(
        "drop",
        str(SAMPLES / "songs.csv"),
        str(SAMPLES / "users.csv"),
        str(SAMPLES / "streams"),
        env=stack.env,
        check=True,
    )
    view.s3.upload_file(str(SAMPLES / "bad" / "unknown_ids.csv"), RAW, "streams/unknown_ids.csv")
    view.s3.upload_file(
        str(SAMPLES / "bad" / "missing_column.csv"), RAW, "streams/missing_column.csv"
    )
    runs = view.wait(since)

    assert runs and all(r.run_type == "asset_triggered" for r in runs), runs
    assert not [r for r in runs if r.state != "success"], runs
    # A run that took files validated them; a later one may find nothing due (nothing_due).
    worked = [r for r in runs if r.tasks.get("validate_data_quality") == "success"]
    assert worked, runs

    # KPIs: exactly what DuckDB computes from the files that passed validation.
    passed = [SAMPLES / "streams" / name for name in GOOD] + [SAMPLES / "bad" / "unknown_ids.csv"]
    expected = oracle_items(SAMPLES / "songs.csv", SAMPLES / "users.csv", passed)
    assert_same_kpis(view.kpis(), expected)

    # Every stream file left streams/: archived when processed, quarantined when it failed.
    assert view.keys(RAW, "streams/") == []
    archived = view.keys(RAW, "archive/streams/")
    today = now().strftime("%Y/%m/%d")
    for name in GOOD + ["unknown_ids.csv"]:
        assert f"archive/streams/{today}/{name}" in archived, archived
    tracker = view.tracker()
    assert {k: v["status"] for k, v in tracker.items()} == {
        **{f"streams/{n}": "COMPLETED" for n in GOOD + ["unknown_ids.csv"]},
        "streams/missing_column.csv": "QUARANTINED",
    }
    assert_rows_accounted(tracker)

    # The bad file whole in quarantine with its reason; the bad rows of the other with theirs.
    quarantined = view.keys(QUARANTINE, "quarantine/")
    assert any(
        k.endswith("files/") is False and k.endswith("streams/missing_column.csv")
        for k in quarantined
    )
    reason_key = next(k for k in quarantined if k.endswith("missing_column.csv.reason.json"))
    assert "listen_time" in json.dumps(view.json(QUARANTINE, reason_key))
    rows_key = next(k for k in quarantined if k.startswith("quarantine/rows/"))
    assert rows_key.endswith("/unknown_ids.csv")
    assert b"reject_reason" in view.s3.get_object(Bucket=QUARANTINE, Key=rows_key)["Body"].read()

    # A report per run that did work, named after its batch.
    for run in worked:
        report = view.json(PROCESSED, f"validation_reports/{batch_id_for(run.run_id)}/report.json")
        assert report["overall_status"] == "PASSED"

    # CloudWatch metrics of docs/data-contract.md §6.3.
    cloudwatch = stack.aws.client("cloudwatch")
    names = {
        m["MetricName"]
        for m in cloudwatch.list_metrics(Namespace="MusicStreaming/Pipeline")["Metrics"]
    }
    assert set(METRIC_NAMES) <= names

    # The CLI reads the same KPIs back.
    top = max(
        (v for (pk, sk), v in expected.items() if sk == "TOP_GENRES"), key=lambda v: v["date"]
    )
    out = run_cli("kpis", "--date", top["date"], env=stack.env, check=True).stdout
    assert top["genres"][0]["genre"] in out
    genre = top["genres"][0]["genre"]
    out = run_cli("kpis", "--genre", genre, env=stack.env, check=True).stdout
    assert top["date"] in out
    status = run_cli("status", env=stack.env, check=True).stdout
    assert "airflow scheduler" in status and worked[0].run_id[:30] in status


def test_a_bad_file_alone_ends_on_the_failure_branch_with_its_report(stack):
    view = View(stack)
    since = now()
    view.s3.upload_file(str(SAMPLES / "bad" / "latin1.csv"), RAW, "streams/latin1.csv")
    runs = view.wait(since)
    assert all(r.state == "success" for r in runs), runs  # a failed validation is no crash
    failed = [r for r in runs if r.tasks.get("validation_failed") == "success"]
    assert len(failed) == 1, runs
    assert failed[0].tasks["realtime_etl_processing"] == "skipped"
    report = view.json(
        PROCESSED, f"validation_reports/{batch_id_for(failed[0].run_id)}/report.json"
    )
    assert report["overall_status"] == "FAILED"
    (entry,) = [f for f in report["files"] if f["key"] == "streams/latin1.csv"]
    assert "UTF-8" in entry["error"]
    assert view.keys(RAW, "streams/") == []
    assert any(k.endswith("streams/latin1.csv") for k in view.keys(QUARANTINE, "quarantine/files/"))
    assert view.tracker()["streams/latin1.csv"]["status"] == "QUARANTINED"


def test_an_arrival_with_nothing_new_takes_the_skip_path(stack):
    view = View(stack)
    before = view.kpis()
    since = now()
    # An event for a file that is already gone (another run took it): nothing to process.
    url = view.sqs.get_queue_url(QueueName="music-arrivals")["QueueUrl"]
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": RAW}, "object": {"key": "streams/streams1.csv"}},
            }
        ]
    }
    view.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    started = time.monotonic()
    (run,) = view.wait(since)
    assert run.state == "success"
    assert run.tasks["realtime_etl_processing"] == "skipped"
    assert run.tasks["write_kpis_to_dynamodb"] == "skipped"
    assert view.kpis() == before
    print(f"skip-path run took {run.duration_s:.1f} s ({time.monotonic() - started:.1f} s wall)")


def test_wait_right_after_a_drop_on_a_loaded_machine_succeeds(stack, tmp_path):
    """`make demo`'s race: `wait` started a second after `drop`, both cores busy, must wait
    the run out instead of calling a busy Airflow down."""
    view = View(stack)
    late = tmp_path / "late_arrival.csv"
    late.write_bytes((SAMPLES / "edge" / "bom_crlf_iso.csv").read_bytes())
    with cpu_load():
        run_cli("drop", str(late), env=stack.env, check=True)
        time.sleep(1)
        waited = run_cli("wait", "--timeout", "900", "--json", env=stack.env, timeout=1000)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    doc = json.loads(waited.stdout)  # stdout is the JSON alone (the spinner is on stderr)
    assert doc["failed"] == [] and doc["runs"]
    assert all(r["state"] == "success" for r in doc["runs"])
    assert doc["runs"][0]["tasks"]["write_kpis_to_dynamodb"] == "success"
    assert view.tracker()["streams/late_arrival.csv"]["status"] == "COMPLETED"


# Path-like keys (the key rule of data contract §2.1), a few of each kind.
PATH_LIKE = ("streams/../dotdot.csv", "streams//double.csv", "streams/glob*.csv")


def test_hostile_csv_files_and_path_like_keys_through_the_dag(stack, tmp_path):
    """Issue #14 with the DAG running: quoted line breaks in every column, quoted separators,
    doubled quotes, 200 KB cells, dropped beside keys Hadoop would read as other paths. Every
    row is accounted for alike by validation and the ETL, the path-like keys are quarantined
    while the rest completes, and the KPIs equal the oracle over everything accepted so far."""
    view = View(stack)
    corpus = write_corpus(tmp_path)
    since = now()
    for path, _, _ in corpus.values():
        view.s3.upload_file(str(path), RAW, f"streams/{path.name}")
    for key in PATH_LIKE:
        view.s3.upload_file(str(SAMPLES / "streams" / "streams3.csv"), RAW, key)
    runs = view.wait(since)
    assert runs and all(r.state == "success" for r in runs), runs

    tracker = view.tracker()
    for name, (_, rows, rejected) in corpus.items():
        item = tracker[f"streams/{name}"]
        assert item["status"] == "COMPLETED", item
        # The ETL read the records validation read: the same rows, the same rejections.
        assert (item["rows_read"], item["rows_rejected"]) == (rows, sum(rejected.values())), name
    for key in PATH_LIKE:
        assert tracker[key]["status"] == "QUARANTINED", tracker[key]
        assert "refused by the key rule" in tracker[key]["error"]
    assert_rows_accounted(tracker)
    quarantined = view.keys(QUARANTINE, "quarantine/files/")
    for key in PATH_LIKE:
        assert any(k.endswith("/" + key) for k in quarantined), (key, quarantined)
    assert view.keys(RAW, "streams/") == []

    # Everything this module's stack accepted: the first test's files, the late arrival, and
    # now the corpus (duplicates across them count once).
    accepted = [SAMPLES / "streams" / name for name in GOOD] + [
        SAMPLES / "bad" / "unknown_ids.csv",
        SAMPLES / "edge" / "bom_crlf_iso.csv",
        *(path for path, _, _ in corpus.values()),
    ]
    expected = oracle_items(SAMPLES / "songs.csv", SAMPLES / "users.csv", accepted)
    assert_same_kpis(view.kpis(), expected)
