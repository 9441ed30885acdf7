"""Reading, checking and enriching stream rows (docs/data-contract.md §3.2–§3.5), as Spark
DataFrames.

Each stream file is read with its own header (files may order their columns differently, and
Spark's CSV reader takes one header for all the files it reads at once); the checked files
are then unioned, so every later step is one Spark job whatever the number of files.
"""

from __future__ import annotations

import csv
import io

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from musicpipe.contract.columns import normalize_column
from musicpipe.etl.rules import clean_key, longest_field, parse_listen_time, reject_reason

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


def header_from_bytes(head: bytes) -> list[str]:
    """A CSV file's header row, from its first bytes (BOM tolerated, RFC 4180 quoting).

    The header is the first record, as the validation job reads it: blank lines before it
    are skipped (Spark skips them too), and a quoted name may hold a line break. The bytes
    come from ``store.read_header``."""
    text = head.decode("utf-8-sig", errors="replace")
    for row in csv.reader(io.StringIO(text, newline="")):
        if row:
            return row
    return []


def read_csv(spark: SparkSession, path: str | list[str], header: list[str]) -> DataFrame:
    """A CSV file as all-string columns named by the contract's normalization.

    The header comes from ``store.read_header``, so Spark needs no job of its own to find it,
    and files whose columns are ordered differently are each read with their own names.

    The records are those Python's ``csv`` gives the validation job (RFC 4180): a quoted field
    may hold separators, doubled quotes and line breaks. That takes Spark's multi-line mode;
    without it Spark splits a record at a quoted line break and the halves become two bad
    rows (issue #14). Multi-line mode cannot split a file: each file is read by one task.
    Real stream files (11,346 rows, about 0.5 MB) were one split anyway, and a batch of many
    files keeps every core busy; what is lost is splitting one big file across cores
    (Spark splits a file into total size / cores pieces, at most 128 MB). The measured cost
    is in docs/pipeline.md (Performance).
    """
    names = normalized_names(header)
    schema = StructType([StructField(name, StringType()) for name in names])
    return (
        spark.read.schema(schema)
        .option("header", True)  # skip each file's header line; the names come from `schema`
        .option("multiLine", True)  # a quoted line break belongs to the field
        .option("quote", '"')
        .option("escape", '"')  # RFC 4180: a quote inside a field is doubled
        .option("mode", "PERMISSIVE")
        .option("encoding", "UTF-8")
        # No cap on a cell's size: a row with a giant cell must reach the row rules and be
        # rejected alone as field_too_large (the default is -1 too; set so it stays so).
        .option("maxCharsPerColumn", -1)
        .csv(path)
    )


def column(name: str) -> F.Column:
    """A column by its exact name (a '.' in a header name is not a struct field)."""
    return F.col("`" + name.replace("`", "``") + "`")


def normalized_names(header: list[str]) -> list[str]:
    seen: set[str] = set()
    names = []
    for i, column in enumerate(header):
        name = normalize_column(column)
        if name in seen or not name:
            name = f"_extra_{i}"  # a repeated or blank column is kept, never used
        seen.add(name)
        names.append(name)
    return names


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


def source_of_row(pinned_root: str = "") -> F.Column:
    """The stream file a row came from, as ``store.source_name`` names it (key below
    streams/). input_file_name() is a URI: '%20' for a space, '+' as is, so '+' is protected
    before percent-decoding. Spark reads the batch's pinned copies (etl.inputs): their key is
    ``pinned_root`` + the raw key, and the source is named by the raw key."""
    path = F.expr("url_decode(replace(input_file_name(), '+', '%2B'))")
    key = F.regexp_extract(path, r"^[A-Za-z0-9]+://[^/]+/(.*)$", 1)
    if pinned_root:
        # A literal prefix, not a pattern: the batch id may hold regex characters.
        key = F.when(
            key.startswith(pinned_root), key.substr(len(pinned_root) + 1, 1 << 30)
        ).otherwise(key)
    return F.regexp_replace(key, r"^streams/", "")


def check_rows(
    stream: DataFrame, songs: DataFrame, users: DataFrame, pinned_root: str = ""
) -> DataFrame:
    """Rows with the rule each breaks (``_reason``, null when accepted), the file each came
    from (``_source``; ``pinned_root`` as in :func:`source_of_row`) and the enrichment of the
    accepted ones, in columns prefixed ``_`` beside the originals."""
    rows = stream.select(
        "*",
        clean_key(F.col("user_id")).alias("_user"),
        clean_key(F.col("track_id")).alias("_track"),
        parse_listen_time(F.col("listen_time")).alias("_ts"),
        longest_field([column(c) for c in stream.columns]).alias("_longest"),
        source_of_row(pinned_root).alias("_source"),
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
            F.col("_longest"),
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
