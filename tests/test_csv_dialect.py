"""One reading of a CSV: the validation job (Python csv), the ETL (Spark) and the DuckDB oracle
find the same records in every file of a hostile corpus, and reject the same rows for the same
reasons (issue #14: a quoted line break made Spark split records, and 50 events vanished)."""

from __future__ import annotations

from collections import Counter

import pytest

from musicpipe.contract import validation
from musicpipe.contract.reading import MAX_READABLE_FIELD_CHARS
from musicpipe.contract.rules import FIELD_TOO_LARGE, MAX_FIELD_CHARS, REASONS
from musicpipe.contract.status import ValidationStatus

from . import oracle
from .conftest import SAMPLES, local_spark
from .csv_corpus import BIG, write_corpus, write_mixed_endings

SONGS, USERS = SAMPLES / "songs.csv", SAMPLES / "users.csv"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def reference_ids():
    _, tracks = validation.validate_reference_file(SONGS.read_bytes(), "songs", "songs.csv")
    _, users = validation.validate_reference_file(USERS.read_bytes(), "users", "users.csv")
    return tracks, users


@pytest.fixture(scope="module")
def spark():
    with local_spark("csv-dialect") as session:
        yield session


def _header(path) -> list[str]:
    from musicpipe.etl.transform import header_from_bytes

    return header_from_bytes(path.read_bytes()[:65536])  # as the job reads it from S3


def _spark_rows(spark, path):
    """(user, track, timestamp, reason) of every record the ETL's reader and rules find."""
    from musicpipe.etl import transform

    songs = transform.songs_reference(transform.read_csv(spark, str(SONGS), _header(SONGS)))
    users = transform.users_reference(transform.read_csv(spark, str(USERS), _header(USERS)))
    stream = transform.read_csv(spark, str(path), _header(path))
    checked = transform.check_rows(stream, songs, users)
    return [(r._user, r._track, r._ts, r._reason) for r in checked.collect()]


def _validation_counts(path, reference_ids):
    tracks, users = reference_ids
    result = validation.validate_stream_file(path.read_bytes(), path.name, tracks, users, 1.0)
    assert result.status == ValidationStatus.PASSED, result.error
    return result.rows_read, {r: n for r, n in result.rows_rejected.items() if n}


def test_validation_and_oracle_read_what_a_human_counts(corpus, reference_ids):
    for name, (path, rows, rejected) in corpus.items():
        assert _validation_counts(path, reference_ids) == (rows, rejected), name
        accounting = oracle.row_accounting(SONGS, USERS, [path])[str(path)]
        oracle_rejected = {r: n for r, n in accounting["rejected"].items() if n}
        assert (accounting["rows_read"], oracle_rejected) == (rows, rejected), name


def test_the_etl_reads_the_same_records_as_the_oracle(spark, corpus):
    for name, (path, rows, rejected) in corpus.items():
        got = _spark_rows(spark, path)
        reasons = Counter(reason for *_, reason in got if reason is not None)
        assert (len(got), dict(reasons)) == (rows, rejected), name
        # The accepted rows themselves: same keys, same instants.
        expected = sorted(
            (r["user_id"], r["track_id"], r["timestamp"])
            for r in oracle.classify_rows(SONGS, USERS, [path])
            if r["reject_reason"] is None
        )
        assert sorted(row[:3] for row in got if row[3] is None) == expected, name


def test_the_issue_file_keeps_all_its_events(spark, corpus):
    # 100 rows, 50 of them with a quoted "line one, i\nline two": 100 accepted events, not
    # 150 records of which 100 halves are rejected.
    path, _, _ = corpus["quoted_mid.csv"]
    got = _spark_rows(spark, path)
    assert len(got) == 100 and all(reason is None for *_, reason in got)


def test_a_giant_cell_rejects_its_row_alone(reference_ids, tmp_path):
    # One 200 KB cell in row 52 used to fail the whole file ("field larger than field limit").
    path = tmp_path / "one_big_cell.csv"
    tracks, users = (sorted(ids) for ids in reference_ids)
    lines = ["user_id,track_id,listen_time,note"]
    for i in range(100):
        note = "x" * BIG if i == 51 else "ok"
        lines.append(f"{users[i]},{tracks[i]},2026-11-01 10:00:{i % 60:02d},{note}")
    path.write_text("\n".join(lines) + "\n")
    result = validation.validate_stream_file(path.read_bytes(), "s", *reference_ids)
    assert result.status == ValidationStatus.PASSED, result.error
    assert result.rows_read == 100
    assert result.rows_rejected == {**dict.fromkeys(REASONS, 0), FIELD_TOO_LARGE: 1}


def test_giant_cells_count_toward_the_threshold(reference_ids):
    tracks, users = (sorted(ids) for ids in reference_ids)
    big = "z" * (MAX_FIELD_CHARS + 1)
    rows = [f"{users[0]},{tracks[0]},2026-11-01 10:00:00,ok"]
    rows += [f"{users[i]},{tracks[i]},2026-11-01 10:00:00,{big}" for i in range(1, 3)]
    body = ("user_id,track_id,listen_time,note\n" + "\n".join(rows) + "\n").encode()
    result = validation.validate_stream_file(body, "s", *reference_ids, threshold=0.5)
    assert result.status == ValidationStatus.FAILED
    assert result.rows_rejected[FIELD_TOO_LARGE] == 2
    assert "field_too_large 2" in result.error


def test_a_cell_past_the_readable_size_fails_the_file():
    # An unclosed quote swallows the rest of the file: the file fails, it is not held in memory.
    body = b'user_id,track_id,listen_time\n1,"t' + b"x" * (MAX_READABLE_FIELD_CHARS + 10)
    result = validation.validate_stream_file(body, "s", {"t"}, {"1"})
    assert result.status == ValidationStatus.FAILED
    assert "a quote left open" in result.error


def test_a_reference_file_with_a_giant_cell_fails_and_names_the_row():
    body = (
        b"track_id,track_genre,track_name,artists\nt1,pop,a,b\nt2,pop,"
        + b"n" * (MAX_FIELD_CHARS + 1)
        + b",c\n"
    )
    result, ids = validation.validate_reference_file(body, "songs", "songs/songs.csv")
    assert result.status == ValidationStatus.FAILED
    assert "data row 2" in result.error and f"{MAX_FIELD_CHARS:,}" in result.error
    assert ids == set()


def test_the_etl_takes_the_header_validation_takes():
    from musicpipe.etl.transform import header_from_bytes

    assert header_from_bytes(b"\n\r\nuser_id,track_id\n1,a\n") == ["user_id", "track_id"]
    assert header_from_bytes(b'\xef\xbb\xbf"user_id","a\r\nb",x\r\n1,2,3') == [
        "user_id",
        "a\r\nb",
        "x",
    ]
    assert header_from_bytes(b"") == []


def test_mixed_line_endings_fail_the_file_naming_the_line(reference_ids, tmp_path):
    # Spark takes the first line's break for the whole file (a CRLF file with LF records
    # loses records): the validation job refuses the mix rather than let the readers differ.
    for path in write_mixed_endings(tmp_path):
        result = validation.validate_stream_file(path.read_bytes(), path.name, *reference_ids)
        assert result.status == ValidationStatus.FAILED, path.name
        # Data row 2 ends on line 5 (each record holds a quoted line break).
        assert "mixed line endings: line 5 ends with" in result.error, result.error
