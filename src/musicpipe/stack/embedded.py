"""The embedded stack: AWS APIs from a moto server, Glue jobs from musicpipe's own Glue job
emulator, and Airflow's components running the DAG, all on loopback; no Docker, no account.

``up`` checks what the stack needs, starts moto and the Glue emulator (each by PID, in its own
process group, logging to the state folder), bootstraps every resource of the manifest,
restores the snapshot the last ``down`` saved (and after an unclean stop replays the journal
of moto's writes on top), deploys the Glue jobs and starts Airflow, and last the supervisor
(stack/supervisor.py), which restarts a service that dies. ``down`` stops the supervisor, then
Airflow and Glue, saves the snapshot, then stops moto.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from musicpipe.aws.local import LOCAL_ACCOUNT_ID, LocalAws, local_environment
from musicpipe.bootstrap import Change, bootstrap, drop_test_events
from musicpipe.glue import spark
from musicpipe.manifest import Manifest
from musicpipe.processes import ManagedProcess, make_private
from musicpipe.stack import preflight
from musicpipe.stack.airflow import AirflowServices
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
from musicpipe.stack.journal import control as journal_control
from musicpipe.stack.persistence import SnapshotSummary, read_summary, save_snapshot
from musicpipe.stack.probe import Probe, probe_http
from musicpipe.stack.recovery import restore_state, start_journal
from musicpipe.stack.settings import StackSettings
from musicpipe.stack.supervision import NOT_RESTARTED, supervision_state

HEALTH_PATH = "/moto-api/"


class EmbeddedStack:
    kind = "embedded"

    def __init__(self, settings: StackSettings, manifest: Manifest) -> None:
        self.settings = settings
        self.manifest = manifest
        self.moto = ManagedProcess("moto", settings.state_dir)
        self.glue = ManagedProcess("glue", settings.state_dir)
        self.airflow = AirflowServices(settings, manifest)
        # Its children are the services it restarted: stopped by their own PID files, in order.
        self.supervisor = ManagedProcess(
            "supervisor", settings.state_dir, children_are_services=True
        )

    @property
    def glue_state_dir(self) -> Path:
        return self.settings.state_dir / "glue"

    @property
    def aws(self) -> LocalAws:
        return LocalAws(self.settings.aws_endpoint, self.manifest.region)

    def is_running(self) -> bool:
        return (
            self.moto.is_running()
            or self.glue.is_running()
            or self.airflow.is_running()
            or self.supervisor.is_running()
        )

    def aws_healthy(self) -> bool:
        return http_ok(self.settings.aws_endpoint + HEALTH_PATH)

    def aws_probe(self) -> Probe:
        return probe_http(self.settings.aws_endpoint + HEALTH_PATH)

    def aws_alive(self) -> bool:
        return self.moto.is_running()

    def glue_healthy(self) -> bool:
        return http_ok(self.settings.glue_endpoint + GLUE_HEALTH_PATH)

    account_id = LOCAL_ACCOUNT_ID  # moto's

    def deploy_jobs(self) -> list[Change]:
        """`musicpipe deploy`: the Glue jobs from this checkout, only what changed."""
        return deploy_job_changes(self, self.account_id)

    # -- up ------------------------------------------------------------------------------
    def up(
        self,
        fresh: bool = False,
        timeout: float = 600.0,
        progress: Callable[[str], None] = lambda stage: None,
    ) -> UpReport:
        """Start what is not running and return once a dropped file would be taken: every
        resource in place, the jobs deployed, Airflow healthy with the DAG unpaused. ``progress``
        hears each stage as it starts; ``timeout`` bounds the whole start."""
        deadline = time.monotonic() + timeout

        def left(cap: float) -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StackError(f"`up` did not finish within {timeout:.0f} s (--timeout)")
            return min(cap, remaining)

        progress("preflight: Python, Java, free ports")
        preflight.check_python()
        preflight.check_java()
        s = self.settings
        make_private(s.state_dir)
        # `up` alone starts services until it is done; the supervisor comes back last.
        self.stop_supervisor()
        # Check every port before starting anything, so a clash leaves nothing half started.
        for process, port, what, var in (
            (self.moto, s.aws_port, "the AWS emulator", "MUSICPIPE_AWS_PORT"),
            (self.glue, s.glue_port, "the Glue job emulator", "MUSICPIPE_GLUE_PORT"),
        ):
            if not process.is_running():
                preflight.check_port_free(s.host, port, what, var)
        if s.airflow and not self.airflow.is_running():
            preflight.check_port_free(s.host, s.airflow_port, "Airflow", "MUSICPIPE_AIRFLOW_PORT")
        progress(f"AWS: moto server on {s.aws_endpoint}")
        already = self.moto.is_running() and self.aws_healthy()
        if not already:
            if not fresh and (self.airflow.is_running() or self.glue.is_running()):
                # moto died under them: nothing may write while its state is restored (such a
                # write would land on half the state, unjournaled). Started again below.
                self.airflow.stop()
                self.glue.stop(timeout=30)
            self.moto.stop()  # ours but not answering, or a stale PID file
            self._start_moto(left(60))
        elif fresh:
            reset = urllib.request.Request(s.aws_endpoint + "/moto-api/reset", method="POST")
            urllib.request.urlopen(reset, timeout=10).close()
        progress("resources: buckets, tables, queue, S3 notification, log groups")
        changes = bootstrap(self.aws.client, self.manifest)
        drop_test_events(self.aws.client("sqs"), self.manifest, changes)
        # Fetched here, once, where the user sees it, not silently inside the first glueetl run.
        progress("S3A jars")
        spark.ensure_s3a_jars(log=progress)
        progress(f"Glue emulator: on {s.glue_endpoint}")
        if fresh:
            self.glue.stop()
            shutil.rmtree(self.glue_state_dir, ignore_errors=True)
        if not (self.glue.is_running() and self.glue_healthy()):
            self.glue.stop()
            self._start_glue(left(60))
        restored = recovery = None
        if fresh:
            # Empty, and so is the journal of what comes next (the old snapshot stays until
            # the next `down` replaces it).
            start_journal(self.aws, None)
        elif not already:
            # The snapshot, and after an unclean stop the journal on top of it; then writes
            # are journaled again (stack/recovery.py).
            progress(f"restore: the saved state in {s.snapshot_dir}")
            restored, recovery = restore_state(
                self.aws, self.manifest, s.snapshot_dir, s.journal_file
            )
        # The Glue jobs, from the scripts and library in this checkout (after the restore, so
        # a saved older copy never shadows the current scripts).
        progress("Glue jobs: scripts and library from this checkout")
        changes += self.deploy_jobs()
        if s.airflow:
            self.airflow.start(left(timeout), progress)
        progress("supervisor: restarts a service that dies")
        self.start_supervisor(left(30))
        return UpReport(already, changes, restored, fresh, recovery)

    def _start_moto(self, health_timeout: float) -> None:
        s = self.settings
        env = local_environment(dict(os.environ), s.aws_endpoint, self.manifest.region)
        # moto's server with every S3/DynamoDB write journaled (stack/journal.py).
        cmd = [sys.executable, "-m", "musicpipe.stack.journal", "-H", s.host, "-p", str(s.aws_port)]
        cmd += ["--journal", str(s.journal_file)]
        self._start_service(self.moto, cmd, env, self.aws_healthy, s.aws_endpoint, health_timeout)

    @staticmethod
    def _start_service(process, cmd, env, healthy, endpoint: str, health_timeout: float) -> None:
        process.start(cmd, env=env)
        deadline = time.monotonic() + health_timeout
        while time.monotonic() < deadline:
            if not process.is_running():
                raise StackError(
                    f"{process.name} exited at start. Last lines of {process.log_file}:\n"
                    + process.tail()
                )
            if healthy():
                return
            time.sleep(0.2)
        process.stop()
        raise StackError(
            f"{process.name} did not answer on {endpoint} within {health_timeout:.0f} s. "
            f"Its log: {process.log_file}"
        )

    def service_env(self) -> dict[str, str]:
        """The environment moto and the Glue emulator start with."""
        return local_environment(dict(os.environ), self.settings.aws_endpoint, self.manifest.region)

    def _start_glue(self, health_timeout: float) -> None:
        s = self.settings
        cmd = self.glue_command()
        self._start_service(
            self.glue, cmd, self.service_env(), self.glue_healthy, s.glue_endpoint, health_timeout
        )

    def glue_command(self) -> list[str]:
        s = self.settings
        return [
            sys.executable,
            "-m",
            "musicpipe.glue.server",
            "--host",
            s.host,
            "--port",
            str(s.glue_port),
            "--state-dir",
            str(self.glue_state_dir),
            "--aws-endpoint",
            s.aws_endpoint,
            "--region",
            self.manifest.region,
            "--temp-dir",
            f"s3://{self.manifest.artifacts_bucket}/temporary/",
        ]

    # -- the supervisor ----------------------------------------------------------------------
    def start_supervisor(self, timeout: float) -> None:
        """Start the supervisor and wait until it watches (its first report is written)."""
        s = self.settings
        env = {**os.environ, "MUSICPIPE_STATE_DIR": str(s.state_dir.resolve())}
        cmd = [sys.executable, "-m", "musicpipe.stack.supervisor"]
        pid = self.supervisor.start(cmd, env=env, cwd=Path.cwd())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.supervisor.is_running():
                raise StackError(
                    f"the supervisor exited at start. Last lines of {self.supervisor.log_file}:\n"
                    + self.supervisor.tail()
                )
            if (self.supervision() or {}).get("pid") == pid:
                return
            time.sleep(0.1)
        self.supervisor.stop()
        raise StackError(
            f"the supervisor did not start within {timeout:.0f} s; its log: "
            f"{self.supervisor.log_file}"
        )

    def stop_supervisor(self) -> None:
        # Its restart counts are those since the `up` that started it.
        self.supervisor.stop(timeout=10)
        self.settings.supervision_file.unlink(missing_ok=True)

    def supervision(self) -> dict | None:
        """The supervisor's last report (stack/supervision.py's document), if any."""
        try:
            doc = json.loads(self.settings.supervision_file.read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    # -- down ----------------------------------------------------------------------------
    def down(self, save: bool = True) -> SnapshotSummary | None:
        # The supervisor first, or it would start again what `down` stops. What writes stops
        # before what was written is saved: Airflow (its tasks drive Glue), then Glue (a run
        # finishing in the grace period still writes to S3).
        self.supervisor.stop(timeout=10)
        self.airflow.stop()
        self.glue.stop(timeout=30)
        # moto holds the whole state only if it answers and its journal is live (not one an
        # unfinished `up` has yet to replay).
        whole = self.moto.is_running() and self.aws_healthy() and self._restore_finished()
        saved = None
        if save and whole:
            saved = save_snapshot(self.aws, self.manifest, self.settings.snapshot_dir)
        self.moto.stop()
        if saved is not None or (whole and not save):
            # The new snapshot holds every journaled write (an interrupted `down` leaves a
            # journal older than the snapshot, which `up` recognises); `--no-save` keeps
            # nothing of this session. Otherwise (moto dead or not answering, a journal not
            # replayed yet) the journal stays, and the next `up` replays it.
            self.settings.journal_file.unlink(missing_ok=True)
        return saved

    def _restore_finished(self) -> bool:
        """False while a journal waits to be replayed (an `up` after an unclean stop failed
        before journaling again): a snapshot then would save half the state over the old
        one, and the journal would no longer apply to it."""
        if not self.settings.journal_file.exists():
            return True
        try:
            return bool(journal_control(self.settings.aws_endpoint, "")["active"])
        except (OSError, RuntimeError, ValueError):
            return False

    # -- status --------------------------------------------------------------------------
    def status(self) -> StackStatus:
        healthy = self.aws_healthy() if self.moto.is_running() else False
        services = [
            self._service_status(
                "aws (moto)",
                self.moto,
                healthy,
                self.settings.aws_endpoint,
                str(self.moto.log_file),
            ),
            self._service_status(
                "glue (emulator)",
                self.glue,
                self.glue.is_running() and self.glue_healthy(),
                self.settings.glue_endpoint,
                str(self.glue.log_file),
            ),
        ]
        # Only our own Airflow's health: another program may answer on its port.
        airflow_health = (
            self.airflow.component_health()
            if self.airflow.is_running()
            else dict.fromkeys(self.airflow.processes, False)
        )
        # A stack started without Airflow (MUSICPIPE_AIRFLOW=0) lists none, unless some run.
        shown = self.settings.airflow or self.airflow.is_running()
        for name, process in self.airflow.processes.items() if shown else ():
            services.append(
                self._service_status(
                    f"airflow {name}",
                    process,
                    process.is_running() and airflow_health[name],
                    self.airflow.url if name == "api-server" else "-",
                    str(process.log_file),
                )
            )
        running = self.supervisor.is_running()
        doc = self.supervision()
        services.append(
            ServiceStatus(
                name="supervisor",
                running=running,
                healthy=running,
                pid=self.supervisor.pid(),
                endpoint="-",
                uptime_s=self.supervisor.uptime(),
                log=str(self.supervisor.log_file),
                supervision=supervision_state(running, doc),
            )
        )
        resources = resource_states(self, healthy, healthy and self.glue_healthy())
        return StackStatus(services, resources, read_summary(self.settings.snapshot_dir))

    def _service_status(
        self, name: str, process: ManagedProcess, healthy: bool, endpoint: str, log: str
    ) -> ServiceStatus:
        """One service's row, with what the supervisor saw of it since the last `up`."""
        seen = ((self.supervision() or {}).get("services") or {}).get(process.name) or {}
        running = process.is_running()
        note = None
        if not running and process.name in NOT_RESTARTED:
            note = NOT_RESTARTED[process.name]
        elif not running and seen.get("given_up"):
            note = f"{seen['supervision']}; run `musicpipe up` once the cause is fixed"
        return ServiceStatus(
            name=name,
            running=running,
            healthy=healthy,
            pid=process.pid(),
            endpoint=endpoint,
            uptime_s=process.uptime(),
            log=log,
            restarts=int(seen.get("restarts", 0)),
            last_death=seen.get("last_death"),
            last_exit=seen.get("last_exit"),
            supervision=seen.get("supervision"),
            note=note,
        )
