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
from collections.abc import Callable
from pathlib import Path

from musicpipe.aws.local import LOCAL_ACCOUNT_ID, local_environment
from musicpipe.dag.config import VARIABLE
from musicpipe.manifest import Manifest
from musicpipe.processes import PRIVATE_UMASK, ManagedProcess
from musicpipe.stack.airflow_api import (
    COMPONENTS,
    USER,
    AirflowApi,
    AirflowError,
    aws_connection,
    dag_variable,
)
from musicpipe.stack.settings import StackSettings

# Where the DAG file lives in the checkout (musicpipe is installed from it in editable mode).
DAGS_FOLDER = Path(__file__).resolve().parents[3] / "airflow" / "dags"


class AirflowServices(AirflowApi):
    def __init__(self, settings: StackSettings, manifest: Manifest) -> None:
        super().__init__()
        self.settings = settings
        self.manifest = manifest
        self.home = settings.state_dir / "airflow"
        self.processes = {c: ManagedProcess(f"airflow-{c}", settings.state_dir) for c in COMPONENTS}
        self.logs_hint = f"{self.home}/logs (task logs), {settings.logs_dir}/airflow-*.log"

    # AirflowApi declares url and dag_id as plain attributes; here they are read-only views.
    @property
    def url(self) -> str:  # type: ignore[override]
        return self.settings.airflow_endpoint

    @property
    def passwords_file(self) -> Path:
        return self.home / "passwords.json"

    @property
    def dag_id(self) -> str:  # type: ignore[override]
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
            AIRFLOW_CONN_AWS_DEFAULT=json.dumps(
                aws_connection(self.manifest, s.aws_endpoint, s.glue_endpoint)
            ),
            **{
                f"AIRFLOW_VAR_{VARIABLE.upper()}": json.dumps(
                    dag_variable(self.manifest, s.aws_endpoint, LOCAL_ACCOUNT_ID)
                )
            },
        )
        return env

    def _airflow(self) -> str:
        return str(Path(sys.executable).parent / "airflow")

    # -- lifecycle -------------------------------------------------------------------------
    def is_running(self) -> bool:
        return any(p.is_running() for p in self.processes.values())

    def start(
        self,
        health_timeout: float = 300.0,
        progress: Callable[[str], None] = lambda stage: None,
    ) -> None:
        """Migrate the database, start the components and wait until they are healthy with the
        DAG unpaused, all within ``health_timeout``."""
        deadline = time.monotonic() + health_timeout
        progress("Airflow migrate: airflow db migrate")
        env = self.environment()
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.settings.logs_dir / "airflow-db-migrate.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            try:
                done = subprocess.run(
                    [self._airflow(), "db", "migrate"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=max(health_timeout, 1),
                    umask=PRIVATE_UMASK,  # airflow.db is created here: the user's alone
                )
            except subprocess.TimeoutExpired:
                raise AirflowError(
                    f"`airflow db migrate` did not finish within {health_timeout:.0f} s; see {log}"
                ) from None
        if done.returncode != 0:
            raise AirflowError(f"`airflow db migrate` failed; see {log}")
        for name, process in self.processes.items():
            if not process.is_running():
                self.start_component(name, env)
        progress("Airflow ready: starting api-server, scheduler, dag-processor, triggerer")
        try:
            self.wait_healthy(max(deadline - time.monotonic(), 1), progress)
        except BaseException:
            self.stop()  # nothing half started is left behind
            raise

    def start_component(
        self, name: str, env: dict[str, str] | None = None, grace: float = 5.0
    ) -> int:
        """Start one component (``up``, and the supervisor's restarts); its PID. What its last
        run left (a killed scheduler's workers) gets ``grace`` s after SIGTERM."""
        cmd = [self._airflow(), name]
        if name == "api-server":
            cmd += ["--host", self.settings.host, "--port", str(self.settings.airflow_port)]
        else:
            # Task logs are files under AIRFLOW_HOME that the api-server reads; the log
            # servers would listen on every interface, on fixed ports.
            cmd += ["--skip-serve-logs"] if name in ("scheduler", "triggerer") else []
        env = self.environment() if env is None else env
        return self.processes[name].start(cmd, env=env, cwd=self.home, grace=grace)

    def wait_healthy(
        self, timeout: float, progress: Callable[[str], None] = lambda stage: None
    ) -> None:
        def check_alive() -> None:
            for process in self.processes.values():
                if not process.is_running():
                    raise AirflowError(
                        f"{process.name} exited at start. Last lines of {process.log_file}:\n"
                        + process.tail()
                    )

        self.wait_ready(timeout, check_alive, self.logs_hint, progress)

    def stop(self) -> None:
        # Scheduler first: it owns the task workers; the api-server last (workers report to it).
        for name in ("scheduler", "triggerer", "dag-processor", "api-server"):
            self.processes[name].stop(timeout=30)
