"""A job's GlueVersion picks its runtime as on AWS: 6.0 runs Spark 4.1 (a cached runtime,
installed on first use), 5.x the emulator's Spark 3.5, older versions the nearest here; where
Spark or Python differs from AWS's, the run's error log says so in its first line; a version
Glue does not have is refused at CreateJob. And the pipeline's own ETL on Glue 6.0, held to
the KPI oracle."""

from __future__ import annotations

import sys

import pytest

from ..conftest import SAMPLES
from ..pipeline_helpers import MANIFEST, Pipeline, assert_same_kpis, oracle_items
from .test_glue_emulator import ARTIFACTS, create_job, env, log_lines, put_script, wait

__all__ = ["env"]  # the fixture, used by name

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
REPORTS_VERSIONS = """\
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("SPARK", spark.version, flush=True)
print("PYTHON", sys.version.split()[0], flush=True)
print("ROWS", spark.read.csv("s3://musicpipe.artifacts/versions/in.csv", header=True).count())
"""


def _glueetl(aws, glue, version: str) -> tuple[dict, list[str], list[str]]:
    aws.client("s3").put_object(Bucket=ARTIFACTS, Key="versions/in.csv", Body=b"a,b\n1,2\n3,4\n")
    name = create_job(glue, put_script(aws, "versions", REPORTS_VERSIONS), command="glueetl")
    job = glue.get_job(JobName=name)["Job"]
    update = {k: job[k] for k in ("Role", "Command", "WorkerType", "NumberOfWorkers")}
    glue.update_job(JobName=name, JobUpdate={**update, "GlueVersion": version})
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    done = wait(glue, name, run_id, timeout=900)  # the first 6.0 run installs its runtime
    output = log_lines(aws, "/aws-glue/jobs/output", run_id)
    errors = log_lines(aws, "/aws-glue/jobs/error", run_id)
    assert done["JobRunState"] == "SUCCEEDED", (done.get("ErrorMessage"), errors[-20:])
    return done, output, errors


def test_glue_6_runs_spark_4_1_and_says_which_python(env):
    aws, glue = env
    done, output, errors = _glueetl(aws, glue, "6.0")
    assert done["GlueVersion"] == "6.0"
    spark = next(line for line in output if line.startswith("SPARK "))
    assert spark.startswith("SPARK 4.1."), spark
    assert "ROWS 2" in output  # S3 through S3A, with the jars of Spark 4.1's own Hadoop
    assert errors[0] == (
        f"[musicpipe] Glue 6.0 runs Spark 4.1 on Python 3.13; this run: Spark 4.1 on Python "
        f"{HERE} (the nearest this machine has)"
    )


def test_glue_5_1_runs_the_emulators_spark_and_an_older_version_the_nearest(env):
    aws, glue = env
    _, output, errors = _glueetl(aws, glue, "5.1")
    assert next(line for line in output if line.startswith("SPARK ")).startswith("SPARK 3.5.")
    assert not any("this run: Spark" in line for line in errors)  # as on AWS: nothing to say
    _, output, errors = _glueetl(aws, glue, "4.0")
    assert next(line for line in output if line.startswith("SPARK ")).startswith("SPARK 3.5.")
    assert errors[0].startswith("[musicpipe] Glue 4.0 runs Spark 3.3 on Python 3.10; this run:")


def test_a_python_shell_job_says_which_python_runs_it(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "py", "print('hi')\n"))  # PythonVersion 3.9
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    assert wait(glue, name, run_id)["JobRunState"] == "SUCCEEDED"
    errors = log_lines(aws, "/aws-glue/python-jobs/error", run_id)
    assert errors[0] == (
        f"[musicpipe] Python shell 3.9: this run uses Python {HERE} (the nearest this machine has)"
    )


@pytest.mark.parametrize("version", ["7.0", "5.2", "latest"])
def test_a_glue_version_glue_does_not_have_is_refused(env, version):
    aws, glue = env
    with pytest.raises(glue.exceptions.InvalidInputException, match="Unsupported Glue version"):
        create_job(glue, put_script(aws, "py", "print('hi')\n"), GlueVersion=version)


def test_the_pipeline_etl_on_glue_6_equals_the_oracle(aws, local_stack):
    pipe = Pipeline(aws, local_stack)
    job = pipe.glue.get_job(JobName=MANIFEST.etl_job)["Job"]
    keep = ("Role", "Command", "DefaultArguments", "WorkerType", "NumberOfWorkers", "Timeout")
    update = {k: job[k] for k in keep if k in job}
    pipe.glue.update_job(JobName=MANIFEST.etl_job, JobUpdate={**update, "GlueVersion": "6.0"})
    try:
        songs, users = SAMPLES / "songs.csv", SAMPLES / "users.csv"
        streams = sorted((SAMPLES / "streams").glob("*.csv"))
        pipe.put_references(songs, users)
        for path in streams:
            pipe.put(path, f"streams/{path.name}")
        run = pipe.etl("batch-6", expect="SUCCEEDED")
        assert run["GlueVersion"] == "6.0"
        pipe.write_kpis("batch-6")
        assert_same_kpis(pipe.kpi_table(), oracle_items(songs, users, streams))
    finally:
        pipe.glue.update_job(JobName=MANIFEST.etl_job, JobUpdate={**update, "GlueVersion": "5.1"})


def test_the_local_spark_version_is_read_from_its_jars_also_in_the_glue_image(
    tmp_path, monkeypatch
):
    from musicpipe.glue import runtimes, spark

    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / "spark-core_2.12-3.5.6-amzn-0.jar").write_bytes(b"")
    monkeypatch.setattr(spark, "SPARK_HOME", tmp_path)
    assert runtimes.local_spark() == "3.5"
    assert runtimes.spark_for("5.1") == "3.5" and runtimes.spark_for("6.0") == "4.1"
