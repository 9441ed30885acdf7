"""Stream files: user_id, track_id, listen_time rows drawn from a catalogue, with optional
exact duplicates.

Bounded memory: stream files are generated and encoded ``CHUNK_ROWS`` rows at a time with
vectorised numpy code and appended to the file, so a 10 M-row file never lives in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from musicpipe.data.catalogue import Catalogue
from musicpipe.data.common import (
    DEFAULT_SEED,
    DEFAULT_SONGS,
    DEFAULT_START_DATE,
    DEFAULT_USERS,
    KEY_STREAMS,
    Progress,
    draw_indices,
    epoch_seconds,
    format_times,
    seeded_rng,
    weights_cdf,
)

STREAMS_HEADER = ("user_id", "track_id", "listen_time")
# Stream files are generated and written this many rows at a time. It bounds memory, and it is
# part of the output's definition (each chunk has its own random stream): changing it changes
# the bytes of files larger than one chunk.
CHUNK_ROWS = 250_000
# Relative listening per UTC hour 0..23: quiet at night, a lunchtime bump, an evening peak.
HOUR_WEIGHTS = np.array(
    [9, 6, 4, 3, 3, 4, 7, 11, 14, 14, 14, 15, 17, 16, 15, 15, 17, 20, 23, 26, 28, 27, 22, 15],
    dtype=np.float64,
)
# Cross-file duplicates copy events from the last rows of the previous file.
_REDELIVERY_TAIL = 1_000


@dataclass
class _Events:
    """A chunk of stream events as parallel arrays."""

    user_idx: np.ndarray  # index into Catalogue.user_ids
    track_idx: np.ndarray  # index into Catalogue.track_ids
    epoch_s: np.ndarray  # listen_time, UTC seconds since 1970

    def __len__(self) -> int:
        return len(self.epoch_s)

    def copy_rows(self, dst: np.ndarray, src: _Events, src_rows: np.ndarray) -> None:
        self.user_idx[dst] = src.user_idx[src_rows]
        self.track_idx[dst] = src.track_idx[src_rows]
        self.epoch_s[dst] = src.epoch_s[src_rows]

    def tail(self, n: int) -> _Events:
        return _Events(self.user_idx[-n:], self.track_idx[-n:], self.epoch_s[-n:])


@dataclass(frozen=True)
class _Window:
    """A file's listen_time range [start_s, end_s), whole minutes, and its minute weights."""

    start_s: int
    end_s: int

    def minute_cdf(self) -> np.ndarray:
        minutes = np.arange(self.start_s // 60, self.end_s // 60)
        return weights_cdf(HOUR_WEIGHTS[(minutes // 60) % 24])


def file_windows(start_date: date, days: int, files: int) -> list[_Window]:
    """Split [start_date, start_date + days) into ``files`` consecutive windows.

    Every file has the same number of rows, so (as in real life, where a file fills up faster
    when more people listen) each window covers an equal share of the day's listening, not
    an equal share of time: evening files span fewer hours than night files. With 3 files
    over 2 days the middle file spans midnight and each day is spread over two files.
    """
    total_minutes = days * 24 * 60
    if files > total_minutes:
        raise ValueError("more stream files than minutes in the period")
    activity = np.cumsum(HOUR_WEIGHTS[(np.arange(total_minutes) // 60) % 24])
    cuts = [0]
    for k in range(1, files + 1):
        cut = int(np.searchsorted(activity, activity[-1] * k / files)) + 1
        # Every window keeps at least one minute, and leaves one for each later file.
        cuts.append(min(max(cut, cuts[-1] + 1), total_minutes - (files - k)))
    start = epoch_seconds(start_date)
    return [
        _Window(start + 60 * a, start + 60 * b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]


def _draw_events(
    rng: np.random.Generator, cat: Catalogue, window: _Window, minute_cdf: np.ndarray, n: int
) -> _Events:
    user_idx = draw_indices(rng, cat.user_cdf, n)
    track_idx = draw_indices(rng, cat.track_cdf, n)
    minute = draw_indices(rng, minute_cdf, n)
    epoch_s = window.start_s + 60 * minute + rng.integers(0, 60, n)
    return _Events(user_idx, track_idx, epoch_s)


def _inject_duplicates(
    rng: np.random.Generator, events: _Events, n_dup: int, redeliver: _Events | None
) -> None:
    """Overwrite ``n_dup`` rows with exact copies of other events (same user, track, time).

    Half come from ``redeliver`` (the end of the previous file: a re-sent batch), the rest
    from other rows of this chunk. The row count does not change.
    """
    if n_dup == 0:
        return
    n = len(events)
    targets = rng.choice(n, size=n_dup, replace=False)
    n_cross = n_dup // 2 if redeliver is not None and len(redeliver) else 0
    if n_cross and redeliver is not None:
        events.copy_rows(targets[:n_cross], redeliver, rng.integers(0, len(redeliver), n_cross))
    within = targets[n_cross:]
    originals = np.setdiff1d(np.arange(n), targets, assume_unique=True)
    events.copy_rows(within, events, originals[rng.integers(0, len(originals), len(within))])


def _encode_lines(user_ids: np.ndarray, track_bytes: np.ndarray, times: np.ndarray) -> bytes:
    """CSV lines 'user_id,track_id,listen_time\\n'. No field ever needs quoting.

    Each line is laid out in a fixed-width byte matrix; unused cells (leading positions of
    short user ids, padding of short track ids) are 0 bytes and squeezed out at the end.
    """
    n = len(user_ids)
    digits = len(str(int(user_ids.max()))) if n else 1
    width_t = track_bytes.shape[1]
    out = np.zeros((n, digits + 1 + width_t + 1 + 19 + 1), dtype=np.uint8)
    rest = user_ids.copy()
    for col in range(digits - 1, -1, -1):
        shown = (rest > 0) | (col == digits - 1)  # "0" itself still prints one digit
        out[:, col] = np.where(shown, ord("0") + rest % 10, 0)
        rest //= 10
    c = digits
    out[:, c] = ord(",")
    out[:, c + 1 : c + 1 + width_t] = track_bytes
    c += 1 + width_t
    out[:, c] = ord(",")
    out[:, c + 1 : c + 20] = times
    out[:, c + 20] = ord("\n")
    return out[out != 0].tobytes()


def write_streams_file(
    path: Path,
    n_rows: int,
    *,
    seed: int,
    file_no: int,
    catalogue: Catalogue,
    window: _Window,
    duplicate_rate: float,
    redeliver: _Events | None,
    progress: Progress | None,
) -> tuple[int, _Events | None]:
    """Write one stream file chunk by chunk; returns (duplicates injected, its last events)."""
    if n_rows < 0:
        raise ValueError("rows must be >= 0")
    if not 0.0 <= duplicate_rate <= 0.5:
        raise ValueError("duplicate_rate must be within [0, 0.5]")
    minute_cdf = window.minute_cdf()
    path.parent.mkdir(parents=True, exist_ok=True)
    duplicates, last = 0, None
    with open(path, "wb") as f:
        f.write((",".join(STREAMS_HEADER) + "\n").encode())
        for chunk_no, lo in enumerate(range(0, n_rows, CHUNK_ROWS)):
            hi = min(lo + CHUNK_ROWS, n_rows)
            # One random stream per chunk: a chunk's content depends only on its position.
            rng = seeded_rng(seed, KEY_STREAMS, file_no, chunk_no)
            events = _draw_events(rng, catalogue, window, minute_cdf, hi - lo)
            n_dup = round(duplicate_rate * hi) - round(duplicate_rate * lo)
            _inject_duplicates(rng, events, n_dup, redeliver if chunk_no == 0 else None)
            f.write(
                _encode_lines(
                    catalogue.user_ids[events.user_idx],
                    catalogue.track_ids[events.track_idx],
                    format_times(events.epoch_s),
                )
            )
            duplicates += n_dup
            last = events
            if progress is not None:
                progress(hi - lo)
    return duplicates, (last.tail(_REDELIVERY_TAIL) if last is not None else None)


@dataclass(frozen=True)
class StreamsFile:
    path: Path
    rows: int
    duplicates_injected: int


def write_streams(
    path: Path,
    n_rows: int,
    *,
    seed: int = DEFAULT_SEED,
    songs: int = DEFAULT_SONGS,
    users: int = DEFAULT_USERS,
    catalogue: Catalogue | None = None,
    start_date: date = DEFAULT_START_DATE,
    days: int = 1,
    duplicate_rate: float = 0.0,
    progress: Progress | None = None,
) -> StreamsFile:
    """Write one (possibly huge) streams file, e.g. for benchmarks, in bounded memory.

    Rows reference the catalogue of ``generate_dataset(seed=seed, songs=songs, users=users)``
    unless ``catalogue`` is given (e.g. ``Catalogue.from_files(songs_csv, users_csv)``).
    listen_time spans ``days`` days from ``start_date``; ``duplicate_rate`` of the rows are
    exact copies of other rows of the file.
    """
    cat = catalogue if catalogue is not None else Catalogue.generated(seed, songs, users)
    window = file_windows(start_date, days, 1)[0]
    duplicates, _ = write_streams_file(
        path,
        n_rows,
        seed=seed,
        file_no=1,
        catalogue=cat,
        window=window,
        duplicate_rate=duplicate_rate,
        redeliver=None,
        progress=progress,
    )
    return StreamsFile(path, n_rows, duplicates)
