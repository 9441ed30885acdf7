"""The S3 layout has one home, musicpipe.contract.layout: its values, the helpers that build
keys from it, and a scan of the source for a second copy of any of it."""

from __future__ import annotations

import ast
from pathlib import Path

from musicpipe import manifest
from musicpipe.contract import layout
from musicpipe.contract.layout import (
    ARCHIVE_PREFIX,
    EVENTS_PREFIX,
    KPI_PARQUET_PREFIX,
    PINNED_PREFIX,
    QUARANTINE_FILES_PREFIX,
    REASON_SUFFIX,
    REJECTED_ROWS_PREFIX,
    REPORT_KEY,
    SONGS_KEY,
    STAGING_PREFIX,
    STREAMS_PREFIX,
    USERS_KEY,
    pinned_key,
    pinned_prefix,
    rejected_rows_key,
    report_key,
    staging_prefix,
)

from ..conftest import REPO

LAYOUT_FILE = REPO / "src" / "musicpipe" / "contract" / "layout.py"
SCANNED = (REPO / "src", REPO / "spark_jobs", REPO / "airflow" / "dags")
LAYOUT = {
    name: value for name, value in vars(layout).items() if name.isupper() and isinstance(value, str)
}
# What a copy of a layout value starts with (REPORT_KEY up to its placeholder).
PREFIXES = sorted({value.split("{", 1)[0] for value in LAYOUT.values()} - {REASON_SUFFIX})


def test_the_layout_values():
    assert LAYOUT == {
        "STREAMS_PREFIX": "streams/",
        "SONGS_KEY": "songs/songs.csv",
        "USERS_KEY": "users/users.csv",
        "ARCHIVE_PREFIX": "archive/streams/",
        "REPORT_KEY": "validation_reports/{batch_id}/report.json",
        "EVENTS_PREFIX": "processed/streams/",
        "STAGING_PREFIX": "kpis/staging/",
        "KPI_PARQUET_PREFIX": "kpis/",
        "PINNED_PREFIX": "pinned/",
        "QUARANTINE_FILES_PREFIX": "quarantine/files/",
        "REASON_SUFFIX": ".reason.json",
        "REJECTED_ROWS_PREFIX": "quarantine/rows/",
    }
    assert SONGS_KEY.startswith("songs/") and USERS_KEY.startswith("users/")
    assert ARCHIVE_PREFIX.endswith(STREAMS_PREFIX) and EVENTS_PREFIX.endswith(STREAMS_PREFIX)
    assert STAGING_PREFIX.startswith(KPI_PARQUET_PREFIX)
    assert QUARANTINE_FILES_PREFIX != REJECTED_ROWS_PREFIX and REPORT_KEY
    assert report_key("b1") == "validation_reports/b1/report.json"
    assert staging_prefix("b1") == "kpis/staging/b1/"
    assert rejected_rows_key("b1", "streams1") == "quarantine/rows/b1/streams1.csv"
    assert pinned_prefix("b1") == "pinned/b1/"
    # A pinned copy keeps the raw key below the batch's folder, so its source name is the same.
    assert pinned_key("b1", "streams/a/b.csv") == "pinned/b1/streams/a/b.csv"
    assert pinned_key("b1", SONGS_KEY).startswith(PINNED_PREFIX)


def test_the_manifest_re_exports_the_same_objects():
    assert manifest.STREAMS_PREFIX is STREAMS_PREFIX
    assert manifest.SONGS_KEY is SONGS_KEY and manifest.USERS_KEY is USERS_KEY


def _is_docstring(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    if not isinstance(parent, ast.Expr):
        return False
    holder = parents.get(parent)
    body = getattr(holder, "body", None)
    return isinstance(body, list) and bool(body) and body[0] is parent


def copies(path: Path) -> list[str]:
    """Module-level definitions of a layout name, and string literals (outside docstrings)
    that hold a layout value or start with one, in one source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name) and node.id in LAYOUT:
                    found.append(f"{path}:{stmt.lineno}: defines {node.id}")
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if _is_docstring(node, parents):
            continue
        text = node.value
        if text in LAYOUT.values() or text.endswith(REASON_SUFFIX):
            found.append(f"{path}:{node.lineno}: the literal {text!r}")
        elif any(text.startswith(prefix) for prefix in PREFIXES):
            found.append(f"{path}:{node.lineno}: the literal {text!r} (a layout prefix)")
    return found


def source_files() -> list[Path]:
    files = [p for root in SCANNED for p in sorted(root.rglob("*.py"))]
    return [p for p in files if p != LAYOUT_FILE and ".venv" not in p.parts]


def test_no_second_copy_of_the_layout_in_the_source():
    files = source_files()
    assert REPO / "spark_jobs" / "music_streaming_validation.py" in files
    assert REPO / "airflow" / "dags" / "music_streaming_realtime_pipeline.py" in files
    assert REPO / "src" / "musicpipe" / "manifest.py" in files
    problems = [problem for path in files for problem in copies(path)]
    assert problems == []


def test_the_scan_finds_copies(tmp_path):
    """The scan does fail: a module-level copy by name, one by value, a prefix inside a
    function and an f-string all count; a docstring that names the layout does not."""
    sample = tmp_path / "copies.py"
    sample.write_text(
        '"""Files under streams/ are read."""\n'
        "SONGS_KEY = 'x'\n"
        "OTHER = 'users/users.csv'\n"
        "def f(batch):\n"
        "    '''quarantine/files/ is where they go.'''\n"
        "    return 'archive/streams/2024/x.csv', f'kpis/staging/{batch}/'\n"
    )
    found = copies(sample)
    assert len(found) == 4, found
    assert any("defines SONGS_KEY" in p for p in found)
    assert any("'users/users.csv'" in p for p in found)
    assert any("archive/streams/2024" in p for p in found)
    assert any("'kpis/staging/'" in p for p in found)
