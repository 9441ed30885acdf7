"""The real ETL job, run through the Glue emulator against moto, held to the data contract:
every KPI equals the DuckDB oracle computed from scratch over the current files."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from musicpipe.data.generator import generate_dataset

from ..conftest import SAMPLES
from ..pipeline_helpers import (
    PROCESSED,
    QUARANTINE,
    Pipeline,
    assert_rows_accounted,
    assert_same_kpis,
    oracle_items,
)


@pytest.fixture
def pipe(aws, local_stack):
    return Pipeline(aws, local_stack)


@pytest.fixture(scope="module")
def tied_data(tmp_path_factory):
    """Generated data with heavy ties: a small catalogue, many plays, duplicates across files."""
    out = tmp_path_factory.mktemp("tied")
    return generate_dataset(
        out,
        seed=7,
        songs=300,
        users=120,
        stream_files=4,
        rows_per_file=2500,
        days=2,
        duplicate_rate=0.03,
    )


def test_kpis_equal_the_oracle_on_multi_file_days_with_ties(pipe, tied_data):
    pipe.put_references(tied_data.songs_path, tied_data.users_path)
    for path in tied_data.stream_paths:
        pipe.put(path, f"streams/{path.name}")
    pipe.etl_and_write("batch-1")
    expected = oracle_items(
        tied_data.songs_path, tied_data.users_path, list(tied_data.stream_paths)
    )
    assert_same_kpis(pipe.kpi_table(), expected)
    tracker = pipe.tracker_items()
    assert {i["status"] for i in tracker.values()} == {"COMPLETED"}
    assert_rows_accounted(tracker)
    assert sum(i["rows_duplicate"] for i in tracker.values()) > 0
    # Enriched events are stored per date as Parquet.
    stored = pipe.keys(PROCESSED, "processed/streams/listen_date=")
    assert any(k.endswith(".parquet") for k in stored)
    assert pipe.keys(PROCESSED, "kpis/staging/batch-1/") == [
        "kpis/staging/batch-1/items.jsonl",
        "kpis/staging/batch-1/manifest.json",
    ]
    # The Parquet copies hold the same KPIs as the DynamoDB items.
    parquet = {}
    for key in pipe.keys(PROCESSED, "kpis/genre_daily/"):
        date = key.split("listen_date=")[1].split("/")[0]
        body = pipe.s3.get_object(Bucket=PROCESSED, Key=key)["Body"].read()
        for row in pq.read_table(io.BytesIO(body)).to_pylist():
            parquet[(f"DATE#{date}", f"GENRE#{row['genre']}")] = (
                row["listen_count"],
                row["unique_listeners"],
                json.loads(row["top_songs"]),
            )
    items = pipe.kpi_table()
    assert parquet == {
        k: (
            i["listen_count"],
            i["unique_listeners"],
            [{**s, "plays": int(s["plays"]), "rank": int(s["rank"])} for s in i["top_songs"]],
        )
        for k, i in items.items()
        if k[1].startswith("GENRE#")
    }


def test_redelivery_and_reupload_keep_the_invariant(pipe, tied_data, tmp_path):
    first, second = tied_data.stream_paths[:2]
    pipe.put_references(tied_data.songs_path, tied_data.users_path)
    pipe.put(first, "streams/a.csv")
    pipe.put(second, "streams/b.csv")
    pipe.etl_and_write("batch-1")

    # The same file delivered again under its key: skipped, nothing counted twice.
    pipe.put(first, "streams/a.csv")
    pipe.etl_and_write("batch-2")
    assert pipe.tracker_items()["streams/a.csv"]["batch_id"] == "batch-1"
    # The same content under a new key: all its events are duplicates.
    pipe.put(first, "streams/a-copy.csv")
    pipe.etl_and_write("batch-3")
    copy = pipe.tracker_items()["streams/a-copy.csv"]
    assert copy["rows_accepted"] == 0 and copy["rows_duplicate"] > 0
    assert_same_kpis(
        pipe.kpi_table(), oracle_items(tied_data.songs_path, tied_data.users_path, [first, second])
    )

    # b.csv re-uploaded with other content (half its rows): its old contribution is replaced.
    lines = second.read_text().splitlines(keepends=True)
    changed = tmp_path / "b.csv"
    changed.write_text("".join(lines[: len(lines) // 2]))
    pipe.put(changed, "streams/b.csv")
    pipe.etl_and_write("batch-4")
    expected = oracle_items(tied_data.songs_path, tied_data.users_path, [first, changed])
    assert_same_kpis(pipe.kpi_table(), expected)
    assert_rows_accounted(pipe.tracker_items())


def test_bad_rows_are_quarantined_with_their_reason(pipe):
    pipe.put_references(SAMPLES / "songs.csv", SAMPLES / "users.csv")
    files = [
        SAMPLES / "streams" / "streams1.csv",
        SAMPLES / "bad" / "unknown_ids.csv",
        SAMPLES / "bad" / "bad_timestamps.csv",
        SAMPLES / "edge" / "bom_crlf_iso.csv",
    ]
    for path in files:
        pipe.put(path, f"streams/{path.name}")
    pipe.etl_and_write("batch-bad")
    tracker = pipe.tracker_items()
    assert_rows_accounted(tracker)
    assert tracker["streams/edge/bom_crlf_iso.csv".replace("edge/", "")]["rows_rejected"] == 0
    quarantined = pipe.keys(QUARANTINE, "quarantine/rows/batch-bad/")
    assert "quarantine/rows/batch-bad/unknown_ids.csv" in quarantined
    assert "quarantine/rows/batch-bad/bad_timestamps.csv" in quarantined
    body = (
        pipe.s3.get_object(Bucket=QUARANTINE, Key="quarantine/rows/batch-bad/unknown_ids.csv")[
            "Body"
        ]
        .read()
        .decode()
    )
    header, *rows = body.splitlines()
    assert header.endswith(",reject_reason")
    reasons = {r.rsplit(",", 1)[1] for r in rows}
    assert reasons <= {"missing_key", "bad_listen_time", "unknown_track", "unknown_user"}
    assert len(rows) == tracker["streams/unknown_ids.csv"]["rows_rejected"]
    assert_same_kpis(
        pipe.kpi_table(), oracle_items(SAMPLES / "songs.csv", SAMPLES / "users.csv", files)
    )


def test_nothing_new_is_a_quick_no_op(pipe):
    pipe.put_references(SAMPLES / "songs.csv", SAMPLES / "users.csv")
    run = pipe.etl("batch-empty")
    assert run["JobRunState"] == "SUCCEEDED"
    result = pipe.write_kpis("batch-empty")
    assert result.items_written == 0
