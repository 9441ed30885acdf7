"""A run's ``--additional-python-modules``, installed as Glue installs them: by pip, with the
run's ``--python-modules-installer-option`` (pip's own options, e.g. ``--upgrade``), each
entry a requirement (``name``, ``name==1.2``) or an ``s3://`` wheel.

Installed once per module set (the entries, the options, the wheels' bytes and the Python
version) into a cached folder (``~/.cache/musicpipe/glue-modules/``, or
``$MUSICPIPE_GLUE_MODULES_CACHE``) through musicpipe.installs, and put on the run's
PYTHONPATH, before what Glue provides, so a module set can also replace a provided version.
glueetl runs pass the same path to Spark's Python workers (``spark.executorEnv.PYTHONPATH``),
so a UDF imports what the driver does. pip, not uv: the installer options mean what they mean
on Glue, and a module that does not install fails the run with pip's own message."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from musicpipe.installs import InstallError, cache_home, install_once, run_steps

MODULES_ARG = "--additional-python-modules"
OPTIONS_ARG = "--python-modules-installer-option"


class ModulesError(RuntimeError):
    """The run's modules could not be installed; the message is pip's, with what to do."""


def requested(args: dict[str, str]) -> list[str]:
    return [m.strip() for m in args.get(MODULES_ARG, "").split(",") if m.strip()]


def cache_root() -> Path:
    return Path(os.environ.get("MUSICPIPE_GLUE_MODULES_CACHE", cache_home() / "glue-modules"))


def ensure_modules(
    args: dict[str, str],
    fetch: Callable[[str], Path],
    log: Callable[[str], None],
) -> Path | None:
    """The folder holding the run's modules (installed now if this set is new), or None when
    the run asks for none. ``fetch(url)`` brings an ``s3://`` wheel to a local file."""
    entries = requested(args)
    if not entries:
        return None
    options = shlex.split(args.get(OPTIONS_ARG, ""))
    resolved = [str(fetch(e)) if e.startswith("s3://") else e for e in entries]
    key = {
        "python": sys.version.split()[0],
        "modules": [_identity(e, r) for e, r in zip(entries, resolved, strict=True)],
        "options": options,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    target = cache_root() / f"modules-{digest}"
    shown = ", ".join(entries)
    if (target / "installed.json").is_file():
        log(f"[musicpipe] {MODULES_ARG} {shown}: installed already in {target}")
        return target

    def build(partial: Path) -> None:
        log(f"[musicpipe] installing {MODULES_ARG} {shown} with pip into {target} (once per set)")
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        try:
            run_steps([[*command, "--target", str(partial), *options, *resolved]], shown)
        except InstallError as exc:
            raise ModulesError(str(exc)) from None

    return install_once(
        target, build, lambda: log(f"[musicpipe] waiting for another run installing {shown}"), key
    )


def _identity(entry: str, resolved: str) -> str:
    """What makes an entry the same set next time: a requirement's text, a wheel's bytes."""
    if entry.startswith("s3://"):
        return f"{Path(resolved).name}:{hashlib.sha256(Path(resolved).read_bytes()).hexdigest()}"
    return entry
