"""Which stack `up` starts: Docker Compose where a Docker engine answers, else the embedded one.

The engine is whichever answers first: ``DOCKER_HOST`` if set, else Docker's own socket, else
Podman's Docker-compatible socket (tools/podman-engine.sh's, the rootless user's, root's); the
one found is recorded (``engine_file``) so later commands talk to the same engine.

``MUSICPIPE_STACK`` (``make up STACK=…``; ``[stack] stack`` in the config file) forces one:
``embedded``, ``compose`` or ``auto`` (the default). The stack that ``up`` started is written to
the state folder, so ``down``, ``status``, ``wait``… talk to that one without probing again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from musicpipe.artifacts import REPO_ROOT

EMBEDDED = "embedded"
COMPOSE = "compose"
AUTO = "auto"
KINDS = (AUTO, EMBEDDED, COMPOSE)


class StackChoiceError(RuntimeError):
    """The stack asked for cannot run here; the message says what to do instead."""


@dataclass(frozen=True)
class Probe:
    """What `docker` says: does an engine answer, and is the compose plugin there? ``host`` is
    the DOCKER_HOST that reached it ("" for the docker CLI's own default)."""

    engine: bool
    compose: bool
    detail: str
    host: str = ""
    name: str = ""


@dataclass(frozen=True)
class Choice:
    kind: str
    reason: str
    host: str = ""  # compose: the DOCKER_HOST that reached the engine ("": the CLI's default)
    engine: str = ""  # compose: the engine's name and version


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return 124, f"`{' '.join(cmd)}` did not answer within {timeout:.0f} s"
    except OSError as exc:
        return 127, str(exc)
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return done.returncode, text[0] if text else ""


def podman_sockets(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where Podman's Docker-compatible API listens: the socket of tools/podman-engine.sh, the
    rootless user's, and the system (root) one."""
    env = os.environ if environ is None else environ
    found = [REPO_ROOT / ".musicpipe" / "engine" / "podman.sock"]
    if env.get("XDG_RUNTIME_DIR"):
        found.append(Path(env["XDG_RUNTIME_DIR"]) / "podman" / "podman.sock")
    found.append(Path(f"/run/user/{os.getuid()}/podman/podman.sock"))
    found.append(Path("/run/podman/podman.sock"))
    return list(dict.fromkeys(found))


def engine_hosts(environ: Mapping[str, str] | None = None) -> list[str]:
    """The DOCKER_HOST values to try, in order: the one set, else Docker's default (the CLI's
    context, /var/run/docker.sock), then Podman's sockets that exist."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return [env["DOCKER_HOST"]]
    return ["", *(f"unix://{p}" for p in podman_sockets(env) if p.is_socket())]


VERSION_FORMAT = (
    "{{.Server.Platform.Name}}|{{range .Server.Components}}{{.Name}},{{end}}|{{.Server.Version}}"
)


def engine_name(answer: str) -> str:
    """ "Podman 4.3.1", "Docker Engine - Community 28.2.2"… from `docker version` in
    VERSION_FORMAT (Podman names itself among the components; its platform is the OS)."""
    platform, components, version = ([""] * 2 + answer.split("|"))[-3:]
    if "Podman Engine" in components.split(","):
        return f"Podman {version}"
    name = platform if "docker" in platform.lower() else "Docker engine"
    return f"{name} {version}".strip()


def probe_docker(timeout: float = 10.0) -> Probe:
    if shutil.which("docker") is None:
        return Probe(False, False, "no `docker` command on PATH")
    tried = []
    for host in engine_hosts():
        env = {**os.environ, "DOCKER_HOST": host} if host else None
        where = f" on {host}" if host else ""
        # `docker version` asks the engine for its version: it fails fast when none answers.
        code, out = _run(["docker", "version", "--format", VERSION_FORMAT], timeout, env)
        if code != 0 or not out.rpartition("|")[2]:
            tried.append(f"{host or 'the default socket'}: {out or f'exit {code}'}")
            continue
        name = engine_name(out)
        code, compose = _run(["docker", "compose", "version", "--short"], timeout, env)
        if code != 0:
            return Probe(True, False, f"{name}{where}, but no `docker compose` plugin ({compose})")
        return Probe(True, True, f"{name}{where}, docker compose {compose}", host, name)
    return Probe(False, False, f"no Docker engine answers ({'; '.join(tried)})")


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
        return Choice(COMPOSE, f"STACK=compose; {found.detail}", found.host, found.name)
    if found.engine and found.compose:
        reason = f"{found.detail} (STACK=embedded to run without Docker)"
        return Choice(COMPOSE, reason, found.host, found.name)
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


def engine_file(state_dir: Path) -> Path:
    """The engine `up` found: its DOCKER_HOST (empty: the docker CLI's default) and its name."""
    return state_dir / "compose" / "engine.json"


def record_engine(state_dir: Path, host: str, name: str) -> None:
    engine_file(state_dir).parent.mkdir(parents=True, exist_ok=True)
    engine_file(state_dir).write_text(json.dumps({"host": host, "name": name}) + "\n")


def recorded_engine(state_dir: Path) -> dict[str, str]:
    try:
        found = json.loads(engine_file(state_dir).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
