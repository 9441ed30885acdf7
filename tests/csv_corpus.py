"""A corpus of hostile but legal CSV stream files (RFC 4180), for holding the three readers
(validation's Python csv, the ETL's Spark, the DuckDB oracle) to the same records.

Every file references ids of the committed sample songs and users, so its good rows are
accepted; each file also says how many rows it has and which it rejects, as a human counts.
"""

from __future__ import annotations

import csv
from pathlib import Path

from musicpipe.contract.rules import MAX_FIELD_CHARS

from .conftest import SAMPLES

BOM = "\ufeff"
BIG = 200 * 1024  # the 200 KB cell


def sample_ids() -> tuple[list[str], list[str]]:
    """A few track ids and user ids that the sample songs and users hold."""
    with (SAMPLES / "songs.csv").open(newline="") as f:
        tracks = [row["track_id"] for row in csv.DictReader(f)][:40]
    with (SAMPLES / "users.csv").open(newline="") as f:
        # Ids of three digits or more, so that a line break can go inside one.
        users = [row["user_id"] for row in csv.DictReader(f) if len(row["user_id"]) >= 3][:40]
    return tracks, users


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _line(cells: list[str], quote_all: bool = True) -> str:
    return ",".join(_quote(c) if quote_all else c for c in cells)


def _time(i: int) -> str:
    return f"2026-11-01 {i % 24:02d}:{i % 60:02d}:{(7 * i) % 60:02d}"


def write_corpus(out: Path) -> dict[str, tuple[Path, int, dict[str, int]]]:
    """Write the corpus to ``out``; return name -> (path, data rows, rejected rows by reason)."""
    tracks, users = sample_ids()
    files: dict[str, tuple[Path, int, dict[str, int]]] = {}

    def write(name: str, text: str, rows: int, **rejected: int) -> None:
        path = out / name
        path.write_bytes(text.encode("utf-8"))
        files[name] = (path, rows, rejected)

    def good(i: int) -> tuple[str, str, str]:
        return users[i % len(users)], tracks[i % len(tracks)], _time(i)

    # The file: 100 rows, 50 with a quoted LF and a comma in an extra column.
    lines = ["user_id,note,track_id,listen_time"]
    for i in range(100):
        u, t, ts = good(i)
        note = "line one, i\nline two" if i % 2 else "plain"
        lines.append(_line([u, note, t, ts]))
    write("quoted_mid.csv", "\n".join(lines) + "\n", 100)

    # The same with CRLF records and CRLF inside the quotes.
    lines = ["user_id,note,track_id,listen_time"]
    for i in range(60):
        u, t, ts = good(i)
        lines.append(_line([u, "one\r\ntwo, three\r\n" if i % 3 else "", t, ts]))
    write("quoted_crlf.csv", "\r\n".join(lines) + "\r\n", 60)

    # A line break (LF, then CRLF) in every column in turn, key columns and listen_time
    # included: around a value (stripped away: accepted) and inside it (the value changes).
    lines = ["user_id,track_id,listen_time,note"]
    rows = 0
    for brk in ("\n", "\r\n"):
        for col in range(4):
            for inside in (False, True):
                u, t, ts = good(rows)
                cells = [u, t, ts, "n"]
                value = cells[col]
                cells[col] = value[:1] + brk + value[1:] if inside else brk + value + brk
                lines.append(_line(cells))
                rows += 1
    write(
        "breaks_every_column.csv",
        "\n".join(lines) + "\n",
        rows,
        unknown_user=2,
        unknown_track=2,
        bad_listen_time=2,
    )

    # Separators and doubled quotes inside quoted fields, in every column.
    u, t, ts = good(3)
    text = "\n".join(
        [
            "listen_time,user_id,track_id,comment",
            _line([ts, u, t, 'she said "hi", then "bye"']),
            _line([ts, u + ",", t, ","]),  # a separator in a key: unknown user
            _line([ts, u, '"' + t + '"', '""']),  # quotes in a key: unknown track
            _line([ts + ",", u, t, "x"]),  # a separator in listen_time: bad time
            _line([_time(4), u, t, '"a", "b", "c"']),
            ",".join([_time(5), u, t, _quote('x,"y"')]),  # quoting only where needed
        ]
    )
    write(
        "separators_quotes.csv", text + "\n", 6, unknown_user=1, unknown_track=1, bad_listen_time=1
    )

    # Cells over the size limit: the 200 KB cell in row 52 of a 100-row file, one
    # in a key column, and one exactly at the limit (accepted).
    lines = ["user_id,track_id,listen_time,note"]
    for i in range(100):
        u, t, ts = good(i + 7)
        note = "x" * BIG if i == 51 else "fine"
        if i == 10:
            u = "9" * BIG
        if i == 20:
            note = "y" * MAX_FIELD_CHARS
        if i == 30:
            note = "line\n" * (MAX_FIELD_CHARS // 5 + 1)  # over the limit with line breaks
        lines.append(",".join([u, t, ts, _quote(note)]))
    write("big_cells.csv", "\n".join(lines) + "\n", 100, field_too_large=3)

    # BOM, CRLF, quoted header names, quoted CRLF in the last column, no final line break.
    lines = [BOM + '"user_id","track_id","listen_time","tag"']
    for i in range(20):
        u, t, ts = good(i + 11)
        lines.append(_line([u, t, ts, "a\r\nb" if i % 2 else ""]))
    write("bom_crlf.csv", "\r\n".join(lines), 20)

    # Empty quoted fields: an empty key, an empty time, all empty.
    u, t, ts = good(5)
    text = "\n".join(
        [
            "user_id,track_id,listen_time,extra",
            _line(["", t, ts, ""]),
            _line([u, "", ts, ""]),
            _line([u, t, "", ""]),
            _line(["", "", "", ""]),
            _line([u, t, ts, ""]),
            ",".join([u, t, ts, ""]),
            *(",".join([*good(i), '""']) for i in range(30, 33)),  # under the threshold
        ]
    )
    write("empty_quoted.csv", text + "\n", 9, missing_key=3, bad_listen_time=1)

    # CRLF records, LF line breaks inside quoted fields (key columns and listen_time too).
    lines = ["user_id,track_id,listen_time,note"]
    for i in range(8):
        cells = list(good(i + 21)) + ["x"]
        col = i % 4
        cells[col] = cells[col] + "\n" if i < 4 else cells[col][:1] + "\n" + cells[col][1:]
        lines.append(_line(cells))
    write(
        "lf_inside_crlf.csv",
        "\r\n".join(lines) + "\r\n",
        8,
        unknown_user=1,
        unknown_track=1,
        bad_listen_time=1,
    )

    # Blank lines before the header and between records are not records.
    u, t, ts = good(8)
    text = f"\n\nuser_id,track_id,listen_time\n\n{u},{t},{ts}\n\n\n{u},{t},{_time(9)}\n\n"
    write("blank_lines.csv", text, 2)
    return files


def write_mixed_endings(out: Path) -> list[Path]:
    """Files whose records end with LF in some places and CRLF in others (outside quotes):
    Spark's multi-line reader takes the first line's ending for the whole file, so the
    validation job refuses them."""
    tracks, users = sample_ids()
    paths = []
    for name, first, other in (
        ("mixed_crlf_first.csv", "\r\n", "\n"),
        ("mixed_lf_first.csv", "\n", "\r\n"),
    ):
        lines = [f"user_id,track_id,listen_time,note{first}"]
        for i in range(6):
            u, t = users[i], tracks[i]
            lines.append(
                f"{u},{t},{_time(i)},{_quote('a' + other + 'b')}" + (other if i % 2 else first)
            )
        path = out / name
        path.write_bytes("".join(lines).encode())
        paths.append(path)
    return paths
