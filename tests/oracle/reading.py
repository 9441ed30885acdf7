"""The oracle's reading and cleaning, in DuckDB SQL: the CSV files as text, the row rules of
docs/data-contract.md §2, the UTC conversion and the distinct accepted events (§3). The rules
as implemented are listed in ``tests/oracle/__init__.py``."""

from __future__ import annotations

from pathlib import Path

import duckdb

from musicpipe.contract.rules import LISTEN_TIME_PATTERN, MAX_FIELD_CHARS

REASONS = ("field_too_large", "missing_key", "bad_listen_time", "unknown_track", "unknown_user")
STREAM_COLUMNS = ("user_id", "track_id", "listen_time")
SONG_COLUMNS = ("track_id", "track_genre", "track_name", "artists")
USER_COLUMNS = ("user_id", "user_name")

# The characters Python's str.strip() removes (str.isspace()), as a RE2 class. SQL's trim()
# only removes spaces; the contract trims keys with str.strip(), so the oracle matches that.
PY_WHITESPACE = (
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680,
    0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
)  # fmt: skip
_WS_CLASS = "[" + "".join(f"\\x{{{c:x}}}" for c in PY_WHITESPACE) + "]"
_TRIM_PATTERN = f"^{_WS_CLASS}+|{_WS_CLASS}+$"

# listen_time offsets beyond ±18:00 or with minutes over 59 are refused (Java's ZoneOffset
# range, which Spark applies), as are instants outside years 1..9999 once converted to UTC.
_MAX_OFFSET_MINUTES = 18 * 60
_FIRST_INSTANT_S = -62135596800  # 0001-01-01T00:00:00Z
_END_INSTANT_S = 253402300800  # 10000-01-01T00:00:00Z


# ------------------------------------------------------------------------------------------
# Small SQL helpers
# ------------------------------------------------------------------------------------------


def sql_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_strip(expr: str) -> str:
    """SQL for ``expr`` (NULL read as '') with leading/trailing whitespace removed."""
    return f"regexp_replace(coalesce({expr}, ''), {sql_literal(_TRIM_PATTERN)}, '', 'g')"


def _normalize_column(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


def _read_csv_sql(path: Path) -> str:
    # Every column as text: ids like "007" must stay as written, and nothing is guessed.
    # Quoted fields may hold line breaks (DuckDB's reader allows them, as RFC 4180 does).
    # strict_mode = false: records may end with LF and CRLF in one file, as Python's csv
    # reads them (strict DuckDB refuses the mix). max_line_size: a record may be as long as a
    # cell the validation job still reads (DuckDB's default of 2 MB would fail the file
    # instead of rejecting one row).
    return (
        f"read_csv({sql_literal(str(path))}, header = true, all_varchar = true, "
        "delim = ',', quote = '\"', escape = '\"', encoding = 'utf-8', "
        "strict_mode = false, max_line_size = 67108864)"
    )


def _select_columns(
    con: duckdb.DuckDBPyConnection, path: Path, wanted: tuple[str, ...], longest: bool = False
) -> str:
    """``SELECT <column> AS <wanted name>, ... FROM read_csv(path)`` by normalized header;
    with ``longest``, also the length of the row's longest cell over every column."""
    source = _read_csv_sql(path)
    header = [row[0] for row in con.sql("DESCRIBE SELECT * FROM " + source).fetchall()]
    positions: dict[str, str] = {}
    for name in header:
        positions.setdefault(_normalize_column(name), name)  # first occurrence wins
    missing = [c for c in wanted if c not in positions]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    columns = ", ".join(f"{sql_identifier(positions[c])} AS {c}" for c in wanted)
    if longest:
        lengths = ", ".join(f"coalesce(length({sql_identifier(n)}), 0)" for n in header)
        columns += f", greatest({lengths}, 0) AS longest_field"
    return f"SELECT {columns} FROM {source}"


def fetch_rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.sql(sql).fetchall()


# ------------------------------------------------------------------------------------------
# Loading: reference tables, stream rows, rules, events
# ------------------------------------------------------------------------------------------


def _load_reference(con: duckdb.DuckDBPyConnection, songs_csv: Path, users_csv: Path) -> None:
    """Tables ``songs`` (one row per trimmed track_id) and ``users`` (per trimmed user_id)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE songs AS
        WITH raw AS (
            SELECT {track} AS track_id,
                   coalesce(track_genre, '') AS genre,
                   coalesce(track_name, '') AS track_name,
                   coalesce(artists, '') AS artists
            FROM ({source})
        )
        SELECT * FROM raw
        WHERE track_id <> ''
        QUALIFY row_number() OVER (
            PARTITION BY track_id ORDER BY genre, track_name, artists
        ) = 1
        """.format(
            track=sql_strip("track_id"), source=_select_columns(con, songs_csv, SONG_COLUMNS)
        )
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE users AS
        WITH raw AS (
            SELECT {user} AS user_id, coalesce(user_name, '') AS user_name FROM ({source})
        )
        SELECT * FROM raw
        WHERE user_id <> ''
        QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY user_name) = 1
        """.format(user=sql_strip("user_id"), source=_select_columns(con, users_csv, USER_COLUMNS))
    )


def _load_stream_rows(con: duckdb.DuckDBPyConnection, stream_csvs: list[Path]) -> None:
    """Table ``stream_rows``: every data row of every stream file, with its file number."""
    # row_no: 1-based data row in the file (the reader keeps file order), for classify_rows.
    parts = [
        f"SELECT {i} AS file_no, row_number() OVER () AS row_no, * "
        f"FROM ({_select_columns(con, path, STREAM_COLUMNS, longest=True)})"
        for i, path in enumerate(stream_csvs)
    ]
    if not parts:
        parts = ["SELECT 0 AS file_no, 0::BIGINT AS row_no, ''::VARCHAR AS user_id, "
                 "''::VARCHAR AS track_id, ''::VARCHAR AS listen_time, "
                 "0::BIGINT AS longest_field WHERE false"]  # fmt: skip
    con.execute("CREATE OR REPLACE TEMP TABLE stream_rows AS " + " UNION ALL ".join(parts))


def _classify_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Table ``checked_rows``: stream rows with trimmed keys, UTC epoch micros, and reason."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE checked_rows AS
        WITH keyed AS (
            SELECT file_no, row_no, longest_field,
                   {user} AS user_id,
                   {track} AS track_id,
                   {time} AS listen_time
            FROM stream_rows
        ),
        matched AS (
            SELECT *,
                   regexp_matches(listen_time, {pattern}) AS well_formed,
                   regexp_extract(listen_time, {pattern},
                                  ['y', 'mo', 'd', 'h', 'mi', 's', 'frac', 'zone']) AS p
            FROM keyed
        ),
        parts AS (
            SELECT file_no, row_no, longest_field, user_id, track_id, well_formed,
                   CASE WHEN well_formed THEN p.y::INTEGER END AS y,
                   CASE WHEN well_formed THEN p.mo::INTEGER END AS mo,
                   CASE WHEN well_formed THEN p.d::INTEGER END AS d,
                   CASE WHEN well_formed THEN p.h::INTEGER END AS h,
                   CASE WHEN well_formed THEN p.mi::INTEGER END AS mi,
                   CASE WHEN well_formed THEN p.s::INTEGER END AS s,
                   -- '.5' is 500000 us; digits beyond the sixth are truncated.
                   CASE WHEN well_formed AND p.frac <> ''
                        THEN left(rpad(substr(p.frac, 2), 6, '0'), 6)::BIGINT ELSE 0 END
                       AS micros,
                   -- Offset in minutes east of UTC: '+HH:MM', '+HHMM'; none or 'Z' is 0.
                   CASE WHEN NOT well_formed OR p.zone IN ('', 'Z') THEN 0
                        ELSE substr(replace(p.zone, ':', ''), 2, 2)::INTEGER * 60
                             + substr(replace(p.zone, ':', ''), 4, 2)::INTEGER END
                       AS offset_abs,
                   CASE WHEN well_formed AND left(p.zone, 1) = '-' THEN -1 ELSE 1 END
                       AS offset_sign,
                   CASE WHEN well_formed AND p.zone NOT IN ('', 'Z')
                        THEN substr(replace(p.zone, ':', ''), 4, 2)::INTEGER END
                       AS p_zone_minutes
            FROM matched
        ),
        valid AS (
            SELECT *,
                   coalesce(
                       well_formed
                       AND y >= 1 AND mo BETWEEN 1 AND 12 AND d >= 1
                       -- the month clamped, so last_day never sees an impossible date
                       AND d <= day(last_day(make_date(greatest(y, 1),
                                                       least(greatest(mo, 1), 12), 1)))
                       AND h < 24 AND mi < 60 AND s < 60
                       AND offset_abs <= {max_offset}
                       AND (p_zone_minutes IS NULL OR p_zone_minutes < 60),
                       false
                   ) AS valid_time
            FROM parts
        ),
        utc AS (
            SELECT file_no, row_no, longest_field, user_id, track_id,
                   CASE WHEN valid_time THEN
                       (date_diff('day', DATE '1970-01-01', make_date(y, mo, d)) * 86400
                        + h * 3600 + mi * 60 + s
                        - offset_sign * offset_abs * 60)::BIGINT
                   END AS epoch_s,
                   micros
            FROM valid
        ),
        timed AS (
            SELECT file_no, row_no, longest_field, user_id, track_id,
                   CASE WHEN epoch_s >= {first_instant} AND epoch_s < {end_instant}
                        THEN epoch_s * 1000000 + micros END AS epoch_us
            FROM utc
        )
        SELECT t.*,
               CASE
                   WHEN t.longest_field > {max_field} THEN 'field_too_large'
                   WHEN t.user_id = '' OR t.track_id = '' THEN 'missing_key'
                   WHEN t.epoch_us IS NULL THEN 'bad_listen_time'
                   WHEN NOT EXISTS (SELECT 1 FROM songs s WHERE s.track_id = t.track_id)
                       THEN 'unknown_track'
                   WHEN NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = t.user_id)
                       THEN 'unknown_user'
               END AS reject_reason
        FROM timed t
        """.format(
            user=sql_strip("user_id"),
            track=sql_strip("track_id"),
            time=sql_strip("listen_time"),
            pattern=sql_literal(LISTEN_TIME_PATTERN),
            max_offset=_MAX_OFFSET_MINUTES,
            max_field=MAX_FIELD_CHARS,
            first_instant=_FIRST_INSTANT_S,
            end_instant=_END_INSTANT_S,
        )
    )


def load_events(con: duckdb.DuckDBPyConnection, listen_duration_s: int) -> None:
    """Table ``events``: distinct accepted events over all files, enriched from songs."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE events AS
        WITH distinct_events AS (
            SELECT DISTINCT user_id, track_id, epoch_us
            FROM checked_rows WHERE reject_reason IS NULL
        )
        SELECT e.user_id, e.track_id, make_timestamp(e.epoch_us) AS timestamp,
               s.genre, s.track_name, s.artists, ?::BIGINT AS listen_duration
        FROM distinct_events e JOIN songs s USING (track_id)
        """,
        [int(listen_duration_s)],
    )


def prepare(
    con: duckdb.DuckDBPyConnection, songs_csv: Path, users_csv: Path, stream_csvs: list[Path]
) -> None:
    _load_reference(con, Path(songs_csv), Path(users_csv))
    _load_stream_rows(con, [Path(p) for p in stream_csvs])
    _classify_rows(con)
