"""Installs into a shared cache folder, made once and kept: the notebook extra's environment
(glue.notebook) and a Glue run's ``--additional-python-modules`` (glue.python_modules).

A folder is built beside its final place (``<name>.partial``) and renamed into it at the end,
with ``installed.json`` inside, so an install that was interrupted or failed is never taken for
a finished one; two first uses at once install once (the second waits, then takes it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from musicpipe.processes import one_at_a_time

MARK = "installed.json"


class InstallError(RuntimeError):
    """An install step failed; the message holds the installer's own last lines."""


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "musicpipe"


def installed(target: Path) -> bool:
    return (target / MARK).is_file()


def install_once(
    target: Path,
    build: Callable[[Path], None],
    on_wait: Callable[[], None],
    record: dict,
) -> Path:
    """``target``, built first by ``build(partial_folder)`` unless it is already complete;
    ``record`` is written into its mark."""
    if installed(target):
        return target
    with one_at_a_time(target.parent, on_wait):
        if not installed(target):
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            try:
                build(partial)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            partial.mkdir(parents=True, exist_ok=True)
            (partial / MARK).write_text(json.dumps(record) + "\n")
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
    return target


def run_steps(steps: list[list[str]], what: str) -> None:
    """Each command in turn; the first that fails raises InstallError with its last lines."""
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise InstallError(
                f"installing {what} failed ({' '.join(step[:3])} … exited {done.returncode}); "
                f"nothing was kept, run it again once this is fixed:\n{tail}"
            )


def uv() -> str | None:
    """The uv beside this Python (the project's venv has it), else on PATH."""
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.is_file() else shutil.which("uv")


def venv_steps(target: Path, packages: tuple[str, ...] | list[str]) -> list[list[str]]:
    """The commands that make a virtual environment at ``target`` from this Python with
    ``packages`` installed: by uv when there is one, else by venv and pip."""
    python = str(target / "bin" / "python")
    if tool := uv():
        return [
            [tool, "venv", "--quiet", "--python", sys.executable, str(target)],
            [tool, "pip", "install", "--quiet", "--python", python, *packages],
        ]
    return [
        [sys.executable, "-m", "venv", str(target)],
        [python, "-m", "pip", "install", "--quiet", *packages],
    ]
