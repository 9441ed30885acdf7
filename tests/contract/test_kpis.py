"""docs/data-contract.md §4/§5: the KPI contract (musicpipe.contract.kpis).

Hand-made cases pin the rules (ties, rounding, artist credits, item shapes).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from musicpipe.contract import kpis

from ..conftest import REPO
from .kpi_cases import DAY, T0, event, plays, walk

# ------------------------------------------------------------------------------------------
# Numbers
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (Decimal("2.675"), 2, "2.68"),  # float 2.675 would round down: exactness matters
        (Decimal("0.125"), 2, "0.13"),  # banker's rounding would give 0.12
        (Decimal("125.125"), 2, "125.13"),
        (Decimal("0.03125"), 4, "0.0313"),
        (Decimal("-2.675"), 2, "-2.68"),  # half away from zero
        (270, 2, "270.00"),
        ("1.005", 2, "1.01"),
    ],
)
def test_round_half_up(value, places, expected):
    result = kpis.round_half_up(value, places)
    assert isinstance(result, Decimal)
    assert str(result) == expected


def test_round_half_up_refuses_floats():
    with pytest.raises(TypeError):
        kpis.round_half_up(2.675, 2)


@pytest.mark.parametrize(
    ("numerator", "denominator", "places", "expected"),
    [
        (180 * 3, 2, 2, "270.00"),
        (1000, 3, 2, "333.33"),
        (2000, 3, 2, "666.67"),
        (1001, 8, 2, "125.13"),  # 125.125: half up, not half even (125.12)
        (1, 32, 4, "0.0313"),  # 0.03125
        (3, 32, 4, "0.0938"),  # 0.09375
        (2, 3, 4, "0.6667"),
        (5, 5, 4, "1.0000"),
        (0, 7, 2, "0.00"),
        (10**40 + 5, 10, 0, str(10**39 + 1)),  # no precision limit
    ],
)
def test_ratio_half_up(numerator, denominator, places, expected):
    result = kpis.ratio_half_up(numerator, denominator, places)
    assert str(result) == expected
    if numerator < 10**20:  # agrees with plain Decimal arithmetic where that is exact enough
        assert result == kpis.round_half_up(Decimal(numerator) / Decimal(denominator), places)


def test_counts_refuse_floats():
    with pytest.raises(TypeError):
        kpis.genre_record(DAY, "rock", 2.0, 1, 360, [])
    with pytest.raises(TypeError):
        kpis.ratio_half_up(1.5, 2, 2)


@pytest.mark.parametrize(
    ("artists", "expected"),
    [
        ("Amy", ["Amy"]),
        ("Amy;Bob", ["Amy", "Bob"]),
        ("  Amy ; Bob ;", ["Amy", "Bob"]),
        ("Amy;;  ;Bob", ["Amy", "Bob"]),
        ("Tyler, The Creator;A$AP Rocky", ["Tyler, The Creator", "A$AP Rocky"]),
        ("", []),
        (" ; ", []),
    ],
)
def test_split_artists(artists, expected):
    assert kpis.split_artists(artists) == expected


# ------------------------------------------------------------------------------------------
# Records: ties and rounding
# ------------------------------------------------------------------------------------------


def test_top_songs_most_plays_then_track_id():
    # b 3 plays; a, c, d 2 plays each (only a and c fit: track_id order); e 1 play.
    events = (
        plays("d", 2) + plays("b", 3) + plays("c", 2) + plays("e", 1) + plays("a", 2)
    )  # fmt: skip
    [genre] = kpis.compute_day_kpis(DAY, events)["genres"]
    assert [(s["rank"], s["track_id"], s["plays"]) for s in genre["top_songs"]] == [
        (1, "b", 3),
        (2, "a", 2),
        (3, "c", 2),
    ]
    assert genre["top_songs"][0] == {
        "rank": 1,
        "track_id": "b",
        "track_name": "Song b",
        "artists": "Artist",
        "plays": 3,
    }


def test_genre_record_sorts_and_cuts_any_order():
    rows = [("d", "D", "x", 2), ("b", "B", "x", 3), ("c", "C", "x", 2), ("a", "A", "x", 2)]
    for seed in range(5):
        random.Random(seed).shuffle(rows)
        record = kpis.genre_record(DAY, "rock", 9, 4, 1620, rows)
        assert [s["track_id"] for s in record["top_songs"]] == ["b", "a", "c"]
    # Fewer than 3 tracks: all of them.
    record = kpis.genre_record(date(2026, 11, 1), "rock", 1, 1, 180, [("z", "Z", "x", 1)])
    assert record["date"] == DAY
    assert [s["rank"] for s in record["top_songs"]] == [1]


def test_genre_record_fields():
    record = kpis.genre_record(DAY, "jazz", 3, 2, 540, [("t", "T", "A;B", 3)])
    assert record == {
        "date": DAY,
        "genre": "jazz",
        "listen_count": 3,
        "unique_listeners": 2,
        "total_listening_time_s": 540,
        "avg_listening_time_per_user_s": Decimal("270.00"),
        "top_songs": [
            {"rank": 1, "track_id": "t", "track_name": "T", "artists": "A;B", "plays": 3}
        ],
    }
    assert str(record["avg_listening_time_per_user_s"]) == "270.00"


def test_average_rounds_half_up_from_events():
    # 8 listeners, 1001 s in all: 125.125 -> 125.13 (banker's rounding would say 125.12).
    events = [event(u, f"t{u}", T0 + timedelta(seconds=u), duration=125) for u in range(7)]
    events.append(event(7, "t7", T0 + timedelta(seconds=7), duration=126))
    [genre] = kpis.compute_day_kpis(DAY, events)["genres"]
    assert genre["total_listening_time_s"] == 1001
    assert str(genre["avg_listening_time_per_user_s"]) == "125.13"
    # 3 listeners, 1000 s: 333.33; one listener twice, 180 s each: 180.00 (not 180).
    events = [
        event(u, "t", T0 + timedelta(seconds=u), duration=d) for u, d in enumerate((333, 333, 334))
    ]
    assert (
        str(kpis.compute_day_kpis(DAY, events)["genres"][0]["avg_listening_time_per_user_s"])
        == "333.33"
    )


def test_top_genres_by_count_then_genre():
    counts = {"rock": 10, "pop": 4, "jazz": 4, "blues": 4, "zed": 2, "emo": 2, "acid": 2}
    expected = [
        (1, "rock", 10),
        (2, "blues", 4),
        (3, "jazz", 4),
        (4, "pop", 4),
        (5, "acid", 2),  # emo and zed tie with acid and are cut by name
    ]
    record = kpis.top_genres_record(DAY, list(counts.items()))
    assert [(g["rank"], g["genre"], g["listen_count"]) for g in record["genres"]] == expected
    assert record["date"] == DAY

    events, user = [], 0
    for genre, n in counts.items():
        events += plays("t-" + genre, n, genre=genre, first_user=user)
        user += n
    day = kpis.compute_day_kpis(DAY, events)
    assert [
        (g["rank"], g["genre"], g["listen_count"]) for g in day["top_genres"]["genres"]
    ] == expected
    assert [g["genre"] for g in day["genres"]] == sorted(counts)


def test_hours_top_artist_multi_credit_and_ties():
    hour = T0.replace(hour=10)
    events = [
        # 10h: Zed on 3 events, Amy on 2, Bob on 2 ("Bob ; Bob" credits Bob once).
        event(1, "t1", hour, artists="Zed ; Amy"),
        event(2, "t2", hour, artists="Amy;Zed"),
        event(3, "t3", hour, artists="Bob"),
        event(4, "t4", hour, artists="Bob ; Bob"),
        event(5, "t5", hour, artists=" Zed"),
        # 13h: Zed and Amy both on 2 events: the name decides.
        event(1, "t1", hour.replace(hour=13), artists="Zed;Amy"),
        event(2, "t1", hour.replace(hour=13, minute=5), artists="Zed;Amy"),
        # 23h: no credited artist at all.
        event(1, "t6", hour.replace(hour=23), artists=" ; "),
    ]
    hours = kpis.compute_day_kpis(DAY, events)["hours"]
    assert [h["hour"] for h in hours] == [10, 13, 23]  # only hours with events
    assert hours[0] == {
        "date": DAY,
        "hour": 10,
        "plays": 5,
        "unique_listeners": 5,
        "track_diversity_index": Decimal("1.0000"),
        "top_artist": "Zed",
        "top_artist_plays": 3,
    }
    assert (hours[1]["top_artist"], hours[1]["top_artist_plays"]) == ("Amy", 2)
    assert str(hours[1]["track_diversity_index"]) == "0.5000"
    assert (hours[2]["top_artist"], hours[2]["top_artist_plays"]) == ("", 0)


def test_hour_record_diversity_rounds_half_up():
    record = kpis.hour_record(DAY, 7, 32, 30, 1, [("B", 5), ("A", 5), ("C", 4)])
    assert str(record["track_diversity_index"]) == "0.0313"  # 0.03125
    assert (record["top_artist"], record["top_artist_plays"]) == ("A", 5)
    assert str(kpis.hour_record(DAY, 0, 3, 1, 2, [])["track_diversity_index"]) == "0.6667"
    with pytest.raises(ValueError):
        kpis.hour_record(DAY, 24, 1, 1, 1, [])


def test_compute_kpis_groups_by_utc_date():
    events = [
        event(1, "a", datetime(2026, 11, 1, 23, 59, 59, 999999)),
        event(1, "a", datetime(2026, 11, 2, 0, 0, 0)),
        event(2, "b", datetime(2026, 11, 2, 0, 30, 0), genre="pop"),
    ]
    result = kpis.compute_kpis(events)
    assert list(result) == ["2026-11-01", "2026-11-02"]
    assert [h["hour"] for h in result["2026-11-01"]["hours"]] == [23]
    assert [g["genre"] for g in result["2026-11-02"]["genres"]] == ["pop", "rock"]
    with pytest.raises(ValueError):
        kpis.compute_day_kpis("2026-11-01", events)


def test_empty_day():
    assert kpis.compute_day_kpis(DAY, []) == {
        "genres": [],
        "top_genres": {"date": DAY, "genres": []},
        "hours": [],
    }
    assert kpis.compute_kpis([]) == {}


# ------------------------------------------------------------------------------------------
# DynamoDB items and staging JSON
# ------------------------------------------------------------------------------------------

GENRE_ITEM_KEYS = {
    "pk", "sk", "gsi1pk", "gsi1sk", "date", "genre", "listen_count", "unique_listeners",
    "total_listening_time_s", "avg_listening_time_per_user_s", "top_songs", "updated_at",
}  # fmt: skip
TOP_GENRES_ITEM_KEYS = {"pk", "sk", "date", "genres", "updated_at"}
HOUR_ITEM_KEYS = {
    "pk", "sk", "date", "hour", "plays", "unique_listeners", "track_diversity_index",
    "top_artist", "top_artist_plays", "updated_at",
}  # fmt: skip


def sample_day():
    events = plays("b", 3, genre="hip-hop", hour=5, artists="Amy;Bob") + plays(
        "a", 2, genre="rock", hour=17, artists="Zed"
    )
    return kpis.compute_day_kpis(DAY, events)


def test_day_items_keys_and_types():
    updated_at = "2026-11-02T00:05:00Z"
    items = kpis.day_items(sample_day(), updated_at)
    assert [item["sk"] for item in items] == [
        "GENRE#hip-hop",
        "GENRE#rock",
        "TOP_GENRES",
        "HOUR#05",
        "HOUR#17",
    ]
    assert all(item["pk"] == "DATE#" + DAY and item["date"] == DAY for item in items)
    assert all(item["updated_at"] == updated_at for item in items)
    genre, top, hour = items[0], items[2], items[3]
    assert set(genre) == GENRE_ITEM_KEYS
    assert (genre["gsi1pk"], genre["gsi1sk"]) == ("GENRE#hip-hop", "DATE#" + DAY)
    assert set(top) == TOP_GENRES_ITEM_KEYS
    assert top["genres"] == [
        {"rank": 1, "genre": "hip-hop", "listen_count": 3},
        {"rank": 2, "genre": "rock", "listen_count": 2},
    ]
    assert set(hour) == HOUR_ITEM_KEYS
    assert hour["hour"] == 5 and type(hour["hour"]) is int
    for key in ("listen_count", "unique_listeners", "total_listening_time_s"):
        assert type(genre[key]) is int
    assert type(genre["avg_listening_time_per_user_s"]) is Decimal
    assert type(hour["track_diversity_index"]) is Decimal
    for item in items:
        assert not any(isinstance(v, float) for v in walk(item))
        assert all(type(v) in (str, int, Decimal) for v in walk(item))


def test_items_do_not_share_lists_with_records():
    day = sample_day()
    item = kpis.genre_item(day["genres"][0], "t")
    item["top_songs"][0]["plays"] = 99
    assert day["genres"][0]["top_songs"][0]["plays"] == 3


def test_updated_at_datetime_is_iso():
    moment = datetime(2026, 11, 2, 0, 5, tzinfo=UTC)
    item = kpis.hour_item(sample_day()["hours"][0], moment)
    assert item["updated_at"] == "2026-11-02T00:05:00+00:00"


def test_item_json_round_trip():
    items = kpis.day_items(sample_day(), "2026-11-02T00:05:00Z")
    odd = {
        "pk": "DATE#2026-11-01",
        "sk": 'GENRE#K-pop "live", \u2028 naïve',
        "a": Decimal("12.50"),
        "b": Decimal("5"),
        "c": Decimal("1E+2"),
        "d": Decimal("0.0000"),
        "e": Decimal("-0.0313"),
        "f": 10**30,
        "g": [{"rank": 1, "x": Decimal("333.33")}],
        "h": True,
        "i": None,
    }
    for item in [*items, odd]:
        line = kpis.item_to_json(item)
        assert "\n" not in line and "\u2028" not in line
        back = kpis.item_from_json(line)
        assert back == item
        # Same types and the same digits, not merely equal values (12.50 vs 12.5).
        assert [(type(v), str(v)) for v in walk(back)] == [(type(v), str(v)) for v in walk(item)]
    assert '"a":12.50' in kpis.item_to_json(odd)
    assert json.loads(kpis.item_to_json(odd))["sk"] == odd["sk"]  # plain JSON readers too


def test_item_json_refuses_floats_and_nan():
    with pytest.raises(TypeError):
        kpis.item_to_json({"pk": "x", "v": 1.5})
    with pytest.raises(ValueError):
        kpis.item_to_json({"pk": "x", "v": Decimal("NaN")})


# ------------------------------------------------------------------------------------------
# The contract module runs on Glue's Python 3.9
# ------------------------------------------------------------------------------------------


def _python39() -> str | None:
    found = shutil.which("python3.9")
    candidates = [os.path.expanduser("~/.pyenv/versions/3.9.18/bin/python3.9")]
    candidates += [found] if found else []
    for candidate in candidates:
        if candidate and os.path.exists(candidate):
            probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                   capture_output=True, text=True)  # fmt: skip
            if probe.returncode == 0 and probe.stdout.strip() == "(3, 9)":
                return candidate
    return None


@pytest.mark.skipif(_python39() is None, reason="no Python 3.9 interpreter here")
def test_kpis_module_runs_on_python39():
    script = (
        "import importlib.util, datetime as dt\n"
        "spec = importlib.util.spec_from_file_location('k', {!r})\n"
        "k = importlib.util.module_from_spec(spec); spec.loader.exec_module(k)\n"
        "e = dict(user_id='1', track_id='t', timestamp=dt.datetime(2026, 11, 1, 5),\n"
        "         genre='g', track_name='n', artists='A ; B', listen_duration=180)\n"
        "day = k.compute_kpis([e])['2026-11-01']\n"
        "print(k.item_to_json(k.day_items(day, 'now')[-1]))\n"
    ).format(str(REPO / "src/musicpipe/contract/kpis.py"))
    result = subprocess.run([_python39(), "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert '"top_artist":"A"' in result.stdout
