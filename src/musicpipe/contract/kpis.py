"""The KPIs of docs/data-contract.md §4 and their DynamoDB items (§5), defined once.

Everything that decides a KPI's *value* beyond plain counting lives here: half-up rounding,
ranking and tie-breaks, the top-N cuts, artist splitting, and the record and item shapes. The
Spark ETL only counts (distributed) and hands the numbers to :func:`genre_record`,
:func:`top_genres_record` and :func:`hour_record`; :func:`compute_day_kpis` is a small
reference implementation over Python event dicts, built on the same three helpers.

Shipped to Glue (``--extra-py-files``): stdlib only, Python 3.9-compatible.

Record shapes (plain dicts):

- genre record: ``date``, ``genre``, ``listen_count``, ``unique_listeners``,
  ``total_listening_time_s``, ``avg_listening_time_per_user_s`` (Decimal, 2 places),
  ``top_songs`` (up to 3 of ``{rank, track_id, track_name, artists, plays}``).
- top genres record: ``date``, ``genres`` (up to 5 of ``{rank, genre, listen_count}``).
- hour record: ``date``, ``hour``, ``plays``, ``unique_listeners``,
  ``track_diversity_index`` (Decimal, 4 places), ``top_artist``, ``top_artist_plays``.
- DayKpis: ``{"genres": [...by genre], "top_genres": {...}, "hours": [...by hour]}``.

Counts are ``int`` and ratios ``Decimal`` everywhere (DynamoDB rejects floats).
"""

from __future__ import annotations

import datetime as dt
import json
import operator
from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

TOP_SONGS = 3
TOP_GENRES = 5
AVG_PLACES = 2
DIVERSITY_PLACES = 4
ARTIST_SEPARATOR = ";"

# A day's KPIs: {"genres": [...], "top_genres": {...}, "hours": [...]}.
DayKpis = dict[str, Any]
Record = dict[str, Any]
Item = dict[str, Any]

# ------------------------------------------------------------------------------------------
# Numbers
# ------------------------------------------------------------------------------------------


def round_half_up(value: Decimal | int | str, places: int) -> Decimal:
    """``value`` rounded to ``places`` decimals, ties away from zero ("half up",
    docs/data-contract.md §4.1).

    Floats are refused: a float is already rounded (2.675 is stored as 2.67499...), so
    rounding it again cannot give the exact half-up result. Pass a Decimal or an int.
    """
    if isinstance(value, float):
        raise TypeError("round_half_up needs an exact value (Decimal or int), not a float")
    exact = Decimal(value)
    with localcontext() as ctx:
        # quantize fails when the result has more digits than the context's precision.
        ctx.prec = max(28, exact.adjusted() + places + 2)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def ratio_half_up(numerator: int, denominator: int, places: int) -> Decimal:
    """``numerator / denominator`` rounded half up to ``places`` decimals, exactly.

    Integer arithmetic only, so no intermediate rounding can ever happen, whatever the size.
    """
    numerator, denominator = _count(numerator), _count(denominator)
    if denominator == 0:
        raise ZeroDivisionError("ratio_half_up: denominator is 0")
    negative = (numerator < 0) != (denominator < 0)
    quotient, remainder = divmod(abs(numerator) * 10**places, abs(denominator))
    if 2 * remainder >= abs(denominator):  # half or more: away from zero
        quotient += 1
    # Decimal("27000E-2") is exactly Decimal("270.00"): the string constructor never rounds.
    sign = "-" if negative and quotient else ""
    return Decimal(f"{sign}{quotient}E-{places}")


def _count(value: Any) -> int:
    """``value`` as a plain int; refuses floats (and anything else that is not integral).

    operator.index accepts int-like values (numpy ints, ...) but never silently truncates.
    """
    if isinstance(value, bool):
        raise TypeError("a count cannot be a bool")
    return operator.index(value)


def _date_text(value: str | dt.date) -> str:
    """A listen_date as ``YYYY-MM-DD`` (Spark hands partition values back as dates)."""
    if isinstance(value, dt.datetime):
        raise TypeError("a listen_date must be a date or 'YYYY-MM-DD', not a datetime")
    if isinstance(value, dt.date):
        return value.isoformat()
    # Round-trip through date to refuse anything that is not exactly YYYY-MM-DD.
    if len(value) != 10 or dt.date.fromisoformat(value).isoformat() != value:
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    return value


def split_artists(artists: str) -> list[str]:
    """The names credited in an ``artists`` field: split on ';', trimmed, empties dropped."""
    if not artists:
        return []
    names = (name.strip() for name in artists.split(ARTIST_SEPARATOR))
    return [name for name in names if name]


# ------------------------------------------------------------------------------------------
# Records from aggregated numbers (what the Spark job calls)
# ------------------------------------------------------------------------------------------


def genre_record(
    date: str | dt.date,
    genre: str,
    listen_count: int,
    unique_listeners: int,
    total_listening_time_s: int,
    top_songs_rows: Iterable[tuple[str, str, str, int]],
) -> Record:
    """One (date, genre) record.

    ``top_songs_rows`` holds ``(track_id, track_name, artists, plays)`` per track, in any
    order; it may hold every track of the genre or just the candidates. The top 3 are the
    most played, ties broken by track_id ascending.
    """
    songs = sorted(
        (
            (_count(plays), track_id, name, artists)
            for track_id, name, artists, plays in top_songs_rows
        ),
        key=lambda song: (-song[0], song[1]),
    )
    top_songs = [
        {"rank": rank, "track_id": track_id, "track_name": name, "artists": artists, "plays": plays}
        for rank, (plays, track_id, name, artists) in enumerate(songs[:TOP_SONGS], start=1)
    ]
    return {
        "date": _date_text(date),
        "genre": genre,
        "listen_count": _count(listen_count),
        "unique_listeners": _count(unique_listeners),
        "total_listening_time_s": _count(total_listening_time_s),
        "avg_listening_time_per_user_s": ratio_half_up(
            total_listening_time_s, unique_listeners, AVG_PLACES
        ),
        "top_songs": top_songs,
    }


def top_genres_record(date: str | dt.date, genre_counts: Iterable[tuple[str, int]]) -> Record:
    """The day's 5 genres with the highest listen_count, ties by genre ascending."""
    ranked = sorted(
        ((genre, _count(count)) for genre, count in genre_counts),
        key=lambda pair: (-pair[1], pair[0]),
    )
    return {
        "date": _date_text(date),
        "genres": [
            {"rank": rank, "genre": genre, "listen_count": count}
            for rank, (genre, count) in enumerate(ranked[:TOP_GENRES], start=1)
        ],
    }


def hour_record(
    date: str | dt.date,
    hour: int,
    plays: int,
    unique_listeners: int,
    distinct_tracks: int,
    artist_counts: Iterable[tuple[str, int]],
) -> Record:
    """One (date, hour) record; only hours with events have one.

    ``artist_counts`` holds ``(artist, events crediting them)`` for the hour, in any order
    (all artists, or only the leaders). The top artist has the most events, ties by name
    ascending. An hour whose events credit no artist at all (empty ``artists`` fields) gets
    ``top_artist`` "" and ``top_artist_plays`` 0.
    """
    hour = _count(hour)
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be within 0..23, got {hour}")
    leaders = sorted(
        ((artist, _count(count)) for artist, count in artist_counts),
        key=lambda pair: (-pair[1], pair[0]),
    )
    top_artist, top_artist_plays = leaders[0] if leaders else ("", 0)
    return {
        "date": _date_text(date),
        "hour": hour,
        "plays": _count(plays),
        "unique_listeners": _count(unique_listeners),
        "track_diversity_index": ratio_half_up(distinct_tracks, plays, DIVERSITY_PLACES),
        "top_artist": top_artist,
        "top_artist_plays": top_artist_plays,
    }


# ------------------------------------------------------------------------------------------
# Reference implementation over events
# ------------------------------------------------------------------------------------------


def compute_day_kpis(date: str, events: Iterable[dict[str, Any]]) -> DayKpis:
    """All KPIs of one UTC date from its events (distinct events, all of that date).

    Each event has user_id, track_id, timestamp (naive UTC datetime), genre, track_name,
    artists and listen_duration (int seconds).
    """
    date = _date_text(date)
    genres: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "users": set(), "seconds": 0, "plays": defaultdict(int), "songs": {}}
    )
    hours: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "users": set(), "tracks": set(), "artists": defaultdict(int)}
    )
    for event in events:
        timestamp = event["timestamp"]
        if timestamp.date().isoformat() != date:
            raise ValueError(f"event of {timestamp.date()} passed for date {date}")
        g = genres[event["genre"]]
        g["count"] += 1
        g["users"].add(event["user_id"])
        g["seconds"] += _count(event["listen_duration"])
        g["plays"][event["track_id"]] += 1
        g["songs"][event["track_id"]] = (event["track_name"], event["artists"])

        h = hours[timestamp.hour]
        h["count"] += 1
        h["users"].add(event["user_id"])
        h["tracks"].add(event["track_id"])
        # A name credited twice on one track still counts once for that event.
        for artist in set(split_artists(event["artists"])):
            h["artists"][artist] += 1

    genre_records = [
        genre_record(
            date,
            genre,
            g["count"],
            len(g["users"]),
            g["seconds"],
            [(t, *g["songs"][t], plays) for t, plays in g["plays"].items()],
        )
        for genre, g in sorted(genres.items())
    ]
    hour_records = [
        hour_record(date, hour, h["count"], len(h["users"]), len(h["tracks"]), h["artists"].items())
        for hour, h in sorted(hours.items())
    ]
    return {
        "genres": genre_records,
        "top_genres": top_genres_record(date, [(g, genres[g]["count"]) for g in genres]),
        "hours": hour_records,
    }


def compute_kpis(events: Iterable[dict[str, Any]]) -> dict[str, DayKpis]:
    """KPIs of every UTC date the (distinct) events touch, keyed and ordered by date."""
    by_date: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_date[event["timestamp"].date().isoformat()].append(event)
    return {date: compute_day_kpis(date, by_date[date]) for date in sorted(by_date)}


# ------------------------------------------------------------------------------------------
# DynamoDB items (docs/data-contract.md §5)
# ------------------------------------------------------------------------------------------


def _updated_at_text(updated_at: str | dt.datetime) -> str:
    if isinstance(updated_at, dt.datetime):
        return updated_at.isoformat()
    return updated_at


def genre_item(record: Record, updated_at: str | dt.datetime) -> Item:
    """The genre-day item: key DATE#<date> / GENRE#<genre>, GSI gsi1 GENRE#<genre> / DATE#<date>."""
    date, genre = record["date"], record["genre"]
    return {
        "pk": "DATE#" + date,
        "sk": "GENRE#" + genre,
        "gsi1pk": "GENRE#" + genre,
        "gsi1sk": "DATE#" + date,
        "date": date,
        "genre": genre,
        "listen_count": record["listen_count"],
        "unique_listeners": record["unique_listeners"],
        "total_listening_time_s": record["total_listening_time_s"],
        "avg_listening_time_per_user_s": record["avg_listening_time_per_user_s"],
        "top_songs": [dict(song) for song in record["top_songs"]],
        "updated_at": _updated_at_text(updated_at),
    }


def top_genres_item(record: Record, updated_at: str | dt.datetime) -> Item:
    """The day's top-genres item: key DATE#<date> / TOP_GENRES."""
    return {
        "pk": "DATE#" + record["date"],
        "sk": "TOP_GENRES",
        "date": record["date"],
        "genres": [dict(genre) for genre in record["genres"]],
        "updated_at": _updated_at_text(updated_at),
    }


def hour_item(record: Record, updated_at: str | dt.datetime) -> Item:
    """The hour item: key DATE#<date> / HOUR#<HH> (two digits, so sk sorts by hour)."""
    return {
        "pk": "DATE#" + record["date"],
        "sk": f"HOUR#{record['hour']:02d}",
        "date": record["date"],
        "hour": record["hour"],
        "plays": record["plays"],
        "unique_listeners": record["unique_listeners"],
        "track_diversity_index": record["track_diversity_index"],
        "top_artist": record["top_artist"],
        "top_artist_plays": record["top_artist_plays"],
        "updated_at": _updated_at_text(updated_at),
    }


def day_items(day_kpis: DayKpis, updated_at: str | dt.datetime) -> list[Item]:
    """Every item of one day: the genre items, the top-genres item, the hour items."""
    items = [genre_item(record, updated_at) for record in day_kpis["genres"]]
    items.append(top_genres_item(day_kpis["top_genres"], updated_at))
    items.extend(hour_item(record, updated_at) for record in day_kpis["hours"])
    return items


# ------------------------------------------------------------------------------------------
# Staging serialization (JSON lines)
# ------------------------------------------------------------------------------------------


def _decimal_json(value: Decimal) -> str:
    """A Decimal as a JSON number that ``json.loads(parse_float=Decimal)`` gives back exactly.

    str() keeps every digit and the exponent ("12.50" stays "12.50"). A Decimal without a
    fraction part ("5") would come back as an int, so it gets an explicit "E+0", which
    parses back to Decimal("5") with the same exponent.
    """
    if not value.is_finite():
        raise ValueError(f"NaN and Infinity are not JSON numbers: {value!r}")
    text = str(value)
    if "." not in text and "E" not in text:
        text += "E+0"
    return text


def _to_json(value: Any) -> str:
    # bool before int: bool is an int subclass.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, Decimal):
        return _decimal_json(value)
    if isinstance(value, float):
        raise TypeError("floats have no place in KPI items (DynamoDB needs Decimal)")
    if isinstance(value, str):
        # ensure_ascii escapes U+2028/U+2029 and the like, so a line never splits in two.
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"item keys must be strings, got {key!r}")
            parts.append(json.dumps(key, ensure_ascii=True) + ":" + _to_json(item))
        return "{" + ",".join(parts) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_to_json(item) for item in value) + "]"
    raise TypeError(f"cannot serialize {value!r} in a KPI item")


def item_to_json(item: Item) -> str:
    """One item as one line of JSON (no newline); Decimals keep every digit."""
    return _to_json(item)


def item_from_json(line: str) -> Item:
    """The item of one JSON line: numbers with a fraction or exponent as Decimal, others int."""
    return json.loads(line, parse_float=Decimal)
