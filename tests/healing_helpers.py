"""What the self-healing tests (tests/test_self_healing.py) and the burst benchmark share:
small stream files of one day each, waiting for files to be done (not for the pipeline to be
idle: the retry timer starts a run every few seconds), the checks a user would make of the
result, and the processes of the stack as psutil sees them.

Each scenario uses its own listen day, so its KPI items (keyed ``DATE#<day>``) are compared
with the oracle over its own files alone, whatever the other scenarios did.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import psutil

from musicpipe.contract.layout import ARCHIVE_PREFIX, PINNED_PREFIX
from musicpipe.data.catalogue import Catalogue
from musicpipe.data.streams import write_streams
from musicpipe.stack.runs import is_busy_error, run_views

from .conftest import SAMPLES, run_cli
from .pipeline_helpers import assert_rows_accounted, assert_same_kpis, oracle_items
from .test_pipeline_e2e import PROCESSED, RAW, View

SONGS, USERS = SAMPLES / "songs.csv", SAMPLES / "users.csv"
ETL_SCRIPT = "music_streaming_etl_complete.py"

# Short retry settings (data contract §8.1), so a failed file or a dead claim is taken again
# within seconds, not minutes.
RETRY_ENV = {
    "MUSICPIPE_RETRY_TIMER_SECONDS": "15",
    "MUSICPIPE_RETRY_BASE_SECONDS": "5",
    "MUSICPIPE_RETRY_MAX_SECONDS": "30",
    "MUSICPIPE_MAX_FILE_ATTEMPTS": "4",
    "MUSICPIPE_CLAIM_WINDOW_SECONDS": "120",
}

# Airflow notices the task instances of a dead scheduler only once that scheduler's heartbeat
# is older than scheduler_health_check_threshold (30 s, kept) and the orphan check runs: every
# orphaned_tasks_check_interval, 300 s by default. The embedded stack drops the AIRFLOW*
# variables of its own environment, so the setting goes into the Airflow home's airflow.cfg,
# which Airflow reads under its environment. A file written before Airflow's first start must
# also hold the secrets Airflow would otherwise write there itself: without a shared
# jwt_secret each component makes its own, and the api-server refuses every task's token
# ("Signature verification failed").
AIRFLOW_CFG = """\
[core]
fernet_key = {fernet}

[api]
secret_key = {secret}

[api_auth]
jwt_secret = {jwt}

[scheduler]
orphaned_tasks_check_interval = 15
"""


def prepare_airflow_home(state_dir: Path) -> None:
    from cryptography.fernet import Fernet

    home = state_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "airflow.cfg"
    cfg.write_text(
        AIRFLOW_CFG.format(
            fernet=Fernet.generate_key().decode(),
            secret=secrets.token_urlsafe(16),
            jwt=secrets.token_urlsafe(32),
        )
    )
    cfg.chmod(0o600)


def day_files(folder: Path, day: date, names: Iterable[str], rows: int = 60) -> list[Path]:
    """One small stream file per name, every play on ``day``, ids from the sample set's
    songs and users; the name seeds the rows, so no two files are alike."""
    catalogue = Catalogue.from_files(SONGS, USERS)
    paths = []
    for name in names:
        path = folder / day.isoformat() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = sum(name.encode()) * 7919 + day.toordinal()
        write_streams(path, rows, seed=seed, catalogue=catalogue, start_date=day)
        paths.append(path)
    return paths


def wait_for(check: Callable[[], object], timeout: float, what: str, poll: float = 1.0):
    """Call ``check`` until it returns something true, and return that. A busy Airflow or AWS
    (a timed-out call) is asked again; after ``timeout`` s the error names ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:
            if not is_busy_error(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what} (last: {last!r})")
        time.sleep(poll)


@dataclass(frozen=True)
class Batch:
    """Stream files of one day, uploaded under streams/<prefix>/."""

    day: date
    paths: list[Path]
    prefix: str

    @property
    def keys(self) -> list[str]:
        return [f"streams/{self.prefix}/{p.name}" for p in self.paths]


class Healing(View):
    """The test_pipeline_e2e view, plus what the fault tests look at."""

    def upload(self, batch: Batch) -> None:
        """Every file of the batch at once (a few uploads in flight), as a burst arrives."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            done = pool.map(
                lambda pair: self.s3.upload_file(str(pair[0]), RAW, pair[1]),
                zip(batch.paths, batch.keys, strict=True),
            )
            list(done)  # raises the first upload error

    def statuses(self, keys: Iterable[str]) -> dict[str, str]:
        tracker = self.tracker()
        return {k: tracker.get(k, {}).get("status", "-") for k in keys}

    def archived(self, key: str) -> list[str]:
        name = key.removeprefix("streams/")
        return [k for k in self.keys(RAW, ARCHIVE_PREFIX) if k.split("/", 5)[-1] == name]

    def done(self, keys: list[str]) -> bool:
        """Every key COMPLETED and archived (out of streams/)."""
        if set(self.statuses(keys).values()) != {"COMPLETED"}:
            return False
        waiting = set(self.keys(RAW, "streams/"))
        return not (set(keys) & waiting) and all(self.archived(k) for k in keys)

    def wait_done(self, keys: list[str], timeout: float = 300) -> None:
        try:
            wait_for(lambda: self.done(keys), timeout, f"COMPLETED and archived: {keys}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnosis(keys)}") from None

    def diagnosis(self, keys: list[str]) -> str:
        """What a developer reads first when files did not heal: their tracker items, the
        latest runs with their task states, the supervisor's view and the ends of the logs."""
        lines = ["-- tracker"]
        tracker = self.tracker()
        lines += [f"{k}: {json.dumps(tracker.get(k), default=str)[:600]}" for k in keys]
        lines.append("-- latest runs")
        try:
            for run in self.runs()[:8]:
                lines.append(f"{run.run_id} {run.state} {run.tasks}")
        except Exception as exc:  # the diagnosis must not hide the failure
            lines.append(f"(runs unavailable: {exc})")
        state = self.stack.settings.state_dir
        supervision = state / "supervision.json"
        if supervision.exists():
            lines += ["-- supervision.json", supervision.read_text()[:2000]]
        for log in sorted((state / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-25:]
            lines += [f"-- {log.name} (last {len(tail)} lines)", *tail]
        return "\n".join(lines)

    def assert_healed(self, batch: Batch, attempts: int | None = None) -> dict[str, dict]:
        """What a user checks once the files are done: the KPIs of their day equal the
        oracle's, every row accounted for, each file archived exactly once."""
        day = f"DATE#{batch.day.isoformat()}"
        actual = {k: v for k, v in self.kpis().items() if k[0] == day}
        expected = oracle_items(SONGS, USERS, batch.paths)
        assert expected, f"the oracle found no KPIs for {batch.day}"
        assert_same_kpis(actual, expected)
        tracker = {k: v for k, v in self.tracker().items() if k in batch.keys}
        assert {k: v["status"] for k, v in tracker.items()} == dict.fromkeys(
            batch.keys, "COMPLETED"
        )
        assert_rows_accounted(tracker)
        for key in batch.keys:
            assert len(self.archived(key)) == 1, (key, self.archived(key))
            if attempts is not None:
                assert tracker[key]["attempts"] == attempts, tracker[key]
        return tracker

    def burst(self, batch: Batch, timeout: float) -> float:
        """Drop the batch at once and wait until every file is done; check each was processed
        once (attempts 1, archived once) with the oracle's KPIs. Returns the seconds from the
        first upload to the last file archived."""
        started = time.monotonic()
        self.upload(batch)
        self.wait_done(batch.keys, timeout)
        seconds = time.monotonic() - started
        self.assert_healed(batch, attempts=1)
        return seconds

    def pinned(self, keys: list[str]) -> bool:
        """Every key pinned by a running ETL (pinned/<batch_id>/<key>, data contract §3.2):
        the ETL has claimed them and is about to read them with Spark."""
        pinned = self.keys(PROCESSED, PINNED_PREFIX)
        return all(any(p.endswith("/" + k) for p in pinned) for k in keys)

    def runs(self, since: datetime | None = None):
        return run_views(self.stack.airflow, since)

    def task_running(self, task_id: str, state: str = "running") -> str | None:
        """The id of a recent run whose ``task_id`` is in ``state``, if any."""
        for run in run_views(self.stack.airflow, limit=3):
            if run.tasks.get(task_id) == state:
                return run.run_id
        return None


# -- processes -------------------------------------------------------------------------------


def service_pid(env: dict[str, str], name: str) -> int:
    """The PID `musicpipe status --json` shows for service ``name`` (e.g. "airflow scheduler")."""
    out = run_cli("status", "--json", env=env, timeout=120).stdout
    services = {s["name"]: s for s in json.loads(out)["services"]}
    assert services[name]["pid"], services[name]
    return int(services[name]["pid"])


def tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants, as they are now."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def alive(procs: Iterable[psutil.Process]) -> list[str]:
    """Those of ``procs`` that still run (psutil compares creation times: a reused PID is
    another process)."""
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return left


def etl_script(glue_pid: int) -> psutil.Process | None:
    """The running ETL script (``python music_streaming_etl_complete.py``) under the emulator."""
    for proc in tree(glue_pid)[1:]:
        try:
            if any(part.endswith(ETL_SCRIPT) for part in proc.cmdline()):
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


def spark_driver(script: psutil.Process) -> psutil.Process | None:
    """The Spark driver JVM the script talks to: the warm driver listening on the gateway
    port in the script's environment (musicpipe.glue.warm_spark)."""
    port = int(script.environ().get("PYSPARK_GATEWAY_PORT", "0"))
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "java":
            continue
        try:
            if any(c.laddr.port == port and c.status == "LISTEN" for c in proc.net_connections()):
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def kill9(proc: psutil.Process) -> None:
    proc.kill()  # SIGKILL


# -- a fault only the ETL sees ---------------------------------------------------------------

# Imported by Python at the start of the ETL script's process (the Glue emulator puts
# --extra-py-files on PYTHONPATH, and site imports a sitecustomize found there): S3 refuses to
# read the named raw objects to boto3, as a missing permission would. The validation job (no
# such file on its path) reads them as usual; Spark's S3A is not boto3 and is not touched.
FAULT_HOOK = """\
import botocore.client
import botocore.exceptions

_KEYS = {keys!r}
_call = botocore.client.BaseClient._make_api_call


def _make_api_call(self, operation, params):
    wanted = params.get("Bucket") == {bucket!r} and params.get("Key") in _KEYS
    if operation == "GetObject" and wanted:
        raise botocore.exceptions.ClientError(
            {{"Error": {{"Code": "AccessDenied", "Message": "Access Denied (test fault)"}}}},
            operation,
        )
    return _call(self, operation, params)


botocore.client.BaseClient._make_api_call = _make_api_call
"""


@contextmanager
def etl_cannot_read(stack, keys: list[str]):
    """While the block runs, the ETL job (only it) cannot GetObject ``keys`` from the raw
    bucket; the job's definition is restored when the block ends, whatever happens."""
    s3 = stack.aws.client("s3")
    glue = stack.aws.client("glue", endpoint=stack.settings.glue_endpoint)
    job_name = stack.manifest.etl_job
    hook_key = "tests/fault-hook/sitecustomize.py"
    bucket = stack.manifest.artifacts_bucket
    s3.put_object(
        Bucket=bucket, Key=hook_key, Body=FAULT_HOOK.format(keys=set(keys), bucket=RAW).encode()
    )
    job = glue.get_job(JobName=job_name)["Job"]
    members = glue.meta.service_model.shape_for("JobUpdate").members
    original = {k: v for k, v in job.items() if k in members}
    faulty = json.loads(json.dumps(original, default=str))
    args = faulty["DefaultArguments"]
    args["--extra-py-files"] = f"s3://{bucket}/{hook_key}," + args.get("--extra-py-files", "")
    glue.update_job(JobName=job_name, JobUpdate=faulty)
    try:
        yield
    finally:
        glue.update_job(JobName=job_name, JobUpdate=original)
