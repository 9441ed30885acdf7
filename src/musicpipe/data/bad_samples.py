"""Deliberately broken, and valid-but-awkward, stream files for the validation rules
(docs/data-contract.md §2).

``write_bad_samples`` writes the files under data_samples/bad/ (each one wrong in exactly one
documented way, see data_samples/bad/README.md); ``write_edge_samples`` writes
data_samples/edge/bom_crlf_iso.csv, which is valid and must be accepted whole.

Good rows reference ids read from the given songs/users files, so every row that is not meant
to be rejected really is accepted. The exact row counts per reject reason are module
constants, so tests and docs can state them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from musicpipe.data.catalogue import read_track_ids, read_user_ids
from musicpipe.data.common import (
    DEFAULT_SEED,
    DEFAULT_START_DATE,
    KEY_BAD_SAMPLES,
    TIME_FORMAT,
    seeded_rng,
)
from musicpipe.data.songs import random_track_ids
from musicpipe.data.streams import STREAMS_HEADER

# bad_timestamps.csv: 140 of 200 listen_time values are garbage, 70 % > the 50 % threshold.
BAD_TIMESTAMPS_ROWS = 200
BAD_TIMESTAMPS_GARBAGE = 140
# Values no accepted format (docs/data-contract.md §1) parses; every row keeps valid, known ids,
# so the rule each of these rows breaks first is bad_listen_time.
GARBAGE_TIMES = (
    "",
    "not-a-time",
    "yesterday",
    "NaN",
    "null",
    "2026-13-01 10:00:00",  # month 13
    "2026-11-31 10:00:00",  # 31 November
    "2026-11-01 25:00:00",  # hour 25
    "2026-11-01 10:61:00",  # minute 61
    "01/11/2026 10:00:00",
    "2026/11/01 10:00:00",
    "1793526000",  # epoch seconds: not an accepted format
    "2026-11-01 10:00:00 PM",
    "11 Nov 2026",
)

# unknown_ids.csv: 200 rows, 50 rejected (25 %, below the 50 % threshold), by first rule broken.
UNKNOWN_IDS_ROWS = 200
UNKNOWN_IDS_MISSING_KEY = 6  # 3 with an empty user_id, 3 with an empty track_id
UNKNOWN_IDS_UNKNOWN_TRACK = 24  # 4 of them with an unknown user too: unknown_track comes first
UNKNOWN_IDS_UNKNOWN_USER = 20
UNKNOWN_IDS_GOOD = 150
if UNKNOWN_IDS_MISSING_KEY + UNKNOWN_IDS_UNKNOWN_TRACK + UNKNOWN_IDS_UNKNOWN_USER + 150 != 200:
    raise RuntimeError("unknown_ids.csv row counts do not add up")

MISSING_COLUMN_ROWS = 50
LATIN1_ROWS = 30

# Sub-keys of KEY_BAD_SAMPLES: one random stream per file.
_MISSING_COLUMN, _BAD_TIMESTAMPS, _UNKNOWN_IDS, _LATIN1, _EDGE = range(1, 6)


@dataclass(frozen=True)
class _KnownIds:
    """Ids present in the reference files, which good rows draw from."""

    track_ids: list[str]
    user_ids: list[int]

    @classmethod
    def load(cls, songs_path: Path, users_path: Path) -> _KnownIds:
        return cls(read_track_ids(songs_path), read_user_ids(users_path))


class _RowMaker:
    """Seeded good values: known ids and listen_times on the sample's first day."""

    def __init__(self, ids: _KnownIds, seed: int, key: int) -> None:
        self.ids = ids
        self.rng = seeded_rng(seed, KEY_BAD_SAMPLES, key)
        self.day_start = datetime.combine(DEFAULT_START_DATE, datetime.min.time())

    def track(self) -> str:
        return self.ids.track_ids[int(self.rng.integers(0, len(self.ids.track_ids)))]

    def user(self) -> str:
        return str(self.ids.user_ids[int(self.rng.integers(0, len(self.ids.user_ids)))])

    def time(self) -> str:
        second = int(self.rng.integers(0, 86_400))
        return (self.day_start + timedelta(seconds=second)).strftime(TIME_FORMAT)

    def good_row(self) -> list[str]:
        return [self.user(), self.track(), self.time()]

    def shuffled(self, rows: list[list[str]]) -> list[list[str]]:
        return [rows[i] for i in self.rng.permutation(len(rows)).tolist()]


def _write_rows(
    path: Path,
    header: list[str],
    rows: list[list[str]],
    *,
    encoding: str = "utf-8",
    lineterminator: str = "\n",
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        writer = csv.writer(f, lineterminator=lineterminator)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _missing_column(path: Path, make: _RowMaker) -> Path:
    # The first two required columns are there; only a check that reads the whole header
    # notices that listen_time is not (the timestamps sit under another name).
    rows = [make.good_row() for _ in range(MISSING_COLUMN_ROWS)]
    return _write_rows(path, ["user_id", "track_id", "played_at"], rows)


def _empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _header_only(path: Path) -> Path:
    return _write_rows(path, list(STREAMS_HEADER), [])


def _bad_timestamps(path: Path, make: _RowMaker) -> Path:
    rows = []
    for i in range(BAD_TIMESTAMPS_ROWS):
        row = make.good_row()
        if i < BAD_TIMESTAMPS_GARBAGE:
            row[2] = GARBAGE_TIMES[i % len(GARBAGE_TIMES)]
        rows.append(row)
    return _write_rows(path, list(STREAMS_HEADER), make.shuffled(rows))


def _unknown_ids(path: Path, make: _RowMaker, seed: int) -> Path:
    known_tracks = set(make.ids.track_ids)
    # Fresh random base62 ids (22 chars like real ones); the catalogue cannot contain them.
    unknown_tracks = [
        t
        for t in random_track_ids(seeded_rng(seed, KEY_BAD_SAMPLES, _UNKNOWN_IDS, 1), 100)
        if t not in known_tracks
    ][:UNKNOWN_IDS_UNKNOWN_TRACK]
    # Integer user ids just past the known ones: well-formed, but nobody's.
    top_user = max(make.ids.user_ids)
    unknown_users = [str(top_user + 1 + i) for i in range(UNKNOWN_IDS_UNKNOWN_USER + 4)]

    rows = []
    for i in range(UNKNOWN_IDS_MISSING_KEY):
        row = make.good_row()
        row[0 if i % 2 == 0 else 1] = ""
        rows.append(row)
    for i, track in enumerate(unknown_tracks):
        row = [make.user(), track, make.time()]
        if i < 4:
            row[0] = unknown_users[-1 - i]
        rows.append(row)
    for i in range(UNKNOWN_IDS_UNKNOWN_USER):
        rows.append([unknown_users[i], make.track(), make.time()])
    rows += [make.good_row() for _ in range(UNKNOWN_IDS_GOOD)]
    return _write_rows(path, list(STREAMS_HEADER), make.shuffled(rows))


def _latin1(path: Path, make: _RowMaker) -> Path:
    # A legacy export: valid streams content, but the extra column is Latin-1 encoded, so
    # bytes like 0xE9 ("é") do not decode as UTF-8.
    clients = ["Café Müller", "Lecteur réseau", "São Paulo kiosk", "Smörgåsbord TV", "web"]
    rows = [make.good_row() + [clients[i % len(clients)]] for i in range(LATIN1_ROWS)]
    return _write_rows(path, [*STREAMS_HEADER, "client"], rows, encoding="latin-1")


def write_bad_samples(
    out_dir: Path, songs_path: Path, users_path: Path, seed: int = DEFAULT_SEED
) -> list[Path]:
    """Write the deliberately bad stream files into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    ids = _KnownIds.load(songs_path, users_path)
    return [
        _missing_column(out_dir / "missing_column.csv", _RowMaker(ids, seed, _MISSING_COLUMN)),
        _empty(out_dir / "empty.csv"),
        _header_only(out_dir / "header_only.csv"),
        _bad_timestamps(out_dir / "bad_timestamps.csv", _RowMaker(ids, seed, _BAD_TIMESTAMPS)),
        _unknown_ids(out_dir / "unknown_ids.csv", _RowMaker(ids, seed, _UNKNOWN_IDS), seed),
        _latin1(out_dir / "latin1.csv", _RowMaker(ids, seed, _LATIN1)),
    ]


# --------------------------------------------------------------------------------------------
# Valid but awkward
# --------------------------------------------------------------------------------------------

# (listen_time as written, the same instant in UTC). Every accepted notation of
# docs/data-contract.md §1.
# Rows 0 and 1 are the same instant; the edge file gives them the same user and track, so
# after conversion to UTC they are one event delivered twice (1 duplicate).
EDGE_TIMES = (
    ("2026-11-01T08:15:30Z", "2026-11-01 08:15:30"),
    ("2026-11-01T10:15:30+02:00", "2026-11-01 08:15:30"),
    ("2026-11-01T09:00:00.250Z", "2026-11-01 09:00:00.250"),
    ("2026-11-01T11:00:00.500+02:00", "2026-11-01 09:00:00.500"),
    ("2026-11-01T13:00:00.123456Z", "2026-11-01 13:00:00.123456"),
    ("2026-11-02T01:30:00+02:00", "2026-11-01 23:30:00"),  # local date is not the UTC date
    ("2026-11-01T22:45:00-05:00", "2026-11-02 03:45:00"),  # ... in both directions
    ("2026-11-01T12:00:00", "2026-11-01 12:00:00"),  # T but no zone: already UTC
    ("2026-11-01T14:00:00+00:00", "2026-11-01 14:00:00"),
    ("2026-11-01T17:00:00.000+02:00", "2026-11-01 15:00:00.000"),
    ("2026-11-01 16:00:00", "2026-11-01 16:00:00"),  # the plain format, still fine
    ("2026-11-01 18:30:45", "2026-11-01 18:30:45"),
)
EDGE_DUPLICATES = 1
# Header: other order, other case, surrounding whitespace, and extra columns.
EDGE_HEADER = [" Listen_Time ", "TRACK_ID", "user_id", "client", "expected_utc"]
_EDGE_CLIENTS = ("web", 'Sonos, "Living Room"', "iOS", "Android, v8.9", "desktop")


def write_edge_samples(
    out_dir: Path, songs_path: Path, users_path: Path, seed: int = DEFAULT_SEED
) -> list[Path]:
    """Write edge/bom_crlf_iso.csv: UTF-8 BOM, CRLF, shuffled header, ISO 8601 times.

    Every row is valid and references known ids; ``expected_utc`` holds each listen_time as
    the same instant in UTC (fractional seconds kept), for tests of the conversion.
    """
    make = _RowMaker(_KnownIds.load(songs_path, users_path), seed, _EDGE)
    rows: list[list[str]] = []
    for i, (written, utc) in enumerate(EDGE_TIMES):
        user, track = make.user(), make.track()
        if i == 1:  # the same event as row 0, in another notation
            user, track = rows[0][2], rows[0][1]
        rows.append([written, track, user, _EDGE_CLIENTS[i % len(_EDGE_CLIENTS)], utc])
    path = Path(out_dir) / "bom_crlf_iso.csv"
    return [_write_rows(path, EDGE_HEADER, rows, encoding="utf-8-sig", lineterminator="\r\n")]
