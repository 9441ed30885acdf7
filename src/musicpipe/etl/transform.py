"""Reading, checking and enriching stream rows (SPEC.md §3.2–§3.5), as Spark DataFrames.

Each stream file is read on its own: files may order their columns differently, and Spark's
CSV reader takes one header for all the files it reads at once.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from musicpipe.contract.columns import normalize_column
from musicpipe.etl.rules import clean_key, parse_listen_time, reject_reason

EVENT_KEY = ["user_id", "track_id", "timestamp"]
EVENT_COLUMNS = [
    "user_id",
    "track_id",
    "timestamp",
    "genre",
    "track_name",
    "artists",
    "user_name",
    "user_age",
    "user_country",
    "listen_duration",
    "listen_hour",
    "batch_id",
]


def read_csv(spark: SparkSession, path: str) -> tuple[DataFrame, list[str]]:
    """A CSV file as all-string columns named by the contract's normalization, and the
    original header names (for quarantined rows, which keep the file's own columns)."""
    df = (
        spark.read.option("header", True)
        .option("quote", '"')
        .option("escape", '"')  # RFC 4180: a quote inside a field is doubled
        .option("mode", "PERMISSIVE")
        .option("encoding", "UTF-8")
        .csv(path)
    )
    original = list(df.columns)
    seen: set[str] = set()
    names = []
    for i, column in enumerate(original):
        name = normalize_column(column)
        if name in seen or not name:
            name = f"_extra_{i}"  # a repeated or blank column is kept, never used
        seen.add(name)
        names.append(name)
    return df.toDF(*names), original


def songs_reference(df: DataFrame) -> DataFrame:
    """One row per track_id. The real catalogue lists a track once per genre; the row with
    the smallest (genre, name, artists) wins, so every run picks the same one."""
    songs = df.select(
        clean_key(F.col("track_id")).alias("track_id"),
        F.col("track_genre").alias("genre"),
        F.col("track_name"),
        F.col("artists"),
    ).where(F.col("track_id") != "")
    order = Window.partitionBy("track_id").orderBy("genre", "track_name", "artists")
    return songs.withColumn("_n", F.row_number().over(order)).where("_n = 1").drop("_n")


def users_reference(df: DataFrame) -> DataFrame:
    users = df.select(
        clean_key(F.col("user_id")).alias("user_id"),
        F.col("user_name"),
        F.col("user_age"),
        F.col("user_country"),
    ).where(F.col("user_id") != "")
    order = Window.partitionBy("user_id").orderBy("user_name")
    return users.withColumn("_n", F.row_number().over(order)).where("_n = 1").drop("_n")


def check_rows(stream: DataFrame, songs: DataFrame, users: DataFrame, source: str) -> DataFrame:
    """The file's rows with the rule each breaks (``reject_reason``, null when accepted) and
    the enrichment of the accepted ones, in columns prefixed ``_`` beside the originals."""
    rows = stream.select(
        "*",
        clean_key(F.col("user_id")).alias("_user"),
        clean_key(F.col("track_id")).alias("_track"),
        parse_listen_time(F.col("listen_time")).alias("_ts"),
        F.lit(source).alias("_source"),
    )
    song_cols = F.broadcast(
        songs.select(
            F.col("track_id").alias("_song_track"),
            F.col("genre").alias("_genre"),
            F.col("track_name").alias("_track_name"),
            F.col("artists").alias("_artists"),
        )
    )
    user_cols = F.broadcast(
        users.select(
            F.col("user_id").alias("_user_key"),
            F.col("user_name").alias("_user_name"),
            F.col("user_age").alias("_user_age"),
            F.col("user_country").alias("_user_country"),
        )
    )
    joined = rows.join(song_cols, rows["_track"] == song_cols["_song_track"], "left").join(
        user_cols, rows["_user"] == user_cols["_user_key"], "left"
    )
    return joined.withColumn(
        "_reason",
        reject_reason(
            F.col("_user"),
            F.col("_track"),
            F.col("_ts"),
            F.col("_song_track").isNotNull(),
            F.col("_user_key").isNotNull(),
        ),
    )


def accepted_events(checked: DataFrame, listen_duration_s: int, batch_id: str) -> DataFrame:
    """Accepted rows as enriched events (renames of §3.3, duration, date, hour)."""
    return checked.where(F.col("_reason").isNull()).select(
        F.col("_user").alias("user_id"),
        F.col("_track").alias("track_id"),
        F.col("_ts").alias("timestamp"),
        F.col("_genre").alias("genre"),
        F.col("_track_name").alias("track_name"),
        F.col("_artists").alias("artists"),
        F.col("_user_name").alias("user_name"),
        F.col("_user_age").alias("user_age"),
        F.col("_user_country").alias("user_country"),
        F.lit(int(listen_duration_s)).cast("int").alias("listen_duration"),
        F.date_format("_ts", "yyyy-MM-dd").alias("listen_date"),
        F.hour("_ts").alias("listen_hour"),
        F.lit(batch_id).alias("batch_id"),
        F.col("_source").alias("source"),
    )


def rejected_rows(checked: DataFrame, original_columns: list[str]) -> DataFrame:
    """Rejected rows with the file's own columns plus ``reject_reason``."""
    internal = [c for c in checked.columns if c.startswith("_") and not c.startswith("_extra_")]
    data_columns = [c for c in checked.columns if c not in internal]
    renamed = [F.col(c).alias(o) for c, o in zip(data_columns, original_columns, strict=True)]
    return checked.where(F.col("_reason").isNotNull()).select(
        *renamed, F.col("_reason").alias("reject_reason")
    )
