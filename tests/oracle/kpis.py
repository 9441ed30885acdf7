"""The oracle's KPIs (docs/data-contract.md §4) in DuckDB SQL over a table of distinct events;
rounding in Python with Decimal from the exact integer numerator and denominator SQL returns.
Record shapes are those documented in ``musicpipe.contract.kpis``, so results compare with
==."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal, localcontext

import duckdb

from .reading import fetch_rows, sql_identifier, sql_strip


def _half_up(numerator: int, denominator: int, places: int) -> Decimal:
    """numerator / denominator rounded half up, from exact Decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 60  # far more digits than any count here: the division is exact enough
        quotient = Decimal(numerator) / Decimal(denominator)
        return quotient.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


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
        FROM {sql_identifier(table_name)}
        """
    )
    [(total, distinct)] = fetch_rows(
        con,
        "SELECT count(*), count(DISTINCT (user_id, track_id, timestamp)) FROM kpi_events",
    )
    if total != distinct:
        raise ValueError(f"{table_name} holds {total - distinct} duplicate events")

    genre_rows = fetch_rows(
        con,
        """
        SELECT listen_date, genre, count(*), count(DISTINCT user_id),
               sum(listen_duration)::BIGINT
        FROM kpi_events GROUP BY listen_date, genre ORDER BY listen_date, genre
        """,
    )
    song_rows = fetch_rows(
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
    top_genre_rows = fetch_rows(
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
    hour_rows = fetch_rows(
        con,
        """
        SELECT listen_date, listen_hour, count(*), count(DISTINCT user_id),
               count(DISTINCT track_id)
        FROM kpi_events GROUP BY ALL ORDER BY listen_date, listen_hour
        """,
    )
    # Each credited name counts once per event: split, trim, drop empties, then DISTINCT
    # per event before counting.
    artist_rows = fetch_rows(
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
        """.format(name=sql_strip("name")),
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
