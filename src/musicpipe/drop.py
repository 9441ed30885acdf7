"""Uploading CSV files to the raw bucket, each under the prefix its columns call for.

The kind of a file (streams, songs, users) comes from its header (docs/data-contract.md §1) or
from an explicit ``--kind``. Every file is checked before anything is uploaded, so a bad argument
uploads nothing. Reference files go first: a stream file's arrival starts a DAG run, which
needs the songs and users snapshots already in place.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from musicpipe.contract.columns import KINDS, SONGS, STREAMS, USERS, detect_kind
from musicpipe.contract.layout import SONGS_KEY, STREAMS_PREFIX, USERS_KEY

HEADER_BYTES = 1 << 16  # a header longer than 64 KiB is not a header we can use


class DropError(ValueError):
    """One or more files cannot be dropped; the message lists each with what to do."""


@dataclass(frozen=True)
class Drop:
    path: Path
    kind: str
    key: str


def read_header(path: Path) -> list[str]:
    """The header row of a CSV file (BOM and CRLF tolerated, RFC 4180 quoting honoured)."""
    with path.open("rb") as fh:
        head = fh.read(HEADER_BYTES)
    if not head.strip():
        raise DropError(f"{path}: the file is empty, so its kind cannot be told from a header")
    first_line = head.splitlines()[0] if head.splitlines() else head
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DropError(
            f"{path}: the header is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    return next(csv.reader(io.StringIO(text)), [])


def key_for(kind: str, path: Path) -> str:
    if kind == STREAMS:
        return STREAMS_PREFIX + path.name
    return {SONGS: SONGS_KEY, USERS: USERS_KEY}[kind]


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the .csv files directly inside it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv"))
        else:
            files.append(path)
    return files


def plan_drops(paths: list[Path], kind: str | None = None) -> list[Drop]:
    if kind is not None and kind not in KINDS:
        raise DropError(f"--kind {kind!r} is not a kind; use one of: {', '.join(KINDS)}")
    problems: list[str] = []
    drops: list[Drop] = []
    for path in expand(paths):
        if not path.exists():
            problems.append(f"{path}: no such file")
            continue
        if not path.is_file():
            problems.append(f"{path}: not a regular file")
            continue
        file_kind = kind
        if file_kind is None:
            try:
                header = read_header(path)
            except DropError as exc:
                problems.append(f"{exc} (pass --kind to upload it as it is)")
                continue
            file_kind, missing = detect_kind(header)
            if file_kind is None:
                problems.append(_no_kind_message(path, header, missing))
                continue
        drops.append(Drop(path, file_kind, key_for(file_kind, path)))
    if not drops and not problems:
        problems.append("no CSV files given (folders are searched for *.csv directly inside)")
    by_key: dict[str, Path] = {}
    for drop in drops:
        if drop.key in by_key and by_key[drop.key] != drop.path:
            problems.append(
                f"{by_key[drop.key]} and {drop.path} would both become s3://…/{drop.key}; "
                "drop one of them"
            )
        by_key[drop.key] = drop.path
    if problems:
        raise DropError("\n".join(problems))
    order = {SONGS: 0, USERS: 1, STREAMS: 2}
    return sorted(drops, key=lambda d: (order[d.kind], d.key))


def _no_kind_message(path: Path, header: list[str], missing: dict[str, list[str]]) -> str:
    complete = [k for k, lacking in missing.items() if not lacking]
    if len(complete) > 1:
        return (
            f"{path}: the header has the columns of {' and '.join(complete)}; "
            "pass --kind to say which it is"
        )
    closest = min(missing, key=lambda k: len(missing[k]))
    shown = ", ".join(h.strip() for h in header[:8]) + (" …" if len(header) > 8 else "")
    return (
        f"{path}: columns [{shown}] match no input kind; closest is {closest}, which lacks "
        f"{', '.join(missing[closest])}. Fix the header, or pass --kind to upload it anyway "
        "(the pipeline will quarantine it)"
    )


def upload(s3, bucket: str, drops: list[Drop]) -> None:
    for drop in drops:
        s3.upload_file(str(drop.path), bucket, drop.key, ExtraArgs={"ContentType": "text/csv"})
