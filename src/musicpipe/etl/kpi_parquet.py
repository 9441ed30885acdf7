"""The KPIs as Parquet for analysis (docs/data-contract.md §3.7): ``kpis/genre_daily/``,
``kpis/hourly/`` and ``kpis/top_genres/`` of the processed bucket, each partitioned by
``listen_date=<date>`` and replaced per date (top songs and top genres as JSON text)."""

from __future__ import annotations

import json
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
    for name, rows in (
        ("genre_daily", genre_rows),
        ("hourly", hour_rows),
        ("top_genres", top_rows),
    ):
        if rows:
            (
                spark.createDataFrame(rows)
                .write.mode("overwrite")
                .option("partitionOverwriteMode", "dynamic")
                .partitionBy("listen_date")
                .parquet(f"{root}{name}")
            )


def plain(value):
    """Decimals and nested records as plain Python for Spark rows and JSON."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "date"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
