"""The layout rules of docs/architecture.md: layers point down, no import circle, small files,
thin job scripts. The import rules live in `.importlinter` (import-linter, also run by
`make lint`); this file runs them and checks what they cannot see."""

from __future__ import annotations

import ast
import configparser
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

PACKAGE = REPO / "src" / "musicpipe"
JOB_SCRIPTS = sorted((REPO / "spark_jobs").glob("*.py"))
DAG_FILES = sorted((REPO / "airflow" / "dags").glob("*.py"))
# The parts of the package allowed to import the stack: the CLI and the pytest plugin on top,
# and the stack itself.
ABOVE_THE_STACK = {"cli", "stack", "testing"}
MAX_LINES = 500
MAX_SCRIPT_LINES = 120


def python_files() -> list[Path]:
    roots = ("src", "spark_jobs", "airflow", "bench", "tools", "tests", "docker")
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py") if p.is_file())


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_rule_names_every_part_below_the_cli():
    # A new package that is not listed would escape the forbidden contract unseen.
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    listed = set(config["importlinter:contract:stack-on-top"]["source_modules"].split())
    parts = {f"musicpipe.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE)])}
    assert listed == parts - {f"musicpipe.{name}" for name in ABOVE_THE_STACK}


@pytest.mark.parametrize("path", JOB_SCRIPTS + DAG_FILES, ids=lambda p: p.name)
def test_scripts_outside_the_package_do_not_import_the_stack(path: Path):
    # The job scripts run in Glue and the DAG on MWAA, where no local stack exists.
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in imported if m and m.startswith("musicpipe.stack")}


def test_no_python_file_is_over_500_lines():
    too_long = {
        str(p.relative_to(REPO)): n
        for p in python_files()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"split these by subject: {too_long}"


@pytest.mark.parametrize("path", JOB_SCRIPTS, ids=lambda p: p.name)
def test_job_scripts_only_wire_arguments_to_the_package(path: Path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines < MAX_SCRIPT_LINES, f"{path.name}: {lines} lines; its logic belongs in musicpipe"
