"""The validation rules of docs/data-contract.md §2 as pure functions: every sample file, the
threshold boundary, awkward headers and encodings, and the batch report."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from musicpipe.contract.report import (
    NO_STREAM_FILES,
    REFERENCE_FAILED,
    FileResult,
    build_report,
    failed_file,
    not_validated,
    summary_line,
)
from musicpipe.contract.rules import REASONS
from musicpipe.contract.status import ValidationStatus
from musicpipe.contract.validation import (
    threshold_fraction,
    validate_reference_file,
    validate_stream_file,
)

from ..conftest import SAMPLES

HEADER = b"user_id,track_id,listen_time\n"
GOOD_ROW = b"1,t1,2026-11-01 10:00:00\n"
BAD_ROW = b"1,t1,not-a-time\n"
TRACKS, USERS = frozenset({"t1", "t2"}), frozenset({"1", "2"})


def zeros(**counts: int) -> dict[str, int]:
    return {reason: counts.get(reason, 0) for reason in REASONS}


@pytest.fixture(scope="module")
def reference_ids() -> tuple[set[str], set[str]]:
    songs, tracks = validate_reference_file(
        (SAMPLES / "songs.csv").read_bytes(), "songs", "songs/songs.csv"
    )
    users, user_ids = validate_reference_file(
        (SAMPLES / "users.csv").open("rb"), "users", "users/users.csv"
    )
    assert songs.status == users.status == ValidationStatus.PASSED
    return tracks, user_ids


def check(path, reference_ids, **kwargs) -> FileResult:
    tracks, users = reference_ids
    with path.open("rb") as fh:
        return validate_stream_file(fh, f"streams/{path.name}", tracks, users, **kwargs)


# -- the committed samples -------------------------------------------------------------


def test_reference_samples_give_every_id(reference_ids):
    tracks, users = reference_ids
    with (SAMPLES / "songs.csv").open(newline="", encoding="utf-8") as fh:
        expected_tracks = {row["track_id"].strip() for row in csv.DictReader(fh)}
    with (SAMPLES / "users.csv").open(newline="", encoding="utf-8") as fh:
        expected_users = {row["user_id"].strip() for row in csv.DictReader(fh)}
    assert tracks == expected_tracks and len(tracks) == 2000
    assert users == expected_users and users == {str(i) for i in range(1, 501)}


@pytest.mark.parametrize("name", ["streams1.csv", "streams2.csv", "streams3.csv"])
def test_good_stream_samples_pass_whole(name, reference_ids):
    result = check(SAMPLES / "streams" / name, reference_ids)
    assert result.status == ValidationStatus.PASSED and result.error is None
    assert result.rows_read == 1500
    assert result.rows_rejected == zeros()
    assert result.missing_columns == []


def independent_counts(path, tracks: set[str], users: set[str]) -> dict[str, int]:
    """Reject counts for a file whose listen_time values are all in the plain format, computed
    without the contract's code."""
    counts = zeros()
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            user, track = row["user_id"].strip(), row["track_id"].strip()
            if not user or not track:
                counts["missing_key"] += 1
                continue
            try:
                datetime.strptime(row["listen_time"].strip(), "%Y-%m-%d %H:%M:%S")
            except ValueError:
                counts["bad_listen_time"] += 1
                continue
            if track not in tracks:
                counts["unknown_track"] += 1
            elif user not in users:
                counts["unknown_user"] += 1
    return counts


def test_unknown_ids_counts_match_an_independent_count(reference_ids):
    path = SAMPLES / "bad" / "unknown_ids.csv"
    result = check(path, reference_ids)
    expected = independent_counts(path, *reference_ids)
    assert result.rows_rejected == expected
    # ... and what data_samples/bad/README.md promises.
    assert expected == zeros(missing_key=6, unknown_track=24, unknown_user=20)
    assert result.rows_read == 200
    assert result.status == ValidationStatus.PASSED  # 25 % <= 50 %


def test_bad_timestamps_fail_on_the_threshold(reference_ids):
    path = SAMPLES / "bad" / "bad_timestamps.csv"
    result = check(path, reference_ids)
    assert result.rows_read == 200
    assert result.rows_rejected == zeros(bad_listen_time=140)
    assert independent_counts(path, *reference_ids) == zeros(bad_listen_time=140)
    assert result.status == ValidationStatus.FAILED
    assert result.error.startswith("140 of 200 rows rejected (70.0 %), more than the threshold")
    # The same file passes when the threshold allows 70 %.
    assert check(path, reference_ids, threshold=0.7).status == ValidationStatus.PASSED


@pytest.mark.parametrize(
    "name, error, missing, rows",
    [
        ("empty.csv", "empty file (0 bytes)", [], 0),
        ("header_only.csv", "no data rows", [], 0),
        ("missing_column.csv", "missing required column(s): listen_time", ["listen_time"], 50),
        ("latin1.csv", "not valid UTF-8: byte 0xE9 at byte offset 86 (line 2,", [], 0),
    ],
)
def test_file_level_failures_of_the_bad_samples(name, error, missing, rows, reference_ids):
    result = check(SAMPLES / "bad" / name, reference_ids)
    assert result.status == ValidationStatus.FAILED
    assert result.error.startswith(error), result.error
    assert result.missing_columns == missing
    assert result.rows_read == rows
    assert result.rows_rejected == zeros()  # row rules never ran


def test_every_sample_file_has_an_expected_verdict(reference_ids):
    """No sample is left untested: a new one needs a line here."""
    expected = {
        "bad/bad_timestamps.csv": ValidationStatus.FAILED,
        "bad/empty.csv": ValidationStatus.FAILED,
        "bad/header_only.csv": ValidationStatus.FAILED,
        "bad/latin1.csv": ValidationStatus.FAILED,
        "bad/missing_column.csv": ValidationStatus.FAILED,
        "bad/unknown_ids.csv": ValidationStatus.PASSED,
        "edge/bom_crlf_iso.csv": ValidationStatus.PASSED,
        "streams/streams1.csv": ValidationStatus.PASSED,
        "streams/streams2.csv": ValidationStatus.PASSED,
        "streams/streams3.csv": ValidationStatus.PASSED,
    }
    found = {
        p.relative_to(SAMPLES).as_posix(): check(p, reference_ids).status
        for folder in ("bad", "edge", "streams")
        for p in sorted((SAMPLES / folder).glob("*.csv"))
    }
    assert found == expected


def test_bom_crlf_iso_edge_file_is_accepted_whole(reference_ids):
    data = (SAMPLES / "edge" / "bom_crlf_iso.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    result = check(SAMPLES / "edge" / "bom_crlf_iso.csv", reference_ids)
    assert (result.status, result.rows_read, result.rows_rejected) == (
        ValidationStatus.PASSED,
        12,
        zeros(),
    )


# -- the threshold ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "good, bad, threshold, status",
    [
        (5, 5, 0.5, ValidationStatus.PASSED),  # exactly 50 %: not more than the threshold
        (4, 6, 0.5, ValidationStatus.FAILED),
        (100, 100, 0.5, ValidationStatus.PASSED),
        (99, 101, 0.5, ValidationStatus.FAILED),  # 50.5 %
        (
            7,
            3,
            0.3,
            ValidationStatus.PASSED,
        ),  # 0.3 as a float is not exactly 3/10: compared exactly anyway
        (6, 4, 0.3, ValidationStatus.FAILED),
        (1, 0, 0.0, ValidationStatus.PASSED),
        (9, 1, 0.0, ValidationStatus.FAILED),
        (0, 10, 1.0, ValidationStatus.PASSED),
    ],
)
def test_threshold_boundary(good, bad, threshold, status):
    data = HEADER + GOOD_ROW * good + BAD_ROW * bad
    result = validate_stream_file(data, "streams/x.csv", TRACKS, USERS, threshold=threshold)
    assert result.status == status
    assert result.rows_read == good + bad
    assert result.rows_rejected == zeros(bad_listen_time=bad)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "half", float("nan")])
def test_threshold_must_be_a_share(threshold):
    with pytest.raises(ValueError, match="reject threshold"):
        validate_stream_file(HEADER + GOOD_ROW, "k", TRACKS, USERS, threshold=threshold)


def test_threshold_fraction_is_exact():
    assert threshold_fraction("0.5") == threshold_fraction(0.5)
    assert threshold_fraction(0.1) * 30 == 3


# -- headers, encodings, shapes --------------------------------------------------------


def test_bom_crlf_and_quoted_header_in_any_order():
    data = (
        '\ufeff" Listen_Time ","TRACK_ID",  User_Id  ,note\r\n'
        '2026-11-01T10:00:00Z,t1,1,"comma, and ""quotes"""\r\n'
        '2026-11-01 10:00:00,t2,2,"two\r\nlines"\r\n'
        "2026-11-01 10:00:00,t2,3,unknown user\r\n"
    ).encode()
    result = validate_stream_file(data, "k", TRACKS, USERS)
    assert result.status == ValidationStatus.PASSED, result.error
    assert result.rows_read == 3  # the quoted line break does not start a row
    assert result.rows_rejected == zeros(unknown_user=1)


def test_missing_column_is_named_even_when_only_the_last_one_is_wrong():
    data = b"user_id,track_id,client,listen_timestamp\n1,t1,web,2026-11-01 10:00:00\n"
    result = validate_stream_file(data, "k", TRACKS, USERS)
    assert result.status == ValidationStatus.FAILED
    assert result.missing_columns == ["listen_time"]
    assert "listen_time" in result.error and "'listen_timestamp'" in result.error
    assert result.rows_read == 1


@pytest.mark.parametrize(
    "data, error",
    [
        (b"", "empty file (0 bytes)"),
        (b"   \n\t\r\n\n", "empty file (whitespace only)"),
        (b"\xef\xbb\xbf", "empty file (whitespace only)"),
        (HEADER, "no data rows"),
        (HEADER.replace(b"\n", b"\r\n") + b"\r\n\r\n", "no data rows"),
        (b"\n\n" + HEADER + b"\n", "no data rows"),  # blank lines are not rows
    ],
)
def test_empty_and_header_only(data, error):
    result = validate_stream_file(data, "k", TRACKS, USERS)
    assert (result.status, result.error, result.rows_read) == (ValidationStatus.FAILED, error, 0)


def test_decode_error_names_line_and_offset_across_chunk_boundaries():
    lines = [HEADER] + [GOOD_ROW] * 998 + ["9,t1,2026-11-01 10:00:00,Caf\xe9\n".encode("latin-1")]
    data = b"".join(lines) + GOOD_ROW
    offset = data.index(b"\xe9")

    def in_small_chunks():
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    for source in (data, io.BytesIO(data), in_small_chunks()):
        result = validate_stream_file(source, "k", TRACKS, USERS)
        assert result.status == ValidationStatus.FAILED
        assert f"byte 0xE9 at byte offset {offset} (line 1000," in result.error, result.error
        assert result.rows_read == 0


def test_multibyte_characters_split_across_chunks_decode():
    data = HEADER.replace(b"\n", b",client\n") + "1,t1,2026-11-01 10:00:00,Café Müller ♫\n".encode()
    chunks = (data[i : i + 1] for i in range(len(data)))  # one byte at a time
    result = validate_stream_file(chunks, "k", TRACKS, USERS)
    assert (result.status, result.rows_read) == (ValidationStatus.PASSED, 1)


def test_reading_stops_at_the_first_undecodable_line():
    """A stream source is read lazily: nothing past the failing line is pulled."""

    def source():
        yield HEADER + b"1,t1,\xff\n"
        raise AssertionError("read past the undecodable line")

    assert validate_stream_file(source(), "k", TRACKS, USERS).status == ValidationStatus.FAILED


def test_nul_bytes_and_utf16_fail():
    assert "NUL" in validate_stream_file(HEADER + b"1,t1\x00\n", "k", TRACKS, USERS).error
    utf16 = (HEADER + GOOD_ROW).decode().encode("utf-16")
    assert validate_stream_file(utf16, "k", TRACKS, USERS).error.startswith("not valid UTF-8")


def test_bare_cr_is_not_readable_csv():
    data = HEADER.replace(b"\n", b"\r") + GOOD_ROW.replace(b"\n", b"\r")
    result = validate_stream_file(data, "k", TRACKS, USERS)
    assert result.status == ValidationStatus.FAILED and "bare CR" in result.error


def test_short_rows_blank_lines_and_first_rule_wins():
    data = HEADER + (
        b"1,t1,2026-11-01 10:00:00\n"
        b"\n"  # not a row
        b"1,t1\n"  # no listen_time field
        b"1\n"  # no track_id either: missing_key comes first
        b" , t1 ,garbage\n"  # blank user and a bad time: missing_key
        b"2, t9 ,garbage\n"  # bad time before unknown track
        b"3,t9,2026-11-01 10:00:00\n"  # unknown track before unknown user
        b" 2 , t2 ,2026-11-01T10:00:00+02:00\n"  # trimmed keys: accepted
    )
    result = validate_stream_file(data, "k", TRACKS, USERS, threshold=1.0)
    assert result.rows_read == 7
    assert result.rows_rejected == zeros(missing_key=2, bad_listen_time=2, unknown_track=1)


def test_text_is_refused():
    with pytest.raises(TypeError, match="bytes"):
        validate_stream_file(HEADER.decode(), "k", TRACKS, USERS)


# -- reference files -------------------------------------------------------------------


def test_reference_file_ids_are_trimmed_and_blanks_ignored():
    data = b'user_name,USER_ID,user_age,user_country\nA, 7 ,20,X\nB,,30,Y\nC,8,40,"Korea, Rep"\n'
    result, ids = validate_reference_file(data, "users", "users/users.csv", etag="e1")
    assert (result.status, result.rows_read, result.etag) == (ValidationStatus.PASSED, 3, "e1")
    assert ids == {"7", "8"}


@pytest.mark.parametrize(
    "kind, data, error",
    [
        (
            "songs",
            b"track_id,track_name,artists\nx,y,z\n",
            "missing required column(s): track_genre",
        ),
        ("users", b"user_id,user_name,user_age,user_country\n", "no data rows"),
        ("users", b"", "empty file (0 bytes)"),
    ],
)
def test_reference_file_failures(kind, data, error):
    result, ids = validate_reference_file(data, kind, f"{kind}/{kind}.csv")
    assert result.status == ValidationStatus.FAILED and result.error.startswith(error)
    assert ids == set()


def test_reference_kind_is_checked():
    with pytest.raises(ValueError):
        validate_reference_file(HEADER + GOOD_ROW, "streams", "k")


# -- the report ------------------------------------------------------------------------


def refs(
    songs: str = ValidationStatus.PASSED, users: str = ValidationStatus.PASSED
) -> list[FileResult]:
    def one(kind, status):
        error = None if status == ValidationStatus.PASSED else "missing required column(s): artists"
        return FileResult(key=f"{kind}/{kind}.csv", kind=kind, status=status, error=error)

    return [one("songs", songs), one("users", users)]


def stream(key: str, status: str) -> FileResult:
    return FileResult(key=key, kind="streams", status=status, etag="abc", rows_read=10)


def test_report_shape_and_overall_passed():
    at = datetime(2026, 11, 2, 3, 4, 5, 678000, tzinfo=UTC)
    bad = stream("streams/b.csv", ValidationStatus.FAILED)
    bad.rows_rejected = zeros(bad_listen_time=7)
    report = build_report(
        "b1",
        refs(),
        [bad, stream("streams/a.csv", ValidationStatus.PASSED)],
        threshold=0.5,
        generated_at=at,
    )
    assert json.loads(json.dumps(report)) == report
    assert report["batch_id"] == "b1"
    assert report["overall_status"] == ValidationStatus.PASSED and report["error"] is None
    assert report["generated_at"] == "2026-11-02T03:04:05.678000Z"
    assert report["threshold"] == 0.5
    assert [f["key"] for f in report["files"]] == [
        "songs/songs.csv",
        "users/users.csv",
        "streams/a.csv",
        "streams/b.csv",
    ]
    assert report["files"][3] == {
        "key": "streams/b.csv",
        "etag": "abc",
        "kind": "streams",
        "status": ValidationStatus.FAILED,
        "missing_columns": [],
        "rows_read": 10,
        "rows_rejected": zeros(bad_listen_time=7),
        "error": None,
        "quarantined_to": None,
    }
    assert report["summary"]["stream_files_passed"] == 1
    assert report["summary"]["stream_rows_rejected"] == 7


@pytest.mark.parametrize(
    "references, streams, error",
    [
        (refs(), [], NO_STREAM_FILES),
        (
            refs(),
            [stream("streams/a.csv", ValidationStatus.FAILED)],
            "no stream file passed validation (1 failed)",
        ),
        (
            refs(users=ValidationStatus.FAILED),
            [not_validated("streams/a.csv")],
            "reference files failed: users/users.csv: missing required column(s): artists",
        ),
        (
            refs()[:1],
            [stream("streams/a.csv", ValidationStatus.PASSED)],
            "reference files failed: users reference file was not checked",
        ),
    ],
)
def test_report_overall_failed(references, streams, error):
    report = build_report("b1", references, streams)
    assert report["overall_status"] == ValidationStatus.FAILED
    assert report["error"] == error


def test_reference_failure_reports_streams_not_validated():
    songs = failed_file("songs/songs.csv", "songs", "s3://rds.data/songs/songs.csv does not exist")
    users, _ = validate_reference_file((SAMPLES / "users.csv").read_bytes(), "users", "u")
    report = build_report("b1", [songs, users], [not_validated("streams/a.csv", etag="e")])
    assert report["overall_status"] == ValidationStatus.FAILED
    assert "songs/songs.csv does not exist" in report["error"]
    entry = report["files"][-1]
    assert entry["status"] == ValidationStatus.NOT_VALIDATED and entry["error"] == REFERENCE_FAILED
    assert entry["rows_read"] == 0 and entry["rows_rejected"] == zeros()
    assert report["summary"]["stream_files_not_validated"] == 1


def test_summary_line_mentions_status_key_and_error():
    result = validate_stream_file(HEADER + BAD_ROW, "streams/x.csv", TRACKS, USERS)
    result.quarantined_to = "s3://q/quarantine/files/b/streams/x.csv"
    line = summary_line(result)
    assert line.startswith("FAILED") and "streams/x.csv" in line
    assert "bad_listen_time=1" in line and "quarantined to s3://q/" in line
