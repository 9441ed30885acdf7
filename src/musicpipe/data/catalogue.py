"""What streams may reference: the track and user ids, and how likely each is drawn."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicpipe.contract.columns import SONGS, USERS, column_positions, missing_columns
from musicpipe.data.common import (
    DEFAULT_SEED,
    DEFAULT_SONGS,
    DEFAULT_USERS,
    KEY_USER_ACTIVITY,
    seeded_rng,
    weights_cdf,
    zipf_weights,
)
from musicpipe.data.songs import track_id_bytes, track_ranks

# Plays are Zipf-like over the whole catalogue: track of popularity rank r (0 = hottest) has
# weight 1 / (r + offset). The offset flattens the head so that even the hottest track gets
# only a handful of plays in an 11,346-row file: most played tracks are played once or twice
# and ties are the norm, as in the real files. (Exponent 1 keeps the maths exact: no pow.)
TRACK_ZIPF_OFFSET = 300
# Users: activity Zipf-like over a seeded order of users, giving a few heavy listeners.
USER_ZIPF_OFFSET = 200


@dataclass(frozen=True)
class Catalogue:
    """The ids stream rows may reference, and how likely each is to be drawn."""

    track_ids: np.ndarray  # (n_tracks, width) ASCII bytes, right-padded with 0 bytes
    track_cdf: np.ndarray
    user_ids: np.ndarray  # int64
    user_cdf: np.ndarray

    @classmethod
    def generated(
        cls, seed: int = DEFAULT_SEED, songs: int = DEFAULT_SONGS, users: int = DEFAULT_USERS
    ) -> Catalogue:
        """The ids of songs.csv/users.csv generated with the same seed and sizes (no file I/O)."""
        return cls._build(seed, track_id_bytes(seed, songs), np.arange(1, users + 1))

    @classmethod
    def from_files(cls, songs_path: Path, users_path: Path, seed: int = DEFAULT_SEED) -> Catalogue:
        """The ids found in existing songs/users files; popularity is seeded as for generated.

        For files this module generated with the same seed, the result equals ``generated``.
        """
        ids = read_track_ids(songs_path)
        for tid in ids:
            if not tid.isascii() or any(c in tid for c in ',"\r\n'):
                raise ValueError(f"track_id {tid!r} would need CSV quoting; not supported")
        width = max(len(t) for t in ids)
        encoded = np.array([t.encode("ascii") for t in ids], dtype=f"S{width}")
        track_bytes = encoded.view(np.uint8).reshape(len(ids), width)
        return cls._build(seed, track_bytes, np.array(read_user_ids(users_path), dtype=np.int64))

    @classmethod
    def _build(cls, seed: int, track_bytes: np.ndarray, user_ids: np.ndarray) -> Catalogue:
        n_tracks, n_users = len(track_bytes), len(user_ids)
        if n_tracks == 0 or n_users == 0:
            raise ValueError("streams need at least one track and one user")
        if user_ids.min() < 0:
            raise ValueError("user ids must be non-negative integers")
        track_cdf = weights_cdf(zipf_weights(track_ranks(seed, n_tracks), TRACK_ZIPF_OFFSET))
        user_ranks = seeded_rng(seed, KEY_USER_ACTIVITY).permutation(n_users)
        user_cdf = weights_cdf(zipf_weights(user_ranks, USER_ZIPF_OFFSET))
        return cls(track_bytes, track_cdf, user_ids.astype(np.int64), user_cdf)


def _read_column(path: Path, kind: str, column: str) -> list[str]:
    """Distinct non-empty values of one column, in file order (header matched per contract)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        if missing_columns(kind, header):
            raise ValueError(f"{path}: missing columns {missing_columns(kind, header)}")
        pos = column_positions(kind, header)[column]
        values: dict[str, None] = {}
        for row in reader:
            if len(row) > pos and row[pos]:
                values.setdefault(row[pos])
    return list(values)


def read_track_ids(songs_path: Path) -> list[str]:
    """Distinct track_ids of a songs file, in file order."""
    return _read_column(songs_path, SONGS, "track_id")


def read_user_ids(users_path: Path) -> list[int]:
    """Distinct user_ids of a users file, in file order (they must be integers)."""
    return [int(v) for v in _read_column(users_path, USERS, "user_id")]
