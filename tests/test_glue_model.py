"""Glue's semantics as pure functions: argument merging, validation, limits, error text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import botocore
import pytest

from musicpipe.glue import errors, model


def job(**overrides):
    definition = {
        "Role": "arn:aws:iam::123456789012:role/r",
        "Command": {"Name": "pythonshell", "ScriptLocation": "s3://b/s.py"},
        "DefaultArguments": {"--a": "default", "--b": "default"},
        "NonOverridableArguments": {"--locked": "fixed"},
    }
    definition.update(overrides)
    return model.validate_job(definition, name="j")


def test_run_arguments_override_defaults_and_non_overridable_win():
    args = model.resolve_arguments(
        job(), {"--b": "run", "--c": "run", "--locked": "tried"}, "jr_" + "0" * 64, "s3://t/tmp/"
    )
    assert args["--a"] == "default"
    assert args["--b"] == "run"
    assert args["--c"] == "run"
    assert args["--locked"] == "fixed"
    assert args["--JOB_NAME"] == "j"
    assert args["--JOB_RUN_ID"] == "jr_" + "0" * 64
    assert args["--TempDir"] == "s3://t/tmp/j"


def test_glue_added_arguments_cannot_be_spoofed_by_the_run():
    args = model.resolve_arguments(job(), {"--JOB_NAME": "other"}, "jr_1", "s3://t/")
    assert args["--JOB_NAME"] == "j"


def test_argument_keys_must_start_with_dashes():
    with pytest.raises(errors.InvalidInput, match="must start with '--'"):
        model.resolve_arguments(job(), {"x": "1"}, "jr_1", "s3://t/")


def test_script_argv_is_key_value_pairs():
    assert model.script_argv({"--a": "1", "--b": ""}) == ["--a", "1", "--b", ""]


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"Command": {"Name": "glueetl", "ScriptLocation": "s3://b/s.py"}}, "Role"),
        ({"Role": "r", "Command": {"Name": "glueetl"}}, "ScriptLocation"),
        (
            {"Role": "r", "Command": {"Name": "spark", "ScriptLocation": "s"}},
            "Invalid Command.Name",
        ),
        (
            {"Role": "r", "Command": {"ScriptLocation": "s"}, "WorkerType": "G.1X"},
            "set together",
        ),
        ({"Role": "r", "Command": {"ScriptLocation": "s"}, "Timeout": 0}, "Timeout"),
        (
            {
                "Role": "r",
                "Command": {"ScriptLocation": "s"},
                "ExecutionProperty": {"MaxConcurrentRuns": 0},
            },
            "MaxConcurrentRuns",
        ),
        ({"Role": "r", "Command": {"ScriptLocation": "s"}, "Bogus": 1}, "Unknown job parameter"),
    ],
)
def test_invalid_definitions_are_invalid_input(definition, message):
    with pytest.raises(errors.InvalidInput, match=message):
        model.validate_job(definition, name="j")


def test_defaults_filled_in_as_glue_does():
    shell = job()
    assert shell["Command"]["PythonVersion"] == "3.9"
    assert shell["MaxCapacity"] == 0.0625
    assert shell["Timeout"] == 2880
    assert shell["ExecutionProperty"] == {"MaxConcurrentRuns": 1}
    etl = model.validate_job({"Role": "r", "Command": {"ScriptLocation": "s3://b/e.py"}}, name="e")
    assert etl["Command"]["Name"] == "glueetl"
    assert model.log_group_prefix(etl) == "/aws-glue/jobs"
    assert model.log_group_prefix(shell) == "/aws-glue/python-jobs"


def test_concurrency_limit():
    limited = job(ExecutionProperty={"MaxConcurrentRuns": 2})
    model.new_run(limited, {}, active_runs=1, temp_dir="s3://t/")
    with pytest.raises(errors.ConcurrentRunsExceeded, match="MaxConcurrentRuns is 2"):
        model.new_run(limited, {}, active_runs=2, temp_dir="s3://t/")


def test_run_timeout_overrides_job_timeout():
    assert model.new_run(job(Timeout=30), {"Timeout": 5}, 0, "s3://t/")["Timeout"] == 5
    assert model.new_run(job(Timeout=30), {}, 0, "s3://t/")["Timeout"] == 30


SPARK_FAILURE = """\
26/11/26 05:30:19 WARN Utils: Your hostname resolves to a loopback address
Traceback (most recent call last):
  File "/tmp/work/script/etl.py", line 12, in <module>
    df = spark.read.csv(args["src"])
         ^^^^^^^^^^^^^^^^^^^^^^^^^^^
pyspark.errors.exceptions.captured.AnalysisException: [PATH_NOT_FOUND] Path does not exist: s3://rds.data/nope.csv.
26/11/26 05:30:25 INFO ShutdownHookManager: Shutdown hook called
26/11/26 05:30:25 INFO ShutdownHookManager: Deleting directory /tmp/spark-123
"""


def test_error_message_is_the_exception_line_even_with_spark_chatter_after_it():
    assert model.error_message(SPARK_FAILURE) == (
        "pyspark.errors.exceptions.captured.AnalysisException: [PATH_NOT_FOUND] "
        "Path does not exist: s3://rds.data/nope.csv."
    )


def test_error_message_of_chained_exceptions_is_the_last_one():
    text = (
        "Traceback (most recent call last):\n  File \"a\", line 1\nKeyError: 'x'\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        'Traceback (most recent call last):\n  File "a", line 3\nValueError: bad row 7\n'
    )
    assert model.error_message(text) == "ValueError: bad row 7"


def test_error_message_without_traceback_is_the_last_lines():
    assert model.error_message("INFO: noise\nfatal: disk full\nexit now\n") == (
        "fatal: disk full\nexit now"
    )


def test_run_states_are_botocores_and_serialise_to_their_value():
    service = Path(botocore.__file__).parent / "data/glue/2017-03-31/service-2.json.gz"
    shapes = json.loads(gzip.decompress(service.read_bytes()))["shapes"]
    assert [s.value for s in model.JobRunState] == shapes["JobRunState"]["enum"]
    assert json.dumps({"JobRunState": model.JobRunState.FAILED}) == '{"JobRunState": "FAILED"}'
    assert f"already {model.JobRunState.STOPPED}" == "already STOPPED"


def test_stored_plain_strings_match_the_state_groups():
    assert "RUNNING" in model.ACTIVE_STATES and "RUNNING" not in model.TERMINAL_STATES
    assert {str(s) for s in model.TERMINAL_STATES} == {
        "SUCCEEDED",
        "FAILED",
        "TIMEOUT",
        "STOPPED",
        "ERROR",
    }
    assert not model.ACTIVE_STATES & model.TERMINAL_STATES
    run = model.new_run(job(), {}, 0, "s3://t/")
    model.finish(run, model.JobRunState.TIMEOUT, "late")
    assert json.loads(json.dumps(run))["JobRunState"] == "TIMEOUT"
