"""The embedded stack: AWS APIs from a moto server on loopback, no Docker, no account.

``up`` checks what the stack needs, starts moto (by PID, in its own process group, logging to
the state folder), bootstraps every resource of the manifest and restores the snapshot the last
``down`` saved. ``down`` saves the snapshot and stops what ``up`` started.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from musicpipe.bootstrap import Change, bootstrap
from musicpipe.manifest import Manifest
from musicpipe.stack import preflight
from musicpipe.stack.persistence import (
    SnapshotSummary,
    read_summary,
    restore_snapshot,
    save_snapshot,
)
from musicpipe.stack.processes import ManagedProcess
from musicpipe.stack.safety import LocalAws, local_environment
from musicpipe.stack.settings import StackSettings

HEALTH_PATH = "/moto-api/"


class StackError(RuntimeError):
    """The stack could not be started, stopped or reached; the message says what to do."""


@dataclass
class UpReport:
    already_running: bool
    changes: list[Change]
    restored: SnapshotSummary | None
    fresh: bool
    pid: int | None


@dataclass
class ServiceStatus:
    name: str
    running: bool
    healthy: bool
    pid: int | None
    endpoint: str
    uptime_s: float | None
    log_file: Path


@dataclass
class StackStatus:
    services: list[ServiceStatus]
    resources: list[Change] = field(default_factory=list)
    snapshot: SnapshotSummary | None = None


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 500
    except (urllib.error.URLError, OSError):
        return False


class EmbeddedStack:
    def __init__(self, settings: StackSettings, manifest: Manifest) -> None:
        self.settings = settings
        self.manifest = manifest
        self.moto = ManagedProcess("moto", settings.state_dir)

    @property
    def aws(self) -> LocalAws:
        return LocalAws(self.settings.aws_endpoint, self.manifest.region)

    def aws_healthy(self) -> bool:
        return http_ok(self.settings.aws_endpoint + HEALTH_PATH)

    # -- up ------------------------------------------------------------------------------
    def up(self, fresh: bool = False, health_timeout: float = 30.0) -> UpReport:
        preflight.check_python()
        preflight.check_java()
        already = self.moto.is_running() and self.aws_healthy()
        if not already:
            if self.moto.is_running():  # ours, but not answering: restart it
                self.moto.stop()
            self._start_moto(health_timeout)
        changes = bootstrap(self.aws.client, self.manifest)
        restored = None
        if not already and not fresh:
            restored = restore_snapshot(self.aws, self.manifest, self.settings.snapshot_dir)
            if restored is not None:
                self._drain_arrivals()
        return UpReport(already, changes, restored, fresh, self.moto.pid())

    def _start_moto(self, health_timeout: float) -> None:
        s = self.settings
        preflight.check_port_free(s.host, s.aws_port, "the AWS emulator", "MUSICPIPE_AWS_PORT")
        env = local_environment(dict(os.environ), s.aws_endpoint, self.manifest.region)
        cmd = [sys.executable, "-m", "moto.server", "-H", s.host, "-p", str(s.aws_port)]
        self.moto.start(cmd, env=env)
        deadline = time.monotonic() + health_timeout
        while time.monotonic() < deadline:
            if not self.moto.is_running():
                raise StackError(
                    f"the moto server exited at start. Last lines of {self.moto.log_file}:\n"
                    + self.moto.tail()
                )
            if self.aws_healthy():
                return
            time.sleep(0.2)
        self.moto.stop()
        raise StackError(
            f"the moto server did not answer on {s.aws_endpoint} within {health_timeout:.0f} s. "
            f"Its log: {self.moto.log_file}"
        )

    def _drain_arrivals(self) -> None:
        """Restoring objects into streams/ fires S3 events for files that already arrived
        before the last `down`; they are not new arrivals, so drop those messages."""
        sqs = self.aws.client("sqs")
        url = sqs.get_queue_url(QueueName=self.manifest.arrivals_queue)["QueueUrl"]
        sqs.purge_queue(QueueUrl=url)

    # -- down ----------------------------------------------------------------------------
    def down(self, save: bool = True) -> SnapshotSummary | None:
        saved = None
        if self.moto.is_running() and self.aws_healthy() and save:
            saved = save_snapshot(self.aws, self.manifest, self.settings.snapshot_dir)
        self.moto.stop()
        return saved

    # -- status --------------------------------------------------------------------------
    def status(self) -> StackStatus:
        healthy = self.aws_healthy() if self.moto.is_running() else False
        services = [
            ServiceStatus(
                name="aws (moto)",
                running=self.moto.is_running(),
                healthy=healthy,
                pid=self.moto.pid(),
                endpoint=self.settings.aws_endpoint,
                uptime_s=self.moto.uptime(),
                log_file=self.moto.log_file,
            )
        ]
        resources = bootstrap(self.aws.client, self.manifest, apply=False) if healthy else []
        return StackStatus(services, resources, read_summary(self.settings.snapshot_dir))
