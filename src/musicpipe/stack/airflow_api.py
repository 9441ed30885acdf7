"""Airflow's REST API (v2) as the stack uses it: health, the DAG, its runs and tasks.

One client for both stacks: the embedded one (Airflow processes on the host) and the Compose one
(Airflow containers); they differ only in where the login comes from. The login is Airflow's
simple auth manager: ``POST /auth/token`` gives a bearer token, kept until a 401.

Also here: what Airflow needs to run the DAG against a local stack (the AWS connection and the
DAG's Variable), given the endpoints as Airflow sees them.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import quote

from musicpipe.dag.config import variable_value
from musicpipe.manifest import Manifest
from musicpipe.stack.probe import Probe, probe_http

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USER = "admin"
CONNECTION_ID = "aws_default"


class AirflowError(RuntimeError):
    """Airflow could not be started or reached; the message says where to look."""


def dag_variable(manifest: Manifest, aws_endpoint: str, account_id: str) -> dict[str, object]:
    """The DAG's Variable for a local stack: the manifest's names, the local queue URL and
    short intervals (a laptop should not wait a minute for a poll)."""
    return variable_value(
        manifest.names,
        aws_endpoint,
        account_id,
        manifest.settings,
        aws_conn_id=CONNECTION_ID,
        arrivals_poll_seconds=1,
        sensor_poke_seconds=2,
        sensor_timeout_seconds=5,
        glue_poll_seconds=1,
    )


def aws_connection(manifest: Manifest, aws_endpoint: str, glue_endpoint: str) -> dict[str, object]:
    """The Amazon provider's connection to the local endpoints (Glue to the emulator)."""
    return {
        "conn_type": "aws",
        "login": "test",
        "password": "test",
        "extra": {
            "region_name": manifest.region,
            "endpoint_url": aws_endpoint,
            "service_config": {"glue": {"endpoint_url": glue_endpoint}},
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        },
    }


class AirflowApi:
    """Subclasses say where Airflow answers (``url``), which DAG (``dag_id``) and the login."""

    url: str
    dag_id: str

    def __init__(self) -> None:
        self._access_token: str | None = None  # one login serves every REST call

    def login(self) -> tuple[str, str]:
        raise NotImplementedError

    @property
    def health_url(self) -> str:
        return f"{self.url}/api/v2/monitor/health"

    def probe(self) -> Probe:
        """Does the api-server answer (whatever the components' health)?"""
        return probe_http(self.health_url)

    def health(self) -> dict[str, str] | None:
        """Status of each Airflow component from /api/v2/monitor/health, or None."""
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as r:
                body = json.load(r)
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return {name: (part or {}).get("status") or "unknown" for name, part in body.items()}

    def component_health(self) -> dict[str, bool]:
        """Per component: does Airflow's health endpoint call it healthy?"""
        health = self.health() or {}
        keys = {"api-server": "metadatabase", "dag-processor": "dag_processor"}
        return {name: health.get(keys.get(name, name)) == "healthy" for name in COMPONENTS}

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

    def wait_ready(
        self,
        timeout: float,
        check_alive: Callable[[], None],
        logs: str,
        on_progress: Callable[[str], None] = lambda message: None,
    ) -> None:
        """Until every component is healthy and the DAG is parsed and unpaused, saying what it
        still waits for. Raises at once with Airflow's import error when the DAG file does not
        import, and whatever ``check_alive`` raises when a component has died."""
        deadline = time.monotonic() + timeout
        while True:
            check_alive()
            health = self.health()
            if health is None:
                on_progress("Airflow ready: waiting for the api-server to answer")
            elif not all(v == "healthy" for v in health.values()):
                waiting = sorted(k for k, v in health.items() if v != "healthy")
                on_progress(f"Airflow ready: waiting for {', '.join(waiting)} to report healthy")
            else:
                if self.dag_loaded():
                    return
                errors = self.import_errors()
                if errors:
                    raise AirflowError(
                        f"Airflow cannot import the DAG {self.dag_id}:\n" + "\n".join(errors)
                    )
                on_progress(
                    f"Airflow ready: waiting for the DAG {self.dag_id} to be parsed and unpaused"
                )
            if time.monotonic() > deadline:
                raise AirflowError(
                    f"Airflow was not healthy with the DAG {self.dag_id} loaded within "
                    f"{timeout:.0f} s (health: {health}). Logs: {logs}"
                )
            time.sleep(1)

    def import_errors(self) -> list[str]:
        try:
            errors = self.api("/importErrors").get("import_errors", [])
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return []
        return [f"{e.get('filename')}: {e.get('stack_trace', '')[-1500:]}" for e in errors]

    def dag_runs(self, limit: int = 5) -> list[dict]:
        """The DAG's last runs, newest first."""
        page = self.api(f"/dags/{self.dag_id}/dagRuns?order_by=-run_after&limit={limit}")
        return page.get("dag_runs", [])

    def task_instances(self, run_id: str) -> list[dict]:
        page = self.api(f"/dags/{self.dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return page.get("task_instances", [])
