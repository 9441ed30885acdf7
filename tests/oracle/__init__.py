"""The test oracle: docs/data-contract.md §2 row rules, §3 dedup and §4 KPIs, written again in
DuckDB SQL.

The Spark ETL and ``musicpipe.contract.kpis`` are compared against this package, so it shares
no logic with them: the row rules, the UTC conversion, the dedup, the ranking and the
tie-breaks are all SQL here. Only the listen_time pattern *string* and the cell size limit
are imported, because they are the contract's definitions of a well-formed listen_time and of
a cell too large. Rounding happens in Python with
Decimal from the exact integer numerator and denominator that SQL returns.

Record shapes are those documented in ``musicpipe.contract.kpis``, so results compare with ==.

Rules as implemented here (docs/data-contract.md and ``contract/rules.py``):

- CSVs: header required, all columns read as text, RFC 4180 quoting (separators, doubled
  quotes and LF / CRLF line breaks inside quoted fields); column names match after stripping
  a BOM, trimming and lower-casing (first occurrence wins); extra columns ignored.
- A stream row with a cell (any column) longer than ``MAX_FIELD_CHARS`` characters is
  ``field_too_large``, before every other rule.
- Keys (user_id, track_id) are trimmed of whitespace (Python's ``str.strip`` set) and
  compared as text. An empty field counts as an empty string.
- songs / users with a repeated key keep one row: the smallest (track_genre, track_name,
  artists), resp. the smallest user_name, so the choice is deterministic.
- listen_time (trimmed) must match ``LISTEN_TIME_PATTERN`` and be a real calendar instant
  (year >= 1, second < 60); an offset must be under 18 h; the value is converted to UTC and
  fractions beyond microseconds are truncated.
- A row gets the first rule it breaks: field_too_large, missing_key, bad_listen_time,
  unknown_track, unknown_user.
- An event is (user_id, track_id, UTC timestamp), counted once over all files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from .kpis import kpis_from_events_table
from .reading import REASONS, fetch_rows, load_events, prepare, sql_literal


def kpis_from_files(
    songs_csv: Path, users_csv: Path, stream_csvs: list[Path], listen_duration_s: int = 180
) -> dict[str, dict]:
    """docs/data-contract.md §4 KPIs per UTC date over the distinct accepted events of all
    ``stream_csvs``."""
    with duckdb.connect() as con:
        prepare(con, songs_csv, users_csv, stream_csvs)
        load_events(con, listen_duration_s)
        return kpis_from_events_table(con, "events")


def classify_rows(
    songs_csv: Path, users_csv: Path, stream_csvs: list[Path]
) -> list[dict[str, Any]]:
    """Every stream row as the oracle sees it, in file order: ``file`` (str(path)), ``row``
    (1-based data row), trimmed ``user_id`` / ``track_id``, ``timestamp`` (naive UTC
    datetime, None when listen_time is bad) and ``reject_reason`` (None when accepted).

    For checking another implementation of the row rules row by row.
    """
    with duckdb.connect() as con:
        prepare(con, songs_csv, users_csv, stream_csvs)
        rows = fetch_rows(
            con,
            """
            SELECT file_no, row_no, user_id, track_id, make_timestamp(epoch_us), reject_reason
            FROM checked_rows ORDER BY file_no, row_no
            """,
        )
    return [
        {
            "file": str(stream_csvs[file_no]),
            "row": row_no,
            "user_id": user_id,
            "track_id": track_id,
            "timestamp": timestamp,
            "reject_reason": reason,
        }
        for file_no, row_no, user_id, track_id, timestamp, reason in rows
    ]


def row_accounting(
    songs_csv: Path, users_csv: Path, stream_csvs: list[Path]
) -> dict[str, dict[str, Any]]:
    """Per stream file (keyed by str(path)): rows read, rejected by reason, accepted, and
    duplicates within the file (accepted rows minus distinct accepted events of the file).

    rows_read = accepted + sum(rejected) for every file.
    """
    with duckdb.connect() as con:
        prepare(con, songs_csv, users_csv, stream_csvs)
        rows = fetch_rows(
            con,
            """
            SELECT file_no, count(*),
                   {reasons},
                   count(*) FILTER (WHERE reject_reason IS NULL),
                   count(DISTINCT CASE WHEN reject_reason IS NULL
                                       THEN (user_id, track_id, epoch_us) END)
            FROM checked_rows GROUP BY file_no
            """.format(
                reasons=", ".join(
                    f"count(*) FILTER (WHERE reject_reason = {sql_literal(r)})" for r in REASONS
                )
            ),
        )
    by_file = {row[0]: row for row in rows}
    result: dict[str, dict[str, Any]] = {}
    for i, path in enumerate(stream_csvs):
        row = by_file.get(i, (i, 0) + (0,) * len(REASONS) + (0, 0))
        rejected = dict(zip(REASONS, row[2 : 2 + len(REASONS)], strict=True))
        accepted, distinct = row[2 + len(REASONS)], row[3 + len(REASONS)]
        result[str(path)] = {
            "rows_read": row[1],
            "rejected": rejected,
            "accepted": accepted,
            "duplicates_within_file": accepted - distinct,
        }
    return result
