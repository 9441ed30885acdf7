"""Glue interactive sessions on the emulator: CreateSession, GetSession, ListSessions,
StopSession, DeleteSession, RunStatement, GetStatement, ListStatements, CancelStatement.

A session is a Python process of its own (:mod:`musicpipe.glue.session_worker`) holding a
PySpark session wired as glueetl runs are (S3A to the local S3, the same Spark settings, a
live Spark UI), started in a process group of its own when the session is created. Its status
goes PROVISIONING → READY once Spark is up (FAILED if it cannot start), and STOPPING →
STOPPED on StopSession, or TIMEOUT after ``IdleTimeout`` minutes without a statement.
Statements run one at a time, in order, in one namespace: WAITING → RUNNING → AVAILABLE
(``Output.Status`` ok or error, as the service answers: :meth:`Statement.finish`), ERROR when
the session's process died under it, or CANCELLED (CancelStatement interrupts a running one
with SIGINT, which pyspark turns into cancelling its Spark jobs). Ids count from 1, as the Glue
kernel expects (it treats 0 as "no statement").

Sessions live as long as the emulator: they are not part of its saved state, as a Glue
session does not outlive its idle timeout.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from musicpipe.glue import errors, pyspark_session
from musicpipe.glue.session_worker import FDS_ENV
from musicpipe.processes import create_time, process_tree, terminate

# Glue's defaults for a glueetl session: 48 hours (Timeout) and 48 hours idle (IdleTimeout).
DEFAULT_TIMEOUT_MINUTES = 2880
SESSION_COMMANDS = ("glueetl",)
STOP_GRACE_SECONDS = 10
ENDED = ("FAILED", "TIMEOUT", "STOPPED")


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Statement:
    id: int
    code: str
    state: str = "WAITING"
    output: dict | None = None
    started_ms: int | None = None
    completed_ms: int | None = None

    def shape(self) -> dict:
        """Glue's Statement."""
        done = self.state in ("AVAILABLE", "ERROR", "CANCELLED")
        shape: dict = {"Id": self.id, "Code": self.code, "State": self.state}
        shape["Progress"] = 1.0 if done else 0.0
        if self.output is not None:
            shape["Output"] = self.output
        if self.started_ms is not None:
            shape["StartedOn"] = self.started_ms
        if self.completed_ms is not None:
            shape["CompletedOn"] = self.completed_ms
        return shape

    def finish(self, answer: dict, state: str = "AVAILABLE") -> None:
        """The worker's answer as GetStatement's Output.

        As the service answers (and AWS's Glue kernel and dbt-glue read it), not as botocore's
        model says: a statement that ran is ``AVAILABLE`` with ``Output.Status`` ``ok``, or
        ``error`` with ``ErrorName``/``ErrorValue``/``Traceback`` when the code raised (the
        model types that field as the statement's own state enum; the kernel takes anything
        but ``ok`` for an error and reads the traceback). A cancelled statement has no
        Output; ``ERROR`` is for a statement the session could not run (its process died)."""
        if answer["status"] == "cancelled":
            self.state, self.output, self.completed_ms = "CANCELLED", None, _now_ms()
            return
        output: dict = {
            "Data": {"TextPlain": answer.get("text", "")},
            "ExecutionCount": self.id,
            "Status": answer["status"],
        }
        if answer["status"] == "error":
            output.update(
                ErrorName=answer["ename"],
                ErrorValue=answer["evalue"],
                Traceback=answer["traceback"],
            )
        self.state, self.output, self.completed_ms = state, output, _now_ms()


@dataclass
class Session:
    record: dict  # Glue's Session, as GetSession answers
    folder: Path
    idle_seconds: float
    statements: list[Statement] = field(default_factory=list)
    pending: queue.Queue = field(default_factory=queue.Queue)
    process: subprocess.Popen | None = None
    requests: TextIO | None = None  # to the session's process
    answers: TextIO | None = None  # from it
    started: float | None = None  # the process's creation time (a PID can be reused)
    last_active: float = field(default_factory=time.monotonic)
    stop_requested: str | None = None  # the status to end in: STOPPED, TIMEOUT


class SessionManager:
    def __init__(self, folder: Path, env_for_session, minute_seconds: float = 60.0) -> None:
        """``env_for_session(log)`` gives a session process's environment (the stack's
        endpoints and the glueetl Spark wiring)."""
        self.folder = folder
        self.env_for_session = env_for_session
        self.minute_seconds = minute_seconds
        self.lock = threading.RLock()
        self.sessions: dict[str, Session] = {}

    # -- the API ---------------------------------------------------------------------------
    def create(self, request: dict) -> dict:
        session_id = str(request.get("Id") or "")
        command = request.get("Command") or {}
        if not session_id or len(session_id) > 255:
            raise errors.InvalidInput("Id must be 1 to 255 characters.")
        if not request.get("Role"):
            raise errors.InvalidInput("Role is required.")
        if command.get("Name") not in SESSION_COMMANDS:
            raise errors.InvalidInput(
                f"Command.Name {command.get('Name')!r} is not served by the Glue emulator's "
                f"sessions (it serves {', '.join(SESSION_COMMANDS)})."
            )
        idle = int(request.get("IdleTimeout") or DEFAULT_TIMEOUT_MINUTES)
        record = {
            "Id": session_id,
            "CreatedOn": time.time(),
            "Status": "PROVISIONING",
            "Role": request["Role"],
            "Command": {
                "Name": command["Name"],
                "PythonVersion": command.get("PythonVersion", "3"),
            },
            "DefaultArguments": dict(request.get("DefaultArguments") or {}),
            "GlueVersion": request.get("GlueVersion") or "5.1",
            "IdleTimeout": idle,
            "Progress": 0.0,
        }
        for key in ("Description", "MaxCapacity", "NumberOfWorkers", "WorkerType"):
            if request.get(key) is not None:
                record[key] = request[key]
        with self.lock:
            if session_id in self.sessions:
                raise errors.AlreadyExists(f"Session {session_id} already exists.")
            session = Session(record, self.folder / session_id, idle * self.minute_seconds)
            self.sessions[session_id] = session
        threading.Thread(target=self._drive, args=(session,), daemon=True).start()
        return dict(record)

    def get(self, session_id: str) -> dict:
        return dict(self._session(session_id).record)

    def list_sessions(
        self, max_results: int | None, token: str | None
    ) -> tuple[list[dict], str | None]:
        with self.lock:
            ids = sorted(self.sessions)
        start = int(token) if token and token.isdigit() else 0
        end = start + (max_results or 1000)
        page = [self.get(i) for i in ids[start:end] if i in self.sessions]
        return page, (str(end) if end < len(ids) else None)

    def stop(self, session_id: str) -> str:
        session = self._session(session_id, missing=errors.InvalidInput)  # as Glue's model says
        with self.lock:
            if session.record["Status"] in ENDED or session.stop_requested:
                raise errors.IllegalSessionState(
                    f"Session {session_id} is {session.record['Status']}: nothing to stop."
                )
            session.stop_requested = "STOPPED"
            session.record["Status"] = "STOPPING"
        self._stop_soon(session)
        return session_id

    def delete(self, session_id: str) -> str:
        session = self._session(session_id, missing=errors.InvalidInput)  # as Glue's model says
        with self.lock:
            if session.record["Status"] not in ENDED and not session.stop_requested:
                session.stop_requested = "STOPPED"
                session.record["Status"] = "STOPPING"
                self._stop_soon(session)
            del self.sessions[session_id]
        return session_id

    def run_statement(self, session_id: str, code: str) -> int:
        session = self._session(session_id)
        with self.lock:
            status = session.record["Status"]
            if status != "READY" or session.stop_requested:
                raise errors.IllegalSessionState(
                    f"Session {session_id} is {status}; statements run in a READY session."
                )
            statement = Statement(len(session.statements) + 1, code)
            session.statements.append(statement)
            session.last_active = time.monotonic()
        session.pending.put(statement)
        return statement.id

    def get_statement(self, session_id: str, statement_id: int | None) -> dict:
        return self._statement(session_id, statement_id).shape()

    def list_statements(self, session_id: str) -> list[dict]:
        session = self._session(session_id)
        with self.lock:
            return [s.shape() for s in session.statements]

    def cancel_statement(self, session_id: str, statement_id: int | None) -> None:
        session = self._session(session_id)
        statement = self._statement(session_id, statement_id)
        with self.lock:
            if statement.state == "WAITING":
                statement.state, statement.completed_ms = "CANCELLED", _now_ms()
            elif statement.state == "RUNNING" and session.process is not None:
                statement.state = "CANCELLING"
                session.process.send_signal(signal.SIGINT)

    def _stop_soon(self, session: Session) -> None:
        """Wake the session's thread and end its process (also under a running statement or
        while Spark starts); the thread then records the end."""
        session.pending.put(None)
        threading.Thread(target=self._kill, args=(session,), daemon=True).start()

    def shutdown(self) -> None:
        """The emulator stops: every session's process group ends with it."""
        with self.lock:
            sessions = list(self.sessions.values())
        for session in sessions:
            session.stop_requested = session.stop_requested or "STOPPED"
            session.pending.put(None)
            self._kill(session)

    # -- lookups ---------------------------------------------------------------------------
    def _session(
        self, session_id: str | None, missing: type[errors.GlueError] = errors.EntityNotFound
    ) -> Session:
        with self.lock:
            session = self.sessions.get(str(session_id or ""))
        if session is None:
            raise missing(f"Session {session_id} not found.")
        return session

    def _statement(self, session_id: str, statement_id) -> Statement:
        session = self._session(session_id)
        with self.lock:
            for statement in session.statements:
                if statement.id == statement_id:
                    return statement
        raise errors.EntityNotFound(f"Statement {statement_id} not found in session {session_id}.")

    # -- the session's own thread ------------------------------------------------------------
    def _drive(self, session: Session) -> None:
        """Start the session's process, then feed it statements until it is stopped."""
        try:
            answers = self._start(session)
        except Exception as exc:  # Spark could not start: the session FAILED, saying why
            self._end(session, "FAILED", f"The session's Spark did not start: {exc}")
            return
        if answers is None:
            return
        session.answers = answers
        while True:
            try:
                statement = session.pending.get(timeout=1)
            except queue.Empty:
                if time.monotonic() - session.last_active > session.idle_seconds:
                    session.stop_requested = session.stop_requested or "TIMEOUT"
                    break
                continue
            if session.stop_requested:
                break
            if statement is None or statement.state != "WAITING":
                continue  # cancelled before its turn
            if not self._run(session, statement, answers):
                break
        self._end(session, session.stop_requested or "FAILED", None)

    def _start(self, session: Session):
        session.folder.mkdir(parents=True, exist_ok=True)
        log = (session.folder / "session.log").open("a")
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        env = self.env_for_session(lambda line: print(line, file=log, flush=True))
        env[FDS_ENV] = f"{to_worker_r},{from_worker_w}"
        session.process = subprocess.Popen(
            [sys.executable, "-m", "musicpipe.glue.session_worker"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd=session.folder,
            pass_fds=(to_worker_r, from_worker_w),
            start_new_session=True,  # its own group: stop ends the JVM with it
        )
        session.started = create_time(session.process.pid)
        os.close(to_worker_r)
        os.close(from_worker_w)
        session.requests = os.fdopen(to_worker_w, "w", encoding="utf-8", buffering=1)
        answers = os.fdopen(from_worker_r, "r", encoding="utf-8")
        first = answers.readline()
        ready = json.loads(first) if first else {"ready": False}
        if session.stop_requested:  # stopped while Spark was starting
            answers.close()
            self._end(session, session.stop_requested, None)
            return None
        if not ready.get("ready"):
            answers.close()
            tail = (session.folder / "session.log").read_text(errors="replace")[-2000:]
            self._end(session, "FAILED", str(ready.get("error") or f"The session ended: {tail}"))
            return None
        with self.lock:
            if session.stop_requested:
                return answers  # stopped while provisioning: the loop ends it
            session.record.update(Status="READY", Progress=1.0)
            session.last_active = time.monotonic()
        return answers

    def _run(self, session: Session, statement: Statement, answers) -> bool:
        with self.lock:
            statement.state, statement.started_ms = "RUNNING", _now_ms()
        try:
            assert session.requests is not None
            session.requests.write(json.dumps({"id": statement.id, "code": statement.code}) + "\n")
            line = answers.readline()
        except (OSError, ValueError):
            line = ""
        with self.lock:
            session.last_active = time.monotonic()
            if not line and session.stop_requested:  # stopped under the statement
                statement.state, statement.completed_ms = "CANCELLED", _now_ms()
                return False
            if not line:  # the process died under the statement
                statement.finish(
                    {
                        "status": "error",
                        "ename": "SessionEnded",
                        "evalue": "The session's process ended while the statement ran.",
                        "traceback": [],
                    },
                    state="ERROR",
                )
                return False
            answer = json.loads(line)
            if statement.state == "CANCELLING" and answer["status"] == "error":
                # Interrupted inside a Spark job, py4j reports the broken call as its own error.
                answer = {"status": "cancelled", "text": answer.get("text", "")}
            statement.finish(answer)
        return True

    def _end(self, session: Session, status: str, error: str | None) -> None:
        self._kill(session)
        for stream in (session.requests, session.answers):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        with self.lock:
            for statement in session.statements:
                if statement.state in ("WAITING", "RUNNING", "CANCELLING"):
                    statement.state, statement.completed_ms = "CANCELLED", _now_ms()
            session.record["Status"] = status
            session.record["CompletedOn"] = time.time()
            session.record["ExecutionTime"] = round(
                session.record["CompletedOn"] - session.record["CreatedOn"], 3
            )
            if error:
                session.record["ErrorMessage"] = error

    @staticmethod
    def _kill(session: Session) -> None:
        """End the session's process group (its Python and Spark's JVM), waiting for it."""
        process = session.process
        if process is None or session.started is None:
            return
        group, others = process_tree(process.pid, session.started)
        terminate(group, others, STOP_GRACE_SECONDS)
        process.poll()  # reaped, if terminate did not


def session_environment(aws_endpoint: str, glue_endpoint: str, region: str, state_dir: Path):
    """The ``env_for_session`` of a stack: :func:`pyspark_session.environment`."""

    def build(log) -> dict[str, str]:
        return pyspark_session.environment(
            dict(os.environ),
            aws_endpoint=aws_endpoint,
            glue_endpoint=glue_endpoint,
            region=region,
            state_dir=state_dir,
            log=log,
        )

    return build
