"""The pure parts of per-file isolation: "whole, then each", the errors a user reads, the
report's validated ETags, and the DAG's verdict on files that failed alone."""

from __future__ import annotations

import pytest

from musicpipe.dag.steps import failed_files_message
from musicpipe.etl.inputs import validated_from_report
from musicpipe.etl.isolation import (
    failed_entries,
    missing_columns_error,
    spark_error,
    whole_then_each,
)


class Checker:
    """A check that throws for any call holding a bad key, and records its calls."""

    def __init__(self, bad: set[str], flaky: bool = False) -> None:
        self.bad, self.flaky, self.calls = bad, flaky, []

    def __call__(self, keys: list[str]) -> list[str]:
        self.calls.append(list(keys))
        if self.flaky and len(self.calls) == 1:
            raise OSError("connection reset")
        for key in keys:
            if key in self.bad:
                raise ValueError(f"cannot read {key}")
        return sorted(keys)


def test_one_pass_when_nothing_fails():
    check = Checker(set())
    found = whole_then_each(["a", "b", "c"], check)
    assert (found.result, found.ok, found.failed) == (["a", "b", "c"], ["a", "b", "c"], {})
    assert check.calls == [["a", "b", "c"]]


def test_the_failing_file_is_named_and_the_others_go_on():
    check = Checker({"b"})
    found = whole_then_each(["a", "b", "c"], check)
    assert found.result == ["a", "c"] and found.ok == ["a", "c"]
    assert list(found.failed) == ["b"] and "cannot read b" in str(found.failed["b"])
    # whole, then each alone, then the files that passed, together
    assert check.calls == [["a", "b", "c"], ["a"], ["b"], ["c"], ["a", "c"]]


def test_a_probe_checks_each_file_when_given():
    check, probed = Checker({"b"}), Checker({"b"})
    found = whole_then_each(["a", "b"], check, probed)
    assert list(found.failed) == ["b"]
    assert check.calls == [["a", "b"], ["a"]] and probed.calls == [["a"], ["b"]]


def test_every_file_failing_leaves_no_result():
    found = whole_then_each(["a", "b"], Checker({"a", "b"}))
    assert found.result is None and found.ok == [] and sorted(found.failed) == ["a", "b"]


def test_a_single_file_is_not_checked_twice():
    check = Checker({"a"})
    found = whole_then_each(["a"], check)
    assert list(found.failed) == ["a"] and check.calls == [["a"]]


def test_no_file_to_blame_raises_the_batch_error():
    # The whole pass failed, every file passes alone: not one file's fault.
    with pytest.raises(OSError, match="connection reset"):
        whole_then_each(["a", "b"], Checker(set(), flaky=True))


SPARK_TRACE = """An error occurred while calling o49.count.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 0.0 failed
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2856)
Caused by: org.apache.spark.SparkException: Encountered error while reading file s3a://x/y.csv.
\tat org.apache.spark.sql.errors.QueryExecutionErrors$.cannotReadFilesError(Errors.scala:864)
Caused by: java.lang.ArrayIndexOutOfBoundsException: Index 20480 out of bounds for length 20480
\tat com.univocity.parsers.common.ParserOutput.emptyParsed(ParserOutput.java:352)
"""


def test_a_spark_error_is_its_root_cause_and_what_to_do():
    error = spark_error("streams/w.csv", RuntimeError(SPARK_TRACE))
    assert error.startswith(
        "streams/w.csv: Spark could not read it (ArrayIndexOutOfBoundsException: Index 20480"
    )
    assert "more than 20,480 fields" in error and "upload the file again" in error
    assert "\n" not in error and "at org.apache" not in error


def test_the_hint_survives_a_jvm_that_dropped_the_message():
    # A warm JVM throws the same exception without message or stack trace (fast throw).
    trace = SPARK_TRACE.split("Caused by: java.lang")[0] + (
        "Caused by: java.lang.ArrayIndexOutOfBoundsException\n"
    )
    error = spark_error("streams/w.csv", RuntimeError(trace))
    assert "(ArrayIndexOutOfBoundsException)" in error
    assert "more than 20,480 fields" in error


def test_an_unknown_spark_error_still_says_what_to_do():
    error = spark_error("streams/w.csv", ValueError("boom"))
    assert (
        error
        == "streams/w.csv: Spark could not read it (ValueError: boom); fix it and upload it again"
    )


def test_a_missing_column_names_the_header_found():
    error = missing_columns_error("streams/c.csv", ["user_id", "track_id", "at"], ["listen_time"])
    assert error == (
        "streams/c.csv: header lacks listen_time (its header: 'user_id', 'track_id', 'at'); "
        "fix the header and upload the file again"
    )


def test_failed_entries_are_sorted_by_key():
    assert failed_entries([("streams/b.csv", "e2", "x"), ("streams/a.csv", "e1", "y")]) == [
        {"file_key": "streams/a.csv", "etag": "e1", "error": "y"},
        {"file_key": "streams/b.csv", "etag": "e2", "error": "x"},
    ]


def test_validated_etags_come_from_the_report():
    report = {
        "files": [
            {"key": "songs/songs.csv", "kind": "songs", "status": "PASSED", "etag": "s1"},
            {"key": "users/users.csv", "kind": "users", "status": "PASSED", "etag": '"u1"'},
            {"key": "streams/a.csv", "kind": "streams", "status": "PASSED", "etag": "a1"},
            {"key": "streams/b.csv", "kind": "streams", "status": "FAILED", "etag": "b1"},
            {"key": "streams/c.csv", "kind": "streams", "status": "FAILED", "etag": None},
        ]
    }
    found = validated_from_report(report, "s3://p/validation_reports/b/report.json")
    assert found.references == {"songs/songs.csv": "s1", "users/users.csv": "u1"}
    assert found.streams == {"streams/a.csv": "a1"}  # only what PASSED is processed
    assert validated_from_report(None, "s3://p/x").report_url is None


def test_the_verdict_names_each_failed_file():
    assert failed_files_message([]) is None
    message = failed_files_message(
        [
            {"file_key": "streams/a.csv", "error": "streams/a.csv: header lacks listen_time"},
            {"file_key": "streams/b.csv", "error": "S3 said no"},
        ]
    )
    assert message is not None and message.startswith("2 stream file(s) failed in the ETL")
    assert "streams/a.csv: header lacks listen_time; streams/b.csv: S3 said no." in message
    assert "FAILED in the tracker" in message
