"""The Glue job emulator's settings for running inside the AWS Glue 5 libs image (the Compose
stack): the image's own S3A jars instead of a download, and listening on the container's
network only when the container says so."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from musicpipe.glue import spark


def test_provided_jars_replace_the_download(tmp_path, monkeypatch):
    jars = tmp_path / "glue-pds" / "jars"
    jars.mkdir(parents=True)
    for name in ("hadoop-aws-3.4.1-amzn-0.jar", "aws-sdk-java-bundle-2.29.jar", "other.jar"):
        (jars / name).write_bytes(b"")
    globs = f"{jars}/hadoop-aws-*.jar,{jars}/aws-sdk-java-bundle-*.jar"
    monkeypatch.setenv(spark.S3A_JARS_ENV, globs)
    # No Maven Central here: a download attempt would fail the test.
    monkeypatch.setattr(spark, "hadoop_version", lambda: pytest.fail("tried to download"))
    assert [p.rsplit("/", 1)[1] for p in spark.ensure_s3a_jars(log=print)] == [
        "hadoop-aws-3.4.1-amzn-0.jar",
        "aws-sdk-java-bundle-2.29.jar",
    ]


def test_a_provided_jar_that_is_missing_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(spark.S3A_JARS_ENV, f"{tmp_path}/hadoop-aws-*.jar")
    with pytest.raises(
        spark.SparkSetupError, match="MUSICPIPE_S3A_JARS: no jar matches .*hadoop-aws"
    ):
        spark.ensure_s3a_jars(log=print)


def test_the_emulator_listens_beyond_loopback_only_inside_a_container(tmp_path):
    """Outside a container, 0.0.0.0 is refused before anything binds."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "musicpipe.glue.server",
            "--host",
            "0.0.0.0",
            "--port",
            "1",
            "--state-dir",
            str(tmp_path),
            "--aws-endpoint",
            "http://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "MUSICPIPE_IN_CONTAINER": "0"},
    )
    assert done.returncode != 0
    assert "refusing endpoint http://0.0.0.0:1" in done.stderr


def test_the_installation_s_driver_java_options_are_kept(tmp_path, monkeypatch):
    """The Glue image's spark-defaults.conf sets driver JVM options; ours are added after them
    (a --conf replaces a default, so they are joined, not overridden)."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text(
        "# Glue's defaults\n"
        "spark.driver.extraJavaOptions  -XX:+UseG1GC -Dglue.flag=1\n"
        "spark.master yarn\n"
    )
    monkeypatch.setattr(spark, "SPARK_HOME", tmp_path)
    args = spark.submit_args(
        job_name="j", jars=[], py_files=[], conf={}, log4j=tmp_path / "log4j2.properties"
    )
    java = next(a for a in shlex.split(args) if a.startswith("spark.driver.extraJavaOptions="))
    assert java == (
        "spark.driver.extraJavaOptions=-XX:+UseG1GC -Dglue.flag=1 "
        f"-Dlog4j2.configurationFile=file:{tmp_path / 'log4j2.properties'}"
    )
    assert "--master" in args  # a local master, whatever the defaults say
    monkeypatch.setattr(spark, "SPARK_HOME", tmp_path / "pip-pyspark")  # no conf folder
    assert spark.spark_defaults() == {}


def test_in_the_glue_image_the_real_etl_library_stays_in_charge(tmp_path, monkeypatch):
    """The Glue image lists its ETL jars on the driver class path of its spark-defaults.conf:
    there a glueetl run imports the real GlueContext, not musicpipe's on plain Spark."""
    from musicpipe.glue import etl_library_path

    jars = tmp_path / "glue-etl" / "jars"
    jars.mkdir(parents=True)
    (tmp_path / "conf").mkdir()
    conf = tmp_path / "conf" / "spark-defaults.conf"
    monkeypatch.setattr(spark, "SPARK_HOME", tmp_path)
    monkeypatch.delenv("MUSICPIPE_GLUE_ETL_LIBRARY", raising=False)
    conf.write_text(f"spark.driver.extraClassPath {jars}/*:/usr/lib/other/*\n")
    assert etl_library_path.library_folder() == etl_library_path.FOLDER  # no Glue jar yet
    (jars / "glue-assembly.jar").write_bytes(b"")
    assert etl_library_path.library_folder() is None
    monkeypatch.setenv("MUSICPIPE_GLUE_ETL_LIBRARY", "musicpipe")
    assert etl_library_path.library_folder() == etl_library_path.FOLDER
