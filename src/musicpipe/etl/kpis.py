"""docs/data-contract.md §4 KPIs in Spark: the heavy counting runs distributed, the small
results come back to the driver, and ``musicpipe.contract.kpis`` ranks, rounds and shapes them,
so those rules live in one place."""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from musicpipe.contract import kpis as contract
from musicpipe.etl.rules import strip

TOP_SONGS_CANDIDATES = 3


def day_kpis(events: DataFrame) -> dict[str, dict]:
    """KPIs per listen_date of ``events`` (distinct accepted events of whole days)."""
    events = events.select(
        "listen_date",
        "listen_hour",
        "user_id",
        "track_id",
        "genre",
        "track_name",
        "artists",
        "listen_duration",
    ).cache()
    try:
        genres = events.groupBy("listen_date", "genre").agg(
            F.count("*").alias("listen_count"),
            F.countDistinct("user_id").alias("unique_listeners"),
            F.sum("listen_duration").alias("total_listening_time_s"),
        )
        plays = events.groupBy("listen_date", "genre", "track_id", "track_name", "artists").agg(
            F.count("*").alias("plays")
        )
        # Keep only songs that can reach the top 3 (ties broken by track_id, as the contract).
        rank = Window.partitionBy("listen_date", "genre").orderBy(
            F.desc("plays"), F.asc("track_id")
        )
        top_songs = plays.withColumn("_rank", F.row_number().over(rank)).where(
            F.col("_rank") <= TOP_SONGS_CANDIDATES
        )
        hours = events.groupBy("listen_date", "listen_hour").agg(
            F.count("*").alias("plays"),
            F.countDistinct("user_id").alias("unique_listeners"),
            F.countDistinct("track_id").alias("distinct_tracks"),
        )
        # Each credited artist counts once per event, names stripped (contract.split_artists).
        credited = F.array_distinct(
            F.filter(
                F.transform(F.split(F.col("artists"), ";"), lambda name: strip(name)),
                lambda name: name != "",
            )
        )
        artist_plays = (
            events.select("listen_date", "listen_hour", F.explode(credited).alias("artist"))
            .groupBy("listen_date", "listen_hour", "artist")
            .agg(F.count("*").alias("plays"))
        )
        artist_rank = Window.partitionBy("listen_date", "listen_hour").orderBy(
            F.desc("plays"), F.asc("artist")
        )
        top_artists = artist_plays.withColumn("_rank", F.row_number().over(artist_rank)).where(
            F.col("_rank") == 1
        )
        # Four small jobs whose time is mostly the driver's planning and scheduling: at once,
        # they overlap (pyspark gives each thread its own JVM thread).
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(DataFrame.collect, [genres, top_songs, hours, top_artists]))
        return _records(*results)
    finally:
        events.unpersist()


def _records(genres, top_songs, hours, top_artists) -> dict[str, dict]:
    songs_by_genre: dict[tuple, list] = defaultdict(list)
    for row in top_songs:
        songs_by_genre[(row.listen_date, row.genre)].append(
            (row.track_id, row.track_name, row.artists, row.plays)
        )
    artist_by_hour = {
        (row.listen_date, row.listen_hour): [(row.artist, row.plays)] for row in top_artists
    }
    days: dict[str, dict] = {}
    genre_counts: dict[str, list] = defaultdict(list)
    for row in genres:
        day = days.setdefault(row.listen_date, {"genres": [], "hours": []})
        day["genres"].append(
            contract.genre_record(
                row.listen_date,
                row.genre,
                row.listen_count,
                row.unique_listeners,
                row.total_listening_time_s,
                songs_by_genre[(row.listen_date, row.genre)],
            )
        )
        genre_counts[row.listen_date].append((row.genre, row.listen_count))
    for row in hours:
        day = days.setdefault(row.listen_date, {"genres": [], "hours": []})
        day["hours"].append(
            contract.hour_record(
                row.listen_date,
                row.listen_hour,
                row.plays,
                row.unique_listeners,
                row.distinct_tracks,
                artist_by_hour.get((row.listen_date, row.listen_hour), []),
            )
        )
    for date, day in days.items():
        day["genres"].sort(key=lambda r: r["genre"])
        day["hours"].sort(key=lambda r: r["hour"])
        day["top_genres"] = contract.top_genres_record(date, genre_counts[date])
    return days
