"""Input kinds (docs/data-contract.md §1): their required columns and how a header matches them."""

from __future__ import annotations

from collections.abc import Iterable

STREAMS = "streams"
SONGS = "songs"
USERS = "users"
KINDS = (STREAMS, SONGS, USERS)
# Which id each reference file contributes to the row rules.
REFERENCE_ID_COLUMN = {SONGS: "track_id", USERS: "user_id"}

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    STREAMS: ("user_id", "track_id", "listen_time"),
    SONGS: ("track_id", "track_genre", "track_name", "artists"),
    USERS: ("user_id", "user_name", "user_age", "user_country"),
}

BOM = "\ufeff"


def normalize_column(name: str) -> str:
    """Column names match after trimming whitespace (and a BOM) and ignoring case."""
    return name.replace(BOM, "").strip().lower()


def missing_columns(kind: str, header: Iterable[str]) -> list[str]:
    """Required columns of ``kind`` that the header lacks, in the contract's order."""
    present = {normalize_column(c) for c in header}
    return [c for c in REQUIRED_COLUMNS[kind] if c not in present]


def column_positions(kind: str, header: list[str]) -> dict[str, int]:
    """Index of each required column in the header (first occurrence wins)."""
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        positions.setdefault(normalize_column(name), i)
    return {c: positions[c] for c in REQUIRED_COLUMNS[kind] if c in positions}


def detect_kind(header: Iterable[str]) -> tuple[str | None, dict[str, list[str]]]:
    """The one kind whose required columns the header has, and what each kind would lack.

    Returns ``(kind, missing)``; ``kind`` is None when no kind, or more than one, matches.
    """
    header = list(header)
    missing = {kind: missing_columns(kind, header) for kind in KINDS}
    matches = [kind for kind, lacking in missing.items() if not lacking]
    return (matches[0] if len(matches) == 1 else None), missing
