"""Runs that wait for a debugger (``musicpipe job run NAME --debug``).

A run started with the argument ``--musicpipe-debug PORT`` has its script started under
debugpy, listening on 127.0.0.1:PORT (0: a free port) and waiting for a client of the Debug
Adapter Protocol (VS Code, PyCharm, any DAP client) before its first line runs. The rest of
the run is as ever: the same API, environment, Spark wiring, logs and timeout (the wait
counts). Glue itself ignores the argument; the script gets it in its argv, where
getResolvedOptions ignores it too.

The script runs from a folder that stays the same for the job (``<glue state>/debug/<job>/``,
the script's file name kept), so an editor's path mapping is set once, not per run.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from musicpipe.glue.spark import free_port

DEBUG_ARGUMENT = "--musicpipe-debug"


class DebugSetupError(RuntimeError):
    """A debug run that cannot start; the run fails with this message."""


def requested_port(arguments: Mapping[str, str]) -> int | None:
    """The port asked for (0: any free one), or None for a run without a debugger."""
    value = arguments.get(DEBUG_ARGUMENT)
    if value is None:
        return None
    if not value.strip().isdigit() or not 0 <= int(value) <= 65535:
        raise DebugSetupError(
            f"{DEBUG_ARGUMENT} {value!r}: expected a port number from 0 to 65535 "
            "(0: a free port, named in the run's output log)"
        )
    return int(value)


def prepare(
    arguments: Mapping[str, str], script: Path, folder: Path, log: Callable[[str], None]
) -> tuple[list[str], Path]:
    """(Python's options before the script, the script to run): none and the script as fetched
    for a plain run; for a debug run, debugpy listening and the script copied to ``folder``."""
    port = requested_port(arguments)
    if port is None:
        return [], script
    if importlib.util.find_spec("debugpy") is None:
        raise DebugSetupError(
            f"{DEBUG_ARGUMENT}: debugpy is not installed where this Glue emulator runs; "
            "debug runs are for the embedded stack, whose Python has it with musicpipe "
            "(docs/developing-jobs.md, 'Debugging a run')"
        )
    folder.mkdir(parents=True, exist_ok=True)
    stable = folder / script.name
    shutil.copyfile(script, stable)
    port = port or free_port()
    log(
        f"[musicpipe] debugger: the script waits for a DAP client on 127.0.0.1:{port} "
        f"(runs as {stable})"
    )
    return ["-m", "debugpy", "--listen", f"127.0.0.1:{port}", "--wait-for-client"], stable
