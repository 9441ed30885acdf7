"""Glue 5.1 PySpark job `music_streaming_etl_complete` (docs/data-contract.md §3).

Cleans, checks, joins and deduplicates the batch's stream files (each at the version the
batch's validation passed; one that fails does so alone), stores enriched events as Parquet,
computes the KPIs of every date the batch touched and stages them for the DAG's
`write_kpis_to_dynamodb` task. The logic lives in the `musicpipe` package this job receives
through --extra-py-files; this script reads the arguments and wires the AWS clients.

Arguments (Glue job arguments): --raw_bucket --processed_bucket --quarantine_bucket
--tracker_table --metrics_namespace --pipeline_name --default_listen_duration_seconds, and per
run --batch_id (default: derived from the run id) and --stream_keys (comma-separated raw keys;
default: those the batch's validation report passed; without a report, every streams/*.csv
not yet COMPLETED with its current content).
"""

import sys

import boto3
from awsglue.utils import getResolvedOptions
from pyspark.sql import SparkSession

from musicpipe.etl.job import EtlArgs, EtlJob

# JOB_RUN_ID is one of Glue's own arguments: getResolvedOptions always returns it.
REQUIRED = [
    "JOB_NAME",
    "raw_bucket",
    "processed_bucket",
    "quarantine_bucket",
    "tracker_table",
    "metrics_namespace",
    "pipeline_name",
    "default_listen_duration_seconds",
]
OPTIONAL = ["batch_id", "stream_keys"]


def main() -> None:
    present = [name for name in OPTIONAL if f"--{name}" in sys.argv]
    args = getResolvedOptions(sys.argv, REQUIRED + present)
    spark = SparkSession.builder.appName(args["JOB_NAME"]).getOrCreate()
    job = EtlJob(
        spark,
        EtlArgs(
            job_name=args["JOB_NAME"],
            job_run_id=args["JOB_RUN_ID"],
            batch_id=args.get("batch_id") or f"batch-{args['JOB_RUN_ID'][3:19]}",
            raw_bucket=args["raw_bucket"],
            processed_bucket=args["processed_bucket"],
            quarantine_bucket=args["quarantine_bucket"],
            tracker_table=args["tracker_table"],
            metrics_namespace=args["metrics_namespace"],
            pipeline_name=args["pipeline_name"],
            listen_duration_s=int(args["default_listen_duration_seconds"]),
            stream_keys=[k.strip() for k in args.get("stream_keys", "").split(",") if k.strip()],
        ),
        s3=boto3.client("s3"),
        dynamodb=boto3.resource("dynamodb"),
        cloudwatch=boto3.client("cloudwatch"),
        glue=boto3.client("glue"),
    )
    result = job.run()
    # Files that failed alone do not fail the run: the DAG's fail_on_failed_files names them
    # after the good files' KPIs are written and archived.
    failed = result["files_failed"]
    print(f"ETL done: {len(result['files'])} files, {len(failed)} failed, dates {result['dates']}")
    spark.stop()


if __name__ == "__main__":
    main()
