"""Waiting for the pipeline on the local stack: until what was dropped has been processed.

The pipeline is *idle* when the arrivals queue holds no message, Airflow holds no queued asset
event for the DAG, and no DAG run is queued or running. ``wait_until_idle`` polls that (twice in
a row, a second apart, so the hand-over from the queue to the triggerer to a new run is never
mistaken for the end) and returns the runs that started since a given moment.

On a loaded laptop a REST call to Airflow or a call to the local SQS may time out while a Spark
job runs beside them: such a poll counts as busy, and the wait goes on until its deadline. Only a
component that is no longer running ends the wait early.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import botocore.exceptions

from musicpipe.stack.probe import NotRunning, Probe, classify_error

ACTIVE = ("queued", "running")


class WaitTimeout(RuntimeError):
    """The pipeline was still busy when the wait ran out."""


@dataclass
class RunView:
    run_id: str
    state: str
    run_type: str
    started: datetime | None
    ended: datetime | None
    tasks: dict[str, str]  # task id → state (None → "none")

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended or datetime.now(UTC)
        return (end - self.started).total_seconds()

    def failed_tasks(self) -> list[str]:
        return [t for t, s in self.tasks.items() if s in ("failed", "upstream_failed")]


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_views(airflow, since: datetime | None = None, limit: int = 25) -> list[RunView]:
    """The DAG's runs (newest first) created at or after ``since``, with their task states."""
    views = []
    for run in airflow.dag_runs(limit=limit):
        after = _when(run.get("run_after")) or _when(run.get("queued_at"))
        if since is not None and after is not None and after < since:
            continue
        tasks = {
            t["task_id"]: t.get("state") or "none"
            for t in airflow.task_instances(run["dag_run_id"])
        }
        views.append(
            RunView(
                run_id=run["dag_run_id"],
                state=run.get("state") or "none",
                run_type=run.get("run_type") or "",
                started=_when(run.get("start_date")),
                ended=_when(run.get("end_date")),
                tasks=tasks,
            )
        )
    return views


def queue_depth(sqs, queue_url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def is_idle(airflow, sqs, queue_url: str, runs: list[RunView]) -> bool:
    if queue_depth(sqs, queue_url):
        return False
    if airflow.api(f"/dags/{airflow.dag_id}/assets/queuedEvents").get("queued_events"):
        return False
    return not any(r.state in ACTIVE for r in runs)


def is_busy_error(exc: BaseException) -> bool:
    """A failed call that says the service is slow or settling, not gone: a timeout, a reset,
    a 5xx, botocore's connection errors (it has already retried them)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500
    if isinstance(exc, urllib.error.URLError):
        return classify_error(exc.reason) is Probe.BUSY
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        return True
    return isinstance(exc, OSError | http.client.HTTPException) and (
        classify_error(exc) is Probe.BUSY
    )


def wait_until_idle(
    airflow,
    sqs,
    queue_url: str,
    since: datetime,
    timeout: float,
    on_progress: Callable[[list[RunView]], None] = lambda runs: None,
    poll: float = 1.0,
    alive: Callable[[], bool] = lambda: True,
    on_busy: Callable[[str], None] = lambda message: None,
) -> list[RunView]:
    """Poll until at least one run started since ``since`` and the pipeline is idle; return
    those runs (newest first). A poll that times out is a busy poll; ``alive`` false after a
    failed poll raises NotRunning. Raises WaitTimeout naming what was still busy."""
    deadline = time.monotonic() + timeout
    idle_polls = 0
    runs: list[RunView] = []
    while True:
        try:
            runs = run_views(airflow, since)
            on_progress(runs)
            idle = bool(runs) and is_idle(airflow, sqs, queue_url, runs)
        except Exception as exc:
            if not alive():
                raise NotRunning(
                    f"Airflow stopped while waiting ({exc}); run `make up` and drop again"
                ) from None
            if not is_busy_error(exc):
                raise
            on_busy(f"Airflow or the local AWS is busy ({type(exc).__name__}); asking again")
            idle = False
        idle_polls = idle_polls + 1 if idle else 0
        if idle_polls >= 2:
            return runs
        if time.monotonic() > deadline:
            busy = [f"{r.run_id} ({r.state})" for r in runs if r.state in ACTIVE]
            raise WaitTimeout(
                f"the pipeline was still busy after {timeout:.0f} s: "
                + (", ".join(busy) if busy else "no DAG run started since the drop")
                + f". Watch it in the Airflow UI ({airflow.url}) or `musicpipe status`."
            )
        time.sleep(poll)
