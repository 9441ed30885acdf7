"""The Docker Compose stack: LocalStack for the AWS APIs, the Glue job emulator inside the AWS
Glue 5 libs image, and Airflow from the official image, all defined in ``docker-compose.yml``.

The containers do their own setup, so a plain ``docker compose up`` works too: LocalStack's
ready hook creates every resource of the manifest, a one-shot ``glue-jobs`` container deploys
the Glue jobs, ``airflow-init`` migrates Airflow's database, and Airflow starts only after all
of them. ``up`` here adds what only the host can do: probe and report, restore the snapshot the
last ``down`` saved (the same snapshot as the embedded stack's, so data follows a switch), and
redeploy the jobs afterwards so a saved older script never shadows the checkout's.

Inside the Compose network the services reach each other by name (``localstack``, ``glue``);
the host reaches the published ports on 127.0.0.1, the same ports as the embedded stack.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from musicpipe.artifacts import REPO_ROOT
from musicpipe.aws.local import LOCALSTACK_ACCOUNT_ID, LocalAws
from musicpipe.bootstrap import Change, bootstrap
from musicpipe.dag.config import VARIABLE
from musicpipe.manifest import ConfigError, Manifest, load_manifest
from musicpipe.processes import make_private
from musicpipe.stack import choice
from musicpipe.stack.airflow_api import USER, AirflowApi, AirflowError, aws_connection, dag_variable
from musicpipe.stack.base import (
    GLUE_HEALTH_PATH,
    ServiceStatus,
    StackError,
    StackStatus,
    UpReport,
    deploy_job_changes,
    http_ok,
    resource_states,
)
from musicpipe.stack.persistence import read_summary, restore_snapshot, save_snapshot
from musicpipe.stack.preflight import check_port_free
from musicpipe.stack.probe import Probe, probe_http
from musicpipe.stack.recovery import Recovery
from musicpipe.stack.settings import StackSettings

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# Layered on top with MUSICPIPE_COMPOSE_AWS=moto: moto's image in place of LocalStack.
MOTO_OVERRIDE = REPO_ROOT / "docker-compose.moto.yml"
PROJECT = "musicpipe"
# The endpoints as the containers see them (service names of docker-compose.yml).
AWS_IN_NETWORK = "http://localstack:4566"
GLUE_IN_NETWORK = "http://glue:4567"
# Long-running services and what `status` calls them; the one-shot ones are left out.
SERVICES = {
    "localstack": "aws (LocalStack or moto)",
    "glue": "glue (emulator)",
    "postgres": "airflow database",
    "airflow-apiserver": "airflow api-server",
    "airflow-scheduler": "airflow scheduler",
    "airflow-dag-processor": "airflow dag-processor",
    "airflow-triggerer": "airflow triggerer",
}
AIRFLOW_SERVICES = tuple(name for name in SERVICES if name.startswith("airflow-"))
ONE_SHOT = ("glue-jobs", "airflow-init")  # and aws-bootstrap with moto


# What every Airflow container must share: a triggerer with another Fernet key than the
# component that stored a trigger crash-loops on InvalidToken; tokens signed by one api-server
# must verify everywhere. Generated once into one file (the airflow-secrets volume), never a
# default in the compose file.
SHARED_SECRETS = (
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
)
SECRETS_ENV = "MUSICPIPE_AIRFLOW_SECRETS"


def _new_secrets() -> dict[str, str]:
    return {
        # A Fernet key is 32 random bytes, urlsafe base64 (what Fernet.generate_key() returns).
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
    }


def shared_airflow_secrets(path: Path) -> dict[str, str]:
    """The secrets in ``path``, generated there first if it does not exist yet. The first
    writer wins (a hard link never replaces a file), so two containers starting at once still
    end up with one key."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text("".join(f"{k}={v}\n" for k, v in _new_secrets().items()))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    found = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    missing = [k for k in SHARED_SECRETS if not found.get(k)]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}; delete it to generate it anew")
    return {k: found[k] for k in SHARED_SECRETS}


class ComposeError(StackError):
    """docker compose failed or a container is unhealthy; the message says where to look."""


def airflow_environment(manifest: Manifest) -> dict[str, str]:
    """What the Airflow containers add to their environment: the AWS connection and the DAG's
    Variable for the endpoints inside the Compose network (their entrypoint evaluates it)."""
    return {
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            aws_connection(manifest, AWS_IN_NETWORK, GLUE_IN_NETWORK)
        ),
        f"AIRFLOW_VAR_{VARIABLE.upper()}": json.dumps(
            dag_variable(manifest, AWS_IN_NETWORK, LOCALSTACK_ACCOUNT_ID)
        ),
    }


class ComposeAirflow(AirflowApi):
    """Airflow's REST API in the Compose stack; the login is the one `up` passed in."""

    def __init__(self, stack: ComposeStack) -> None:
        super().__init__()
        self.stack = stack
        self.url = stack.settings.airflow_endpoint
        self.dag_id = stack.manifest.dag_id
        self.logs_hint = "`docker compose logs airflow-scheduler` (task logs: the Airflow UI)"

    @property
    def password_file(self) -> Path:
        return self.stack.settings.state_dir / "compose" / "airflow-password"

    def login(self) -> tuple[str, str]:
        if not self.password_file.is_file():
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            self.password_file.write_text(secrets.token_urlsafe(12))
            self.password_file.chmod(0o600)
        return USER, self.password_file.read_text().strip()

    def is_running(self) -> bool:
        return self.stack.service_states().get("airflow-apiserver", {}).get("State") == "running"


class ComposeStack:
    kind = "compose"

    def __init__(self, settings: StackSettings, manifest: Manifest) -> None:
        self.settings = settings
        self.manifest = manifest
        self.airflow = ComposeAirflow(self)
        # The emulator's run folders live in a volume; `musicpipe logs` reads CloudWatch.
        self.glue_state_dir = settings.state_dir / "compose" / "glue"

    @property
    def aws(self) -> LocalAws:
        return LocalAws(self.settings.aws_endpoint, self.manifest.region)

    @property
    def on_moto(self) -> bool:
        return self.settings.compose_aws == "moto"

    # -- docker compose ----------------------------------------------------------------
    def engine(self) -> dict[str, str]:
        """The engine `up` found ({"host", "name"}; empty before any `up`)."""
        return choice.recorded_engine(self.settings.state_dir)

    def environment(self) -> dict[str, str]:
        """docker compose's environment: the engine `up` found, the host ports and the Airflow
        login it publishes."""
        s = self.settings
        _, password = self.airflow.login()
        engine = {}
        if not os.environ.get("DOCKER_HOST") and self.engine().get("host"):
            engine["DOCKER_HOST"] = self.engine()["host"]
        return {
            **os.environ,
            **engine,
            "MUSICPIPE_AWS_PORT": str(s.aws_port),
            "MUSICPIPE_GLUE_PORT": str(s.glue_port),
            "MUSICPIPE_AIRFLOW_PORT": str(s.airflow_port),
            "MUSICPIPE_AIRFLOW_PASSWORD": password,
        }

    def compose(self, *args: str, capture: bool = False, check: bool = True):
        files = [COMPOSE_FILE] + ([MOTO_OVERRIDE] if self.on_moto else [])
        cmd = ["docker", "compose", *(f"--file={f}" for f in files), "-p", PROJECT, *args]
        try:
            done = subprocess.run(
                cmd,
                env=self.environment(),
                cwd=REPO_ROOT,
                capture_output=capture,
                text=True,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise ComposeError(
                f"cannot run `docker` ({exc}); the Compose stack needs the Docker client. "
                "STACK=embedded runs without Docker."
            ) from None
        if check and done.returncode != 0:
            detail = (done.stderr or "").strip()[-2000:] if capture else "(output above)"
            raise ComposeError(f"`{shlex.join(cmd)}` failed (exit {done.returncode}): {detail}")
        return done

    def service_states(self) -> dict[str, dict]:
        """docker compose ps, per service: State (running, exited…), Health, ExitCode."""
        try:
            done = self.compose("ps", "--all", "--format", "json", capture=True, check=False)
        except ComposeError:
            return {}
        if done.returncode != 0:
            return {}
        return parse_ps(done.stdout)

    def failed_one_shots(self, lines: int = 30) -> str:
        """The ends of the logs of the services that exited with an error (a one-shot such as
        aws-bootstrap): `up` fails on them with only "didn't complete successfully"."""
        out = ""
        for name, state in sorted(self.service_states().items()):
            if state.get("State") != "exited" or not state.get("ExitCode"):
                continue
            done = self.compose(
                "logs", "--no-color", "--tail", str(lines), name, capture=True, check=False
            )
            out += f"\n--- {name} exited {state['ExitCode']}; the end of its log:\n"
            out += (done.stdout + done.stderr).strip()
        return out

    def is_running(self) -> bool:
        return any(v.get("State") == "running" for v in self.service_states().values())

    def aws_healthy(self) -> bool:
        path = "/moto-api/" if self.on_moto else "/_localstack/health"
        return http_ok(self.settings.aws_endpoint + path)

    def aws_probe(self) -> Probe:
        path = "/moto-api/" if self.on_moto else "/_localstack/health"
        return probe_http(self.settings.aws_endpoint + path)

    def aws_alive(self) -> bool:
        return self.service_states().get("localstack", {}).get("State") == "running"

    def aws_ready(self) -> bool:
        """moto has no init hooks (its bootstrap is a one-shot container the emulator waits
        for); LocalStack is ready once its hook has succeeded."""
        return self.aws_healthy() if self.on_moto else self.localstack_ready()

    def glue_healthy(self) -> bool:
        return http_ok(self.settings.glue_endpoint + GLUE_HEALTH_PATH)

    account_id = LOCALSTACK_ACCOUNT_ID

    def deploy_jobs(self) -> list[Change]:
        """`musicpipe deploy`: the Glue jobs from this checkout, only what changed."""
        return deploy_job_changes(self, self.account_id)

    def localstack_ready(self) -> bool:
        """True once LocalStack's ready hook (the bootstrap) has succeeded; raises if it failed
        (LocalStack itself keeps running and calls the stage completed)."""
        try:
            with urllib.request.urlopen(
                self.settings.aws_endpoint + "/_localstack/init/ready", timeout=2
            ) as r:
                stage = json.load(r)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        failed = [x["name"] for x in stage.get("scripts", []) if x.get("state") == "ERROR"]
        if failed:
            raise ComposeError(
                f"LocalStack's ready hook {', '.join(failed)} failed, so the resources are not "
                f"all there; its output: `docker compose -p {PROJECT} logs localstack`"
            )
        scripts = stage.get("scripts", [])
        return (
            bool(stage.get("completed"))
            and bool(scripts)
            and all(x.get("state") == "SUCCESSFUL" for x in scripts)
        )

    # -- up ------------------------------------------------------------------------------
    def up(
        self,
        fresh: bool = False,
        timeout: float = 900.0,
        progress: Callable[[str], None] = lambda stage: None,
    ):
        s = self.settings
        check_manifest_reaches_containers(self.manifest)
        make_private(s.state_dir)
        already = self.is_running() and self.aws_healthy()
        if not already:
            for port, what, var in (
                (s.aws_port, "LocalStack", "MUSICPIPE_AWS_PORT"),
                (s.glue_port, "the Glue job emulator", "MUSICPIPE_GLUE_PORT"),
                (s.airflow_port, "Airflow", "MUSICPIPE_AIRFLOW_PORT"),
            ):
                check_port_free(s.host, port, what, var)
        if fresh:
            # Named volumes hold Airflow's database and the Glue runs: start them empty too.
            self.compose("down", "--volumes")
        # Builds the two images the first time (pulls a few GB), then starts in dependency
        # order: Compose waits for each health check / one-shot before the services after it.
        progress("compose up: the first time builds two images and pulls a few GB")
        try:
            self.compose("up", "--detach", "--build")
        except ComposeError as exc:
            raise ComposeError(f"{exc}{self.failed_one_shots()}") from None
        try:
            self.wait_ready(timeout, progress)
        except ComposeError as exc:
            raise ComposeError(
                f"{exc}\nThe containers are left as they are for you to look at; "
                "`make down` removes them."
            ) from None
        restored = recovery = None
        if not already:
            recovery = None if fresh else self._unclean_stop()
            if not fresh:
                restored = restore_snapshot(self.aws, self.manifest, s.snapshot_dir)
            # Removed by `down`: found at the next `up`, it says the last stop was unclean.
            self.session_file.parent.mkdir(parents=True, exist_ok=True)
            self.session_file.write_text(json.dumps({"started_at": time.time()}))
        changes = bootstrap(self.aws.client, self.manifest, apply=False)
        changes += self.deploy_jobs()
        return UpReport(already, changes, restored, fresh, recovery)

    @property
    def session_file(self) -> Path:
        return self.settings.state_dir / "compose" / "session.json"

    def _unclean_stop(self) -> Recovery | None:
        """LocalStack's community image and moto's keep no journal: after a stop without
        `down`, everything written since the session began is gone. Say which window."""
        try:
            started = json.loads(self.session_file.read_text())["started_at"]
        except (OSError, ValueError, KeyError):
            return None
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        return Recovery(
            None,
            missing=(
                f"the Compose stack's AWS keeps no journal: every write from {since} (that "
                "`up`) until it stopped is lost; only the state the last `down` saved is back"
            ),
        )

    def wait_ready(
        self, timeout: float, progress: Callable[[str], None] = lambda stage: None
    ) -> None:
        """Until LocalStack, the emulator and Airflow answer with the DAG loaded; fails at once
        when a one-shot container failed or a service exited."""
        deadline = time.monotonic() + timeout

        def check_alive() -> None:
            for name, st in self.service_states().items():
                stopped = st.get("State") in ("exited", "dead")
                # A one-shot container ends; a failed one, or a service that ended, is fatal.
                if stopped and (name in SERVICES or st.get("ExitCode") not in (0, None)):
                    raise ComposeError(
                        f"the {name} container {st.get('State')} (exit {st.get('ExitCode')}); "
                        f"its log: `docker compose -p {PROJECT} logs {name}`"
                    )
            if time.monotonic() > deadline:
                raise ComposeError(f"the Compose stack was not ready within {timeout:.0f} s")

        for stage, ready in (
            ("AWS: the emulator and its bootstrap", self.aws_ready),
            ("Glue emulator: in its container", self.glue_healthy),
        ):
            progress(stage)
            while not ready():
                check_alive()
                time.sleep(2)
        try:
            self.airflow.wait_ready(
                max(deadline - time.monotonic(), 1), check_alive, self.airflow.logs_hint, progress
            )
        except AirflowError as exc:
            raise ComposeError(str(exc)) from None

    # -- down ----------------------------------------------------------------------------
    def down(self, save: bool = True):
        # What writes stops before what was written is saved: Airflow (its tasks drive Glue),
        # then the emulator, whose runs may still write in their grace period.
        self.compose("stop", *AIRFLOW_SERVICES, check=False)
        self.compose("stop", "--timeout", "30", "glue", check=False)
        saved = None
        if save and self.aws_healthy():
            saved = save_snapshot(self.aws, self.manifest, self.settings.snapshot_dir)
        # Containers and the network go; the named volumes stay for the next `up`.
        self.compose("down")
        self.session_file.unlink(missing_ok=True)
        return saved

    # -- status --------------------------------------------------------------------------
    def status(self):
        states = self.service_states()
        endpoints = {
            "localstack": self.settings.aws_endpoint,
            "glue": self.settings.glue_endpoint,
            "airflow-apiserver": self.settings.airflow_endpoint,
        }
        services = []
        for name, title in SERVICES.items():
            st = states.get(name, {})
            running = st.get("State") == "running"
            services.append(
                ServiceStatus(
                    name=title,
                    running=running,
                    healthy=running and st.get("Health", "healthy") in ("healthy", ""),
                    pid=None,
                    endpoint=endpoints.get(name, "-"),
                    uptime_s=None,
                    log=f"docker compose -p {PROJECT} logs {name}",
                )
            )
        aws_up = self.aws_healthy()
        resources = resource_states(self, aws_up, aws_up and self.glue_healthy())
        return StackStatus(services, resources, read_summary(self.settings.snapshot_dir))


def parse_ps(text: str) -> dict[str, dict]:
    """`docker compose ps --format json` output, by service. Compose printed one JSON array
    up to v2.20 and one object per line since; both are read."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {row["Service"]: row for row in rows}


def check_manifest_reaches_containers(manifest: Manifest) -> None:
    """The containers read the manifest from the checkout's config file, not the host's shell:
    a name set only in a MUSICPIPE_* variable would leave them with another name."""
    inside = load_manifest(cwd=REPO_ROOT, environ={})
    differing = sorted(k for k, v in manifest.names.items() if inside.names.get(k) != v)
    if differing:
        raise ConfigError(
            f"the Compose containers read names from {REPO_ROOT / 'musicpipe.toml'} only, but "
            f"{', '.join(differing)} differ in this shell (MUSICPIPE_* variables or "
            "MUSICPIPE_CONFIG). Put the names in musicpipe.toml, or use the embedded stack."
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m musicpipe.stack.compose airflow-env`: shell exports for the Airflow
    containers' entrypoint (the connection and the Variable, from the mounted checkout; and the
    shared secrets from the file ``MUSICPIPE_AIRFLOW_SECRETS`` names, generated if missing)."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["airflow-env"]:
        print("usage: python -m musicpipe.stack.compose airflow-env", file=sys.stderr)
        return 2
    exports = airflow_environment(load_manifest())
    if os.environ.get(SECRETS_ENV):
        exports.update(shared_airflow_secrets(Path(os.environ[SECRETS_ENV])))
    for key, value in exports.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
