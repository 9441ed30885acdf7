"""Glue's semantics called directly (no server): the rules, the run states, the backend."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import botocore
import pytest

from musicpipe.glue import errors, model
from musicpipe.glue.store import Store


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


# -- the rules the operations apply (CreateJob, UpdateJob, StartJobRun, BatchStopJobRun) -------
def stored(**overrides):
    return model.created_job(job(**overrides), stamp=100.0)


def test_create_job_is_idempotent_for_the_same_definition():
    assert model.is_new_job(job(), None) is True
    assert model.is_new_job(job(), stored()) is False  # timestamps are not part of it


def test_create_job_with_a_different_definition_is_a_mismatch():
    with pytest.raises(errors.IdempotentParameterMismatch, match="j already exists"):
        model.is_new_job(job(Timeout=5), stored())


def test_update_job_replaces_the_definition():
    current = stored(Timeout=5, MaxRetries=2)
    update = {"Role": "r2", "Command": {"Name": "pythonshell", "ScriptLocation": "s3://b/t.py"}}
    updated = model.updated_job(current, update, stamp=200.0)
    assert updated["Timeout"] == model.DEFAULT_TIMEOUT_MINUTES  # left out: back to the default
    assert updated["MaxRetries"] == 0 and updated["DefaultArguments"] == {}
    assert updated["Role"] == "r2" and updated["Name"] == "j"
    assert (updated["CreatedOn"], updated["LastModifiedOn"]) == (100.0, 200.0)
    with pytest.raises(errors.InvalidInput, match="JobUpdate should not be null"):
        model.require_job_update(None)


def test_only_glueetl_and_pythonshell_are_runnable():
    model.require_runnable(job())
    streaming = job(Command={"Name": "gluestreaming", "ScriptLocation": "s3://b/s.py"})
    with pytest.raises(errors.InvalidInput, match="'gluestreaming' is not run"):
        model.require_runnable(streaming)


def test_lookups_answer_glues_errors():
    with pytest.raises(errors.InvalidInput, match="JobName should not be null"):
        model.require_job_name("")
    with pytest.raises(errors.EntityNotFound, match="Job with name: nope not found"):
        model.require_job("nope", None)
    with pytest.raises(errors.EntityNotFound, match="Job run jr_x of job j not found"):
        model.require_run("j", "jr_x", None)


def test_stop_refusal_per_run():
    assert model.stop_refusal(None) == {
        "ErrorCode": "EntityNotFoundException",
        "ErrorMessage": "Run not found",
    }
    run = model.new_run(job(), {}, 0, "s3://t/")
    assert model.stop_refusal(run) is None  # active: up to the runner
    model.finish(run, model.JobRunState.SUCCEEDED)
    assert model.stop_refusal(run) == {
        "ErrorCode": "InvalidInputException",
        "ErrorMessage": "Job run is already SUCCEEDED",
    }


def test_pages_and_next_tokens():
    items = list(range(5))
    assert model.page(items, 2, None) == ([0, 1], "2")
    assert model.page(items, 2, "4") == ([4], None)
    assert model.page(items, None, None) == (items, None)
    assert model.page(items, 0, None) == (items, None)  # 0 reads as "not given"
    for bad in (-1, model.MAX_PAGE + 1):
        with pytest.raises(errors.InvalidInput, match="MaxResults must be between 1 and 200"):
            model.page(items, bad, None)


def test_error_types_carry_glues_codes_and_400():
    for error in (
        errors.EntityNotFound,
        errors.AlreadyExists,
        errors.InvalidInput,
        errors.ConcurrentRunsExceeded,
        errors.IdempotentParameterMismatch,
        errors.UnknownOperation,
        errors.SerializationError,
    ):
        assert issubclass(error, errors.GlueError)
        assert error.status == 400 and error.code.endswith("Exception")
        assert error("why").message == "why"
    assert (errors.GlueError.code, errors.GlueError.status) == ("InternalServiceException", 500)


# -- the backend over a real store and a fake runner --------------------------------------------
class FakeRunner:
    def __init__(self, stoppable=()):
        self.started: list[str] = []
        self.stoppable = set(stoppable)

    def start(self, run):
        self.started.append(run["Id"])

    def stop(self, run_id):
        return run_id in self.stoppable


DEFINITION = {"Role": "r", "Command": {"Name": "pythonshell", "ScriptLocation": "s3://b/s.py"}}


@pytest.fixture
def backend(tmp_path):
    return model.GlueBackend(Store(tmp_path), FakeRunner(), "s3://t/")


def test_backend_create_update_and_delete(backend):
    backend.create_job("j", DEFINITION)
    created = backend.get_job("j")
    backend.create_job("j", DEFINITION)  # same again: nothing changes
    assert backend.get_job("j") == created
    backend.update_job("j", {**DEFINITION, "Timeout": 7})
    updated = backend.get_job("j")
    assert updated["Timeout"] == 7 and updated["CreatedOn"] == created["CreatedOn"]
    assert backend.list_jobs(None, None) == (["j"], None)
    backend.delete_job("j")
    backend.delete_job("j")  # a missing job deletes fine, as on Glue
    with pytest.raises(errors.EntityNotFound):
        backend.get_job("j")
    with pytest.raises(errors.EntityNotFound):
        backend.update_job("j", DEFINITION)


def test_backend_starts_runs_up_to_the_concurrency_limit(backend):
    backend.create_job("j", {**DEFINITION, "ExecutionProperty": {"MaxConcurrentRuns": 1}})
    run_id = backend.start_job_run("j", {"Arguments": {"--x": "1"}})
    assert backend.runner.started == [run_id]
    run = backend.get_job_run("j", run_id)
    assert run["JobRunState"] == "STARTING" and run["Arguments"] == {"--x": "1"}
    assert not any(key.startswith("_") for key in run)
    with pytest.raises(errors.ConcurrentRunsExceeded):
        backend.start_job_run("j", {})
    assert backend.get_job_runs("j", None, None) == ([run], None)


def test_backend_batch_stop_reports_each_run(tmp_path):
    store = Store(tmp_path)
    backend = model.GlueBackend(store, FakeRunner(), "s3://t/")
    backend.create_job("j", {**DEFINITION, "ExecutionProperty": {"MaxConcurrentRuns": 3}})
    active, unknown_to_runner, done = (backend.start_job_run("j", {}) for _ in range(3))
    finished = store.get_run("j", done)
    model.finish(finished, model.JobRunState.FAILED, "boom")
    store.put_run(finished)
    backend.runner.stoppable = {active}
    stopped, refused = backend.batch_stop_job_run(
        "j", [active, unknown_to_runner, done, "jr_missing"]
    )
    assert stopped == [{"JobName": "j", "JobRunId": active}]
    assert [(e["JobRunId"], e["ErrorDetail"]["ErrorMessage"]) for e in refused] == [
        (unknown_to_runner, "Run not active"),
        (done, "Job run is already FAILED"),
        ("jr_missing", "Run not found"),
    ]
