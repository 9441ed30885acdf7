"""Running one job run for real, as Glue would: fetch, execute, log, time out, stop.

Each run gets a thread that downloads the script and the --extra-py-files from S3, starts the
script with Python in a process group of its own (glueetl: connected to a warm Spark driver JVM
from :mod:`musicpipe.glue.warm_spark`, or launching its own), streams stdout and stderr to
CloudWatch Logs (stream name = run id), enforces the timeout and records the final state with
the script's own error as ErrorMessage.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from musicpipe.aws.local import LocalAws, local_environment
from musicpipe.glue import (
    bookmarks,
    debugging,
    etl_library_path,
    model,
    python_modules,
    runtimes,
    spark,
    spark_ui,
    warm_spark,
)
from musicpipe.glue.log_shipper import LogShipper
from musicpipe.glue.model import JobRunState
from musicpipe.glue.store import Store
from musicpipe.processes import create_time, same_process

STOP_GRACE_SECONDS = 10
# On Glue a run fails when its driver dies. A script here fails at its next Spark call, but
# one that is busy without Spark (or waits) would run on without a driver: this long after
# the warm driver's death the script is ended.
DRIVER_LOST_GRACE_SECONDS = 10


class FetchError(RuntimeError):
    pass


@dataclass
class RunnerSettings:
    state_dir: Path
    aws_endpoint: str
    glue_endpoint: str
    region: str
    minute_seconds: float = 60.0  # length of a Timeout minute; tests shorten it
    temp_dir: str = "s3://aws-glue-temporary/"  # the default --TempDir root (GlueBackend's)


@dataclass
class ActiveRun:
    run_id: str
    job_name: str
    thread: threading.Thread | None = None
    process: subprocess.Popen | None = None
    stop_requested: bool = False
    stderr_tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=400))


def split_s3_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("s3", "s3a", "s3n") or not parts.netloc or not parts.path.strip("/"):
        raise FetchError(f"{url!r} is not an s3://bucket/key location")
    return parts.netloc, parts.path.lstrip("/")


class Runner:
    def __init__(self, store: Store, settings: RunnerSettings) -> None:
        self.store = store
        self.settings = settings
        self.aws = LocalAws(settings.aws_endpoint, settings.region)
        self.active: dict[str, ActiveRun] = {}
        self.lock = threading.Lock()
        self.warm = (
            warm_spark.WarmSparkPool(settings.state_dir / "spark-drivers.log")
            if warm_spark.enabled()
            else None
        )

    # -- lifecycle ------------------------------------------------------------------------
    def recover(self) -> None:
        """After a restart: runs that were in flight cannot be resumed; say so in their state."""
        for run in self.store.all_runs():
            if run["JobRunState"] in model.ACTIVE_STATES:
                pgid = run.get("_pgid")
                # Only if that process is still the one we started (PIDs get recycled).
                if pgid and same_process(pgid, run.get("_pstart")):
                    self._kill_group(pgid, signal.SIGKILL)
                model.finish(
                    run,
                    JobRunState.FAILED,
                    "The Glue emulator restarted while this run was in progress.",
                )
                self.store.put_run(run)

    def shutdown(self) -> None:
        with self.lock:
            active = list(self.active.values())
        for handle in active:
            handle.stop_requested = True
            if handle.process is not None:
                self._kill_group(handle.process.pid, signal.SIGTERM)
        for handle in active:
            if handle.thread is not None:
                handle.thread.join(timeout=STOP_GRACE_SECONDS + 5)
        if self.warm is not None:
            self.warm.shutdown()

    # -- API-facing ----------------------------------------------------------------------
    def start(self, run: dict) -> None:
        handle = ActiveRun(run["Id"], run["JobName"])
        handle.thread = threading.Thread(target=self._execute, args=(run, handle), daemon=True)
        with self.lock:
            self.active[run["Id"]] = handle
        handle.thread.start()

    def stop(self, run_id: str) -> bool:
        """Ask a run to stop. False when the run is not active here."""
        with self.lock:
            handle = self.active.get(run_id)
        if handle is None:
            return False
        handle.stop_requested = True
        self._update(handle, JobRunState.STOPPING)
        if handle.process is not None:
            threading.Thread(target=self._terminate, args=(handle.process,), daemon=True).start()
        return True

    # -- the run itself -------------------------------------------------------------------
    def _update(self, handle: ActiveRun, state: JobRunState, **fields) -> dict:
        with self.store.lock:
            run = self.store.get_run(handle.job_name, handle.run_id)
            assert run is not None  # stored before start() made the handle
            if run["JobRunState"] in model.TERMINAL_STATES:
                return run
            if not (run["JobRunState"] == JobRunState.STOPPING and state == JobRunState.RUNNING):
                run["JobRunState"] = state
            run["LastModifiedOn"] = model.now()
            run.update(fields)
            self.store.put_run(run)
            return run

    def _finish(self, handle: ActiveRun, state: JobRunState, error: str | None = None) -> None:
        """The run's end; a FAILED run that its job's MaxRetries allows again gets its next
        attempt, stored before the end is, so whoever reads FAILED finds the retry."""
        retry = None
        with self.store.lock:
            run = self.store.get_run(handle.job_name, handle.run_id)
            assert run is not None  # stored before start() made the handle
            if run["JobRunState"] not in model.TERMINAL_STATES:
                model.finish(run, state, error)
                if not handle.stop_requested:
                    job = self.store.get_job(run["JobName"])
                    retry = model.retry_of(run, job, self.settings.temp_dir)
                if retry is not None:
                    self.store.put_run(retry)
                self.store.put_run(run)
        if retry is not None:
            self.start(retry)

    def _execute(self, run: dict, handle: ActiveRun) -> None:
        workdir = self.store.run_dir(run["Id"])
        logs = self.aws.client("logs")
        prefix = run["LogGroupName"]
        out = LogShipper(logs, f"{prefix}/output", run["Id"], workdir / "stdout.log")
        err = LogShipper(logs, f"{prefix}/error", run["Id"], workdir / "stderr.log")
        try:
            state, error = self._run_process(run, handle, workdir, out, err)
            if state == JobRunState.SUCCEEDED and bookmarks.keep_commit(self.store, run, workdir):
                out.write("[musicpipe] job bookmark saved (job.commit() in a run that succeeded)")
        except (
            FetchError,
            spark.SparkSetupError,
            spark_ui.SparkUiError,
            debugging.DebugSetupError,
            python_modules.ModulesError,
            runtimes.GlueRuntimeError,
        ) as exc:
            err.write(str(exc))
            state, error = JobRunState.FAILED, str(exc)
        except Exception as exc:  # an emulator bug must still end the run honestly
            err.write(f"[musicpipe] emulator error: {exc!r}")
            state, error = JobRunState.FAILED, f"Glue emulator error: {exc!r}"
        finally:
            for shipper in (out, err):
                try:
                    shipper.close()
                except Exception as exc:  # the run must still end with its state
                    error = error or f"Glue emulator error while closing its logs: {exc!r}"
        self._finish(handle, state, error)
        with self.lock:
            self.active.pop(run["Id"], None)

    def _run_process(
        self, run: dict, handle: ActiveRun, workdir: Path, out: LogShipper, err: LogShipper
    ) -> tuple[JobRunState, str | None]:
        args = run["_resolved"]
        # Where this run's Spark or Python is not its Glue version's: the error log's first
        # line says so (the output log's first line is the script's, or the debugger's).
        runtime = None
        if run["_command"] == model.GLUEETL:
            version = run.get("GlueVersion", "")
            spark_version = runtimes.spark_for(version)
            note = runtimes.runtime_note(version, spark_version)
            if note:
                err.write(note)
            if spark_version in runtimes.SPARK_RUNTIMES:
                runtime = runtimes.ensure_runtime(spark_version, out.write)
        elif run.get("_python") and (note := runtimes.python_shell_note(run["_python"])):
            err.write(note)
        if run.get("Attempt"):
            out.write(
                f"[musicpipe] Attempt {run['Attempt']}: this run retries "
                f"{run.get('PreviousRunId')}, which FAILED (the job's MaxRetries)"
            )
        script = self._fetch(run["_script"], workdir / "script")
        libs = [
            self._fetch(url.strip(), workdir / "libs")
            for url in args.get("--extra-py-files", "").split(",")
            if url.strip()
        ]
        modules = python_modules.ensure_modules(
            args, lambda url: self._fetch(url, workdir / "modules"), out.write
        )
        if handle.stop_requested:
            return JobRunState.STOPPED, None
        options, script = debugging.prepare(
            args, script, self.store.debug_dir(run["JobName"]), out.write
        )
        env = local_environment(
            dict(os.environ),
            self.settings.aws_endpoint,
            self.settings.region,
            self.settings.glue_endpoint,
        )
        env["PYTHONUNBUFFERED"] = "1"
        if run["_command"] not in model.RUNNABLE:
            return (
                JobRunState.FAILED,
                f"Command.Name {run['_command']!r} is not run by this emulator.",
            )
        # Glue puts --extra-py-files (.py, .zip, .egg, .whl) on sys.path before the script runs.
        paths = [str(p.parent if p.suffix == ".py" else p) for p in libs]
        if modules is not None:
            paths.append(str(modules))
        if run["_command"] == model.GLUEETL:
            glue_library = etl_library_path.library_folder()
            if glue_library is not None:  # GlueContext, DynamicFrame, Job on plain Spark
                paths.append(str(glue_library))
            env.update(bookmarks.run_environment(self.store, run["JobName"], workdir))
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).strip(os.pathsep)
        driver = None
        events: tuple[str, str] | None = None
        event_dir = workdir / "spark-events"
        if run["_command"] == model.GLUEETL:
            events = spark_ui.event_logs_location(args)
            wiring = spark.glueetl_spark(
                self.settings.aws_endpoint,
                self.settings.region,
                self.settings.state_dir,
                log=out.write,
                spark_home=runtime.spark_home if runtime else None,
            )
            env.update(wiring.env(str(runtime.python) if runtime else sys.executable))
            if runtime is not None:  # its pyspark launches its own Spark, not the emulator's
                env["SPARK_HOME"] = str(runtime.spark_home)
            # The UI's port is chosen here, so its URL is in the log before the script starts.
            ui_port = spark.free_port()
            ui_url = f"http://127.0.0.1:{ui_port}"
            out.write(f"[musicpipe] Spark UI: {ui_url} (live while the run's SparkContext runs)")
            self._keep(handle, **{spark_ui.UI_URL_FIELD: ui_url})
            if events:
                event_dir.mkdir(parents=True, exist_ok=True)
                out.write(
                    f"[musicpipe] Spark event logs: s3://{events[0]}/{events[1]} "
                    "(uploaded when the run ends)"
                )
            run_conf = spark_ui.run_conf(ui_port, event_dir if events else None)
            # Spark's Python workers (UDFs) import what the driver does: the run's libraries
            # and modules, also on a warm driver whose JVM was started for another run.
            run_conf["spark.executorEnv.PYTHONPATH"] = env["PYTHONPATH"]
            if self.warm is not None and runtime is None:
                # The run's libraries reach its driver through PYTHONPATH, not the shared JVM.
                shared = wiring.submit_args("musicpipe-warm-driver", [])
                jvm_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
                driver = self.warm.checkout(shared, jvm_env)
                try:
                    driver.set_properties(run_conf)
                except Exception as exc:  # a JVM that cannot answer: not lent any longer
                    self.warm.give_back(driver, reusable=False)
                    raise spark.SparkSetupError(
                        f"the warm Spark driver did not take the run's settings: {exc!r}"
                    ) from None
                env.update(driver.env())
            else:
                env["PYSPARK_SUBMIT_ARGS"] = wiring.submit_args(run["JobName"], libs, run_conf)
        state = JobRunState.FAILED
        try:
            python = str(runtime.python) if runtime else sys.executable
            state, error = self._spawn_and_wait(
                run, handle, workdir, env, [python, *options, str(script)], out, err, driver
            )
            return state, error
        finally:
            if driver is not None and self.warm is not None:
                # Only a clean success leaves the JVM fit for the next run.
                self.warm.give_back(driver, reusable=state == JobRunState.SUCCEEDED)
            if events:
                self._upload_event_logs(handle, event_dir, events, err)

    def _upload_event_logs(
        self, handle: ActiveRun, folder: Path, where: tuple[str, str], err: LogShipper
    ) -> None:
        # Without a warm driver the script's own JVM closes the log in its shutdown hook, after
        # the script has exited: wait for the run's process group to be gone first.
        if handle.process is not None and self.warm is None:
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while time.monotonic() < deadline and _group_alive(handle.process.pid):
                time.sleep(0.1)
        bucket, prefix = where
        try:
            spark_ui.upload_event_logs(self.aws.client("s3"), folder, bucket, prefix)
        except (ClientError, S3UploadFailedError, OSError) as exc:
            err.write(
                f"[musicpipe] could not upload the Spark event logs to "
                f"s3://{bucket}/{prefix}: {exc}"
            )

    def _keep(self, handle: ActiveRun, **fields) -> None:
        """Fields kept on the stored run, its state unchanged."""
        with self.store.lock:
            run = self.store.get_run(handle.job_name, handle.run_id)
            assert run is not None  # stored before start() made the handle
            run.update(fields)
            self.store.put_run(run)

    def _spawn_and_wait(
        self,
        run: dict,
        handle: ActiveRun,
        workdir: Path,
        env: dict[str, str],
        script: list[str],  # the Python, its options, then the script's path
        out: LogShipper,
        err: LogShipper,
        driver: warm_spark.WarmDriver | None = None,
    ) -> tuple[JobRunState, str | None]:
        cmd = [*script, *model.script_argv(run["_resolved"])]

        process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=workdir,
            start_new_session=True,  # its own group: stop and timeout kill the whole tree (JVM too)
            text=True,
            errors="replace",
        )
        handle.process = process
        self._update(
            handle, JobRunState.RUNNING, _pgid=process.pid, _pstart=create_time(process.pid)
        )
        if handle.stop_requested:  # a stop that came while we were starting
            threading.Thread(target=self._terminate, args=(process,), daemon=True).start()
        pumps = [
            threading.Thread(target=self._pump, args=(process.stdout, out, None), daemon=True),
            threading.Thread(
                target=self._pump, args=(process.stderr, err, handle.stderr_tail), daemon=True
            ),
        ]
        for pump in pumps:
            pump.start()
        deadline = run["StartedOn"] + run["Timeout"] * self.settings.minute_seconds
        timed_out = False
        driver_lost: float | None = None  # when the warm driver was seen dead
        while process.poll() is None:
            if time.time() > deadline and not timed_out:
                timed_out = True
                err.write(f"[musicpipe] run exceeded its timeout of {run['Timeout']} minutes")
                self._terminate(process)
            if driver is not None and driver_lost is None and not driver.alive():
                driver_lost = time.monotonic()
                err.write(
                    f"[musicpipe] the run's Spark driver JVM exited ({driver.exit_code()}); "
                    f"the script is ended if it is still running in {DRIVER_LOST_GRACE_SECONDS} s"
                )
            if (
                driver_lost is not None
                and time.monotonic() - driver_lost > DRIVER_LOST_GRACE_SECONDS
            ):
                driver_lost = float("inf")  # ended once
                self._terminate(process)
            time.sleep(0.2)
        for pump in pumps:
            pump.join(timeout=10)
        if timed_out:
            return JobRunState.TIMEOUT, (
                f"Job run timed out: it exceeded its timeout of {run['Timeout']} minutes."
            )
        if handle.stop_requested:
            return JobRunState.STOPPED, None
        if process.returncode == 0:
            return JobRunState.SUCCEEDED, None
        message = model.error_message("\n".join(handle.stderr_tail))
        if driver is not None and not driver.alive():
            return JobRunState.FAILED, (
                f"The Spark driver exited ({driver.exit_code()}) while the run was running"
                + (f": {message}" if message else ".")
            )
        return JobRunState.FAILED, message or f"Script exited with code {process.returncode}."

    @staticmethod
    def _pump(stream, shipper: LogShipper, tail) -> None:
        for line in stream:
            line = line.rstrip("\n")
            shipper.write(line)
            if tail is not None:
                tail.append(line)

    def _fetch(self, url: str, folder: Path) -> Path:
        bucket, key = split_s3_url(url)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / Path(key).name
        try:
            self.aws.client("s3").download_file(bucket, key, str(target))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NoSuchBucket"):
                raise FetchError(
                    f"{url} does not exist: upload it before starting the job."
                ) from None
            raise FetchError(f"could not fetch {url}: {exc}") from None
        return target

    def _terminate(self, process: subprocess.Popen) -> None:
        self._kill_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._kill_group(process.pid, signal.SIGKILL)

    @staticmethod
    def _kill_group(pgid: int | None, sig: int) -> None:
        if not pgid:
            return
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
