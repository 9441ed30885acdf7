"""Tests of the sample-data generator (musicpipe.data) and of the committed data_samples/."""

from __future__ import annotations

import collections
import csv
import io
import re
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from musicpipe.contract.columns import REQUIRED_COLUMNS, STREAMS, missing_columns
from musicpipe.data import bad_samples
from musicpipe.data.generator import (
    CHUNK_ROWS,
    DEFAULT_ROWS_PER_FILE,
    DEFAULT_SONGS,
    DEFAULT_USERS,
    GENRES,
    Catalogue,
    generate_dataset,
    write_sample_set,
    write_streams,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data_samples"

SONGS_HEADER = (
    ",track_id,artists,album_name,track_name,popularity,duration_ms,explicit,danceability,"
    "energy,key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,"
    "time_signature,track_genre"
)
USERS_HEADER = "user_id,user_name,user_age,user_country,created_at"
STREAMS_HEADER = "user_id,track_id,listen_time"
PLAIN_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
BASE62_ID = re.compile(r"[0-9A-Za-z]{22}")

# Small but multi-file settings for tests that generate several times.
SMALL = dict(songs=300, users=40, stream_files=3, rows_per_file=700, days=2, duplicate_rate=0.02)


# --------------------------------------------------------------------------------------------
# Helpers: an independent reading of the contract (docs/data-contract.md §1-2)
# --------------------------------------------------------------------------------------------


def read_csv(path: Path, encoding: str = "utf-8") -> tuple[list[str], list[list[str]]]:
    with open(path, encoding=encoding, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def parse_listen_time(value: str) -> datetime | None:
    """The UTC instant of an accepted listen_time, or None if it is not accepted."""
    if not (PLAIN_TIME.fullmatch(value) or ISO_TIME.fullmatch(value)):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def reject_reason(user_id: str, track_id: str, listen_time: str, tracks, users) -> str | None:
    """docs/data-contract.md §2 row rules; a row gets the first rule it breaks, in this order."""
    if not user_id or not track_id:
        return "missing_key"
    if parse_listen_time(listen_time) is None:
        return "bad_listen_time"
    if track_id not in tracks:
        return "unknown_track"
    if user_id not in users:
        return "unknown_user"
    return None


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def default_set(tmp_path_factory):
    """A data set at the real sizes: 89,741 songs, 50,000 users, 3 files of 11,346 rows."""
    out = tmp_path_factory.mktemp("default")
    dataset = generate_dataset(out)
    _, songs = read_csv(dataset.songs_path)
    _, users = read_csv(dataset.users_path)
    streams = [read_csv(p)[1] for p in dataset.stream_paths]
    return dataset, songs, users, streams


@pytest.fixture(scope="module")
def sample_songs_users():
    _, songs = read_csv(SAMPLES / "songs.csv")
    _, users = read_csv(SAMPLES / "users.csv")
    return {r[1] for r in songs}, {r[0] for r in users}


# --------------------------------------------------------------------------------------------
# Determinism and sizes
# --------------------------------------------------------------------------------------------


def test_default_sizes_are_the_real_ones():
    assert (DEFAULT_SONGS, DEFAULT_USERS, DEFAULT_ROWS_PER_FILE) == (89_741, 50_000, 11_346)


def test_same_seed_gives_identical_bytes(tmp_path):
    generate_dataset(tmp_path / "a", seed=7, **SMALL)
    generate_dataset(tmp_path / "b", seed=7, **SMALL)
    a, b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    assert len(a) == 5
    assert a == b


def test_different_seed_changes_every_file(tmp_path):
    generate_dataset(tmp_path / "a", seed=7, **SMALL)
    generate_dataset(tmp_path / "b", seed=8, **SMALL)
    a, b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] != b[name], name


def test_row_counts_are_exact(tmp_path):
    advanced = []
    dataset = generate_dataset(
        tmp_path,
        songs=123,
        users=45,
        stream_files=4,
        rows_per_file=678,
        duplicate_rate=0.05,
        progress=advanced.append,
    )
    assert len(read_csv(dataset.songs_path)[1]) == dataset.songs_rows == 123
    assert len(read_csv(dataset.users_path)[1]) == dataset.users_rows == 45
    assert [p.name for p in dataset.stream_paths] == [f"streams{i}.csv" for i in range(1, 5)]
    assert [len(read_csv(p)[1]) for p in dataset.stream_paths] == [678] * 4
    assert dataset.duplicates_injected == (34,) * 4  # 5 % of 678, rounded
    assert sum(advanced) == 123 + 45 + 4 * 678


def test_write_streams_exact_across_chunk_boundary(tmp_path):
    path = tmp_path / "big.csv"
    result = write_streams(path, CHUNK_ROWS + 3, songs=500, users=50)
    data = path.read_bytes()
    assert data.count(b"\n") == CHUNK_ROWS + 3 + 1  # rows + header
    assert result.rows == CHUNK_ROWS + 3
    assert data.endswith(b"\n")


def test_write_streams_zero_rows_is_header_only(tmp_path):
    write_streams(tmp_path / "s.csv", 0, songs=10, users=10)
    assert (tmp_path / "s.csv").read_text() == STREAMS_HEADER + "\n"


def test_catalogue_from_files_equals_generated(tmp_path):
    dataset = generate_dataset(tmp_path / "d", seed=3, songs=200, users=30, stream_files=1)
    from_files = Catalogue.from_files(dataset.songs_path, dataset.users_path, seed=3)
    write_streams(tmp_path / "a.csv", 5_000, seed=3, songs=200, users=30)
    write_streams(tmp_path / "b.csv", 5_000, seed=3, catalogue=from_files)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


# --------------------------------------------------------------------------------------------
# Shape
# --------------------------------------------------------------------------------------------


def test_headers_are_exact(default_set):
    dataset, _, _, _ = default_set
    assert dataset.songs_path.read_text(encoding="utf-8").split("\n", 1)[0] == SONGS_HEADER
    assert dataset.users_path.read_text(encoding="utf-8").split("\n", 1)[0] == USERS_HEADER
    for path in dataset.stream_paths:
        assert path.read_text().split("\n", 1)[0] == STREAMS_HEADER


def test_114_genres_all_used(default_set):
    _, songs, _, _ = default_set
    assert len(GENRES) == len(set(GENRES)) == 114
    assert {"acoustic", "world-music", "r-n-b", "singer-songwriter"} <= set(GENRES)
    assert {r[20] for r in songs} == set(GENRES)


def test_track_ids_unique_base62_22_chars(default_set):
    _, songs, _, _ = default_set
    ids = [r[1] for r in songs]
    assert len(ids) == len(set(ids)) == DEFAULT_SONGS
    assert all(BASE62_ID.fullmatch(t) for t in ids)
    assert [int(r[0]) for r in songs] == list(range(DEFAULT_SONGS))  # Kaggle's index column


def test_some_tracks_have_several_artists(default_set):
    _, songs, _, _ = default_set
    credits = [r[2].split(";") for r in songs]
    multi = sum(len(c) > 1 for c in credits) / len(credits)
    assert 0.15 <= multi <= 0.20
    assert all(name and name == name.strip() for c in credits for name in c)
    assert all(len(c) == len(set(c)) for c in credits)  # nobody credited twice on a track
    per_artist = collections.Counter(name for c in credits for name in c)
    assert per_artist.most_common(1)[0][1] >= 100  # popular artists: many tracks each


def test_quoting_round_trips(default_set):
    dataset, songs, _, _ = default_set
    names = [r[3] for r in songs] + [r[4] for r in songs] + [r[2] for r in songs]
    assert any("," in n for n in names)
    assert any('"' in n for n in names)
    assert all(len(r) == 21 for r in songs)
    # Re-writing the parsed rows with the csv module gives back the very same bytes.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SONGS_HEADER.split(","))
    writer.writerows(songs)
    assert buffer.getvalue() == dataset.songs_path.read_text(encoding="utf-8")


def test_users_columns(default_set):
    _, _, users, _ = default_set
    assert [int(r[0]) for r in users] == list(range(1, DEFAULT_USERS + 1))
    assert all(13 <= int(r[2]) <= 80 for r in users)
    assert all(PLAIN_TIME.fullmatch(r[4]) for r in users)
    assert any("," in r[3] for r in users)  # "Korea, Republic of" needs quoting


def test_listen_times_are_plain_utc_within_the_period(default_set):
    _, _, _, streams = default_set
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for rows in streams:
        for _, _, listen_time in rows:
            assert PLAIN_TIME.fullmatch(listen_time)
            assert start <= parse_listen_time(listen_time) < datetime(2026, 11, 2, tzinfo=UTC)
    # Files arrive in order: each covers a later slice of the day.
    assert max(r[2] for r in streams[0]) < min(r[2] for r in streams[1])


def test_streams_reference_only_existing_ids(default_set):
    _, songs, users, streams = default_set
    tracks, user_ids = {r[1] for r in songs}, {r[0] for r in users}
    for rows in streams:
        assert all(r[1] in tracks and r[0] in user_ids for r in rows)


# --------------------------------------------------------------------------------------------
# Skew
# --------------------------------------------------------------------------------------------


def test_most_played_tracks_are_played_once_or_twice(default_set):
    _, _, _, streams = default_set
    plays = collections.Counter(r[1] for r in streams[0])
    assert len(streams[0]) == 11_346
    assert sum(n <= 2 for n in plays.values()) / len(plays) > 0.8
    assert max(plays.values()) >= 5  # but there is a head


def test_top3_ties_are_common_per_genre(default_set):
    _, songs, _, streams = default_set
    genre = {r[1]: r[20] for r in songs}
    per_genre = collections.defaultdict(collections.Counter)
    for _, track, _ in streams[0]:
        per_genre[genre[track]][track] += 1
    tied = 0
    for plays in per_genre.values():
        counts = sorted(plays.values(), reverse=True)
        tied += len(counts) > 3 and counts[2] == counts[3]  # 3rd place decided by track_id
    assert tied / len(per_genre) > 0.4


def test_hour_of_day_curve_and_heavy_users(default_set):
    _, _, users, streams = default_set
    rows = [r for f in streams for r in f]
    hours = collections.Counter(int(r[2][11:13]) for r in rows)
    night = sum(hours[h] for h in (2, 3, 4))
    evening = sum(hours[h] for h in (19, 20, 21))
    assert evening > 3 * night
    per_user = collections.Counter(r[0] for r in rows)
    top_1pct = sum(n for _, n in per_user.most_common(len(users) // 100))
    assert top_1pct / len(rows) > 0.10


def test_hourly_top_artist_is_contested(default_set):
    _, songs, _, streams = default_set
    artists = {r[1]: r[2].split(";") for r in songs}
    per_hour = collections.defaultdict(collections.Counter)
    for _, track, listen_time in (r for f in streams for r in f):
        per_hour[listen_time[11:13]].update(artists[track])
    tops = {plays.most_common(1)[0][0] for plays in per_hour.values()}
    assert len(per_hour) == 24
    assert len(tops) >= 5  # no single artist wins every hour


def test_duplicates_within_and_across_files(tmp_path):
    dataset = generate_dataset(tmp_path, **SMALL)
    files = [[tuple(r) for r in read_csv(p)[1]] for p in dataset.stream_paths]
    for i, rows in enumerate(files):
        within = len(rows) - len(set(rows))
        across = len(set(rows) & set(files[i - 1])) if i else 0
        assert within + across >= dataset.duplicates_injected[i] == 14
        assert within > 0
        assert across > 0 or i == 0


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def _peak_traced_bytes(path: Path, rows: int, catalogue: Catalogue) -> int:
    tracemalloc.start()
    try:
        write_streams(path, rows, catalogue=catalogue)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_large_file_is_written_in_bounded_memory(tmp_path):
    catalogue = Catalogue.generated()
    path = tmp_path / "big.csv"
    small_peak = _peak_traced_bytes(path, CHUNK_ROWS + 1, catalogue)
    big_peak = _peak_traced_bytes(path, 2_000_000, catalogue)
    # The 2M-row file is ~90 MB; holding it (or its arrays) in memory would need several
    # times that. Streamed by chunk, the peak does not grow with the row count.
    assert big_peak < 100 * 2**20
    assert big_peak < 1.5 * small_peak
    with open(path, "rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    assert lines == 2_000_001


@pytest.mark.slow
def test_ten_million_rows_benchmark(tmp_path):
    started = time.perf_counter()
    write_streams(tmp_path / "big.csv", 10_000_000)
    assert time.perf_counter() - started < 120


# --------------------------------------------------------------------------------------------
# The committed sample set
# --------------------------------------------------------------------------------------------


def test_committed_samples_equal_write_sample_set(tmp_path):
    dataset = write_sample_set(tmp_path)
    written = {str(p.relative_to(tmp_path)) for p in dataset.paths}
    committed = {k: v for k, v in file_bytes(SAMPLES).items() if not k.endswith(".md")}
    assert set(committed) == written
    assert file_bytes(tmp_path) == committed


def test_sample_set_shape():
    _, songs = read_csv(SAMPLES / "songs.csv")
    assert {r[20] for r in songs} == set(GENRES)
    files = [read_csv(SAMPLES / "streams" / f"streams{i}.csv")[1] for i in (1, 2, 3)]
    dates = [{r[2][:10] for r in rows} for rows in files]
    assert set().union(*dates) == {"2026-11-01", "2026-11-02"}
    assert dates[1] == {"2026-11-01", "2026-11-02"}  # the middle file spans midnight
    events = [[tuple(r) for r in rows] for rows in files]
    assert all(len(rows) > len(set(rows)) for rows in events)  # duplicates within files
    assert set(events[0]) & set(events[1])  # ... and across files
    assert sum(len(b) for b in file_bytes(SAMPLES).values()) < 1_500_000  # stays small


def test_bad_missing_column():
    header, rows = read_csv(SAMPLES / "bad" / "missing_column.csv")
    assert header[:2] == ["user_id", "track_id"]  # only a whole-header check notices
    assert missing_columns(STREAMS, header) == ["listen_time"]
    assert rows


def test_bad_empty_and_header_only():
    assert (SAMPLES / "bad" / "empty.csv").read_bytes() == b""
    assert (SAMPLES / "bad" / "header_only.csv").read_bytes() == (STREAMS_HEADER + "\n").encode()


def test_bad_timestamps_exceed_the_reject_threshold(sample_songs_users):
    tracks, users = sample_songs_users
    header, rows = read_csv(SAMPLES / "bad" / "bad_timestamps.csv")
    assert header == STREAMS_HEADER.split(",")
    reasons = collections.Counter(reject_reason(*r, tracks, users) for r in rows)
    assert reasons == {"bad_listen_time": 140, None: 60}
    assert reasons["bad_listen_time"] / len(rows) > 0.5


def test_unknown_ids_stay_below_the_reject_threshold(sample_songs_users):
    tracks, users = sample_songs_users
    header, rows = read_csv(SAMPLES / "bad" / "unknown_ids.csv")
    assert header == STREAMS_HEADER.split(",")
    reasons = collections.Counter(reject_reason(*r, tracks, users) for r in rows)
    assert reasons == {
        "missing_key": bad_samples.UNKNOWN_IDS_MISSING_KEY,
        "unknown_track": bad_samples.UNKNOWN_IDS_UNKNOWN_TRACK,
        "unknown_user": bad_samples.UNKNOWN_IDS_UNKNOWN_USER,
        None: bad_samples.UNKNOWN_IDS_GOOD,
    }
    assert (len(rows) - reasons[None]) / len(rows) < 0.5


def test_latin1_is_not_utf8():
    data = (SAMPLES / "bad" / "latin1.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    header = data.decode("latin-1").splitlines()[0].split(",")
    assert missing_columns(STREAMS, header) == []  # the header alone would pass


def test_edge_file_is_awkward_but_valid(sample_songs_users):
    tracks, users = sample_songs_users
    data = (SAMPLES / "edge" / "bom_crlf_iso.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == data.count(b"\n") == len(bad_samples.EDGE_TIMES) + 1
    header, rows = read_csv(SAMPLES / "edge" / "bom_crlf_iso.csv", encoding="utf-8-sig")
    assert header[:3] == [" Listen_Time ", "TRACK_ID", "user_id"]
    assert missing_columns(STREAMS, header) == []
    assert header != list(REQUIRED_COLUMNS[STREAMS])
    events = set()
    for listen_time, track, user, _client, expected_utc in rows:
        assert reject_reason(user, track, listen_time, tracks, users) is None
        instant = parse_listen_time(listen_time)
        assert instant == datetime.fromisoformat(expected_utc).replace(tzinfo=UTC)
        events.add((user, track, instant))
    assert len(rows) - len(events) == bad_samples.EDGE_DUPLICATES
    assert any(not PLAIN_TIME.fullmatch(r[0]) for r in rows)
    assert any("," in r[3] and '"' in r[3] for r in rows)
    assert any(r[0][:10] != r[4][:10] for r in rows)  # the local date is not the UTC date


def test_readme_lists_every_bad_file():
    readme = (SAMPLES / "bad" / "README.md").read_text()
    for path in sorted((SAMPLES / "bad").glob("*.csv")):
        assert f"`{path.name}`" in readme
