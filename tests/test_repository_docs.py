"""A clone of the repository alone is complete: no file points outside it, and every Markdown
link reaches a file and heading that exist.

Links are checked offline: relative targets must exist in the checkout, ``#anchors`` must match
a heading of the target file by GitHub's slug rules (or an explicit ``id``/``name``), and
http(s) and mailto links are not fetched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parent.parent

# Built here, so this file does not contain what it looks for.
FORBIDDEN = ("../" + "shared", "SPEC" + ".md", "DESIGN" + ".md", "SPEC" + " §")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [REPO / name for name in out.decode().split("\0") if name]


def test_no_file_points_outside_the_repository():
    found = []
    for path in tracked_files():
        if not path.is_file():
            continue  # deleted in the work tree, not yet committed
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            for needle in FORBIDDEN:
                if needle in line:
                    found.append(f"{path.relative_to(REPO)}:{number}: {needle!r}")
    assert not found, "references to files outside the repository:\n" + "\n".join(found)


# -- Markdown ------------------------------------------------------------------------------

FENCE = re.compile(r"^\s{0,3}(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); text may hold one level of [brackets].
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+[^)]*)?\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ANCHOR = re.compile(r"""<a\s[^>]*(?:name|id)\s*=\s*["']([^"']+)["']""", re.I)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def _prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lowercased, without punctuation other than
    '-' and '_', spaces as '-'."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text stays
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def links(path: Path):
    """(line number, target) of every link in a Markdown file, code excluded."""
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        line = INLINE_CODE.sub("", line)
        for match in INLINE_LINK.finditer(line):
            yield number, match.group(1).strip("<>")
        match = REFERENCE_DEF.match(line)
        if match:
            yield number, match.group(1).strip("<>")


def broken_link(source: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``source``) does not resolve, or None."""
    if not target or EXTERNAL.match(target):
        return None
    file_part, _, anchor = target.partition("#")
    if file_part.startswith("/"):
        resolved = REPO / unquote(file_part).lstrip("/")
    elif file_part:
        resolved = (source.parent / unquote(file_part)).resolve()
    else:
        resolved = source
    try:
        resolved.relative_to(REPO)
    except ValueError:
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    if anchor:
        if resolved.suffix.lower() != ".md":
            return None  # line anchors of source files (#L10) are GitHub's, not the file's
        if unquote(anchor).lower() not in anchors(resolved):
            return f"no heading #{anchor} in {resolved.relative_to(REPO)}"
    return None


def markdown_files() -> list[Path]:
    return [p for p in tracked_files() if p.suffix.lower() == ".md" and p.is_file()]


def test_every_markdown_link_resolves():
    files = markdown_files()
    assert REPO / "README.md" in files
    problems = []
    for path in files:
        for number, target in links(path):
            why = broken_link(path, target)
            if why:
                problems.append(f"{path.relative_to(REPO)}:{number}: ({target}) {why}")
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_link_checker_sees_broken_links(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    doc = tmp_path / "doc.md"
    other = tmp_path / "other.md"
    other.write_text("# Title\n\n## 6.4 Failures and the DAG's branches\n\n## Title\n")
    doc.write_text(
        "[ok](other.md#64-failures-and-the-dags-branches) [dup](other.md#title-1)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [self](#top)\n"
        "`[in code](missing-too.md)`\n```\n[fenced](missing-three.md)\n```\n"
        "[web](https://example.invalid/x)\n\n# Top\n"
    )
    anchors.cache_clear()
    try:
        problems = {t: broken_link(doc, t) for _, t in links(doc)}
    finally:
        anchors.cache_clear()
    assert problems == {
        "other.md#64-failures-and-the-dags-branches": None,
        "other.md#title-1": None,
        "missing.md": "no such file",
        "other.md#nope": "no heading #nope in other.md",
        "#top": None,
        "https://example.invalid/x": None,
    }


def test_github_slugs():
    assert github_slug("1. Inputs") == "1-inputs"
    assert github_slug("6.4 Failures and the DAG's branches") == "64-failures-and-the-dags-branches"
    assert github_slug("The `glue` image — *why*") == "the-glue-image--why"
    assert github_slug("[docs](x.md) and more") == "docs-and-more"
