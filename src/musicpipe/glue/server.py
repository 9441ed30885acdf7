"""The Glue job API over the AWS JSON 1.1 protocol, on a loopback port.

Requests are ``POST /`` with ``X-Amz-Target: AWSGlue.<Operation>`` and a JSON body; answers
are JSON, errors ``{"__type": <code>, "message": …}`` with HTTP 400, which botocore turns into
the ``ClientError`` and modelled exception classes it would raise against AWS. Timestamps are
epoch seconds, as in every JSON protocol AWS service.

Run as ``python -m musicpipe.glue.server --port 4567 --state-dir … --aws-endpoint …``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from musicpipe.aws.local import require_loopback
from musicpipe.glue import errors, model
from musicpipe.glue.runner import Runner, RunnerSettings
from musicpipe.glue.store import Store
from musicpipe.manifest import load_manifest

MAX_PAGE = 200


class GlueService:
    """The operations: request dict in, response dict out, errors.GlueError for Glue errors."""

    def __init__(self, store: Store, runner: Runner, temp_dir: str) -> None:
        self.store = store
        self.runner = runner
        self.temp_dir = temp_dir

    def dispatch(self, operation: str, request: dict) -> dict:
        handler = getattr(self, "op_" + operation, None)
        if handler is None:
            raise errors.UnknownOperation(
                f"Operation {operation} is not served by the Glue emulator."
            )
        return handler(request)

    # -- helpers --------------------------------------------------------------------------
    def _job(self, name: str | None) -> dict:
        if not name:
            raise errors.InvalidInput("JobName should not be null or empty.")
        job = self.store.get_job(name)
        if job is None:
            raise errors.EntityNotFound(f"Job with name: {name} not found")
        return job

    @staticmethod
    def _page(items: list, request: dict) -> tuple[list, str | None]:
        size = int(request.get("MaxResults") or 100)
        if not 1 <= size <= MAX_PAGE:
            raise errors.InvalidInput(f"MaxResults must be between 1 and {MAX_PAGE}.")
        start = int(request.get("NextToken") or 0)
        page = items[start : start + size]
        return page, (str(start + size) if start + size < len(items) else None)

    def _active_runs(self, job_name: str) -> int:
        return sum(1 for r in self.store.runs(job_name) if r["JobRunState"] in model.ACTIVE_STATES)

    # -- jobs -----------------------------------------------------------------------------
    def op_CreateJob(self, request: dict) -> dict:
        name = request.get("Name", "")
        job = model.validate_job({k: v for k, v in request.items() if k != "Name"}, name=name)
        with self.store.lock:
            existing = self.store.get_job(name)
            if existing is not None:
                same = {
                    k: v for k, v in existing.items() if k not in ("CreatedOn", "LastModifiedOn")
                }
                if same != job:
                    raise errors.IdempotentParameterMismatch(
                        f"Job with name {name} already exists with different parameters."
                    )
                return {"Name": name}
            stamp = model.now()
            self.store.put_job({**job, "CreatedOn": stamp, "LastModifiedOn": stamp})
        return {"Name": name}

    def op_UpdateJob(self, request: dict) -> dict:
        name = request.get("JobName", "")
        update = request.get("JobUpdate")
        if not isinstance(update, dict):
            raise errors.InvalidInput("JobUpdate should not be null.")
        with self.store.lock:
            current = self._job(name)
            # UpdateJob replaces the definition: members left out go back to their defaults.
            job = model.validate_job(update, name=name)
            self.store.put_job(
                {**job, "CreatedOn": current["CreatedOn"], "LastModifiedOn": model.now()}
            )
        return {"JobName": name}

    def op_GetJob(self, request: dict) -> dict:
        return {"Job": self._job(request.get("JobName"))}

    def op_GetJobs(self, request: dict) -> dict:
        page, token = self._page(self.store.jobs(), request)
        return {"Jobs": page, **({"NextToken": token} if token else {})}

    def op_ListJobs(self, request: dict) -> dict:
        page, token = self._page([j["Name"] for j in self.store.jobs()], request)
        return {"JobNames": page, **({"NextToken": token} if token else {})}

    def op_DeleteJob(self, request: dict) -> dict:
        name = request.get("JobName", "")
        if not name:
            raise errors.InvalidInput("JobName should not be null or empty.")
        self.store.delete_job(name)  # Glue answers the same whether or not the job existed
        return {"JobName": name}

    # -- runs -----------------------------------------------------------------------------
    def op_StartJobRun(self, request: dict) -> dict:
        with self.store.lock:
            job = self._job(request.get("JobName"))
            if job["Command"]["Name"] not in model.RUNNABLE:
                raise errors.InvalidInput(
                    f"Command.Name {job['Command']['Name']!r} is not run by this emulator; "
                    f"use one of {model.RUNNABLE}."
                )
            run = model.new_run(job, request, self._active_runs(job["Name"]), self.temp_dir)
            self.store.put_run(run)
        self.runner.start(run)
        return {"JobRunId": run["Id"]}

    def op_GetJobRun(self, request: dict) -> dict:
        job = self._job(request.get("JobName"))
        run_id = request.get("RunId", "")
        run = self.store.get_run(job["Name"], run_id)
        if run is None:
            raise errors.EntityNotFound(f"Job run {run_id} of job {job['Name']} not found")
        return {"JobRun": model.public_run(run)}

    def op_GetJobRuns(self, request: dict) -> dict:
        job = self._job(request.get("JobName"))
        runs = [model.public_run(r) for r in self.store.runs(job["Name"])]
        page, token = self._page(runs, request)
        return {"JobRuns": page, **({"NextToken": token} if token else {})}

    def op_BatchStopJobRun(self, request: dict) -> dict:
        job = self._job(request.get("JobName"))
        ok, failures = [], []
        for run_id in request.get("JobRunIds") or []:
            run = self.store.get_run(job["Name"], run_id)
            if run is None:
                detail = {"ErrorCode": "EntityNotFoundException", "ErrorMessage": "Run not found"}
            elif run["JobRunState"] in model.TERMINAL_STATES:
                detail = {
                    "ErrorCode": "InvalidInputException",
                    "ErrorMessage": f"Job run is already {run['JobRunState']}",
                }
            elif self.runner.stop(run_id):
                ok.append({"JobName": job["Name"], "JobRunId": run_id})
                continue
            else:
                detail = {"ErrorCode": "InvalidInputException", "ErrorMessage": "Run not active"}
            failures.append({"JobName": job["Name"], "JobRunId": run_id, "ErrorDetail": detail})
        return {"SuccessfulSubmissions": ok, "Errors": failures}


def make_handler(service: GlueService):
    class Handler(BaseHTTPRequestHandler):
        server_version = "musicpipe-glue/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write(f"{self.log_date_time_string()} {fmt % args}\n")

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # health check for the stack
            if self.path.rstrip("/") in ("", "/health"):
                self._send(200, {"service": "glue", "status": "ok"})
            else:
                self._send(404, {"__type": "UnknownOperationException", "message": self.path})

        def do_POST(self) -> None:
            target = self.headers.get("X-Amz-Target", "")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                service_name, _, operation = target.partition(".")
                if service_name != "AWSGlue" or not operation:
                    raise errors.UnknownOperation(f"Unknown X-Amz-Target {target!r}")
                try:
                    request = json.loads(raw or b"{}")
                except ValueError as exc:
                    raise errors.SerializationError(f"Request body is not JSON: {exc}") from None
                self._send(200, service.dispatch(operation, request))
            except errors.GlueError as exc:
                self._send(exc.status, {"__type": exc.code, "message": exc.message})
            except Exception as exc:  # never leave botocore with a dropped connection
                self._send(500, {"__type": "InternalServiceException", "message": repr(exc)})

    return Handler


# Set by the Compose stack's Glue container: there the server listens on the container's own
# network (the published port is bound to the host's loopback by Compose).
IN_CONTAINER_ENV = "MUSICPIPE_IN_CONTAINER"


def serve(
    host: str,
    port: int,
    state_dir: Path,
    aws_endpoint: str,
    region: str,
    temp_dir: str,
    public_endpoint: str | None = None,
):
    if not (host == "0.0.0.0" and os.environ.get(IN_CONTAINER_ENV) == "1"):
        require_loopback(f"http://{host}:{port}")
    store = Store(state_dir)
    minute = float(os.environ.get("MUSICPIPE_GLUE_MINUTE_SECONDS", "60"))
    runner = Runner(
        store,
        RunnerSettings(
            state_dir=state_dir,
            aws_endpoint=require_loopback(aws_endpoint),
            glue_endpoint=require_loopback(public_endpoint or f"http://{host}:{port}"),
            region=region,
            minute_seconds=minute,
        ),
    )
    runner.recover()
    httpd = ThreadingHTTPServer((host, port), make_handler(GlueService(store, runner, temp_dir)))
    httpd.daemon_threads = True

    def stop(signum, frame):  # SIGTERM from `musicpipe down`: stop runs, then the server
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Glue job emulator on http://{host}:{port} (state in {state_dir})", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        runner.shutdown()
        httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m musicpipe.glue.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4567)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--aws-endpoint", required=True, help="the local S3/Logs endpoint")
    parser.add_argument("--region", help="default: the manifest's region")
    parser.add_argument(
        "--temp-dir", help="--TempDir for runs (default: temporary/ in the artifacts bucket)"
    )
    parser.add_argument(
        "--public-endpoint", help="the URL jobs reach the emulator at (default: host and port)"
    )
    args = parser.parse_args(argv)
    manifest = load_manifest()
    serve(
        args.host,
        args.port,
        args.state_dir,
        args.aws_endpoint,
        args.region or manifest.region,
        args.temp_dir or f"s3://{manifest.artifacts_bucket}/temporary/",
        args.public_endpoint,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
