"""The KPIs as Parquet for analysis (docs/data-contract.md §3.7): ``kpis/genre_daily/``,
``kpis/hourly/`` and ``kpis/top_genres/`` of the processed bucket, each partitioned by
``listen_date=<date>`` and replaced per date (top songs and top genres as JSON text).

A day's KPIs are a few hundred rows, already on the driver: each (table, date) is one Parquet
object written by pyarrow with one PUT, under a fixed name, so a re-run replaces it in one
atomic step and a reader never finds the date empty. (Written with Spark, the same three tiny
tables cost ~2 s of a small batch's run in jobs and commit renames, which are copies on S3.)
"""

from __future__ import annotations

import io
import json
from decimal import Decimal

TABLES = ("genre_daily", "hourly", "top_genres")
OBJECT_NAME = "kpis.parquet"


def kpi_tables(days: dict[str, dict]) -> dict[str, dict[str, list[dict]]]:
    """table → date → rows, for ``days`` (date → the day's KPIs); the date is the partition,
    not a column of the rows."""
    tables: dict[str, dict[str, list[dict]]] = {name: {} for name in TABLES}
    for day_date, day in days.items():
        date = str(day_date)  # a datetime.date from Spark, or its ISO text
        tables["genre_daily"][date] = [
            {**plain(g), "top_songs": json.dumps(plain(g["top_songs"]))} for g in day["genres"]
        ]
        tables["hourly"][date] = [plain(h) for h in day["hours"]]
        tables["top_genres"][date] = [{"genres": json.dumps(plain(day["top_genres"]["genres"]))}]
    return tables


def object_key(prefix: str, table: str, date: str) -> str:
    return f"{prefix}{table}/listen_date={date}/{OBJECT_NAME}"


def write_kpi_parquet(
    s3, bucket: str, prefix: str, days: dict[str, dict], dates: list[str]
) -> list[str]:
    """``days`` as Parquet under ``s3://bucket/prefix`` (``kpis/``); returns the keys written.

    ``dates`` are the dates the batch touched: one of them without KPIs now (its events moved
    to other dates) loses its folders. Anything else in a written date's folder (the part
    files of an earlier writer) is removed after the new object is in place."""
    import pyarrow as pa  # imported here: only the ETL's driver needs it
    import pyarrow.parquet as pq

    written = []
    for table, by_date in kpi_tables(days).items():
        for date in sorted({str(d) for d in dates} | set(by_date)):
            key = object_key(prefix, table, date)
            folder = key.rsplit("/", 1)[0] + "/"
            if by_date.get(date):
                buffer = io.BytesIO()
                pq.write_table(pa.Table.from_pylist(by_date[date]), buffer)
                s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
                written.append(key)
            # No KPIs on this date now: nothing of its folder stays.
            _delete_others(s3, bucket, folder, keep=key if by_date.get(date) else None)
    return written


def _delete_others(s3, bucket: str, folder: str, keep: str | None) -> None:
    stale = [
        {"Key": o["Key"]}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
        for o in page.get("Contents", [])
        if o["Key"] != keep
    ]
    if stale:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": stale, "Quiet": True})


def plain(value):
    """Decimals and nested records as plain Python for Parquet rows and JSON."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "date"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
