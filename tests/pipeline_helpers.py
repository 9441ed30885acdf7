"""Running the pipeline's jobs in tests as the DAG will: real Glue jobs on the emulator,
then the DynamoDB writer; and reading back what a user would look at."""

from __future__ import annotations

import time
from pathlib import Path

from musicpipe.artifacts import deploy_jobs
from musicpipe.aws.local import LOCAL_ACCOUNT_ID
from musicpipe.bootstrap import bootstrap
from musicpipe.contract.kpis import day_items
from musicpipe.manifest import load_manifest
from musicpipe.pipeline.kpi_writer import write_staged_kpis
from musicpipe.pipeline.tracker import Tracker

from . import oracle

# The session's Glue emulator runs 3-second "minutes" (for the timeout tests): give the
# pipeline's jobs a Timeout that still leaves them half an hour.
MANIFEST = load_manifest(
    cwd=Path(__file__).parent, environ={"MUSICPIPE_GLUE_TIMEOUT_MINUTES": "600"}
)
RAW, PROCESSED, QUARANTINE = (
    MANIFEST.raw_bucket,
    MANIFEST.processed_bucket,
    MANIFEST.quarantine_bucket,
)


class Pipeline:
    def __init__(self, aws, local_stack) -> None:
        self.aws = aws
        self.s3 = aws.client("s3")
        self.glue = aws.client("glue", endpoint=local_stack.settings.glue_endpoint)
        self.dynamodb = aws.session.resource(
            "dynamodb", endpoint_url=aws.endpoint, config=aws.config
        )
        bootstrap(aws.client, MANIFEST)
        deploy_jobs(self.s3, self.glue, MANIFEST, LOCAL_ACCOUNT_ID)

    # -- inputs ------------------------------------------------------------------------------
    def put(self, path: Path, key: str) -> None:
        self.s3.upload_file(str(path), RAW, key)

    def put_references(self, songs: Path, users: Path) -> None:
        self.put(songs, "songs/songs.csv")
        self.put(users, "users/users.csv")

    # -- jobs --------------------------------------------------------------------------------
    def run_job(self, name: str, arguments: dict[str, str], timeout: float = 900) -> dict:
        run_id = self.glue.start_job_run(JobName=name, Arguments=arguments)["JobRunId"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.glue.get_job_run(JobName=name, RunId=run_id)["JobRun"]
            if run["JobRunState"] not in ("STARTING", "RUNNING", "STOPPING"):
                return run
            time.sleep(0.5)
        raise AssertionError(f"{name} run {run_id} did not finish in {timeout} s")

    def validate(self, batch_id: str, keys: list[str] | None = None) -> dict:
        """Run the validation job as the DAG does; return its report."""
        import json

        args = {"--batch_id": batch_id}
        if keys:
            args["--stream_keys"] = ",".join(keys)
        run = self.run_job(MANIFEST.validation_job, args)
        assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
        key = f"validation_reports/{batch_id}/report.json"
        return json.loads(self.s3.get_object(Bucket=PROCESSED, Key=key)["Body"].read())

    def etl(self, batch_id: str, keys: list[str] | None = None, expect="SUCCEEDED") -> dict:
        args = {"--batch_id": batch_id}
        if keys:
            args["--stream_keys"] = ",".join(keys)
        run = self.run_job(MANIFEST.etl_job, args)
        assert run["JobRunState"] == expect, run.get("ErrorMessage")
        return run

    def write_kpis(self, batch_id: str):
        return write_staged_kpis(
            self.s3,
            self.dynamodb,
            PROCESSED,
            MANIFEST.kpi_table,
            MANIFEST.tracker_table,
            batch_id,
        )

    def etl_and_write(self, batch_id: str, keys: list[str] | None = None):
        self.etl(batch_id, keys)
        return self.write_kpis(batch_id)

    # -- outputs -----------------------------------------------------------------------------
    def kpi_table(self) -> dict[tuple[str, str], dict]:
        return kpi_table_items(self.dynamodb)

    def tracker_items(self) -> dict[str, dict]:
        return {i["file_key"]: i for i in Tracker(self.dynamodb, MANIFEST.tracker_table).items()}

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def kpi_table_items(dynamodb) -> dict[tuple[str, str], dict]:
    """Every item of the KPI table by (pk, sk), without updated_at."""
    table = dynamodb.Table(MANIFEST.kpi_table)
    items, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return {(i["pk"], i["sk"]): _without_updated_at(i) for i in items}


def oracle_items(songs: Path, users: Path, streams: list[Path]) -> dict[tuple[str, str], dict]:
    """The KPI items the table must hold, computed once from scratch by DuckDB."""
    days = oracle.kpis_from_files(songs, users, streams)
    items = [i for d in sorted(days) for i in day_items(days[d], "2000-01-01T00:00:00Z")]
    return {(i["pk"], i["sk"]): _without_updated_at(i) for i in items}


def _without_updated_at(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "updated_at"}


def assert_same_kpis(actual: dict, expected: dict) -> None:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]}, unexpected {extra[:5]}"
    wrong = [k for k in expected if actual[k] != expected[k]]
    assert not wrong, (
        f"{len(wrong)} items differ, e.g. {wrong[0]}:\n{actual[wrong[0]]}\n!=\n{expected[wrong[0]]}"
    )


def assert_rows_accounted(tracker: dict[str, dict]) -> None:
    """rows in = accepted + duplicates + rejected, per file."""
    for key, item in tracker.items():
        if item["status"] in ("STAGED", "COMPLETED"):
            total = item["rows_accepted"] + item["rows_duplicate"] + item["rows_rejected"]
            assert item["rows_read"] == total, f"{key}: {item}"
