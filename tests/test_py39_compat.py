"""What the Glue Python shell job runs must work on Python 3.9 (docs/architecture.md, the promise).

No 3.9 interpreter is at hand, so four static checks stand in for one:
- vermin, targeting 3.9, finds no newer syntax, module, function or keyword argument;
- every file parses with the 3.9 grammar (``ast.parse(feature_version=(3, 9))``);
- every file has ``from __future__ import annotations`` (so ``str | None`` and ``list[str]``
  in annotations are never evaluated), and no ``X | Y`` union reaches isinstance/issubclass at
  run time (vermin misses both);
- imports stay within the standard library, boto3/botocore, ``awsglue`` (the script) and the
  parts of the package it imports from --extra-py-files (``musicpipe.contract``,
  ``musicpipe.pipeline``, ``musicpipe.validation``, ``musicpipe.aws.s3``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

VERMIN = Path(sys.executable).with_name("vermin")
TARGETS = (
    REPO / "src" / "musicpipe" / "contract",
    REPO / "src" / "musicpipe" / "pipeline",
    REPO / "src" / "musicpipe" / "aws" / "s3.py",
    REPO / "src" / "musicpipe" / "validation",
    REPO / "spark_jobs" / "music_streaming_validation.py",
)
SHIPPED_PACKAGES = (
    "musicpipe.contract",
    "musicpipe.pipeline",
    "musicpipe.validation",
    "musicpipe.aws.s3",
)
THIRD_PARTY_ALLOWED = {"boto3", "botocore", "awsglue"}


def python_files(targets=TARGETS) -> list[Path]:
    files: list[Path] = []
    for target in targets:
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return files


def vermin(*paths: Path) -> subprocess.CompletedProcess:
    if not VERMIN.exists():
        pytest.fail(f"{VERMIN} is missing: install the dev extras (make setup)")
    return subprocess.run(
        [
            str(VERMIN),
            "-t=3.9-",  # everything must run on 3.9 (and nothing is asked of older versions)
            "--violations",
            "--no-tips",
            "--no-eval-annotations",  # annotations are strings under `from __future__ ...`
            "--no-make-paths-absolute",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def has_annotations(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
            if node.returns or any(a is not None and a.annotation for a in every):
                return True
    return False


def py39_problems(path: Path) -> list[str]:
    """What vermin cannot see: grammar, the __future__ import, runtime unions, imports."""
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path), feature_version=(3, 9))
    except SyntaxError as exc:
        return [f"{path}:{exc.lineno}: not Python 3.9 syntax: {exc.msg}"]
    problems = []
    futures = {
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == "__future__"
        for alias in node.names
    }
    if has_annotations(tree) and "annotations" not in futures:
        problems.append(f"{path}: has annotations but lacks `from __future__ import annotations`")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("isinstance", "issubclass")
            and len(node.args) == 2
            and isinstance(node.args[1], ast.BinOp)
            and isinstance(node.args[1].op, ast.BitOr)
        ):
            problems.append(f"{path}:{node.lineno}: X | Y union at run time (3.10+)")
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        for module in modules:
            top = module.split(".")[0]
            if top == "musicpipe":
                if not module.startswith(SHIPPED_PACKAGES):
                    problems.append(
                        f"{path}:{node.lineno}: imports {module}, which the job does not ship"
                    )
            elif top not in sys.stdlib_module_names and top not in THIRD_PARTY_ALLOWED:
                problems.append(f"{path}:{node.lineno}: imports {module} (not stdlib/boto3)")
    return problems


def test_job_code_is_python39_compatible_per_vermin():
    result = vermin(*TARGETS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_job_code_passes_the_checks_vermin_misses():
    files = python_files()
    assert REPO / "src/musicpipe/contract/validation.py" in files
    assert REPO / "src/musicpipe/pipeline/quarantine.py" in files
    problems = [problem for path in files for problem in py39_problems(path)]
    assert problems == []


SCRATCH_VIOLATIONS = {
    "match": "def f(x):\n    match x:\n        case 1:\n            return 2\n",
    "zip_strict": "PAIRS = list(zip([1], [2], strict=True))\n",
    "tomllib": "import tomllib\n",
    # (str.removeprefix is 3.9 itself: fine.) Newer members and keyword arguments:
    "pairwise": "from itertools import pairwise\n",
    "bit_count": "N = (5).bit_count()\n",
    "slots": "@dataclass(slots=True)\nclass Slotted:\n    x: int = 0\n",
    "runtime_union": "OK = isinstance(1, int | str)\n",
}


def test_the_checks_catch_newer_python(tmp_path):
    """The checks do fail: scratch copies of the job code, each with one 3.10+ feature added,
    are all flagged; the unchanged copy is not."""
    # A module that imports dataclass: vermin flags dataclass(slots=True) only then.
    original = (REPO / "src/musicpipe/contract/reading.py").read_text()
    (tmp_path / "clean.py").write_text(original)
    for name, snippet in SCRATCH_VIOLATIONS.items():
        (tmp_path / f"{name}.py").write_text(original + "\n\n" + snippet)
    result = vermin(tmp_path)
    flagged = {
        path.stem
        for path in tmp_path.glob("*.py")
        if f"{path}\n" in result.stdout or f"{path.name}\n" in result.stdout or py39_problems(path)
    }
    assert result.returncode != 0
    assert flagged == set(SCRATCH_VIOLATIONS), result.stdout


def test_annotation_and_runtime_union_problems_are_caught(tmp_path):
    bare = tmp_path / "bare.py"
    bare.write_text("def f(x: str | None) -> None:\n    return None\n")
    assert any("__future__" in p for p in py39_problems(bare))
    union = tmp_path / "union.py"
    union.write_text("from __future__ import annotations\nOK = isinstance(1, int | str)\n")
    assert any("union" in p for p in py39_problems(union))
    manifest = tmp_path / "imports_manifest.py"
    manifest.write_text("from __future__ import annotations\nfrom musicpipe.manifest import X\n")
    assert any("does not ship" in p for p in py39_problems(manifest))
