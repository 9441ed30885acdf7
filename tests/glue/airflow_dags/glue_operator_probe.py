"""A DAG that drives the Glue job emulator with the Amazon provider's stock GlueJobOperator.

Used by tests/glue/test_glue_airflow.py through `dag.test()`: one Spark job that must succeed and
one Python shell job that must fail with its own error message (deferrable, so the message
reaches the exception; the pipeline's own DAG waits synchronously instead). Job names and
scripts come from the environment the test sets.
"""

import json
import os
from datetime import datetime

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.sdk import DAG

ROLE = "arn:aws:iam::123456789012:role/musicpipe-glue-job-role"

with DAG("glue_operator_probe", start_date=datetime(2026, 1, 1), schedule=None) as dag:
    GlueJobOperator(
        task_id="spark_csv_to_parquet",
        job_name=os.environ.get("PROBE_SPARK_JOB", "probe-spark"),
        script_location=os.environ.get("PROBE_SPARK_SCRIPT", "s3://x/y.py"),
        iam_role_arn=ROLE,
        create_job_kwargs={"GlueVersion": "5.1", "WorkerType": "G.1X", "NumberOfWorkers": 2},
        script_args=json.loads(os.environ.get("PROBE_SPARK_ARGS", "{}")),
        aws_conn_id="aws_local",
        job_poll_interval=1,
    )
    GlueJobOperator(
        task_id="python_shell_that_fails",
        job_name=os.environ.get("PROBE_SHELL_JOB", "probe-shell"),
        script_location=os.environ.get("PROBE_SHELL_SCRIPT", "s3://x/z.py"),
        iam_role_arn=ROLE,
        num_of_dpus=0.0625,
        create_job_kwargs={
            "Command": {
                "Name": "pythonshell",
                "ScriptLocation": os.environ.get("PROBE_SHELL_SCRIPT", "s3://x/z.py"),
                "PythonVersion": "3.9",
            }
        },
        aws_conn_id="aws_local",
        deferrable=True,
        waiter_delay=1,
    )

if __name__ == "__main__":
    run = dag.test()
    for ti in run.get_task_instances():
        print(f"PROBE_RESULT {ti.task_id} {ti.state}", flush=True)
