"""The KPI Parquet copies (etl.kpi_parquet) on the real moto server: one object per table and
date, replaced in place, leftovers of an earlier writer removed, a date that lost its KPIs
emptied, the other dates untouched."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from musicpipe.contract import kpis as contract
from musicpipe.etl.kpi_parquet import kpi_tables, object_key, write_kpi_parquet

BUCKET = "kpi-parquet-test"
PREFIX = "kpis/"


def day(date: str, plays: int) -> dict:
    genres = [
        contract.genre_record(date, "pop", plays, 2, plays * 180, [("t1", "Song", "A;B", plays)]),
        contract.genre_record(date, "rock", 1, 1, 180, [("t2", "Other", "C", 1)]),
    ]
    hours = [contract.hour_record(date, 7, plays + 1, 2, 2, [("A", plays)])]
    return {
        "genres": genres,
        "hours": hours,
        "top_genres": contract.top_genres_record(date, [("pop", plays), ("rock", 1)]),
    }


@pytest.fixture
def s3(aws):
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def keys(s3, prefix: str = PREFIX) -> list[str]:
    return sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    )


def rows(s3, table: str, date: str) -> list[dict]:
    body = s3.get_object(Bucket=BUCKET, Key=object_key(PREFIX, table, date))["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


def test_rows_are_the_records_without_their_date_and_nested_values_as_json():
    tables = kpi_tables({"2026-11-01": day("2026-11-01", 3)})
    pop = tables["genre_daily"]["2026-11-01"][0]
    assert "date" not in pop and pop["genre"] == "pop" and pop["listen_count"] == 3
    assert isinstance(pop["avg_listening_time_per_user_s"], float)  # a Decimal in the record
    assert json.loads(pop["top_songs"])[0] == {
        "rank": 1,
        "track_id": "t1",
        "track_name": "Song",
        "artists": "A;B",
        "plays": 3,
    }
    assert json.loads(tables["top_genres"]["2026-11-01"][0]["genres"])[0]["genre"] == "pop"


def test_each_table_and_date_is_one_object_that_reads_back_as_the_kpis(s3):
    days = {"2026-11-01": day("2026-11-01", 3), "2026-11-02": day("2026-11-02", 5)}
    written = write_kpi_parquet(s3, BUCKET, PREFIX, days, list(days))
    assert sorted(written) == keys(s3) and len(written) == 6
    assert [r["listen_count"] for r in rows(s3, "genre_daily", "2026-11-02")] == [5, 1]
    hour = rows(s3, "hourly", "2026-11-01")[0]
    assert (hour["hour"], hour["plays"], hour["top_artist"]) == (7, 4, "A")
    assert hour["track_diversity_index"] == float(
        contract.hour_record("2026-11-01", 7, 4, 2, 2, [])["track_diversity_index"]
    )


def test_a_rerun_replaces_its_dates_and_leaves_the_others(s3):
    write_kpi_parquet(s3, BUCKET, PREFIX, {"2026-11-01": day("2026-11-01", 3)}, ["2026-11-01"])
    write_kpi_parquet(s3, BUCKET, PREFIX, {"2026-11-02": day("2026-11-02", 5)}, ["2026-11-02"])
    write_kpi_parquet(s3, BUCKET, PREFIX, {"2026-11-01": day("2026-11-01", 9)}, ["2026-11-01"])
    assert rows(s3, "genre_daily", "2026-11-01")[0]["listen_count"] == 9
    assert rows(s3, "genre_daily", "2026-11-02")[0]["listen_count"] == 5


def test_an_earlier_writers_part_files_go_when_the_date_is_written(s3):
    # What Spark's partitioned write left: part files named by its job, and a marker.
    old = f"{PREFIX}genre_daily/listen_date=2026-11-01/part-00000-1b2c.c000.snappy.parquet"
    s3.put_object(Bucket=BUCKET, Key=old, Body=b"old")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}genre_daily/_SUCCESS", Body=b"")
    write_kpi_parquet(s3, BUCKET, PREFIX, {"2026-11-01": day("2026-11-01", 3)}, ["2026-11-01"])
    assert keys(s3, f"{PREFIX}genre_daily/listen_date=2026-11-01/") == [
        object_key(PREFIX, "genre_daily", "2026-11-01")
    ]
    assert f"{PREFIX}genre_daily/_SUCCESS" in keys(s3)  # outside every date: left alone


def test_a_touched_date_without_kpis_now_loses_its_folders(s3):
    """A re-upload moved a file's events to another date: the old date has no KPIs left."""
    write_kpi_parquet(s3, BUCKET, PREFIX, {"2026-11-01": day("2026-11-01", 3)}, ["2026-11-01"])
    write_kpi_parquet(
        s3, BUCKET, PREFIX, {"2026-11-02": day("2026-11-02", 3)}, ["2026-11-01", "2026-11-02"]
    )
    assert not [k for k in keys(s3) if "listen_date=2026-11-01" in k]
    assert len([k for k in keys(s3) if "listen_date=2026-11-02" in k]) == 3


def test_a_reader_sees_one_table_partitioned_by_date(s3, tmp_path):
    """What an analyst's reader does with the layout: the date comes back as a column."""
    import duckdb

    days = {"2026-11-01": day("2026-11-01", 3), "2026-11-02": day("2026-11-02", 5)}
    write_kpi_parquet(s3, BUCKET, PREFIX, days, list(days))
    for key in keys(s3):
        target = tmp_path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    got = duckdb.sql(
        f"select listen_date::varchar d, sum(listen_count) n from read_parquet("
        f"'{tmp_path}/kpis/genre_daily/*/*.parquet', hive_partitioning=true) group by 1 order by 1"
    ).fetchall()
    assert got == [("2026-11-01", 4), ("2026-11-02", 6)]
