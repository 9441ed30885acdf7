"""The KPIs as Parquet for analysis (docs/data-contract.md §3.7): ``kpis/genre_daily/``,
``kpis/hourly/`` and ``kpis/top_genres/`` of the processed bucket, each partitioned by
``listen_date=<date>`` and replaced per date (top songs and top genres as JSON text)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from pyspark.sql import SparkSession


def write_kpi_parquet(spark: SparkSession, root: str, days: dict[str, dict]) -> None:
    """``days`` (date → the day's KPIs) under ``root`` (``s3://<processed>/kpis/``)."""
    genre_rows, hour_rows, top_rows = [], [], []
    for date, day in days.items():
        for g in day["genres"]:
            genre_rows.append(
                {**plain(g), "top_songs": json.dumps(plain(g["top_songs"])), "listen_date": date}
            )
        for h in day["hours"]:
            hour_rows.append({**plain(h), "listen_date": date})
        top_rows.append(
            {"genres": json.dumps(plain(day["top_genres"]["genres"])), "listen_date": date}
        )
    tables = [
        (name, rows)
        for name, rows in (
            ("genre_daily", genre_rows),
            ("hourly", hour_rows),
            ("top_genres", top_rows),
        )
        if rows
    ]

    def write(table: tuple[str, list[dict]]) -> None:
        name, rows = table
        (
            spark.createDataFrame(rows)
            .coalesce(1)  # a day's KPIs are a few hundred rows: one file, not one per core
            .write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy("listen_date")
            .parquet(f"{root}{name}")
        )

    # Three tiny jobs whose time is their commits (renames, which are copies on S3): run at
    # once, they take about the time of one. Each table has its own staging folder.
    with ThreadPoolExecutor(max_workers=len(tables) or 1) as pool:
        list(pool.map(write, tables))  # re-raises the first failure


def plain(value):
    """Decimals and nested records as plain Python for Spark rows and JSON."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "date"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
