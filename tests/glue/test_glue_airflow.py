"""Airflow's own GlueJobOperator, run with dag.test(), drives the Glue emulator unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from musicpipe.bootstrap import bootstrap
from musicpipe.manifest import load_manifest

from ..conftest import SAMPLES
from .test_glue_emulator import ARTIFACTS, CSV_TO_PARQUET, FAILS, put_script

PROBE_DAGS = Path(__file__).parent / "airflow_dags"


def airflow_env(tmp_path: Path, local_stack) -> dict[str, str]:
    """An Airflow home of its own (SQLite) and an AWS connection to the local endpoints."""
    s = local_stack.settings
    connection = {
        "conn_type": "aws",
        "login": "test",
        "password": "test",
        "extra": {
            "region_name": "us-east-1",
            "endpoint_url": s.aws_endpoint,
            "service_config": {"glue": {"endpoint_url": s.glue_endpoint}},
        },
    }
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW", "MUSICPIPE"))
    }
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(PROBE_DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_AWS_LOCAL=json.dumps(connection),
    )
    return env


def test_glue_job_operator_runs_spark_and_reports_failures(aws, local_stack, tmp_path):
    bootstrap(aws.client, load_manifest())
    s3 = aws.client("s3")
    s3.upload_file(str(SAMPLES / "streams" / "streams2.csv"), "rds.data", "streams/streams2.csv")
    env = airflow_env(tmp_path, local_stack)
    suffix = uuid.uuid4().hex[:6]
    env.update(
        PROBE_SPARK_JOB=f"probe-spark-{suffix}",
        PROBE_SPARK_SCRIPT=put_script(aws, "etl", CSV_TO_PARQUET),
        PROBE_SPARK_ARGS=json.dumps(
            {"--src": "s3://rds.data/streams/streams2.csv", "--dst": "s3://trial.data/probe/"}
        ),
        PROBE_SHELL_JOB=f"probe-shell-{suffix}",
        PROBE_SHELL_SCRIPT=put_script(aws, "fails", FAILS),
    )
    airflow = Path(sys.executable).parent / "airflow"
    migrate = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    result = subprocess.run(
        [sys.executable, str(PROBE_DAGS / "glue_operator_probe.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert "PROBE_RESULT spark_csv_to_parquet success" in output, output[-5000:]
    assert "PROBE_RESULT python_shell_that_fails failed" in output, output[-5000:]
    # The task fails with the script's own error, not a generic one.
    assert "FAILED - ValueError: bad input row 42 in streams1.csv" in output

    glue = aws.client("glue", endpoint=local_stack.settings.glue_endpoint)
    job = glue.get_job(JobName=env["PROBE_SPARK_JOB"])["Job"]
    assert job["Role"].endswith("musicpipe-glue-job-role")
    assert job["GlueVersion"] == "5.1"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="trial.data", Prefix="probe/")["Contents"]]
    assert "probe/_SUCCESS" in keys
    assert any(k.endswith(".parquet") for k in keys)
    assert ARTIFACTS in job["Command"]["ScriptLocation"]
