"""Hand-made KPI cases and a plain-Python reading of the contract, shared by the KPI
contract tests and the oracle's tests."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from musicpipe.contract.columns import SONGS, STREAMS, USERS, column_positions
from musicpipe.contract.rules import (
    clean_key,
    parse_listen_time,
    reject_reason,
)

DAY = "2026-11-01"
T0 = datetime(2026, 11, 1, 10, 0, 0)


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def event(user, track, ts, genre="rock", artists="Artist", name=None, duration=180):
    return {
        "user_id": str(user),
        "track_id": track,
        "timestamp": ts,
        "genre": genre,
        "track_name": name if name is not None else "Song " + track,
        "artists": artists,
        "listen_duration": duration,
    }


def plays(track, n, genre="rock", hour=10, artists="Artist", first_user=0):
    """``n`` events of one track by users first_user.. at distinct times in ``hour``."""
    start = T0.replace(hour=hour)
    return [
        event(first_user + i, track, start + timedelta(seconds=i), genre, artists) for i in range(n)
    ]


def write_csv(path: Path, header, rows, encoding="utf-8", newline="\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        writer = csv.writer(f, lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_rows(path: Path, kind: str):
    """Data rows of a CSV as dicts of the contract's required columns (header per
    docs/data-contract.md §1)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        positions = column_positions(kind, next(reader))
        for row in reader:
            yield {c: (row[i] if i < len(row) else "") for c, i in positions.items()}


def load_songs(songs_csv: Path) -> dict[str, tuple[str, str, str]]:
    """track_id -> (genre, name, artists); a repeated id keeps the smallest triple."""
    songs: dict[str, tuple[str, str, str]] = {}
    for row in read_rows(songs_csv, SONGS):
        key = clean_key(row["track_id"])
        if key:
            value = (row["track_genre"], row["track_name"], row["artists"])
            songs[key] = min(songs.get(key, value), value)
    return songs


def load_users(users_csv: Path) -> set[str]:
    return {clean_key(row["user_id"]) for row in read_rows(users_csv, USERS)} - {""}


def python_events(songs_csv, users_csv, stream_csvs, duration=180):
    """Distinct accepted events over all files, by contract/rules.py and the csv module.

    Returns (events, rows_accepted): rows_accepted counts accepted rows before dedup.
    """
    songs, users = load_songs(songs_csv), load_users(users_csv)
    distinct: dict[tuple, dict] = {}
    accepted = 0
    for path in stream_csvs:
        for row in read_rows(path, STREAMS):
            if reject_reason(row["user_id"], row["track_id"], row["listen_time"], songs, users):
                continue
            accepted += 1
            user, track = clean_key(row["user_id"]), clean_key(row["track_id"])
            ts = parse_listen_time(row["listen_time"])
            genre, name, artists = songs[track]
            distinct.setdefault((user, track, ts), event(user, track, ts, genre, artists, name))
    events = list(distinct.values())
    for e in events:
        e["listen_duration"] = duration
    return events, accepted


def walk(value):
    """Every scalar in a nested item."""
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)
    else:
        yield value


def half_even(numerator: int, denominator: int, places: int) -> Decimal:
    quotient = Decimal(numerator) / Decimal(denominator)
    return quotient.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
