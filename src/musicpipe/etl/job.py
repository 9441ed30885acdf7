"""The ETL job's steps in order (docs/data-contract.md §3), with the file tracker around them.

pin the validated references → pin and claim the validated stream files → load references
and the batch → check headers, then rows (quarantining rejected ones) → replace the files'
stored events → KPIs of every touched date from all its events → stage DynamoDB items and KPI
Parquet → tracker STAGED → metrics; the pinned copies are deleted at the end (etl.inputs).

A file that cannot be read or checked fails alone (etl.isolation): FAILED in the tracker with
its own error, listed in the staging manifest's ``files_failed``, while the others go on. A
failure after every file's rows are checked (events store, KPIs, staging) is not one file's:
it marks the batch's files FAILED with the error (the next run retries them) and re-raises, so
the Glue run fails with the script's error.
"""

from __future__ import annotations

import csv
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce

from botocore.exceptions import ClientError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicpipe.contract import kpis as contract_kpis
from musicpipe.contract.columns import STREAMS, missing_columns
from musicpipe.contract.layout import (
    KPI_PARQUET_PREFIX,
    SONGS_KEY,
    USERS_KEY,
    pinned_key,
    rejected_rows_key,
    staging_prefix,
)
from musicpipe.contract.rules import REASONS
from musicpipe.contract.status import TrackerStatus
from musicpipe.etl import isolation, transform
from musicpipe.etl import kpis as spark_kpis
from musicpipe.etl.claims import Claims
from musicpipe.etl.inputs import Pinner, Validated
from musicpipe.etl.kpi_parquet import write_kpi_parquet
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
    claim_window_s: int = trk.STALE_CLAIM_SECONDS


@dataclass
class FileResult:
    key: str
    etag: str
    rows_read: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)
    rows_duplicate: int = 0
    rows_accepted: int = 0
    dates: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    error: str | None = None  # set when the file failed alone (FAILED in the tracker)

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


@dataclass
class CheckedBatch:
    """The checked rows of some files (cached), their counts by file and reason, and each
    header group with its checked rows."""

    rows: DataFrame
    counts: list
    groups: list[tuple[DataFrame, HeaderGroup]]


class EtlJob:
    def __init__(self, spark: SparkSession, args: EtlArgs, s3, dynamodb, cloudwatch, glue):
        self.spark = spark
        self.args = args
        self.s3 = s3
        self.cloudwatch = cloudwatch
        self.glue = glue
        self.tracker = trk.Tracker(dynamodb, args.tracker_table, args.claim_window_s)
        self.store = EventStore(s3, args.processed_bucket)
        self.started = time.time()
        self.claims = Claims(args, s3, glue, self.tracker, self.log)

    def log(self, message: str) -> None:
        print(f"[{time.time() - self.started:7.1f} s] {message}", flush=True)

    # -- entry point -------------------------------------------------------------------------
    def run(self) -> dict:
        a = self.args
        pins = Pinner(self.s3, a.raw_bucket, a.processed_bucket, a.batch_id)
        try:
            return self._run(pins)
        finally:
            try:
                self.log(f"deleted {pins.delete_all()} pinned copies")
            except Exception as exc:  # never hides the run's own outcome
                where = f"s3://{pins.bucket}/{pins.root()}"
                self.log(f"could not delete the pinned copies {where}: {exc}")

    def _run(self, pins: Pinner) -> dict:
        validated = pins.read_validated()
        if validated.report_url is None:
            self.log(
                f"no validation report for batch {self.args.batch_id} (a run by hand): each "
                "file is processed at the ETag it has now, unvalidated"
            )
        else:
            self.log(f"processing the versions validated in {validated.report_url}")
        self.claims.pin_references(validated, pins)
        files = self.claim_files(validated, pins)
        if not files:
            self.log("no new or changed stream files: nothing to process")
            self.write_staging({}, [], [], [])
            return {"files": [], "files_failed": [], "dates": []}
        try:
            return self.process(files, pins)
        except Exception as exc:
            for f in files:
                if f.error is None:  # a file that failed alone keeps its own error
                    self.tracker.set_status(
                        f.key,
                        TrackerStatus.FAILED,
                        self.args.batch_id,
                        error=f"{type(exc).__name__}: {exc}",
                    )
            raise

    def fail(self, f: FileResult, error: str) -> None:
        """``f`` failed alone: FAILED with its own error; the batch goes on without it."""
        f.error = error
        self.log(f"FAILED {error}")
        self.tracker.set_status(f.key, TrackerStatus.FAILED, self.args.batch_id, error=error)

    # -- 1. pin the validated inputs, claim ------------------------------------------------
    def claim_files(self, validated: Validated, pins: Pinner) -> list[FileResult]:
        """The stream files pinned at their validated ETags and claimed (etl.claims); one
        that S3 would not read is claimed and fails alone."""
        claimed = []
        for key, etag, error in self.claims.claim(validated, pins):
            claimed.append(FileResult(key, etag))
            if error:
                self.fail(claimed[-1], error)
        return claimed

    # -- 2.–8. the claimed batch's steps ------------------------------------------------------
    def process(self, files: list[FileResult], pins: Pinner) -> dict:
        self.log(f"claimed {len(files)} files: {', '.join(f.key for f in files)}")
        songs, users = self.load_references(pins)
        self.check_headers(files, pins)
        checked_all = self.check_rows(_alive(files), songs, users, pins)
        good, failed = _alive(files), [f for f in files if f.error]
        touched: list[str] = []
        days: dict[str, dict] = {}
        if checked_all is not None and good:
            batch_events, previous_dates = self.distinct_events(good, checked_all)
            self.replace_stored_events(batch_events, previous_dates)
            touched = self.touched_dates(good, previous_dates)
            days = self.compute_kpis(touched)
            self.log(f"KPIs computed for {', '.join(touched)}")
        self.write_staging(days, touched, good, failed)
        self.log("KPI items staged")
        self.mark_staged(good)
        self._metrics(good, failed)
        self.log_counts(good)
        return {
            "files": [f.key for f in good],
            "files_failed": [f.key for f in failed],
            "dates": touched,
        }

    # -- 2. load -----------------------------------------------------------------------------
    def load_references(self, pins: Pinner) -> tuple[DataFrame, DataFrame]:
        """songs.csv and users.csv as one row per key (cached: every group joins them).

        Read here, before any stream file: a reference Spark cannot read fails the batch, and
        is never mistaken for a fault of each stream file that joins it."""
        songs = transform.songs_reference(self._read(SONGS_KEY, pins)).cache()
        users = transform.users_reference(self._read(USERS_KEY, pins)).cache()
        with ThreadPoolExecutor(max_workers=2) as pool:  # two small jobs overlap
            tracks, people = pool.map(DataFrame.count, [songs, users])
        self.log(f"references: {tracks} tracks, {people} users")
        return songs, users

    def check_headers(self, files: list[FileResult], pins: Pinner) -> None:
        """Each file's header, from its pinned copy; a file without a required column (or
        whose copy S3 will not read) fails alone, before Spark reads anything."""
        for f in _alive(files):
            try:
                f.header = read_header(self.s3, pins.bucket, pinned_key(self.args.batch_id, f.key))
            except ClientError as exc:
                self.fail(f, isolation.unreadable_error(f.key, exc))
                continue
            missing = missing_columns(STREAMS, f.header)
            if missing:
                self.fail(f, isolation.missing_columns_error(f.key, f.header, missing))

    def load_batch(self, files: list[FileResult], pins: Pinner) -> list[HeaderGroup]:
        """The stream files' rows (their pinned copies), grouped by header.

        Files with the same header are read together (one scan); each group keeps its own
        column names, and every row knows its file."""
        groups: dict[tuple[str, ...], list[FileResult]] = {}
        for f in files:
            groups.setdefault(tuple(f.header), []).append(f)
        batch = []
        for header, group in groups.items():
            paths = [pins.url(f.key) for f in group]
            rows = transform.read_csv(self.spark, paths, list(header))
            batch.append(HeaderGroup(list(header), group, rows))
        return batch

    def _read(self, key: str, pins: Pinner) -> DataFrame:
        header = read_header(self.s3, pins.bucket, pinned_key(self.args.batch_id, key))
        return transform.read_csv(self.spark, pins.url(key), header)

    # -- 3. check and quarantine -------------------------------------------------------------
    def check_rows(
        self, files: list[FileResult], songs: DataFrame, users: DataFrame, pins: Pinner
    ) -> DataFrame | None:
        """Every row of the files with its reject reason (cached), or None when no file is
        left; each file's rows read and rejected by reason counted, and its rejected rows
        quarantined. Read and checked in one Spark pass; if that fails, each file alone
        (isolation.whole_then_each), so the file Spark cannot read fails alone."""
        if not files:
            return None
        by_key = {f.key: f for f in files}

        def check(keys: list[str]) -> CheckedBatch:
            return self._check([by_key[k] for k in keys], songs, users, pins, cache=True)

        def probe(keys: list[str]) -> None:
            self._check([by_key[k] for k in keys], songs, users, pins, cache=False)

        isolated = isolation.whole_then_each(list(by_key), check, probe)
        for key, exc in isolated.failed.items():
            self.fail(by_key[key], isolation.spark_error(key, exc))
        checked = isolated.result
        if checked is None:
            return None
        # Row accounting in one pass over all files: rows read and rejected by reason.
        by_source = {source_name(k): by_key[k] for k in isolated.ok}
        for row in checked.counts:
            f = by_source[row["_source"]]
            f.rows_read += row["count"]
            if row["_reason"] is not None:
                f.rows_rejected[row["_reason"]] = row["count"]
        for rows, group in checked.groups:
            for f in group.files:
                f.rows_rejected = {r: f.rows_rejected.get(r, 0) for r in REASONS}
                if any(f.rows_rejected.values()):
                    mine = rows.where(F.col("_source") == source_name(f.key))
                    self._quarantine_rows(f, mine, group.header)
        self.log("rows checked; rejected rows quarantined")
        return checked.rows

    def _check(self, files, songs, users, pins: Pinner, cache: bool) -> CheckedBatch:
        """One Spark pass over ``files``: read, check every row, count by file and reason."""
        batch = self.load_batch(files, pins)
        groups = [transform.check_rows(g.rows, songs, users, pins.root()) for g in batch]
        rows = reduce(DataFrame.unionByName, [c.select(*CHECKED_COLUMNS) for c in groups])
        if cache:
            rows = rows.cache()
        try:
            counts = rows.groupBy("_source", "_reason").count().collect()
        except Exception:
            rows.unpersist()
            raise
        return CheckedBatch(rows, counts, list(zip(groups, batch, strict=True)))

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

    def write_staging(self, days: dict[str, dict], dates: list[str], files, failed) -> None:
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
            "files_failed": isolation.failed_entries(
                [(f.key, f.etag, f.error or "") for f in failed]
            ),
        }
        self.s3.put_object(
            Bucket=a.processed_bucket,
            Key=prefix + "manifest.json",
            Body=json.dumps(manifest).encode(),
        )
        write_kpi_parquet(self.s3, a.processed_bucket, KPI_PARQUET_PREFIX, days, dates)

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

    def _metrics(self, files: list[FileResult], failed: list[FileResult]) -> None:
        a = self.args
        put_pipeline_metrics(
            self.cloudwatch,
            a.metrics_namespace,
            a.pipeline_name,
            {
                "FilesProcessed": len(files),
                "FilesFailed": len(failed),
                "RowsAccepted": sum(f.rows_accepted for f in files),
                "RowsRejected": sum(sum(f.rows_rejected.values()) for f in files),
                "DuplicatesDropped": sum(f.rows_duplicate for f in files),
                "EtlDurationSeconds": round(time.time() - self.started, 3),
            },
        )


def _alive(files: list[FileResult]) -> list[FileResult]:
    """The files that have not failed alone."""
    return [f for f in files if f.error is None]
