"""Checks made before starting the stack, each failing with what to do about it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import psutil

MIN_PYTHON = (3, 11)
MIN_JAVA = 17


class PreflightError(RuntimeError):
    """Something the stack needs is missing or in the way."""


def check_python(version_info: tuple[int, ...] = tuple(sys.version_info[:3])) -> None:
    if tuple(version_info[:2]) < MIN_PYTHON:
        found = ".".join(map(str, version_info[:3]))
        raise PreflightError(
            f"Python {found} found; musicpipe needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+. "
            "Install python3.11 and re-run `make install`."
        )


def parse_java_major(version_output: str) -> int | None:
    """The major version from `java -version` output ('1.8.0_392' → 8, '17.0.15' → 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_executable(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        return str(candidate) if candidate.is_file() else None
    return shutil.which("java", path=env.get("PATH"))


def check_java(environ: dict[str, str] | None = None) -> int:
    """Java 17+ runs the Spark side of the Glue jobs (Glue 5.1 uses Java 17)."""
    env = os.environ if environ is None else environ
    java = java_executable(env)
    hint = (
        "Spark (the Glue 5.1 jobs) needs Java 17 or newer: install it "
        "(e.g. `apt-get install openjdk-17-jre-headless`) or point JAVA_HOME at one."
    )
    if java is None:
        where = (
            f"JAVA_HOME={env['JAVA_HOME']} has no bin/java"
            if env.get("JAVA_HOME")
            else ("no `java` on PATH")
        )
        raise PreflightError(f"Java not found ({where}). {hint}")
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, env=dict(env)
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PreflightError(f"could not run {java} -version: {exc}. {hint}") from exc
    major = parse_java_major(out.stderr + out.stdout)
    if major is None:
        raise PreflightError(f"could not read the Java version from {java} -version. {hint}")
    if major < MIN_JAVA:
        raise PreflightError(f"{java} is Java {major}. {hint}")
    return major


def port_in_use(host: str, port: int) -> bool:
    """True if something accepts connections on host:port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_holder(port: int) -> str | None:
    """Which process listens on ``port``, where the OS lets us see it (macOS: only our own
    user's processes without root)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return None
            try:
                proc = psutil.Process(conn.pid)
                return f"PID {conn.pid} ({' '.join(proc.cmdline())[:120]})"
            except psutil.Error:
                return f"PID {conn.pid}"
    return None


def port_hint(port: int) -> str:
    """The command that shows who holds a port, on this OS."""
    if sys.platform == "darwin":
        return f"`lsof -nP -iTCP:{port} -sTCP:LISTEN`"
    return f"`ss -ltnp 'sport = :{port}'`"


def check_port_free(host: str, port: int, what: str, env_var: str) -> None:
    if port_in_use(host, port):
        holder = port_holder(port)
        who = f"by {holder}" if holder else f"by another process ({port_hint(port)} shows it)"
        raise PreflightError(
            f"port {port} on {host} is already in use {who}, so {what} cannot start there. "
            f"Stop that process or choose another port: {env_var}=<port> "
            "(or [stack] in musicpipe.toml)."
        )


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports: all sockets stay bound until every port is chosen (one
    after the other, the system may hand out the same port twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
