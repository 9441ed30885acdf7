"""Run the ETL job's code and die like `kill -9` at a chosen point between two steps.

Used by tests/etl/test_etl_crash.py in a child process: the process exits with os._exit, so
nothing after the crash point runs (no exception handler marks the files FAILED, no cleanup),
exactly what a killed Glue run leaves behind. Configured by the environment the test sets:
AWS_ENDPOINT_URL (the local moto), MUSICPIPE_JAR_CACHE and the manifest's defaults.

    python -m tests.etl.etl_crash_runner <crash point> <batch id>
"""

from __future__ import annotations

import os
import sys

import boto3
from pyspark.sql import SparkSession

from musicpipe.etl import job as etl_job
from musicpipe.etl.store import EventStore
from musicpipe.glue import spark as glue_spark
from musicpipe.manifest import load_manifest

CRASH_EXIT = 137


def _crash() -> None:
    sys.stdout.flush()
    os._exit(CRASH_EXIT)


def _after(cls, name: str) -> None:
    original = getattr(cls, name)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        _crash()
        return result

    setattr(cls, name, wrapper)


def _before(cls, name: str) -> None:
    def wrapper(*args, **kwargs):
        _crash()

    setattr(cls, name, wrapper)


# Each point names the step after which the job dies.
CRASH_POINTS = {
    "claimed": lambda: _after(etl_job.EtlJob, "claim_files"),
    "rows_quarantined": lambda: _after(etl_job.EtlJob, "_quarantine_rows"),
    "duplicates_counted": lambda: _after(etl_job.EtlJob, "_count_duplicates"),
    "old_events_deleted": lambda: _after(EventStore, "delete_source"),
    "events_stored": lambda: _before(etl_job.EtlJob, "compute_kpis"),
    "kpis_staged": lambda: _after(etl_job.EtlJob, "write_staging"),
    "tracker_staged": lambda: _before(etl_job.EtlJob, "_metrics"),
}


def main() -> None:
    point, batch_id = sys.argv[1], sys.argv[2]
    CRASH_POINTS[point]()
    manifest = load_manifest()
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    os.environ["PYSPARK_SUBMIT_ARGS"] = glue_spark.submit_args(
        job_name="crash-runner",
        jars=glue_spark.ensure_s3a_jars(),
        py_files=[],
        conf=glue_spark.s3a_conf(endpoint, "test", "test", manifest.region),
        log4j=glue_spark.log4j_config(glue_spark.jar_cache()),
    )
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = SparkSession.builder.getOrCreate()
    job = etl_job.EtlJob(
        spark,
        etl_job.EtlArgs(
            job_name=manifest.etl_job,
            job_run_id=f"jr_crash_{point}",
            batch_id=batch_id,
            raw_bucket=manifest.raw_bucket,
            processed_bucket=manifest.processed_bucket,
            quarantine_bucket=manifest.quarantine_bucket,
            tracker_table=manifest.tracker_table,
            metrics_namespace=manifest.metrics_namespace,
            pipeline_name=manifest.pipeline_name,
        ),
        s3=boto3.client("s3"),
        dynamodb=boto3.resource("dynamodb"),
        cloudwatch=boto3.client("cloudwatch"),
        glue=boto3.client("glue"),
    )
    job.run()
    print("the job finished without reaching its crash point", flush=True)
    sys.exit(3)


if __name__ == "__main__":
    main()
