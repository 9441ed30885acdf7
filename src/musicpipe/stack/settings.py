"""Where the local stack listens and keeps its state.

Read from the ``[stack]`` section of the config file and ``MUSICPIPE_*`` environment variables
(which win), like the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicpipe.manifest import ConfigError, read_config_section

DEFAULTS: dict[str, str | int | float] = {
    "host": "127.0.0.1",
    "aws_port": 4566,
    "glue_port": 4567,
    "airflow_port": 8080,
    # Airflow is part of the stack; off (false/0) for a stack that only runs the jobs.
    "airflow": "true",
    "state_dir": ".musicpipe",
    # Which stack `up` starts: auto (Compose when a Docker engine answers), embedded, compose.
    "stack": "auto",
    # The Compose stack's AWS: localstack, or moto (moto's image, docker-compose.moto.yml).
    "compose_aws": "localstack",
    # The embedded stack's supervisor restarts a dead service after a delay that starts here
    # and doubles up to the maximum, at most `restart_limit` times in `restart_window_seconds`
    # (then it gives up on that service until the next `up`); 0 never restarts.
    "restart_backoff_seconds": 1.0,
    "restart_max_backoff_seconds": 60.0,
    "restart_limit": 5,
    "restart_window_seconds": 600.0,
}
PORT_KEYS = ("aws_port", "glue_port", "airflow_port")
SECONDS_KEYS = ("restart_backoff_seconds", "restart_max_backoff_seconds", "restart_window_seconds")


@dataclass(frozen=True)
class StackSettings:
    host: str
    aws_port: int
    glue_port: int
    state_dir: Path
    airflow_port: int = 8080
    airflow: bool = True
    stack: str = "auto"
    compose_aws: str = "localstack"
    restart_backoff_seconds: float = 1.0
    restart_max_backoff_seconds: float = 60.0
    restart_limit: int = 5
    restart_window_seconds: float = 600.0

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.host}:{self.aws_port}"

    @property
    def glue_endpoint(self) -> str:
        return f"http://{self.host}:{self.glue_port}"

    @property
    def airflow_endpoint(self) -> str:
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def snapshot_dir(self) -> Path:
        return self.state_dir / "snapshot"

    @property
    def journal_file(self) -> Path:
        """The embedded AWS's writes since the snapshot (stack/journal.py)."""
        return self.state_dir / "journal" / "aws.journal"

    @property
    def supervision_file(self) -> Path:
        """What the supervisor saw and did since the last `up` (stack/supervisor.py)."""
        return self.state_dir / "supervision.json"


def load_settings(
    cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> StackSettings:
    env = os.environ if environ is None else environ
    section, path = read_config_section("stack", cwd, env)
    unknown = set(section) - set(DEFAULTS)
    if unknown:
        raise ConfigError(
            f"{path} [stack]: unknown key(s) {sorted(unknown)}; known keys: {', '.join(DEFAULTS)}"
        )
    values: dict[str, Any] = {**DEFAULTS, **section}
    for key in DEFAULTS:
        env_value = env.get(f"MUSICPIPE_{key.upper()}")
        if env_value is not None:
            values[key] = env_value
    ports = {}
    for key in PORT_KEYS:
        try:
            ports[key] = int(values[key])
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a port number, got {values[key]!r}") from None
        if not 1 <= ports[key] <= 65535:
            raise ConfigError(f"{key} must be between 1 and 65535, got {ports[key]}")
    if len(set(ports.values())) < len(ports):
        raise ConfigError(f"the stack's ports must differ, got {ports}")
    flag = str(values["airflow"]).strip().lower()
    if flag not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"airflow must be true or false, got {values['airflow']!r}")
    stack = str(values["stack"]).strip().lower()
    if stack not in ("auto", "embedded", "compose"):
        raise ConfigError(
            f"stack must be auto, embedded or compose, got {values['stack']!r} "
            "(MUSICPIPE_STACK, `make up STACK=…`, or [stack] stack in the config file)"
        )
    compose_aws = str(values["compose_aws"]).strip().lower()
    if compose_aws not in ("localstack", "moto"):
        raise ConfigError(
            f"compose_aws must be localstack or moto, got {values['compose_aws']!r} "
            "(MUSICPIPE_COMPOSE_AWS or [stack] compose_aws)"
        )
    restarts = _restart_settings(values)
    state_dir = Path(str(values["state_dir"])).expanduser()
    if not state_dir.is_absolute():
        state_dir = (cwd or Path.cwd()) / state_dir
    return StackSettings(
        host=str(values["host"]),
        aws_port=ports["aws_port"],
        glue_port=ports["glue_port"],
        state_dir=state_dir,
        airflow_port=ports["airflow_port"],
        airflow=flag in ("true", "1", "yes"),
        stack=stack,
        compose_aws=compose_aws,
        **restarts,
    )


def _restart_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's restart policy, checked: positive seconds, a whole limit ≥ 0."""
    out: dict[str, Any] = {}
    for key in SECONDS_KEYS:
        try:
            out[key] = float(values[key])
        except (TypeError, ValueError):
            out[key] = -1.0
        if not 0 < out[key] < float("inf"):
            raise ConfigError(
                f"{key} must be a positive number of seconds, got {values[key]!r} "
                f"(MUSICPIPE_{key.upper()} or [stack] {key})"
            )
    if out["restart_max_backoff_seconds"] < out["restart_backoff_seconds"]:
        raise ConfigError(
            "restart_max_backoff_seconds must be at least restart_backoff_seconds, got "
            f"{out['restart_max_backoff_seconds']} < {out['restart_backoff_seconds']}"
        )
    raw = str(values["restart_limit"]).strip()
    if not raw.isdigit():
        raise ConfigError(
            f"restart_limit must be a whole number ≥ 0 (0: never restart), got "
            f"{values['restart_limit']!r} (MUSICPIPE_RESTART_LIMIT or [stack] restart_limit)"
        )
    out["restart_limit"] = int(raw)
    return out
