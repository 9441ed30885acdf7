"""The pure parts of `musicpipe job run` / `job runs`: --arg parsing, a loose script's scratch
job, a run as a row (the CLI against a real stack: tests/cli/test_job_run.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from musicpipe.manifest import load_manifest
from musicpipe.stack.job_runs import RunUsageError, parse_arguments, run_row, scratch_spec


def test_arguments_become_glue_run_arguments():
    assert parse_arguments(["batch_id=x", "--day=2026-11-01", "empty=", "eq=a=b"]) == {
        "--batch_id": "x",
        "--day": "2026-11-01",
        "--empty": "",
        "--eq": "a=b",
    }


@pytest.mark.parametrize("bad", ["batch_id", "=x", "two words=x", "--=x", "é=x"])
def test_bad_arguments_say_what_is_expected(bad):
    with pytest.raises(RunUsageError, match="expected KEY=VALUE"):
        parse_arguments([bad])


def test_a_scratch_job_is_a_glueetl_job_with_the_pipelines_defaults(tmp_path):
    script = tmp_path / "my try (2).py"
    script.write_text("print(1)\n")
    manifest = load_manifest(cwd=tmp_path, environ={})
    spec = scratch_spec(manifest, script)
    etl = next(s for s in manifest.glue_jobs if s.command == "glueetl")
    assert spec.name == "scratch_my_try__2_"
    assert spec.command == "glueetl" and spec.glue_version == etl.glue_version
    assert spec.default_arguments == etl.default_arguments
    assert spec.script == str(script)
    assert spec.script_location == "s3://musicpipe.artifacts/scratch/scratch_my_try__2_.py"


def test_a_run_row_has_its_duration_and_error():
    start = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
    row = run_row(
        {
            "Id": "jr_1",
            "Attempt": 0,
            "JobRunState": "FAILED",
            "StartedOn": start,
            "CompletedOn": start + dt.timedelta(seconds=2.5),
            "ErrorMessage": "ValueError: boom",
        }
    )
    assert row["duration_s"] == 2.5 and row["error"] == "ValueError: boom"
    assert row["started"] == "2026-11-01T12:00:00+00:00"
    running = run_row(
        {"Id": "jr_2", "JobRunState": "RUNNING", "StartedOn": start},
        now=start + dt.timedelta(seconds=7),
    )
    assert running["duration_s"] == 7.0 and running["attempt"] == 0
