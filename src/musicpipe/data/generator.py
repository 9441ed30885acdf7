"""Whole data sets: songs.csv, users.csv and the stream files of one seed
(``generate_dataset``), and the committed sample set under data_samples/
(``write_sample_set``).

The parts live in ``common`` (sizes, random streams and helpers), ``songs``, ``users``,
``catalogue`` (what streams may reference) and ``streams``; ``bad_samples`` writes the
sample set's broken and awkward files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from musicpipe.data.bad_samples import write_bad_samples, write_edge_samples
from musicpipe.data.catalogue import Catalogue
from musicpipe.data.common import (
    DEFAULT_ROWS_PER_FILE,
    DEFAULT_SEED,
    DEFAULT_SONGS,
    DEFAULT_START_DATE,
    DEFAULT_STREAM_FILES,
    DEFAULT_USERS,
    Progress,
)
from musicpipe.data.songs import write_songs
from musicpipe.data.streams import file_windows, write_streams_file
from musicpipe.data.users import write_users


@dataclass(frozen=True)
class GeneratedDataset:
    """What ``generate_dataset`` / ``write_sample_set`` wrote."""

    out_dir: Path
    seed: int
    songs_path: Path
    songs_rows: int
    users_path: Path
    users_rows: int
    stream_paths: tuple[Path, ...]
    stream_rows: tuple[int, ...]
    duplicates_injected: tuple[int, ...]  # per stream file, within-file and re-delivered
    extra_paths: tuple[Path, ...] = ()  # the sample set's bad/ and edge/ files

    @property
    def total_stream_rows(self) -> int:
        return sum(self.stream_rows)

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.songs_path, self.users_path, *self.stream_paths, *self.extra_paths)


def generate_dataset(
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    songs: int = DEFAULT_SONGS,
    users: int = DEFAULT_USERS,
    stream_files: int = DEFAULT_STREAM_FILES,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    start_date: date = DEFAULT_START_DATE,
    days: int = 1,
    duplicate_rate: float = 0.0,
    progress: Progress | None = None,
) -> GeneratedDataset:
    """Write ``out_dir``/songs.csv, users.csv and streams/streams1.csv .. streamsN.csv.

    The stream files cover consecutive time windows of [start_date, start_date + days).
    With ``duplicate_rate`` > 0, that share of each file's rows are exact duplicate events:
    half copied from elsewhere in the same file, and (from the second file on) half re-sent
    from the end of the previous file. ``progress`` is called with rows written, for a total
    of songs + users + stream_files * rows_per_file.
    """
    if stream_files < 1 or days < 1:
        raise ValueError("stream_files and days must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    songs_path, users_path = out_dir / "songs.csv", out_dir / "users.csv"
    write_songs(songs_path, songs, seed=seed)
    if progress is not None:
        progress(songs)
    write_users(users_path, users, seed=seed, start_date=start_date)
    if progress is not None:
        progress(users)

    catalogue = Catalogue.generated(seed, songs, users)
    paths, duplicates, redeliver = [], [], None
    for file_no, window in enumerate(file_windows(start_date, days, stream_files), start=1):
        path = out_dir / "streams" / f"streams{file_no}.csv"
        n_dup, redeliver = write_streams_file(
            path,
            rows_per_file,
            seed=seed,
            file_no=file_no,
            catalogue=catalogue,
            window=window,
            duplicate_rate=duplicate_rate,
            redeliver=redeliver,
            progress=progress,
        )
        paths.append(path)
        duplicates.append(n_dup)
    return GeneratedDataset(
        out_dir=out_dir,
        seed=seed,
        songs_path=songs_path,
        songs_rows=songs,
        users_path=users_path,
        users_rows=users,
        stream_paths=tuple(paths),
        stream_rows=(rows_per_file,) * stream_files,
        duplicates_injected=tuple(duplicates),
    )


# --------------------------------------------------------------------------------------------
# The committed sample set (data_samples/)
# --------------------------------------------------------------------------------------------

SAMPLE_SEED = 42
SAMPLE_SONGS = 2_000
SAMPLE_USERS = 500
SAMPLE_STREAM_FILES = 3
SAMPLE_ROWS_PER_FILE = 1_500
SAMPLE_DAYS = 2
SAMPLE_DUPLICATE_RATE = 0.01


def write_sample_set(out_dir: Path) -> GeneratedDataset:
    """Write exactly the committed data_samples/ set (data files only, not the READMEs)."""
    out_dir = Path(out_dir)
    dataset = generate_dataset(
        out_dir,
        seed=SAMPLE_SEED,
        songs=SAMPLE_SONGS,
        users=SAMPLE_USERS,
        stream_files=SAMPLE_STREAM_FILES,
        rows_per_file=SAMPLE_ROWS_PER_FILE,
        days=SAMPLE_DAYS,
        duplicate_rate=SAMPLE_DUPLICATE_RATE,
    )
    bad = write_bad_samples(out_dir / "bad", dataset.songs_path, dataset.users_path, SAMPLE_SEED)
    edge = write_edge_samples(out_dir / "edge", dataset.songs_path, dataset.users_path, SAMPLE_SEED)
    return dataclasses.replace(dataset, extra_paths=(*bad, *edge))
