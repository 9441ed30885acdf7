"""`musicpipe kpis`' tables at 80 columns: nothing wider than the terminal, long names folded
(never cut with an ellipsis), the top songs in a table of their own."""

from __future__ import annotations

from rich.console import Console

from musicpipe import kpi_report
from musicpipe.contract import kpis as contract

DATE = "2026-11-01"
LONG_TRACK = "A Remarkably Long Song Title That Would Never Fit Beside The Numbers (Live)"
LONG_ARTISTS = "First Artist With A Long Name;Second Artist;Third Artist Featuring Someone"


def day_items() -> list[dict]:
    genres = [
        contract.genre_record(
            DATE,
            "progressive-death-metal",
            1234,
            99,
            222120,
            [("t1", LONG_TRACK, LONG_ARTISTS, 40), ("t2", "Short", "B", 30), ("t3", "X", "C", 7)],
        ),
        contract.genre_record(DATE, "pop", 80, 10, 14400, [("t4", "Pop Song", "D", 80)]),
    ]
    hours = [contract.hour_record(DATE, 7, 1314, 109, 500, [(LONG_ARTISTS.split(";")[0], 41)])]
    top = contract.top_genres_record(DATE, [(g["genre"], g["listen_count"]) for g in genres])
    return contract.day_items({"genres": genres, "hours": hours, "top_genres": top}, DATE)
    # fmt: skip


def rendered(tables) -> str:
    console = Console(width=80, record=True, color_system=None)
    for table in tables:
        console.print(table)
    return console.export_text()


def test_a_day_fits_80_columns_and_folds_long_names_whole():
    text = rendered(kpi_report.day_tables(day_items(), DATE))
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text, text  # folded, never cut
    # Every word of the long names is there: folded across lines, none left out.
    for word in (LONG_TRACK + " " + LONG_ARTISTS.replace(";", " ")).split():
        assert word in text, word
    assert "top songs by genre" in text


def test_a_genre_and_its_history_fit_80_columns_too():
    items = day_items()
    one = rendered(kpi_report.day_tables(items, DATE, genre="progressive-death-metal"))
    genres = [i for i in items if i["sk"].startswith("GENRE#")]
    history = rendered(
        [
            kpi_report.genres_table(genres, "by date", by_date=True),
            kpi_report.top_songs_table(genres, "top songs", by_date=True),
        ]
    )
    for text in (one, history):
        assert max(len(line) for line in text.splitlines()) <= 80, text
        assert "…" not in text, text
