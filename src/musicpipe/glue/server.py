"""The Glue job and interactive session API over the AWS JSON 1.1 protocol, on a loopback port.

Requests are ``POST /`` with ``X-Amz-Target: AWSGlue.<Operation>`` and a JSON body; answers
are JSON, errors ``{"__type": <code>, "message": …}`` with the error's HTTP status (400 for
every Glue error in :mod:`musicpipe.glue.errors`), which botocore turns into the
``ClientError`` and modelled exception classes it would raise against AWS. Timestamps are
epoch seconds, as in every JSON protocol AWS service. This module is the wire only: the
operations' rules are in :mod:`musicpipe.glue.model`.

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
from musicpipe.glue import bookmarks, catalog, errors, model
from musicpipe.glue.runner import Runner, RunnerSettings
from musicpipe.glue.sessions import SessionManager, session_environment
from musicpipe.glue.store import Store
from musicpipe.manifest import load_manifest


def _paged(member: str, result: tuple[list, str | None]) -> dict:
    items, token = result
    return {member: items, **({"NextToken": token} if token else {})}


class GlueService:
    """The wire side of each operation: request dict in, response dict out.

    Each ``op_<Operation>`` takes the members it needs from the request, calls the
    :class:`model.GlueBackend` and shapes its result as Glue's response; the backend decides
    every outcome and raises :class:`errors.GlueError` for Glue's errors.
    """

    def __init__(
        self, backend: model.GlueBackend, sessions: SessionManager, store: Store, aws_endpoint: str
    ) -> None:
        self.backend = backend
        self.sessions = sessions
        self.store = store  # job bookmarks
        self.aws_endpoint = aws_endpoint  # the Data Catalog is moto's (glue.catalog)

    def dispatch(self, operation: str, request: dict) -> dict:
        handler = getattr(self, "op_" + operation, None)
        if handler is None:
            raise errors.UnknownOperation(
                f"Operation {operation} is not served by the Glue emulator."
            )
        return handler(request)

    # -- jobs -----------------------------------------------------------------------------
    def op_CreateJob(self, request: dict) -> dict:
        name = request.get("Name", "")
        self.backend.create_job(name, {k: v for k, v in request.items() if k != "Name"})
        return {"Name": name}

    def op_UpdateJob(self, request: dict) -> dict:
        name = request.get("JobName", "")
        self.backend.update_job(name, request.get("JobUpdate"))
        return {"JobName": name}

    def op_GetJob(self, request: dict) -> dict:
        return {"Job": self.backend.get_job(request.get("JobName"))}

    def op_GetJobs(self, request: dict) -> dict:
        result = self.backend.get_jobs(request.get("MaxResults"), request.get("NextToken"))
        return _paged("Jobs", result)

    def op_ListJobs(self, request: dict) -> dict:
        result = self.backend.list_jobs(request.get("MaxResults"), request.get("NextToken"))
        return _paged("JobNames", result)

    def op_DeleteJob(self, request: dict) -> dict:
        name = request.get("JobName", "")
        self.backend.delete_job(name)
        return {"JobName": name}

    # -- runs -----------------------------------------------------------------------------
    def op_StartJobRun(self, request: dict) -> dict:
        return {"JobRunId": self.backend.start_job_run(request.get("JobName"), request)}

    def op_GetJobRun(self, request: dict) -> dict:
        run = self.backend.get_job_run(request.get("JobName"), request.get("RunId", ""))
        return {"JobRun": run}

    def op_GetJobRuns(self, request: dict) -> dict:
        result = self.backend.get_job_runs(
            request.get("JobName"), request.get("MaxResults"), request.get("NextToken")
        )
        return _paged("JobRuns", result)

    # -- job bookmarks --------------------------------------------------------------------
    def op_GetJobBookmark(self, request: dict) -> dict:
        name = self.backend.get_job(request.get("JobName"))["Name"]
        return {"JobBookmarkEntry": bookmarks.get_entry(self.store, name)}

    def op_ResetJobBookmark(self, request: dict) -> dict:
        name = self.backend.get_job(request.get("JobName"))["Name"]
        return {"JobBookmarkEntry": bookmarks.reset(self.store, name)}

    def op_BatchStopJobRun(self, request: dict) -> dict:
        stopped, refused = self.backend.batch_stop_job_run(
            request.get("JobName"), request.get("JobRunIds") or []
        )
        return {"SuccessfulSubmissions": stopped, "Errors": refused}

    # -- interactive sessions (musicpipe.glue.sessions) ----------------------------------------
    def op_CreateSession(self, request: dict) -> dict:
        return {"Session": self.sessions.create(request)}

    def op_GetSession(self, request: dict) -> dict:
        return {"Session": self.sessions.get(request.get("Id", ""))}

    def op_ListSessions(self, request: dict) -> dict:
        sessions, token = self.sessions.list_sessions(
            request.get("MaxResults"), request.get("NextToken")
        )
        ids = [s["Id"] for s in sessions]
        return {"Ids": ids, "Sessions": sessions, **({"NextToken": token} if token else {})}

    def op_StopSession(self, request: dict) -> dict:
        return {"Id": self.sessions.stop(request.get("Id", ""))}

    def op_DeleteSession(self, request: dict) -> dict:
        return {"Id": self.sessions.delete(request.get("Id", ""))}

    def op_RunStatement(self, request: dict) -> dict:
        code = request.get("Code", "")
        return {"Id": self.sessions.run_statement(request.get("SessionId", ""), code)}

    def op_GetStatement(self, request: dict) -> dict:
        statement = self.sessions.get_statement(request.get("SessionId", ""), request.get("Id"))
        return {"Statement": statement}

    def op_ListStatements(self, request: dict) -> dict:
        return {"Statements": self.sessions.list_statements(request.get("SessionId", ""))}

    def op_CancelStatement(self, request: dict) -> dict:
        self.sessions.cancel_statement(request.get("SessionId", ""), request.get("Id"))
        return {}


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

        def _forward(self, raw: bytes) -> None:
            status, body, content_type = catalog.forward(service.aws_endpoint, self.headers, raw)
            self.send_response(status)
            self.send_header("Content-Type", content_type or "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # health check for the stack
            if self.path.rstrip("/") in ("", "/health"):
                self._send(200, {"service": "glue", "status": "ok"})
            else:
                self._send(404, {"__type": errors.UnknownOperation.code, "message": self.path})

        def do_POST(self) -> None:
            target = self.headers.get("X-Amz-Target", "")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                service_name, _, operation = target.partition(".")
                if service_name != "AWSGlue" or not operation:
                    raise errors.UnknownOperation(f"Unknown X-Amz-Target {target!r}")
                if operation in catalog.OPERATIONS:
                    self._forward(raw)
                    return
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
    glue_endpoint = require_loopback(public_endpoint or f"http://{host}:{port}")
    minute = float(os.environ.get("MUSICPIPE_GLUE_MINUTE_SECONDS", "60"))
    runner = Runner(
        store,
        RunnerSettings(
            state_dir=state_dir,
            aws_endpoint=require_loopback(aws_endpoint),
            glue_endpoint=glue_endpoint,
            region=region,
            minute_seconds=minute,
            temp_dir=temp_dir,
        ),
    )
    runner.recover()
    sessions = SessionManager(
        state_dir / "sessions",
        session_environment(require_loopback(aws_endpoint), glue_endpoint, region, state_dir),
        minute,
    )
    service = GlueService(
        model.GlueBackend(store, runner, temp_dir), sessions, store, require_loopback(aws_endpoint)
    )
    httpd = ThreadingHTTPServer((host, port), make_handler(service))
    httpd.daemon_threads = True

    def stop(signum, frame):  # SIGTERM from `musicpipe down`: stop runs, then the server
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Glue job emulator on http://{host}:{port} (state in {state_dir})", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        sessions.shutdown()
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
