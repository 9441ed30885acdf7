"""Airflow on the host, for the embedded stack: api-server, scheduler, dag-processor, triggerer.

Each component is its own managed process (own process group, PID file, log file), started
with one environment that holds everything Airflow needs to run the pipeline's DAG against the
local endpoints: the AWS connection (``aws_default``, with the Glue endpoint routed to the
emulator), the DAG's Variable, a low parallelism, the DAG unpaused, SQLite under the state
folder. ``airflow db migrate`` runs before the components start.

The UI login is a generated password kept in ``<state>/airflow/passwords.json`` (Airflow's
simple auth manager reads it); ``login()`` returns it and the REST calls use it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from musicpipe.dag.config import NAME_KEYS, VARIABLE
from musicpipe.manifest import Manifest
from musicpipe.stack.processes import ManagedProcess
from musicpipe.stack.safety import LOCAL_ACCOUNT_ID, local_environment
from musicpipe.stack.settings import StackSettings

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USER = "admin"
CONNECTION_ID = "aws_default"
# Where the DAG file lives in the checkout (musicpipe is installed from it in editable mode).
DAGS_FOLDER = Path(__file__).resolve().parents[3] / "airflow" / "dags"


class AirflowError(RuntimeError):
    """Airflow could not be started or reached; the message says where to look."""


def dag_variable(settings: StackSettings, manifest: Manifest) -> dict[str, object]:
    """The DAG's Variable for the local stack: the manifest's names, the local queue URL and
    short intervals (a laptop should not wait a minute for a poll)."""
    names = manifest.names
    return {
        "arrivals_queue_url": (
            f"{settings.aws_endpoint}/{LOCAL_ACCOUNT_ID}/{names['arrivals_queue']}"
        ),
        **{key: names[key] for key in NAME_KEYS},
        "aws_conn_id": CONNECTION_ID,
        "arrivals_poll_seconds": 1,
        "sensor_poke_seconds": 2,
        "sensor_timeout_seconds": 5,
        "glue_poll_seconds": 1,
    }


def aws_connection(settings: StackSettings, manifest: Manifest) -> dict[str, object]:
    """The Amazon provider's connection to the local endpoints (Glue to the emulator)."""
    return {
        "conn_type": "aws",
        "login": "test",
        "password": "test",
        "extra": {
            "region_name": manifest.region,
            "endpoint_url": settings.aws_endpoint,
            "service_config": {"glue": {"endpoint_url": settings.glue_endpoint}},
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        },
    }


class AirflowServices:
    def __init__(self, settings: StackSettings, manifest: Manifest) -> None:
        self.settings = settings
        self.manifest = manifest
        self.home = settings.state_dir / "airflow"
        self.processes = {c: ManagedProcess(f"airflow-{c}", settings.state_dir) for c in COMPONENTS}
        self._access_token: str | None = None  # one login serves every REST call

    @property
    def url(self) -> str:
        return self.settings.airflow_endpoint

    @property
    def passwords_file(self) -> Path:
        return self.home / "passwords.json"

    @property
    def dag_id(self) -> str:
        return self.manifest.dag_id

    def login(self) -> tuple[str, str]:
        if not self.passwords_file.is_file():
            self.home.mkdir(parents=True, exist_ok=True)
            self.passwords_file.write_text(json.dumps({USER: secrets.token_urlsafe(12)}))
            self.passwords_file.chmod(0o600)
        return USER, json.loads(self.passwords_file.read_text())[USER]

    def environment(self) -> dict[str, str]:
        s = self.settings
        env = local_environment(dict(os.environ), s.aws_endpoint, self.manifest.region)
        env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW")}
        self.login()  # the passwords file must exist before the api-server reads it
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            # The default, 32, starts 32 worker processes; a laptop runs one DAG.
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.passwords_file),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__API__HOST=s.host,
            AIRFLOW__API__PORT=str(s.airflow_port),
            AIRFLOW__API__BASE_URL=self.url,
            # Pick up a new DAG file within seconds and a changed one within 30 s (Airflow's
            # default re-parse interval; parsing more often takes CPU from the Spark job).
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="30",
            AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
            AIRFLOW_CONN_AWS_DEFAULT=json.dumps(aws_connection(s, self.manifest)),
            **{f"AIRFLOW_VAR_{VARIABLE.upper()}": json.dumps(dag_variable(s, self.manifest))},
        )
        return env

    def _airflow(self) -> str:
        return str(Path(sys.executable).parent / "airflow")

    # -- lifecycle -------------------------------------------------------------------------
    def is_running(self) -> bool:
        return any(p.is_running() for p in self.processes.values())

    def start(self, health_timeout: float = 180.0) -> None:
        env = self.environment()
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.settings.logs_dir / "airflow-db-migrate.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            done = subprocess.run(
                [self._airflow(), "db", "migrate"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=600,
            )
        if done.returncode != 0:
            raise AirflowError(f"`airflow db migrate` failed; see {log}")
        for name, process in self.processes.items():
            if not process.is_running():
                cmd = [self._airflow(), name]
                if name == "api-server":
                    cmd += ["--host", self.settings.host, "--port", str(self.settings.airflow_port)]
                else:
                    # Task logs are files under AIRFLOW_HOME that the api-server reads; the log
                    # servers would listen on every interface, on fixed ports.
                    cmd += ["--skip-serve-logs"] if name in ("scheduler", "triggerer") else []
                process.start(cmd, env=env, cwd=self.home)
        try:
            self.wait_healthy(health_timeout)
        except BaseException:
            self.stop()  # nothing half started is left behind
            raise

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for process in self.processes.values():
                if not process.is_running():
                    raise AirflowError(
                        f"{process.name} exited at start. Last lines of {process.log_file}:\n"
                        + process.tail()
                    )
            health = self.health()
            if health and all(v == "healthy" for v in health.values()):
                if self.dag_loaded():
                    return
                errors = self._import_errors()
                if errors:
                    raise AirflowError(
                        f"Airflow cannot import the DAG in {DAGS_FOLDER}:\n" + "\n".join(errors)
                    )
            if time.monotonic() > deadline:
                raise AirflowError(
                    f"Airflow was not healthy with the DAG {self.dag_id} loaded within "
                    f"{timeout:.0f} s (health: {health}). Logs: {self.settings.logs_dir}/airflow-*"
                )
            time.sleep(1)

    def stop(self) -> None:
        # Scheduler first: it owns the task workers; the api-server last (workers report to it).
        for name in ("scheduler", "triggerer", "dag-processor", "api-server"):
            self.processes[name].stop(timeout=30)

    # -- REST ------------------------------------------------------------------------------
    def health(self) -> dict[str, str] | None:
        """Status of each Airflow component from /api/v2/monitor/health, or None."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as r:
                body = json.load(r)
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return {name: (part or {}).get("status") or "unknown" for name, part in body.items()}

    def _token(self) -> str:
        user, password = self.login()
        req = urllib.request.Request(
            f"{self.url}/auth/token",
            data=json.dumps({"username": user, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)["access_token"]

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        try:
            return self._call(path, method, body)
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise
            self._access_token = None  # expired, or Airflow restarted: log in again
            return self._call(path, method, body)

    def _call(self, path: str, method: str, body: dict | None) -> dict:
        if self._access_token is None:
            self._access_token = self._token()
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self._access_token}",
                "Content-Type": "application/json",
            },
            method=method,
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def dag_loaded(self) -> bool:
        try:
            dag = self.api(f"/dags/{self.dag_id}")
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return False
        return not dag.get("is_paused", True)

    def dag_runs(self, limit: int = 5) -> list[dict]:
        """The DAG's last runs, newest first."""
        page = self.api(f"/dags/{self.dag_id}/dagRuns?order_by=-run_after&limit={limit}")
        return page.get("dag_runs", [])

    def task_instances(self, run_id: str) -> list[dict]:
        from urllib.parse import quote

        page = self.api(f"/dags/{self.dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return page.get("task_instances", [])

    def _import_errors(self) -> list[str]:
        try:
            errors = self.api("/importErrors").get("import_errors", [])
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return []
        return [f"{e.get('filename')}: {e.get('stack_trace', '')[-1500:]}" for e in errors]

    def component_health(self) -> dict[str, bool]:
        """Per component: does Airflow's health endpoint call it healthy?"""
        health = self.health() or {}
        keys = {"api-server": "metadatabase", "dag-processor": "dag_processor"}
        return {name: health.get(keys.get(name, name)) == "healthy" for name in COMPONENTS}
