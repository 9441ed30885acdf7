"""Hostile inputs through the real jobs (validation on the Glue emulator's Python shell, the ETL
on its Spark, against moto), as the DAG runs them: every row accounted for, KPIs equal to the
DuckDB oracle, path-like keys quarantined while the good files of their batch complete
(issue #14)."""

from __future__ import annotations

import csv
import io

import pytest

from .conftest import SAMPLES
from .csv_corpus import write_corpus
from .pipeline_helpers import (
    QUARANTINE,
    RAW,
    Pipeline,
    assert_rows_accounted,
    assert_same_kpis,
    oracle_items,
)

SONGS, USERS = SAMPLES / "songs.csv", SAMPLES / "users.csv"
GOOD = [SAMPLES / "streams" / "streams1.csv", SAMPLES / "streams" / "streams2.csv"]
# Odd but fine: Spark reads this key as the object it names.
ODD_BUT_FINE = "streams/ sub dir/ lead+plus; é=1 .csv"

# Legal S3 keys that Hadoop's Path or Spark's reader would read as another path (or as a
# pattern), each with the words its refusal must contain.
PATH_LIKE_KEYS = {
    "streams/../dotdot.csv": "'..' path segment",
    "streams/./dot.csv": "'.' path segment",
    "streams//double.csv": "empty path segment",
    "streams/sub//double.csv": "empty path segment",
    "streams/col:on.csv": "contains ':'",
    "streams/pct%41.csv": "contains '%'",
    "streams/glob*.csv": "contains '*'",
    "streams/what?.csv": "contains '?'",
    "streams/brace{a}.csv": "contains '{'",
    "streams/com,ma.csv": "contains ','",
    "streams/bracket[1].csv": "contains '['",
    "streams/back\\slash.csv": "contains '\\\\'",
}


@pytest.fixture
def pipe(aws, local_stack):
    return Pipeline(aws, local_stack)


def _etl_log(pipe: Pipeline, run: dict) -> str:
    logs = pipe.aws.client("logs")
    events = logs.get_log_events(
        logGroupName="/aws-glue/jobs/output", logStreamName=run["Id"], startFromHead=True
    )["events"]
    return "\n".join(e["message"] for e in events)


def test_path_like_keys_are_quarantined_and_the_batch_completes(pipe):
    pipe.put_references(SONGS, USERS)
    for path in GOOD:
        pipe.put(path, f"streams/{path.name}")
    pipe.put(SAMPLES / "streams" / "streams3.csv", ODD_BUT_FINE)
    for key in PATH_LIKE_KEYS:
        pipe.put(SAMPLES / "streams" / "streams3.csv", key)
    # moto keeps each key as written (nothing normalised): the test really has these objects.
    assert set(PATH_LIKE_KEYS) <= set(pipe.keys(RAW, "streams/"))

    report = pipe.validate("b-keys")
    files = {f["key"]: f for f in report["files"]}
    assert report["overall_status"] == "PASSED"
    for key, words in PATH_LIKE_KEYS.items():
        entry = files[key]
        assert entry["status"] == "FAILED", entry
        assert f"key {key!r} refused by the key rule" in entry["error"]
        assert words in entry["error"], entry["error"]
        assert entry["rows_read"] == 0  # never read
        assert entry["quarantined_to"] == f"s3://{QUARANTINE}/quarantine/files/b-keys/{key}"
    quarantined = pipe.keys(QUARANTINE, "quarantine/files/b-keys/")
    for key in PATH_LIKE_KEYS:
        assert f"quarantine/files/b-keys/{key}" in quarantined
        assert f"quarantine/files/b-keys/{key}.reason.json" in quarantined
    assert pipe.keys(RAW, "streams/") == sorted(
        [ODD_BUT_FINE, *(f"streams/{p.name}" for p in GOOD)]
    )

    # The ETL gets the files that passed; handed a path-like key too, it skips it and says so.
    # (A key with a comma cannot even be handed over: the argument is comma-separated.)
    passed = [
        f["key"] for f in report["files"] if f["kind"] == "streams" and f["status"] == "PASSED"
    ]
    handed = [k for k in PATH_LIKE_KEYS if "," not in k]
    run = pipe.etl("b-keys", [*passed, *handed])
    log = _etl_log(pipe, run)
    for key in handed:
        assert f"skip key {key!r} refused by the key rule" in log
    pipe.write_kpis("b-keys")
    tracker = pipe.tracker_items()
    assert {k: v["status"] for k, v in tracker.items()} == {
        **{f"streams/{p.name}": "COMPLETED" for p in GOOD},
        ODD_BUT_FINE: "COMPLETED",
        **dict.fromkeys(PATH_LIKE_KEYS, "QUARANTINED"),
    }
    assert_rows_accounted(tracker)
    assert tracker[ODD_BUT_FINE]["rows_read"] > 0
    expected = oracle_items(SONGS, USERS, [*GOOD, SAMPLES / "streams" / "streams3.csv"])
    assert_same_kpis(pipe.kpi_table(), expected)


def test_a_trailing_slash_key_is_refused_when_named(pipe):
    # S3 events only announce keys ending in .csv, so such a key comes only by name.
    pipe.put_references(SONGS, USERS)
    pipe.put(GOOD[0], "streams/trailing.csv/")
    report = pipe.validate("b-slash", ["streams/trailing.csv/"])
    (entry,) = [f for f in report["files"] if f["key"] == "streams/trailing.csv/"]
    assert entry["status"] == "FAILED" and "ends with '/'" in entry["error"]
    assert pipe.keys(QUARANTINE, "quarantine/files/b-slash/") == [
        "quarantine/files/b-slash/streams/trailing.csv/",
        "quarantine/files/b-slash/streams/trailing.csv/.reason.json",
    ]


def test_hostile_csv_corpus_every_row_accounted_and_kpis_equal_the_oracle(pipe, tmp_path):
    corpus = write_corpus(tmp_path)
    pipe.put_references(SONGS, USERS)
    paths = [GOOD[0]] + [path for path, _, _ in corpus.values()]
    for path in paths:
        pipe.put(path, f"streams/{path.name}")

    report = pipe.validate("b-corpus")
    files = {f["key"]: f for f in report["files"]}
    for name, (_, rows, rejected) in corpus.items():
        entry = files[f"streams/{name}"]
        assert entry["status"] == "PASSED", entry
        assert entry["rows_read"] == rows, name
        assert {r: n for r, n in entry["rows_rejected"].items() if n} == rejected, name

    pipe.etl_and_write("b-corpus", [f"streams/{p.name}" for p in paths])
    tracker = pipe.tracker_items()
    assert_rows_accounted(tracker)
    for name, (_, rows, rejected) in corpus.items():
        item = tracker[f"streams/{name}"]
        assert item["status"] == "COMPLETED"
        # The ETL reads the records validation read: same rows, same rejections.
        assert (item["rows_read"], item["rows_rejected"]) == (rows, sum(rejected.values())), name
        if rejected:
            key = f"quarantine/rows/b-corpus/{name[: -len('.csv')]}.csv"
            body = pipe.s3.get_object(Bucket=QUARANTINE, Key=key)["Body"].read().decode()
            csv.field_size_limit(1 << 24)  # the rows hold the 200 KB cells
            records = list(csv.DictReader(io.StringIO(body, newline="")))
            got = {}
            for record in records:
                got[record["reject_reason"]] = got.get(record["reject_reason"], 0) + 1
            assert got == rejected, name
    assert_same_kpis(pipe.kpi_table(), oracle_items(SONGS, USERS, paths))
