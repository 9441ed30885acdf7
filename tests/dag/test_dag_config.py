"""The DAG's configuration (one JSON Airflow Variable) and its branch decision, as plain
functions."""

from __future__ import annotations

import json

import pytest

from musicpipe.dag.config import DagConfigError, batch_id_for, load_dag_config
from musicpipe.dag.steps import (
    ETL_TASK,
    NO_NEW_FILES_TASK,
    VALIDATION_FAILED_TASK,
    decide,
)
from musicpipe.manifest import DAG_TASK_IDS, DEFAULT_NAMES

QUEUE = "https://sqs.us-east-1.amazonaws.com/111122223333/music-arrivals"


def test_defaults_are_the_spec_names_and_aws_intervals():
    cfg = load_dag_config(json.dumps({"arrivals_queue_url": QUEUE}))
    assert cfg.raw_bucket == DEFAULT_NAMES["raw_bucket"] == "rds.data"
    assert cfg.processed_bucket == "trial.data"
    assert cfg.kpi_table == "kpi.table"
    assert cfg.validation_job == "music_streaming_validation"
    assert cfg.etl_job == "music_streaming_etl_complete"
    assert cfg.dag_id == "music_streaming_realtime_pipeline"
    assert cfg.aws_conn_id == "aws_default"
    assert cfg.arrivals_poll_seconds == 20
    assert cfg.report_key("b1") == "validation_reports/b1/report.json"


def test_overrides_from_json_text_or_dict():
    cfg = load_dag_config(
        {"arrivals_queue_url": QUEUE, "raw_bucket": " my.raw ", "glue_poll_seconds": 2}
    )
    assert cfg.raw_bucket == "my.raw"
    assert cfg.glue_poll_seconds == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "must set arrivals_queue_url"),
        ("{}", "must set arrivals_queue_url"),
        ('{"arrivals_queue_url": "music-arrivals"}', "must set arrivals_queue_url"),
        ("not json", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"arrivals_queue_url": QUEUE, "raw_bukket": "x"}), "unknown key"),
        (json.dumps({"arrivals_queue_url": QUEUE, "kpi_table": ""}), "kpi_table must be"),
        (json.dumps({"arrivals_queue_url": QUEUE, "sensor_timeout_seconds": 0}), ">= 1"),
        (json.dumps({"arrivals_queue_url": QUEUE, "glue_poll_seconds": "6"}), "whole number"),
        (json.dumps({"arrivals_queue_url": QUEUE, "aws_conn_id": ""}), "aws_conn_id"),
    ],
)
def test_bad_variable_names_the_problem(raw, message):
    with pytest.raises(DagConfigError, match=message) as info:
        load_dag_config(raw)
    assert "music_streaming_pipeline" in str(info.value)


def test_batch_id_is_one_safe_path_segment_per_run():
    run_id = "asset_triggered__2026-11-26T08:30:00.123456+00:00_qWdWGZre"
    batch = batch_id_for(run_id)
    assert batch == "asset_triggered__2026-11-26T08-30-00.123456-00-00_qWdWGZre"
    assert "/" not in batch and ":" not in batch and "+" not in batch
    assert batch_id_for("manual__a/b") == "manual__a-b"
    assert batch_id_for(run_id) != batch_id_for(run_id.replace("qWdW", "zzzz"))
    with pytest.raises(ValueError):
        batch_id_for("///")


def _file(key, status, kind="streams"):
    return {"key": key, "kind": kind, "status": status}


REFS = [_file("songs/songs.csv", "PASSED", "songs"), _file("users/users.csv", "PASSED", "users")]


def test_passed_report_sends_only_the_passed_files_to_the_etl():
    report = {
        "overall_status": "PASSED",
        "files": REFS + [_file("streams/a.csv", "PASSED"), _file("streams/bad.csv", "FAILED")],
    }
    d = decide(report, "s3://trial.data/validation_reports/b/report.json")
    assert d.branch == ETL_TASK
    assert d.stream_keys == ["streams/a.csv"]
    assert d.quarantined == ["streams/bad.csv"]
    assert "1 quarantined" in d.message


def test_failed_report_takes_the_failure_branch_with_the_report_path():
    report = {
        "overall_status": "FAILED",
        "error": "no stream file passed validation (1 failed)",
        "files": REFS + [_file("streams/bad.csv", "FAILED")],
    }
    d = decide(report, "s3://trial.data/validation_reports/b/report.json")
    assert d.branch == VALIDATION_FAILED_TASK
    assert d.stream_keys == []
    assert "s3://trial.data/validation_reports/b/report.json" in d.message
    assert "no stream file passed" in d.message


def test_nothing_to_validate_is_the_skip_path():
    report = {"overall_status": "FAILED", "error": "no stream files to validate", "files": REFS}
    assert decide(report, "s3://x/r.json").branch == NO_NEW_FILES_TASK


def test_branch_targets_are_not_spec_task_names():
    # docs/data-contract.md §7 names the main path; the two extra ends must not collide with it.
    assert ETL_TASK in DAG_TASK_IDS
    assert {VALIDATION_FAILED_TASK, NO_NEW_FILES_TASK}.isdisjoint(DAG_TASK_IDS)
