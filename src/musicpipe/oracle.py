"""The test oracle: docs/data-contract.md §2 row rules, §3 dedup and §4 KPIs, written again in
DuckDB SQL.

The Spark ETL and ``musicpipe.contract.kpis`` are compared against this module, so it shares
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

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import duckdb

from musicpipe.contract.rules import LISTEN_TIME_PATTERN, MAX_FIELD_CHARS

REASONS = ("field_too_large", "missing_key", "bad_listen_time", "unknown_track", "unknown_user")
STREAM_COLUMNS = ("user_id", "track_id", "listen_time")
SONG_COLUMNS = ("track_id", "track_genre", "track_name", "artists")
USER_COLUMNS = ("user_id", "user_name")

# The characters Python's str.strip() removes (str.isspace()), as a RE2 class. SQL's trim()
# only removes spaces; the contract trims keys with str.strip(), so the oracle matches that.
_PY_WHITESPACE = (
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680,
    0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
)  # fmt: skip
_WS_CLASS = "[" + "".join(f"\\x{{{c:x}}}" for c in _PY_WHITESPACE) + "]"
_TRIM_PATTERN = f"^{_WS_CLASS}+|{_WS_CLASS}+$"

# listen_time offsets beyond ±18:00 or with minutes over 59 are refused (Java's ZoneOffset
# range, which Spark applies), as are instants outside years 1..9999 once converted to UTC.
_MAX_OFFSET_MINUTES = 18 * 60
_FIRST_INSTANT_S = -62135596800  # 0001-01-01T00:00:00Z
_END_INSTANT_S = 253402300800  # 10000-01-01T00:00:00Z


# ------------------------------------------------------------------------------------------
# Small SQL helpers
# ------------------------------------------------------------------------------------------


def _literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _strip(expr: str) -> str:
    """SQL for ``expr`` (NULL read as '') with leading/trailing whitespace removed."""
    return f"regexp_replace(coalesce({expr}, ''), {_literal(_TRIM_PATTERN)}, '', 'g')"


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
        f"read_csv({_literal(str(path))}, header = true, all_varchar = true, "
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
    columns = ", ".join(f"{_identifier(positions[c])} AS {c}" for c in wanted)
    if longest:
        lengths = ", ".join(f"coalesce(length({_identifier(n)}), 0)" for n in header)
        columns += f", greatest({lengths}, 0) AS longest_field"
    return f"SELECT {columns} FROM {source}"


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
        """.format(track=_strip("track_id"), source=_select_columns(con, songs_csv, SONG_COLUMNS))
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
        """.format(user=_strip("user_id"), source=_select_columns(con, users_csv, USER_COLUMNS))
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
            user=_strip("user_id"),
            track=_strip("track_id"),
            time=_strip("listen_time"),
            pattern=_literal(LISTEN_TIME_PATTERN),
            max_offset=_MAX_OFFSET_MINUTES,
            max_field=MAX_FIELD_CHARS,
            first_instant=_FIRST_INSTANT_S,
            end_instant=_END_INSTANT_S,
        )
    )


def _load_events(con: duckdb.DuckDBPyConnection, listen_duration_s: int) -> None:
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


def _prepare(
    con: duckdb.DuckDBPyConnection, songs_csv: Path, users_csv: Path, stream_csvs: list[Path]
) -> None:
    _load_reference(con, Path(songs_csv), Path(users_csv))
    _load_stream_rows(con, [Path(p) for p in stream_csvs])
    _classify_rows(con)


# ------------------------------------------------------------------------------------------
# KPIs
# ------------------------------------------------------------------------------------------


def _half_up(numerator: int, denominator: int, places: int) -> Decimal:
    """numerator / denominator rounded half up, from exact Decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 60  # far more digits than any count here: the division is exact enough
        quotient = Decimal(numerator) / Decimal(denominator)
        return quotient.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.sql(sql).fetchall()


def kpis_from_events_table(con: duckdb.DuckDBPyConnection, table_name: str) -> dict[str, dict]:
    """docs/data-contract.md §4 KPIs per UTC date from a table of distinct events.

    The table needs user_id, track_id, timestamp (TIMESTAMP, UTC), genre, track_name,
    artists and listen_duration. Duplicate (user_id, track_id, timestamp) rows are an error,
    not silently merged: the oracle must not hide a dedup bug in what it is pointed at.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW kpi_events AS
        SELECT user_id, track_id, timestamp, genre, track_name, coalesce(artists, '') AS artists,
               listen_duration,
               strftime(timestamp, '%Y-%m-%d') AS listen_date,
               hour(timestamp) AS listen_hour
        FROM {_identifier(table_name)}
        """
    )
    [(total, distinct)] = _rows(
        con,
        "SELECT count(*), count(DISTINCT (user_id, track_id, timestamp)) FROM kpi_events",
    )
    if total != distinct:
        raise ValueError(f"{table_name} holds {total - distinct} duplicate events")

    genre_rows = _rows(
        con,
        """
        SELECT listen_date, genre, count(*), count(DISTINCT user_id),
               sum(listen_duration)::BIGINT
        FROM kpi_events GROUP BY listen_date, genre ORDER BY listen_date, genre
        """,
    )
    song_rows = _rows(
        con,
        """
        WITH plays AS (
            SELECT listen_date, genre, track_id, track_name, artists, count(*) AS plays
            FROM kpi_events GROUP BY ALL
        )
        SELECT listen_date, genre,
               row_number() OVER (PARTITION BY listen_date, genre
                                  ORDER BY plays DESC, track_id) AS rank,
               track_id, track_name, artists, plays
        FROM plays
        QUALIFY rank <= 3
        ORDER BY listen_date, genre, rank
        """,
    )
    top_genre_rows = _rows(
        con,
        """
        WITH counts AS (
            SELECT listen_date, genre, count(*) AS listen_count FROM kpi_events GROUP BY ALL
        )
        SELECT listen_date,
               row_number() OVER (PARTITION BY listen_date
                                  ORDER BY listen_count DESC, genre) AS rank,
               genre, listen_count
        FROM counts
        QUALIFY rank <= 5
        ORDER BY listen_date, rank
        """,
    )
    hour_rows = _rows(
        con,
        """
        SELECT listen_date, listen_hour, count(*), count(DISTINCT user_id),
               count(DISTINCT track_id)
        FROM kpi_events GROUP BY ALL ORDER BY listen_date, listen_hour
        """,
    )
    # Each credited name counts once per event: split, trim, drop empties, then DISTINCT
    # per event before counting.
    artist_rows = _rows(
        con,
        """
        WITH split AS (
            SELECT listen_date, listen_hour, user_id, track_id, timestamp,
                   unnest(string_split(artists, ';')) AS name
            FROM kpi_events
        ),
        credits AS (
            SELECT DISTINCT listen_date, listen_hour, user_id, track_id, timestamp,
                   {name} AS artist
            FROM split
        ),
        counts AS (
            SELECT listen_date, listen_hour, artist, count(*) AS plays
            FROM credits WHERE artist <> '' GROUP BY ALL
        )
        SELECT listen_date, listen_hour, artist, plays
        FROM counts
        QUALIFY row_number() OVER (PARTITION BY listen_date, listen_hour
                                   ORDER BY plays DESC, artist) = 1
        """.format(name=_strip("name")),
    )
    return _assemble(genre_rows, song_rows, top_genre_rows, hour_rows, artist_rows)


def _assemble(genre_rows, song_rows, top_genre_rows, hour_rows, artist_rows) -> dict[str, dict]:
    """The SQL results as the contract's record shapes (rows arrive already ordered)."""
    top_songs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for date, genre, rank, track_id, track_name, artists, plays in song_rows:
        top_songs[(date, genre)].append(
            {
                "rank": rank,
                "track_id": track_id,
                "track_name": track_name,
                "artists": artists,
                "plays": plays,
            }
        )
    top_genres: dict[str, list[dict]] = defaultdict(list)
    for date, rank, genre, listen_count in top_genre_rows:
        top_genres[date].append({"rank": rank, "genre": genre, "listen_count": listen_count})
    top_artist = {(date, hour): (artist, plays) for date, hour, artist, plays in artist_rows}

    days: dict[str, dict] = {}

    def day(date: str) -> dict:
        if date not in days:
            days[date] = {
                "genres": [],
                "top_genres": {"date": date, "genres": top_genres[date]},
                "hours": [],
            }
        return days[date]

    for date, genre, listen_count, listeners, seconds in genre_rows:
        day(date)["genres"].append(
            {
                "date": date,
                "genre": genre,
                "listen_count": listen_count,
                "unique_listeners": listeners,
                "total_listening_time_s": seconds,
                "avg_listening_time_per_user_s": _half_up(seconds, listeners, 2),
                "top_songs": top_songs[(date, genre)],
            }
        )
    for date, hour, plays, listeners, tracks in hour_rows:
        artist, artist_plays = top_artist.get((date, hour), ("", 0))
        day(date)["hours"].append(
            {
                "date": date,
                "hour": hour,
                "plays": plays,
                "unique_listeners": listeners,
                "track_diversity_index": _half_up(tracks, plays, 4),
                "top_artist": artist,
                "top_artist_plays": artist_plays,
            }
        )
    return {date: days[date] for date in sorted(days)}


# ------------------------------------------------------------------------------------------
# Public entry points
# ------------------------------------------------------------------------------------------


def kpis_from_files(
    songs_csv: Path, users_csv: Path, stream_csvs: list[Path], listen_duration_s: int = 180
) -> dict[str, dict]:
    """docs/data-contract.md §4 KPIs per UTC date over the distinct accepted events of all
    ``stream_csvs``."""
    with duckdb.connect() as con:
        _prepare(con, songs_csv, users_csv, stream_csvs)
        _load_events(con, listen_duration_s)
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
        _prepare(con, songs_csv, users_csv, stream_csvs)
        rows = _rows(
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
        _prepare(con, songs_csv, users_csv, stream_csvs)
        rows = _rows(
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
                    f"count(*) FILTER (WHERE reject_reason = {_literal(r)})" for r in REASONS
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
