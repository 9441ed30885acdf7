"""One Glue interactive session's Python: a PySpark session wired as glueetl runs are, running
the statements the emulator sends it, one at a time, in one namespace (as a notebook's cells).

``python -m musicpipe.glue.session_worker`` reads requests ``{"id": N, "code": "..."}`` as JSON
lines from the file descriptor named first in ``MUSICPIPE_SESSION_FDS`` and answers on the
second (not stdout: Spark's JVM inherits that and writes to it). The first answer is
``{"ready": true, ...}`` once Spark is up. A statement's answer is what GetStatement's Output
says: its printed text (and the value of a last expression, as a notebook shows it), or the
error's name, value and traceback. SIGINT cancels the running statement (pyspark cancels its
Spark jobs on it); between statements it is ignored.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import sys
import traceback

FDS_ENV = "MUSICPIPE_SESSION_FDS"
FILENAME = "<statement>"


def execute(code: str, namespace: dict) -> dict:
    """Run one statement in ``namespace``: {"status": "ok"|"error"|"cancelled", "text": …,
    and for an error "ename", "evalue", "traceback" (lines)}."""
    printed = io.StringIO()
    try:
        tree = ast.parse(code, FILENAME, "exec")
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr):
            tree.body.pop()  # evaluated on its own below, so its value can be shown
        else:
            last = None
        with contextlib.redirect_stdout(printed):
            exec(compile(tree, FILENAME, "exec"), namespace)  # noqa: S102 - the user's code
            if last is not None:
                value = eval(compile(ast.Expression(last.value), FILENAME, "eval"), namespace)
                if value is not None:
                    print(repr(value))
    except KeyboardInterrupt:
        return {"status": "cancelled", "text": printed.getvalue()}
    except BaseException as exc:  # SystemExit too: a cell's exit() must not end the session
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return {
            "status": "error",
            "text": printed.getvalue(),
            "ename": type(exc).__name__,
            "evalue": str(exc),
            "traceback": [line for line in lines if "session_worker.py" not in line],
        }
    return {"status": "ok", "text": printed.getvalue()}


def _spark_namespace() -> dict:
    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName("musicpipe-glue-session").getOrCreate()
    return {"__name__": "__main__", "spark": session, "sc": session.sparkContext}


def main() -> int:
    read_fd, write_fd = (int(fd) for fd in os.environ[FDS_ENV].split(","))
    requests = os.fdopen(read_fd, "r", encoding="utf-8")
    answers = os.fdopen(write_fd, "w", encoding="utf-8", buffering=1)
    try:
        namespace = _spark_namespace()
    except BaseException as exc:
        answers.write(json.dumps({"ready": False, "error": f"Spark did not start: {exc!r}"}) + "\n")
        return 1
    answers.write(json.dumps({"ready": True, "spark": namespace["spark"].version}) + "\n")
    while True:
        try:
            line = requests.readline()
            if not line:
                return 0  # the emulator closed its end: the session is over
            request = json.loads(line)
            answer = execute(request["code"], namespace)
            answers.write(json.dumps({"id": request["id"], **answer}) + "\n")
        except KeyboardInterrupt:  # a cancel that came between two statements
            continue


if __name__ == "__main__":
    sys.exit(main())
