"""KPI items from DynamoDB as rich tables, for `musicpipe kpis` and `make demo`.

Reading is one Query per question (docs/data-contract.md §5): a day is ``pk = DATE#<date>``, a
genre over time is the ``gsi1`` index. Listing the dates that have KPIs scans keys only.
"""

from __future__ import annotations

from rich.table import Table

from musicpipe.pipeline.kpi_writer import genre_history


def kpi_dates(dynamodb_resource, kpi_table: str) -> list[str]:
    """Every date with KPI items, oldest first (a keys-only scan)."""
    table = dynamodb_resource.Table(kpi_table)
    dates: set[str] = set()
    kwargs: dict = {"ProjectionExpression": "pk"}
    while True:
        page = table.scan(**kwargs)
        dates.update(i["pk"][5:] for i in page["Items"] if i["pk"].startswith("DATE#"))
        if "LastEvaluatedKey" not in page:
            return sorted(dates)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def genre_items(dynamodb_resource, kpi_table: str, genre: str) -> list[dict]:
    return sorted(genre_history(dynamodb_resource, kpi_table, genre), key=lambda i: i["date"])


def _num(value) -> str:
    if value is None:
        return "-"
    if float(value) == int(value):
        return f"{int(value):,}"
    return f"{float(value):,.2f}"


def genres_table(items: list[dict], title: str, by_date: bool = False) -> Table:
    """Genre-level KPIs: one row per genre of a day (or per day of a genre). Its top songs
    are a table of their own (top_songs_table): beside the numbers they do not fit 80 columns."""
    table = Table(title=title, title_justify="left")
    table.add_column("date" if by_date else "genre", overflow="fold")
    for col in ("plays", "listeners", "listening time (s)", "avg per listener (s)"):
        table.add_column(col, justify="right")
    for i in _genre_order(items, by_date):
        table.add_row(
            i["date"] if by_date else i["genre"],
            _num(i["listen_count"]),
            _num(i["unique_listeners"]),
            _num(i["total_listening_time_s"]),
            _num(i["avg_listening_time_per_user_s"]),
        )
    return table


def top_songs_table(items: list[dict], title: str, by_date: bool = False) -> Table:
    """The top songs of each genre row: rank, track, artists, plays; long names fold."""
    table = Table(title=title, title_justify="left")
    table.add_column("date" if by_date else "genre", overflow="fold")
    table.add_column("#", justify="right")
    table.add_column("track", overflow="fold")
    table.add_column("artists", overflow="fold")
    table.add_column("plays", justify="right")
    for i in _genre_order(items, by_date):
        for n, song in enumerate(i.get("top_songs", [])):
            table.add_row(
                (i["date"] if by_date else i["genre"]) if n == 0 else "",
                _num(song["rank"]),
                song.get("track_name") or song["track_id"],
                song.get("artists", ""),
                _num(song["plays"]),
            )
    return table


def _genre_order(items: list[dict], by_date: bool) -> list[dict]:
    return sorted(items, key=lambda i: i["date"] if by_date else (-i["listen_count"], i["genre"]))


def top_genres_table(item: dict) -> Table:
    table = Table(title=f"top genres, {item['date']}", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("genre")
    table.add_column("plays", justify="right")
    for g in item["genres"]:
        table.add_row(_num(g["rank"]), g["genre"], _num(g["listen_count"]))
    return table


def hours_table(items: list[dict], date: str) -> Table:
    table = Table(title=f"by hour (UTC), {date}", title_justify="left")
    table.add_column("hour", justify="right")
    for col in ("plays", "listeners", "track diversity"):
        table.add_column(col, justify="right")
    table.add_column("top artist (plays)", overflow="fold")
    for i in sorted(items, key=lambda i: int(i["hour"])):
        table.add_row(
            f"{int(i['hour']):02d}",
            _num(i["plays"]),
            _num(i["unique_listeners"]),
            f"{float(i['track_diversity_index']):.4f}",
            f"{i['top_artist']} ({_num(i['top_artist_plays'])})",
        )
    return table


def day_tables(
    items: list[dict], date: str, genre: str | None = None, limit: int = 0
) -> list[Table]:
    """The tables of one day: top genres, genres (the ``limit`` most played; 0 = all), hours;
    or just one genre's row."""
    genres = [i for i in items if i["sk"].startswith("GENRE#")]
    if genre is not None:
        mine = [i for i in genres if i["genre"] == genre]
        return [
            genres_table(mine, f"{genre}, {date}"),
            top_songs_table(mine, f"top songs, {genre}, {date}"),
        ]
    tables = []
    top = [i for i in items if i["sk"] == "TOP_GENRES"]
    if top:
        tables.append(top_genres_table(top[0]))
    title = f"genres, {date}"
    if limit and len(genres) > limit:
        genres = sorted(genres, key=lambda i: (-i["listen_count"], i["genre"]))[:limit]
        title = f"the {limit} most played genres, {date} (--limit 0 for all)"
    tables.append(genres_table(genres, title))
    tables.append(top_songs_table(genres, f"top songs by genre, {date}"))
    hours = [i for i in items if i["sk"].startswith("HOUR#")]
    if hours:
        tables.append(hours_table(hours, date))
    return tables
