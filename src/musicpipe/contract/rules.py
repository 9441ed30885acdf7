"""Row-level rules of docs/data-contract.md §2, defined once.

A stream row gets the first rule it breaks, in this order: ``field_too_large`` (a cell of
more than :data:`MAX_FIELD_CHARS` characters), ``missing_key`` (empty user_id or track_id),
``bad_listen_time``, ``unknown_track`` (not in songs), ``unknown_user`` (not in users). The
validation job applies :func:`reject_reason` row by row; the Spark ETL builds the same rules
as column expressions from :data:`LISTEN_TIME_PATTERN`, :data:`MAX_FIELD_CHARS` and the same
order (``musicpipe.etl.rules``), and a test checks the two agree on every sample and edge case.

``field_too_large`` comes first: a giant cell usually means a broken row (a stray quote that
swallowed the next lines), so the row's keys and time cannot be trusted, and checking size
first spares the other rules a scan of a huge string.

Keys are compared as trimmed strings: ``" 7 "`` is user ``7``; ``"07"`` is not.
"""

from __future__ import annotations

import re
from collections.abc import Set
from datetime import datetime, timedelta, timezone

FIELD_TOO_LARGE = "field_too_large"
MISSING_KEY = "missing_key"
BAD_LISTEN_TIME = "bad_listen_time"
UNKNOWN_TRACK = "unknown_track"
UNKNOWN_USER = "unknown_user"
REASONS = (FIELD_TOO_LARGE, MISSING_KEY, BAD_LISTEN_TIME, UNKNOWN_TRACK, UNKNOWN_USER)

# The longest cell a stream row may have, in characters (code points). Real cells are under
# 1,000 characters (the longest artist lists); 64 Ki leaves room for any honest value and keeps
# a row small enough for every reader and for DynamoDB's 400 KB items.
MAX_FIELD_CHARS = 65_536

# `YYYY-MM-DD HH:MM:SS` as in the real data, or ISO 8601 with `T`, fractional seconds and a
# `Z` or ±HH:MM / ±HHMM offset. No zone means UTC.
LISTEN_TIME_PATTERN = (
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
# ASCII digits only: Spark's and DuckDB's \\d do not match other scripts' digits.
_LISTEN_TIME = re.compile(LISTEN_TIME_PATTERN, re.ASCII)

# What str.strip() removes; Spark's trim() removes only spaces, so the Spark rules trim this
# exact set with a regular expression (musicpipe.etl.rules.strip).
WHITESPACE_CODEPOINTS = tuple(c for c in range(0x3001) if chr(c).isspace())
WHITESPACE_CLASS = "[" + "".join(f"\\x{{{c:x}}}" for c in WHITESPACE_CODEPOINTS) + "]"


def parse_listen_time(text: str | None) -> datetime | None:
    """The UTC instant of a listen_time (naive datetime, microsecond precision), or None."""
    if text is None:
        return None
    match = _LISTEN_TIME.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    # Fractions beyond microseconds are truncated, as Spark's timestamps do.
    micros = int((fraction[1:] + "000000")[:6]) if fraction else 0
    try:
        value = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros
        )
    except ValueError:  # 2026-02-30, 25:00:00, ...
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        offset = timedelta(hours=hours, minutes=minutes)
        if minutes > 59 or offset > timedelta(hours=18):  # the range Java's ZoneOffset accepts
            return None
        try:
            value = value.replace(tzinfo=timezone(sign * offset)).astimezone(timezone.utc)
        except OverflowError:  # 0001-01-01T00:30:00+01:00 falls before year 1
            return None
        value = value.replace(tzinfo=None)
    return value


def clean_key(value: str | None) -> str:
    return (value or "").strip()


def reject_reason(
    user_id: str | None,
    track_id: str | None,
    listen_time: str | None,
    known_tracks: Set[str],
    known_users: Set[str],
    longest_field: int = 0,
) -> str | None:
    """The first rule the row breaks, or None when it is accepted. ``longest_field`` is the
    length in characters of the row's longest cell (any column)."""
    if longest_field > MAX_FIELD_CHARS:
        return FIELD_TOO_LARGE
    user, track = clean_key(user_id), clean_key(track_id)
    if not user or not track:
        return MISSING_KEY
    if parse_listen_time(listen_time) is None:
        return BAD_LISTEN_TIME
    if track not in known_tracks:
        return UNKNOWN_TRACK
    if user not in known_users:
        return UNKNOWN_USER
    return None
