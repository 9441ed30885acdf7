"""The ETL job's steps in order (docs/data-contract.md §3), with the file tracker around them.

claim files → load references and the batch → check rows, quarantine rejected ones →
replace the files' stored events → KPIs of every touched date from all its events →
stage DynamoDB items and KPI Parquet → tracker STAGED → metrics. Any failure after the claim
marks the batch's files FAILED with the error (the next run retries them) and re-raises, so
the Glue run fails with the script's error.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicpipe.aws.s3 import plain_etag
from musicpipe.contract import kpis as contract_kpis
from musicpipe.contract.columns import STREAMS, missing_columns
from musicpipe.contract.keys import key_problem, refused_key_message
from musicpipe.contract.layout import (
    KPI_PARQUET_PREFIX,
    SONGS_KEY,
    STREAMS_PREFIX,
    USERS_KEY,
    rejected_rows_key,
    staging_prefix,
)
from musicpipe.contract.rules import REASONS
from musicpipe.contract.status import TrackerStatus
from musicpipe.etl import kpis as spark_kpis
from musicpipe.etl import transform
from musicpipe.etl.store import EventStore, read_header, source_name
from musicpipe.pipeline import tracker as trk
from musicpipe.pipeline.metrics import put_pipeline_metrics

# What every checked file has in common: keys, time, enrichment, reason (transform.check_rows).
CHECKED_COLUMNS = [
    "_user",
    "_track",
    "_ts",
    "_source",
    "_genre",
    "_track_name",
    "_artists",
    "_user_name",
    "_user_age",
    "_user_country",
    "_reason",
]


@dataclass
class EtlArgs:
    job_name: str
    job_run_id: str
    batch_id: str
    raw_bucket: str
    processed_bucket: str
    quarantine_bucket: str
    tracker_table: str
    metrics_namespace: str
    pipeline_name: str
    listen_duration_s: int = 180
    stream_keys: list[str] = field(default_factory=list)


@dataclass
class FileResult:
    key: str
    etag: str
    rows_read: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)
    rows_duplicate: int = 0
    rows_accepted: int = 0
    dates: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_duplicate": self.rows_duplicate,
            "rows_rejected": sum(self.rows_rejected.values()),
        }


@dataclass
class HeaderGroup:
    """Stream files with the same header, read together in one scan."""

    header: list[str]
    files: list[FileResult]
    rows: DataFrame


class EtlJob:
    def __init__(self, spark: SparkSession, args: EtlArgs, s3, dynamodb, cloudwatch, glue):
        self.spark = spark
        self.args = args
        self.s3 = s3
        self.cloudwatch = cloudwatch
        self.glue = glue
        self.tracker = trk.Tracker(dynamodb, args.tracker_table)
        self.store = EventStore(s3, args.processed_bucket)
        self.started = time.time()

    def log(self, message: str) -> None:
        print(f"[{time.time() - self.started:7.1f} s] {message}", flush=True)

    # -- entry point -------------------------------------------------------------------------
    def run(self) -> dict:
        files = self.claim_files()
        if not files:
            self.log("no new or changed stream files: nothing to process")
            self.write_staging({}, [], [])
            return {"files": [], "dates": []}
        try:
            return self.process(files)
        except Exception as exc:
            for f in files:
                self.tracker.set_status(
                    f.key,
                    TrackerStatus.FAILED,
                    self.args.batch_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
            raise

    # -- 1. claim ----------------------------------------------------------------------------
    def candidate_keys(self) -> list[str]:
        if self.args.stream_keys:
            keys = sorted(set(self.args.stream_keys))
        else:
            keys = []
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.args.raw_bucket, Prefix=STREAMS_PREFIX
            ):
                keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".csv")]
        # Validation quarantines a key that Hadoop would read as another path; should one get
        # here anyway, it is left alone, so it cannot fail the other files of the batch.
        readable = []
        for key in sorted(keys):
            problem = key_problem(key)
            if problem is None:
                readable.append(key)
            else:
                self.log(f"skip {refused_key_message(key, problem)}")
        return readable

    def run_is_alive(self, run_id: str) -> bool:
        """Whether the Glue run holding a claim still runs (a killed run's claim is stale)."""
        if not run_id or run_id == self.args.job_run_id:
            return False
        try:
            run = self.glue.get_job_run(JobName=self.args.job_name, RunId=run_id)["JobRun"]
        except Exception:
            return False
        return run["JobRunState"] in ("STARTING", "RUNNING", "STOPPING", "WAITING")

    def claim_files(self) -> list[FileResult]:
        claimed = []
        for key in self.candidate_keys():
            try:
                head = self.s3.head_object(Bucket=self.args.raw_bucket, Key=key)
            except self.s3.exceptions.ClientError:
                self.log(f"skip {key}: no longer in s3://{self.args.raw_bucket}")
                continue
            etag = plain_etag(head["ETag"])
            if self.tracker.claim(
                key, etag, self.args.batch_id, self.args.job_run_id, self.run_is_alive
            ):
                claimed.append(FileResult(key, etag))
            else:
                self.log(f"skip {key}: already COMPLETED with this content, or held by a live run")
        return claimed

    # -- 2.–8. the claimed batch's steps ------------------------------------------------------
    def process(self, files: list[FileResult]) -> dict:
        self.log(f"claimed {len(files)} files: {', '.join(f.key for f in files)}")
        songs, users = self.load_references()
        batch = self.load_batch(files)
        checked_all = self.check_rows(files, batch, songs, users)
        batch_events, previous_dates = self.distinct_events(files, checked_all)
        self.replace_stored_events(batch_events, previous_dates)
        touched = self.touched_dates(files, previous_dates)
        days = self.compute_kpis(touched)
        self.log(f"KPIs computed for {', '.join(touched)}")
        self.write_staging(days, touched, files)
        self.log("KPI items staged")
        self.mark_staged(files)
        self._metrics(files)
        self.log_counts(files)
        return {"files": [f.key for f in files], "dates": touched}

    # -- 2. load -----------------------------------------------------------------------------
    def load_references(self) -> tuple[DataFrame, DataFrame]:
        """songs.csv and users.csv as one row per key (cached: every group joins them)."""
        songs = transform.songs_reference(self._read(SONGS_KEY)).cache()
        users = transform.users_reference(self._read(USERS_KEY)).cache()
        return songs, users

    def load_batch(self, files: list[FileResult]) -> list[HeaderGroup]:
        """The stream files' rows, grouped by header.

        Files with the same header are read together (one scan); each group keeps its own
        column names, and every row knows its file."""
        groups: dict[tuple[str, ...], list[FileResult]] = {}
        for f in files:
            header: Sequence[str] = read_header(self.s3, self.args.raw_bucket, f.key)
            missing = missing_columns(STREAMS, header)
            if missing:
                raise ValueError(f"{f.key}: header lacks {', '.join(missing)}")
            groups.setdefault(tuple(header), []).append(f)
        batch = []
        for header, group in groups.items():
            paths = [f"s3://{self.args.raw_bucket}/{f.key}" for f in group]
            rows = transform.read_csv(self.spark, paths, list(header))
            batch.append(HeaderGroup(list(header), group, rows))
        return batch

    def _read(self, key: str) -> DataFrame:
        header = read_header(self.s3, self.args.raw_bucket, key)
        return transform.read_csv(self.spark, f"s3://{self.args.raw_bucket}/{key}", header)

    # -- 3. check and quarantine -------------------------------------------------------------
    def check_rows(
        self, files: list[FileResult], batch: list[HeaderGroup], songs: DataFrame, users: DataFrame
    ) -> DataFrame:
        """Every row of the batch with its reject reason (cached); each file's rows read and
        rejected by reason counted, and its rejected rows quarantined."""
        checked_groups = [transform.check_rows(g.rows, songs, users) for g in batch]
        checked_all = reduce(
            DataFrame.unionByName, [checked.select(*CHECKED_COLUMNS) for checked in checked_groups]
        ).cache()

        # Row accounting in one pass over all files: rows read and rejected by reason.
        by_source = {source_name(f.key): f for f in files}
        for row in checked_all.groupBy("_source", "_reason").count().collect():
            f = by_source[row["_source"]]
            f.rows_read += row["count"]
            if row["_reason"] is not None:
                f.rows_rejected[row["_reason"]] = row["count"]
        for checked, group in zip(checked_groups, batch, strict=True):
            for f in group.files:
                f.rows_rejected = {r: f.rows_rejected.get(r, 0) for r in REASONS}
                if any(f.rows_rejected.values()):
                    mine = checked.where(F.col("_source") == source_name(f.key))
                    self._quarantine_rows(f, mine, group.header)
        self.log("rows checked; rejected rows quarantined")
        return checked_all

    def _quarantine_rows(self, f: FileResult, checked: DataFrame, original: list[str]) -> None:
        """Rejected rows → s3://<quarantine>/quarantine/rows/<batch>/<file stem>.csv."""
        rejected = transform.rejected_rows(checked, original)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(rejected.columns)
        for row in rejected.toLocalIterator():
            writer.writerow(["" if v is None else v for v in row])
        stem = f.key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        self.s3.put_object(
            Bucket=self.args.quarantine_bucket,
            Key=rejected_rows_key(self.args.batch_id, stem),
            Body=buffer.getvalue().encode("utf-8"),
            ContentType="text/csv",
        )

    # -- 4. replace the stored events --------------------------------------------------------
    def distinct_events(
        self, files: list[FileResult], checked_all: DataFrame
    ) -> tuple[DataFrame, dict[str, list[str]]]:
        """The batch's distinct accepted events per file (an event twice in one file counts
        once; cached), each file's dates, accepted and duplicate rows; and the dates on which
        each file's source already has stored events."""
        batch_events = (
            transform.accepted_events(checked_all, self.args.listen_duration_s, self.args.batch_id)
            .dropDuplicates(["source", *transform.EVENT_KEY])
            .cache()
        )
        by_source = {source_name(f.key): f for f in files}
        for row in batch_events.groupBy("source", "listen_date").count().collect():
            by_source[row["source"]].dates.append(row["listen_date"])
        all_dates = self.store.dates()
        previous_dates = {s: self.store.dates_of_source(s, all_dates) for s in by_source}
        self._count_duplicates(files, batch_events, previous_dates)
        self.log("duplicates counted")
        return batch_events, previous_dates

    def _count_duplicates(self, files, batch_events: DataFrame, previous_dates) -> None:
        """Per file: events already held by another file (stored earlier, or an earlier key of
        this batch) are its duplicates; the rest are accepted. Rows in = accepted +
        duplicates + rejected."""
        batch_sources = set(previous_dates)
        dates = sorted({d for f in files for d in f.dates})
        stored_dates = self.store.dates_with_data(dates)
        keys = batch_events.select("source", *transform.EVENT_KEY)
        if stored_dates:
            stored = (
                self.spark.read.option("basePath", self.store.root_url())
                .parquet(*[self.store.date_url(d) for d in stored_dates])
                .where(~F.col("source").isin(list(batch_sources)))
                .select(*transform.EVENT_KEY)
                .distinct()
                .withColumn("_stored", F.lit(1))
            )
            keys = keys.join(stored, transform.EVENT_KEY, "left")
        else:
            keys = keys.withColumn("_stored", F.lit(None).cast("int"))
        # Each event belongs to the first file (by name) that delivered it, unless another
        # file already stored it; a hash aggregation, no sort of all the events.
        owners = keys.groupBy(*transform.EVENT_KEY).agg(
            F.min("source").alias("owner"), F.max("_stored").alias("stored")
        )
        accepted = {
            r["owner"]: r["count"]
            for r in owners.where(F.col("stored").isNull()).groupBy("owner").count().collect()
        }
        for f in files:
            f.rows_accepted = accepted.get(source_name(f.key), 0)
            f.rows_duplicate = f.rows_read - sum(f.rows_rejected.values()) - f.rows_accepted

    def replace_stored_events(
        self, batch_events: DataFrame, previous_dates: dict[str, list[str]]
    ) -> None:
        """The files' stored events replaced: old partitions out, new ones in."""
        for source, dates in previous_dates.items():
            self.store.delete_source(source, dates)
        (
            batch_events.write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy("listen_date", "source")
            .parquet(self.store.root_url())
        )
        self.log("events stored")

    # -- 5.–6. KPIs and staging -------------------------------------------------------------
    def touched_dates(
        self, files: list[FileResult], previous_dates: dict[str, list[str]]
    ) -> list[str]:
        """The dates whose KPIs change: those the files have events on now or had before."""
        return sorted(
            {d for f in files for d in f.dates} | {d for ds in previous_dates.values() for d in ds}
        )

    def compute_kpis(self, dates: list[str]) -> dict[str, dict]:
        stored = self.store.dates_with_data(dates)
        if not stored:
            return {}
        events = (
            self.spark.read.option("basePath", self.store.root_url())
            .parquet(*[self.store.date_url(d) for d in stored])
            .dropDuplicates(transform.EVENT_KEY)
        )
        return spark_kpis.day_kpis(events)

    def write_staging(self, days: dict[str, dict], dates: list[str], files) -> None:
        a = self.args
        updated_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        items = [
            item for d in sorted(days) for item in contract_kpis.day_items(days[d], updated_at)
        ]
        prefix = staging_prefix(a.batch_id)
        body = "".join(contract_kpis.item_to_json(i) + "\n" for i in items)
        self.s3.put_object(
            Bucket=a.processed_bucket, Key=prefix + "items.jsonl", Body=body.encode()
        )
        manifest = {
            "batch_id": a.batch_id,
            "dates": dates,
            "files": [{"file_key": f.key, "etag": f.etag} for f in files],
            "item_count": len(items),
        }
        self.s3.put_object(
            Bucket=a.processed_bucket,
            Key=prefix + "manifest.json",
            Body=json.dumps(manifest).encode(),
        )
        if days:
            self._write_kpi_parquet(days)

    def _write_kpi_parquet(self, days: dict[str, dict]) -> None:
        """KPIs as Parquet under s3://<processed>/kpis/<kind>/listen_date=D/, replaced per date."""
        genre_rows, hour_rows, top_rows = [], [], []
        for date, day in days.items():
            for g in day["genres"]:
                genre_rows.append(
                    {
                        **_plain(g),
                        "top_songs": json.dumps(_plain(g["top_songs"])),
                        "listen_date": date,
                    }
                )
            for h in day["hours"]:
                hour_rows.append({**_plain(h), "listen_date": date})
            top_rows.append(
                {"genres": json.dumps(_plain(day["top_genres"]["genres"])), "listen_date": date}
            )
        root = f"s3://{self.args.processed_bucket}/{KPI_PARQUET_PREFIX}"
        for name, rows in (
            ("genre_daily", genre_rows),
            ("hourly", hour_rows),
            ("top_genres", top_rows),
        ):
            if rows:
                (
                    self.spark.createDataFrame(rows)
                    .write.mode("overwrite")
                    .option("partitionOverwriteMode", "dynamic")
                    .partitionBy("listen_date")
                    .parquet(f"{root}{name}")
                )

    # -- 7.–8. tracker and metrics -----------------------------------------------------------
    def mark_staged(self, files: list[FileResult]) -> None:
        for f in files:
            self.tracker.set_status(
                f.key,
                TrackerStatus.STAGED,
                self.args.batch_id,
                counts=f.counts(),
                dates=f.dates,
                etag=f.etag,
            )

    def log_counts(self, files: list[FileResult]) -> None:
        for f in files:
            self.log(
                f"{f.key}: read {f.rows_read}, accepted {f.rows_accepted}, "
                f"duplicates {f.rows_duplicate}, rejected {f.rows_rejected}"
            )

    def _metrics(self, files: list[FileResult]) -> None:
        a = self.args
        put_pipeline_metrics(
            self.cloudwatch,
            a.metrics_namespace,
            a.pipeline_name,
            {
                "FilesProcessed": len(files),
                "RowsAccepted": sum(f.rows_accepted for f in files),
                "RowsRejected": sum(sum(f.rows_rejected.values()) for f in files),
                "DuplicatesDropped": sum(f.rows_duplicate for f in files),
                "EtlDurationSeconds": round(time.time() - self.started, 3),
            },
        )


def _plain(value):
    """Decimals and nested records as plain Python for Spark rows and JSON."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "date"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
