"""How a run's Spark UI arguments are read, and how `musicpipe pyspark` passes arguments on:
the rules alone, no Spark (the real runs are in test_workbench.py)."""

from __future__ import annotations

import pytest

from musicpipe.glue import pyspark_session, spark_ui
from musicpipe.glue.spark_ui import SparkUiError


@pytest.mark.parametrize(
    "arguments",
    [{}, {"--enable-spark-ui": "false"}, {"--enable-spark-ui": " FALSE ", "--x": "1"}],
)
def test_no_event_log_unless_the_ui_is_enabled(arguments):
    assert spark_ui.event_logs_location(arguments) is None


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (
            "s3://musicpipe.artifacts/spark-event-logs/",
            ("musicpipe.artifacts", "spark-event-logs/"),
        ),
        ("s3a://b/a/b", ("b", "a/b/")),
        ("s3://b", ("b", "")),
        ("s3://b/", ("b", "")),
    ],
)
def test_the_event_log_location_is_a_bucket_and_a_folder(path, where):
    arguments = {"--enable-spark-ui": "True", "--spark-event-logs-path": path}
    assert spark_ui.event_logs_location(arguments) == where


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"--enable-spark-ui": "yes"}, "--enable-spark-ui must be true or false, not 'yes'"),
        ({"--enable-spark-ui": "true"}, "needs --spark-event-logs-path s3://bucket/prefix/"),
        (
            {"--enable-spark-ui": "true", "--spark-event-logs-path": " "},
            "needs --spark-event-logs-path",
        ),
        (
            {"--enable-spark-ui": "true", "--spark-event-logs-path": "/tmp/logs"},
            "'/tmp/logs' is not an s3://bucket/prefix/ location",
        ),
        (
            {"--enable-spark-ui": "true", "--spark-event-logs-path": "s3:///no-bucket"},
            "is not an s3://bucket/prefix/ location",
        ),
    ],
)
def test_bad_spark_ui_arguments_say_what_to_pass(arguments, message):
    with pytest.raises(SparkUiError, match=message.replace("(", r"\(")):
        spark_ui.event_logs_location(arguments)


def test_the_run_conf_turns_the_event_log_on_only_when_asked(tmp_path):
    assert "spark.eventLog.enabled" not in spark_ui.run_conf(4041, None)
    conf = spark_ui.run_conf(4041, tmp_path / "spark events")
    assert conf["spark.ui.port"] == "4041"
    assert conf["spark.eventLog.dir"] == (tmp_path / "spark events").as_uri()


def test_what_follows_file_or_code_is_the_codes():
    head = pyspark_session.command(None, None, [])
    assert head[-2:] == ["-m", "musicpipe.glue.pyspark_session"]
    # `musicpipe pyspark -c CODE a -c --x`: the code gets ['a', '-c', '--x'] in sys.argv.
    code = pyspark_session.command("print(1)", "a", ["-c", "--x"])
    assert code == [*head, "-c", "print(1)", "a", "-c", "--x"]
    # `musicpipe pyspark job.py -c x`: -c after FILE is the file's.
    assert pyspark_session.command(None, "job.py", ["-c", "x"]) == [*head, "job.py", "-c", "x"]
