"""Glue interactive sessions on the emulator, against the session's real stack: statements run
in a real PySpark session through boto3's Glue client, every answer checked against botocore's
model. (AWS's own Glue kernel runs them through JupyterLab in tests/glue/test_notebook.py.)

Statement execution itself (printed text, a last expression's value, errors) is tested first
without Spark, on the worker's pure function.
"""

from __future__ import annotations

import time
import uuid

import psutil
import pytest

from musicpipe.bootstrap import bootstrap
from musicpipe.glue.session_worker import execute
from musicpipe.manifest import load_manifest

from .botocore_shapes import ContractRecorder

ROLE = "arn:aws:iam::000000000000:role/musicpipe-glue"
COMMAND = {"Name": "glueetl", "PythonVersion": "3"}
ARTIFACTS = "musicpipe.artifacts"


# -- one statement, without Spark ---------------------------------------------------------------
def test_a_statement_shows_what_it_prints_and_its_last_value_and_keeps_its_names():
    namespace: dict = {}
    first = execute("x = 20\nprint('set')\nx + 1", namespace)
    assert first == {"status": "ok", "text": "set\n21\n"}
    assert execute("x * 2", namespace)["text"] == "40\n"
    assert execute("y = x", namespace)["text"] == ""  # an assignment shows nothing
    assert execute("None", namespace)["text"] == ""


def test_an_error_has_its_name_value_and_a_traceback_of_the_users_code_only():
    answer = execute("print('before')\n1 / 0", {})
    assert answer["status"] == "error" and answer["text"] == "before\n"
    assert (answer["ename"], answer["evalue"]) == ("ZeroDivisionError", "division by zero")
    assert answer["traceback"][-1] == "ZeroDivisionError: division by zero\n"
    assert not any("session_worker" in line for line in answer["traceback"])
    syntax = execute("def (", {})
    assert syntax["status"] == "error" and syntax["ename"] == "SyntaxError"
    # exit() in a cell must not end the session's process.
    assert execute("import sys; sys.exit(3)", {})["ename"] == "SystemExit"
    assert execute("raise KeyboardInterrupt", {})["status"] == "cancelled"


# -- sessions on the real emulator ---------------------------------------------------------
def _wait_status(glue, session_id: str, wanted: set[str], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        session = glue.get_session(Id=session_id)["Session"]
        if session["Status"] in wanted:
            return session
        assert time.monotonic() < deadline, session
        time.sleep(0.5)


def _wait_statement(glue, session_id: str, statement_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        statement = glue.get_statement(SessionId=session_id, Id=statement_id)["Statement"]
        if statement["State"] in ("AVAILABLE", "ERROR", "CANCELLED"):
            return statement
        assert time.monotonic() < deadline, statement
        time.sleep(0.3)


def _run(glue, session_id: str, code: str) -> dict:
    statement_id = glue.run_statement(SessionId=session_id, Code=code)["Id"]
    return _wait_statement(glue, session_id, statement_id)


def _session_processes(local_stack, session_id: str) -> list[psutil.Process]:
    folder = str(local_stack.glue_state_dir / "sessions" / session_id)
    found = []
    for proc in psutil.process_iter(["cwd", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and (proc.info["cwd"] or "") == folder:
            found.append(proc)
    return found


@pytest.fixture(scope="module")
def sessions(local_stack):
    """Two sessions provisioned at once: `main` for statements, `idle` (IdleTimeout 1 minute,
    3 s in this stack) left alone to time out."""
    glue = local_stack.aws.client("glue", endpoint=local_stack.settings.glue_endpoint)
    recorder = ContractRecorder(glue)
    ids = {"main": f"wb-{uuid.uuid4().hex[:8]}", "idle": f"wb-idle-{uuid.uuid4().hex[:8]}"}
    glue.create_session(Id=ids["main"], Role=ROLE, Command=COMMAND, GlueVersion="5.1")
    glue.create_session(Id=ids["idle"], Role=ROLE, Command=COMMAND, IdleTimeout=1)
    yield glue, ids
    for session_id in ids.values():
        try:
            glue.delete_session(Id=session_id)
        except glue.exceptions.InvalidInputException:
            pass  # deleted by the test
    assert recorder.errors == [], recorder.errors


def test_a_session_runs_spark_statements_on_the_local_s3(sessions, aws):
    glue, ids = sessions
    bootstrap(aws.client, load_manifest())
    body = "song_id,genre\ns1,pop\ns2,rock\ns3,pop\n"
    aws.client("s3").put_object(Bucket=ARTIFACTS, Key="wb/songs.csv", Body=body.encode())
    session = _wait_status(glue, ids["main"], {"READY", "FAILED"})
    assert session["Status"] == "READY", session
    assert session["Command"] == COMMAND and session["GlueVersion"] == "5.1"
    assert _run(glue, ids["main"], "spark.version")["Output"]["Data"]["TextPlain"].startswith(
        "'3.5"
    )
    read = _run(
        glue,
        ids["main"],
        "df = spark.read.csv('s3://musicpipe.artifacts/wb/songs.csv', header=True)\n"
        "df.where(df.genre == 'pop').count()",
    )
    assert read["State"] == "AVAILABLE", read
    assert read["Output"]["Data"]["TextPlain"] == "2\n"
    assert read["Output"]["Status"] == "ok" and read["Progress"] == 1.0  # as the service says
    assert read["StartedOn"] <= read["CompletedOn"]
    # The namespace lives on, as a notebook's does.
    assert _run(glue, ids["main"], "df.count()")["Output"]["Data"]["TextPlain"] == "3\n"
    # The Glue ETL library, as a Glue Studio notebook's first cell imports it.
    glue_cell = _run(
        glue,
        ids["main"],
        "from awsglue.context import GlueContext\n"
        "from awsglue.transforms import Filter\n"
        "glueContext = GlueContext(sc)\n"
        "dyf = glueContext.create_dynamic_frame.from_options('s3', "
        "{'paths': ['s3://musicpipe.artifacts/wb/songs.csv']}, 'csv', {'withHeader': True})\n"
        "Filter.apply(frame=dyf, f=lambda r: r['genre'] == 'rock').count()",
    )
    assert glue_cell["Output"]["Status"] == "ok", glue_cell["Output"]
    assert glue_cell["Output"]["Data"]["TextPlain"] == "1\n"


def test_an_error_cancel_and_the_lists(sessions):
    glue, ids = sessions
    _wait_status(glue, ids["main"], {"READY"})
    failed = _run(glue, ids["main"], "spark.sql('SELECT * FROM no_such_table')")
    # Code that raised: the statement ran (AVAILABLE), its output is the error.
    assert failed["State"] == "AVAILABLE" and failed["Output"]["Status"] == "error", failed
    assert failed["Output"]["ErrorName"] == "AnalysisException", failed["Output"]
    assert "no_such_table" in failed["Output"]["ErrorValue"]
    assert failed["Output"]["Traceback"]
    # A long statement, cancelled while it runs; the session goes on.
    slow = glue.run_statement(
        SessionId=ids["main"],
        Code="spark.range(1).rdd.map(lambda x: __import__('time').sleep(300)).count()",
    )["Id"]
    deadline = time.monotonic() + 60
    while glue.get_statement(SessionId=ids["main"], Id=slow)["Statement"]["State"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(2)  # inside its Spark job
    glue.cancel_statement(SessionId=ids["main"], Id=slow)
    cancelled = _wait_statement(glue, ids["main"], slow, timeout=60)
    assert cancelled["State"] == "CANCELLED", cancelled
    assert _run(glue, ids["main"], "1 + 1")["Output"]["Data"]["TextPlain"] == "2\n"
    listed = glue.list_statements(SessionId=ids["main"])["Statements"]
    assert [s["Id"] for s in listed] == list(range(1, len(listed) + 1))
    assert {ids["main"], ids["idle"]} <= set(glue.list_sessions()["Ids"])
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_statement(SessionId=ids["main"], Id=999)
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_session(Id="no-such-session")
    with pytest.raises(glue.exceptions.AlreadyExistsException):
        glue.create_session(Id=ids["main"], Role=ROLE, Command=COMMAND)
    with pytest.raises(glue.exceptions.InvalidInputException, match="pythonshell"):
        glue.create_session(Id="wb-shell", Role=ROLE, Command={"Name": "pythonshell"})


def test_an_idle_session_times_out_and_a_stopped_one_leaves_no_process(sessions, local_stack):
    glue, ids = sessions
    idle = _wait_status(glue, ids["idle"], {"TIMEOUT", "FAILED"}, timeout=300)
    assert idle["Status"] == "TIMEOUT", idle
    assert _session_processes(local_stack, ids["idle"]) == []
    _wait_status(glue, ids["main"], {"READY"})
    assert _session_processes(local_stack, ids["main"])  # the session's Python (and JVM)
    assert glue.stop_session(Id=ids["main"])["Id"] == ids["main"]
    stopped = _wait_status(glue, ids["main"], {"STOPPED"}, timeout=60)
    assert stopped["CompletedOn"] >= stopped["CreatedOn"]
    assert _session_processes(local_stack, ids["main"]) == []
    with pytest.raises(glue.exceptions.IllegalSessionStateException):
        glue.run_statement(SessionId=ids["main"], Code="1")
    assert glue.delete_session(Id=ids["main"])["Id"] == ids["main"]
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_session(Id=ids["main"])
    # StopSession and DeleteSession have no EntityNotFoundException in Glue's model.
    with pytest.raises(glue.exceptions.InvalidInputException, match="not found"):
        glue.stop_session(Id=ids["main"])
