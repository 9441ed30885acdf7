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


def _songs(top_songs: list[dict]) -> str:
    return "\n".join(
        f"{s['rank']}. {s.get('track_name') or s['track_id']} — {s.get('artists', '')} "
        f"({_num(s['plays'])})"
        for s in top_songs
    )


def genres_table(items: list[dict], title: str, by_date: bool = False) -> Table:
    """Genre-level KPIs: one row per genre of a day (or per day of a genre)."""
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("date" if by_date else "genre")
    for col in ("plays", "listeners", "listening time (s)", "avg per listener (s)"):
        table.add_column(col, justify="right")
    table.add_column("top songs (plays)")
    rows = sorted(items, key=lambda i: i["date"] if by_date else (-i["listen_count"], i["genre"]))
    for i in rows:
        table.add_row(
            i["date"] if by_date else i["genre"],
            _num(i["listen_count"]),
            _num(i["unique_listeners"]),
            _num(i["total_listening_time_s"]),
            _num(i["avg_listening_time_per_user_s"]),
            _songs(i.get("top_songs", [])),
        )
    return table


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
    table.add_column("top artist (plays)")
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
        return [genres_table([i for i in genres if i["genre"] == genre], f"{genre}, {date}")]
    tables = []
    top = [i for i in items if i["sk"] == "TOP_GENRES"]
    if top:
        tables.append(top_genres_table(top[0]))
    title = f"genres, {date}"
    if limit and len(genres) > limit:
        genres = sorted(genres, key=lambda i: (-i["listen_count"], i["genre"]))[:limit]
        title = f"the {limit} most played genres, {date} (--limit 0 for all)"
    tables.append(genres_table(genres, title))
    hours = [i for i in items if i["sk"].startswith("HOUR#")]
    if hours:
        tables.append(hours_table(hours, date))
    return tables
