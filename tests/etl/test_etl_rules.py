"""The Spark rendering of the row rules agrees with the contract's Python rules."""

from __future__ import annotations

import pytest

from musicpipe.contract import rules

from ..conftest import local_spark

LISTEN_TIMES = [
    "2026-11-01 10:00:00",
    " 2026-11-01 10:00:00 ",
    "2026-11-01T10:00:00",
    "2026-11-01T10:00:00Z",
    "2026-11-01T10:00:00.5Z",
    "2026-11-01T10:00:00.123456789Z",
    "2026-11-01T10:00:00+02:00",
    "2026-11-01T23:30:00-01:30",
    "2026-11-01T23:30:00-0130",
    "2026-11-01 00:00:00+00:00",
    "2026-11-01T10:00:00+0530",
    "2026-11-01T10:00:00+05:99",
    "2026-11-01T10:00:00+17:59",
    "2026-11-01T10:00:00+18:00",
    "2026-11-01T10:00:00-18:00",
    "2026-11-01T10:00:00.1234567",
    "\t2026-11-01 10:00:00\u00a0",
    "２０２６-11-01 10:00:00",
    "0001-01-01T00:30:00+01:00",
    "2026-02-29 10:00:00",
    "2024-02-29 10:00:00",
    "2026-02-30 10:00:00",
    "2026-13-01 10:00:00",
    "2026-11-01 24:00:00",
    "2026-11-01 10:60:00",
    "2026-11-01 10:00",
    "2026/11/01 10:00:00",
    "01-11-2026 10:00:00",
    "1762000000",
    "yesterday",
    "",
    None,
]


@pytest.fixture(scope="module")
def spark():
    with local_spark("rules-agreement") as session:
        yield session


def test_listen_time_parsing_agrees(spark):
    from pyspark.sql import functions as F

    from musicpipe.etl.rules import parse_listen_time

    df = spark.createDataFrame([(s,) for s in LISTEN_TIMES], "t string")
    got = {r.t: r.ts for r in df.select("t", parse_listen_time(F.col("t")).alias("ts")).collect()}
    for text in LISTEN_TIMES:
        assert got[text] == rules.parse_listen_time(text), text


def test_reject_reasons_agree(spark):
    from pyspark.sql import functions as F

    from musicpipe.etl.rules import clean_key, parse_listen_time, reject_reason

    tracks, users = {"t1", "t2"}, {"1", "2"}
    rows = [
        ("1", "t1", "2026-11-01 10:00:00"),  # accepted
        (" 1 ", " t1 ", "2026-11-01 10:00:00"),  # keys are trimmed
        ("", "t1", "bad"),  # missing_key wins over bad time
        ("1", "  ", "2026-11-01 10:00:00"),
        (None, "t1", "2026-11-01 10:00:00"),
        ("1", "t9", "bad"),  # bad_listen_time wins over unknown_track
        ("9", "t9", "2026-11-01 10:00:00"),  # unknown_track wins over unknown_user
        ("9", "t2", "2026-11-01 10:00:00"),
        ("01", "t1", "2026-11-01 10:00:00"),  # "01" is not user "1"
        ("\t1\u00a0", "t1", "2026-11-01 10:00:00"),  # stripped like str.strip()
        ("\u3000", "t1", "2026-11-01 10:00:00"),  # only whitespace: missing
    ]
    df = spark.createDataFrame(rows, "u string, t string, l string")
    track_df = spark.createDataFrame([(t,) for t in tracks], "k string")
    user_df = spark.createDataFrame([(u,) for u in users], "k string")
    checked = (
        df.withColumn("_u", clean_key(F.col("u")))
        .withColumn("_t", clean_key(F.col("t")))
        .join(track_df.withColumnRenamed("k", "_tk"), F.col("_t") == F.col("_tk"), "left")
        .join(user_df.withColumnRenamed("k", "_uk"), F.col("_u") == F.col("_uk"), "left")
        .select(
            "u",
            "t",
            "l",
            reject_reason(
                F.col("_u"),
                F.col("_t"),
                parse_listen_time(F.col("l")),
                F.col("_tk").isNotNull(),
                F.col("_uk").isNotNull(),
            ).alias("reason"),
        )
    )
    got = {(r.u, r.t, r.l): r.reason for r in checked.collect()}
    for row in rows:
        assert got[row] == rules.reject_reason(*row, tracks, users), row
    assert list(got.values()).count(None) == 3
