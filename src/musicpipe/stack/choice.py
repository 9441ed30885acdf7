"""Which stack `up` starts: Docker Compose where a Docker engine answers, else the embedded one.

``MUSICPIPE_STACK`` (``make up STACK=…``; ``[stack] stack`` in the config file) forces one:
``embedded``, ``compose`` or ``auto`` (the default). The stack that ``up`` started is written to
the state folder, so ``down``, ``status``, ``wait``… talk to that one without probing again.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

EMBEDDED = "embedded"
COMPOSE = "compose"
AUTO = "auto"
KINDS = (AUTO, EMBEDDED, COMPOSE)


class StackChoiceError(RuntimeError):
    """The stack asked for cannot run here; the message says what to do instead."""


@dataclass(frozen=True)
class Probe:
    """What `docker` says: does an engine answer, and is the compose plugin there?"""

    engine: bool
    compose: bool
    detail: str


@dataclass(frozen=True)
class Choice:
    kind: str
    reason: str


def _run(cmd: list[str], timeout: float) -> tuple[int, str]:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return 124, f"`{' '.join(cmd)}` did not answer within {timeout:.0f} s"
    except OSError as exc:
        return 127, str(exc)
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return done.returncode, text[0] if text else ""


def probe_docker(timeout: float = 10.0) -> Probe:
    if shutil.which("docker") is None:
        return Probe(False, False, "no `docker` command on PATH")
    # `docker version` asks the engine for its version: it fails fast when no daemon answers.
    code, out = _run(["docker", "version", "--format", "{{.Server.Version}}"], timeout)
    if code != 0 or not out:
        return Probe(False, False, f"no Docker engine answers ({out or f'exit {code}'})")
    engine = f"Docker engine {out}"
    code, compose = _run(["docker", "compose", "version", "--short"], timeout)
    if code != 0:
        return Probe(True, False, f"{engine}, but no `docker compose` plugin ({compose})")
    return Probe(True, True, f"{engine}, docker compose {compose}")


def choose(setting: str, probe: Callable[[], Probe] = probe_docker) -> Choice:
    """The stack `up` starts for the setting (auto, embedded or compose)."""
    if setting not in KINDS:  # settings.load_settings checked it and said where it came from
        raise ValueError(f"unknown stack {setting!r}")
    if setting == EMBEDDED:
        return Choice(EMBEDDED, "STACK=embedded")
    found = probe()
    if setting == COMPOSE:
        if not (found.engine and found.compose):
            raise StackChoiceError(
                f"STACK=compose, but {found.detail}. Start Docker (Docker Desktop, colima, "
                "or `sudo systemctl start docker`), or use the embedded stack, which needs no "
                "Docker: `make up STACK=embedded`."
            )
        return Choice(COMPOSE, f"STACK=compose; {found.detail}")
    if found.engine and found.compose:
        return Choice(COMPOSE, f"{found.detail} (STACK=embedded to run without Docker)")
    return Choice(EMBEDDED, f"{found.detail}: the embedded stack needs no Docker")


def record_file(state_dir: Path) -> Path:
    return state_dir / "stack"


def recorded(state_dir: Path) -> str | None:
    """The stack the last `up` started, if any."""
    try:
        kind = record_file(state_dir).read_text().strip()
    except OSError:
        return None
    return kind if kind in (EMBEDDED, COMPOSE) else None


def record(state_dir: Path, kind: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    record_file(state_dir).write_text(kind + "\n")
