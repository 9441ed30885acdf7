"""music_streaming_realtime_pipeline: stream files in S3 → validated → KPIs in DynamoDB.

Started by data, and by a retry timer: S3 ObjectCreated events of ``streams/*.csv`` go to the
SQS arrivals queue; an AssetWatcher polls it and every batch of messages updates the asset
``raw_stream_files``, which schedules this DAG; every ``retry_timer_seconds`` a timed run
starts too (asset-or-time schedule; 0 turns the timer off), so failed files and dead runs'
claims are retried without a new arrival. select_due_files judges every waiting file (new,
due after its backoff, given up, ...: docs/data-contract.md §8.1) and the run validates
exactly those it took (``max_active_runs=1`` keeps timed and arrival runs apart; a run with
nothing due ends on ``nothing_due`` and starts no Glue job).

    select_due_files ├→ nothing_due ──────────────────────────────────────────────┐
                     └→ wait_for_streams_files → validate_data_quality → check_validation_status
        ├→ realtime_etl_processing → write_kpis_to_dynamodb ─┐
        ├→ validation_failed   (report path in the log; bad  ├→ archive_processed_files
        │                       files are in quarantine)     │    → fail_on_failed_files
        └→ no_new_files        (nothing new waiting) ────────┘
    (nothing_due, too, goes on to archive_processed_files)

archive_processed_files ends every run that did not fail: it archives the files the run
completed, and unchanged re-uploads of COMPLETED files (already counted, never processed
again), which otherwise take the skip path and would wait in streams/ for ever. Then
fail_on_failed_files ends the run red if a stream file failed alone in the ETL (the Glue run
succeeds then, so that the other files are written and archived first), naming each.

Configuration: the Airflow Variable ``music_streaming_pipeline`` (JSON; see
musicpipe/dag/config.py and docs/airflow.md) and the AWS connection it names (default
``aws_default``). The same file runs on MWAA and on the local stacks; only those two differ.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.dynamodb import DynamoDBHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    DeltaTriggerTimetable,
    Variable,
    task,
)

from musicpipe.dag.config import STREAM_FILES_PATTERN, VARIABLE, batch_id_for, load_dag_config

log = logging.getLogger(__name__)

# Read from the environment (AIRFLOW_VAR_MUSIC_STREAMING_PIPELINE) or a secrets backend.
cfg = load_dag_config(Variable.get(VARIABLE, default=None))
BATCH_ID = "{{ run_id | batch_id }}"

raw_stream_files = Asset(
    name="raw_stream_files",
    uri=f"s3://{cfg.raw_bucket}/streams/",
    watchers=[
        AssetWatcher(
            name="arrivals_queue",
            trigger=MessageQueueTrigger(
                scheme="sqs",
                sqs_queue=cfg.arrivals_queue_url,
                aws_conn_id=cfg.aws_conn_id,
                waiter_delay=cfg.arrivals_poll_seconds,
                max_messages=10,
            ),
        )
    ],
)


def _hooks():
    s3 = S3Hook(aws_conn_id=cfg.aws_conn_id).get_conn()
    dynamodb = DynamoDBHook(aws_conn_id=cfg.aws_conn_id).get_conn()
    cloudwatch = AwsBaseHook(aws_conn_id=cfg.aws_conn_id, client_type="cloudwatch").get_conn()
    return s3, dynamodb, cloudwatch


# The Glue operators wait in their worker rather than deferring: verbose=True then copies the
# job's own log (its traceback, on failure) into the task log, which deferrable mode drops, and
# short jobs avoid the deferral race of apache/airflow#72716.
GLUE_WAIT = {
    "aws_conn_id": cfg.aws_conn_id,
    "wait_for_completion": True,
    "deferrable": False,
    "verbose": True,
    "job_poll_interval": cfg.glue_poll_seconds,
}

# Task retries for the tasks that are safe to run twice (each says why where it is defined);
# the Glue operators get none (a second job run is Glue's own MaxRetries, a later change).
IDEMPOTENT_RETRIES = {
    "retries": 2,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=2),
}

# Arrivals, or the retry timer: one DAG, so max_active_runs=1 keeps the two kinds of run apart.
SCHEDULE = (
    AssetOrTimeSchedule(
        timetable=DeltaTriggerTimetable(timedelta(seconds=cfg.retry_timer_seconds)),
        assets=[raw_stream_files],
    )
    if cfg.retry_timer_seconds > 0
    else [raw_stream_files]
)

with DAG(
    dag_id=cfg.dag_id,
    description="Stream files in S3 → Glue validation → Glue ETL → KPIs in DynamoDB",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args={"retries": 0},
    user_defined_filters={"batch_id": batch_id_for},
    tags=["music-streaming", "kpis"],
    doc_md=__doc__,
) as dag:
    # Safe to retry: it only reads, and its one write (a given-up file's move to quarantine)
    # is copy-verify-delete, which a second attempt simply does again.
    @task.branch(task_id="select_due_files", **IDEMPOTENT_RETRIES)
    def select_due_files(run_id=None, ti=None) -> str:
        import time

        from musicpipe.dag import steps

        s3, dynamodb, _ = _hooks()
        glue = AwsBaseHook(aws_conn_id=cfg.aws_conn_id, client_type="glue").get_conn()
        selection = steps.select_due_files(
            s3,
            dynamodb,
            glue,
            raw_bucket=cfg.raw_bucket,
            quarantine_bucket=cfg.quarantine_bucket,
            tracker_table=cfg.tracker_table,
            etl_job=cfg.etl_job,
            batch_id=batch_id_for(run_id),
            settings=cfg.retry,
            now=time.time(),
            log=log.info,
        )
        log.info(
            "%d file(s) taken, %d given up, %d judged",
            len(selection.stream_keys),
            len(selection.given_up),
            len(selection.judgements),
        )
        ti.xcom_push(key="stream_keys", value=",".join(selection.stream_keys))
        return selection.branch

    nothing_due = EmptyOperator(task_id="nothing_due")

    wait_for_streams_files = S3KeySensor(
        task_id="wait_for_streams_files",
        bucket_name=cfg.raw_bucket,
        bucket_key=STREAM_FILES_PATTERN,
        wildcard_match=True,
        aws_conn_id=cfg.aws_conn_id,
        deferrable=True,
        poke_interval=cfg.sensor_poke_seconds,
        timeout=cfg.sensor_timeout_seconds,
        soft_fail=True,  # nothing waiting after the timeout: the skip path, not a failure
        # Airflow 3.3.1 can fail a deferred task whose trigger fires within seconds (a stale
        # executor event, apache/airflow#72716); one retry pokes again and finds the file.
        retries=1,
        retry_delay=timedelta(seconds=1),
    )

    validate_data_quality = GlueJobOperator(
        task_id="validate_data_quality",
        job_name=cfg.validation_job,
        # Exactly the files select_due_files took (never one still in its backoff).
        script_args={
            "--batch_id": BATCH_ID,
            "--stream_keys": "{{ ti.xcom_pull(task_ids='select_due_files', key='stream_keys') }}",
        },
        **GLUE_WAIT,
    )

    # Safe to retry: it only reads the report (a retry after the metric was sent sends
    # FilesQuarantined once more: a count in CloudWatch, no data).
    @task.branch(task_id="check_validation_status", **IDEMPOTENT_RETRIES)
    def check_validation_status(run_id=None, ti=None) -> str:
        from musicpipe.dag import steps

        s3, _, cloudwatch = _hooks()
        batch_id = batch_id_for(run_id)
        key = cfg.report_key(batch_id)
        report = steps.read_report(s3, cfg.processed_bucket, key)
        decision = steps.decide(report, f"s3://{cfg.processed_bucket}/{key}")
        log.info(decision.message)
        for quarantined in decision.quarantined:
            log.warning("quarantined: %s", quarantined)
        steps.publish_quarantined(cloudwatch, cfg.metrics_namespace, cfg.pipeline_name, decision)
        ti.xcom_push(key="stream_keys", value=",".join(decision.stream_keys))
        return decision.branch

    realtime_etl_processing = GlueJobOperator(
        task_id="realtime_etl_processing",
        job_name=cfg.etl_job,
        script_args={
            "--batch_id": BATCH_ID,
            "--stream_keys": (
                "{{ ti.xcom_pull(task_ids='check_validation_status', key='stream_keys') }}"
            ),
        },
        **GLUE_WAIT,
    )

    # Safe to retry: whole-item puts and deletes, COMPLETED only for files still STAGED here.
    @task(task_id="write_kpis_to_dynamodb", **IDEMPOTENT_RETRIES)
    def write_kpis_to_dynamodb(run_id=None) -> dict:
        from musicpipe.dag import steps

        s3, dynamodb, cloudwatch = _hooks()
        summary = steps.write_kpis(
            s3,
            dynamodb,
            cloudwatch,
            raw_bucket=cfg.raw_bucket,
            processed_bucket=cfg.processed_bucket,
            kpi_table=cfg.kpi_table,
            tracker_table=cfg.tracker_table,
            metrics_namespace=cfg.metrics_namespace,
            pipeline_name=cfg.pipeline_name,
            batch_id=batch_id_for(run_id),
        )
        log.info("KPIs written: %s", summary)
        return summary

    # Runs after whichever branch ran, unless something failed (then the files stay for the
    # retry). On the skip and failure branches write_kpis_to_dynamodb is skipped and left no
    # XCom: only the already-counted re-uploads are archived. (The rule as a string: the same
    # on every Airflow version MWAA offers.)
    # Safe to retry: copy-verify-delete, conditional on the ETag; a moved file is not moved again.
    @task(
        task_id="archive_processed_files",
        trigger_rule="none_failed_min_one_success",
        **IDEMPOTENT_RETRIES,
    )
    def archive_processed_files(ti=None) -> list[dict]:
        from musicpipe.dag import steps

        written = ti.xcom_pull(task_ids="write_kpis_to_dynamodb") or {}
        s3, dynamodb, _ = _hooks()
        results = steps.archive(
            s3,
            dynamodb,
            raw_bucket=cfg.raw_bucket,
            tracker_table=cfg.tracker_table,
            keys=written.get("files_completed", []),
        )
        for result in results:
            log.info(
                "%s: %s %s %s",
                result["file_key"],
                result["status"],
                result["to"] or "",
                result["detail"],
            )
        return results

    # all_success, spelled out: it runs exactly when archive_processed_files succeeded, and
    # that task ends every branch, so this runs after the ETL as after the skip and failure
    # branches. Not "all_done": Airflow judges a run by its last tasks, so this one succeeding
    # after a failed ETL, write or archive would turn that failed run green; upstream_failed
    # keeps it red. No retries: the verdict is read from the staging manifest and does not
    # change.
    @task(task_id="fail_on_failed_files", trigger_rule="all_success", retries=0)
    def fail_on_failed_files(run_id=None) -> None:
        from musicpipe.dag import steps

        s3, _, _ = _hooks()
        steps.fail_on_failed_files(
            s3, processed_bucket=cfg.processed_bucket, batch_id=batch_id_for(run_id)
        )

    @task(task_id="validation_failed")
    def validation_failed(run_id=None) -> None:
        # Not a crash: the report says what failed and the files are in quarantine.
        key = cfg.report_key(batch_id_for(run_id))
        log.warning(
            "validation failed; nothing was processed. Report: s3://%s/%s",
            cfg.processed_bucket,
            key,
        )

    no_new_files = EmptyOperator(task_id="no_new_files")

    selected = select_due_files()
    branch = check_validation_status()
    written = write_kpis_to_dynamodb()
    failed = validation_failed()
    selected >> [wait_for_streams_files, nothing_due]
    wait_for_streams_files >> validate_data_quality >> branch
    branch >> realtime_etl_processing >> written
    branch >> [failed, no_new_files]
    (
        [written, failed, no_new_files, nothing_due]
        >> archive_processed_files()
        >> fail_on_failed_files()
    )
