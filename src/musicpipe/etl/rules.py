"""The row rules of ``musicpipe.contract.rules`` as Spark column expressions.

Same order, same listen_time pattern; a test runs both on the same strings and rows and
checks they agree, so the rules stay defined in one place.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from musicpipe.contract.rules import (
    BAD_LISTEN_TIME,
    FIELD_TOO_LARGE,
    LISTEN_TIME_PATTERN,
    MAX_FIELD_CHARS,
    MISSING_KEY,
    UNKNOWN_TRACK,
    UNKNOWN_USER,
    WHITESPACE_CLASS,
)


def strip(column: Column) -> Column:
    """str.strip() in Spark: the same whitespace set, not just spaces as trim() has."""
    return F.regexp_replace(column, f"^{WHITESPACE_CLASS}+|{WHITESPACE_CLASS}+$", "")


def clean_key(column: Column) -> Column:
    """Keys compare as stripped strings; an empty one counts as missing."""
    return strip(F.coalesce(column, F.lit("")))


def parse_listen_time(column: Column) -> Column:
    """UTC timestamp of a listen_time, or null when it breaks the pattern or the calendar.

    The session time zone is UTC (as on Glue), so a time without a zone is UTC, and `Z` or an
    offset is converted.
    """
    text = strip(column)
    parsed = F.to_timestamp(text)
    # Python's datetime stops at years 1 and 9999; an offset can push an instant past them.
    in_range = F.year(parsed).between(1, 9999)
    return F.when(text.rlike(LISTEN_TIME_PATTERN) & in_range, parsed)


def longest_field(columns: list[Column]) -> Column:
    """Length in characters of the row's longest cell (0 when every cell is null)."""
    lengths = [F.coalesce(F.length(c), F.lit(0)) for c in columns]
    return lengths[0] if len(lengths) == 1 else F.greatest(*lengths)


def reject_reason(
    user: Column,
    track: Column,
    parsed_time: Column,
    track_known: Column,
    user_known: Column,
    longest: Column | None = None,
) -> Column:
    """The first rule a row breaks (null when accepted), in the contract's order.
    ``longest`` is :func:`longest_field` of the row's cells."""
    longest = F.lit(0) if longest is None else longest
    return (
        F.when(longest > MAX_FIELD_CHARS, F.lit(FIELD_TOO_LARGE))
        .when((user == "") | (track == ""), F.lit(MISSING_KEY))
        .when(parsed_time.isNull(), F.lit(BAD_LISTEN_TIME))
        .when(~track_known, F.lit(UNKNOWN_TRACK))
        .when(~user_known, F.lit(UNKNOWN_USER))
    )
