"""Spark's own history server over the event logs glueetl runs wrote: `musicpipe spark-history`.

It is ``org.apache.spark.deploy.history.HistoryServer`` from the pyspark install, started with
``spark-class``, reading the logs straight from the local S3 through S3A: the same S3A jars and
settings as the runs (:func:`musicpipe.glue.spark.glueetl_spark`), put on its class path with
``SPARK_DIST_CLASSPATH``. Read in place, not synced to a folder first, so a run that ends while
the server is up appears at its next scan (every ``UPDATE_INTERVAL``) with no copy of ours to go
stale. It listens on loopback only (``SPARK_LOCAL_IP``), in a process group of its own that
the command that started it stops (:func:`musicpipe.processes.stop_group`).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from musicpipe.glue import spark
from musicpipe.processes import die_with_parent, wait_until_answers

MAIN_CLASS = "org.apache.spark.deploy.history.HistoryServer"
DEFAULT_PORT = 18080  # Spark's own default
UPDATE_INTERVAL = "5s"  # how often it looks for new logs (Spark's default is 10 s)
START_TIMEOUT_SECONDS = 120


def command() -> list[str]:
    return [str(spark.SPARK_HOME / "bin" / "spark-class"), MAIN_CLASS]


def environment(
    base: dict[str, str], wiring: spark.GlueEtlSpark, log_directory: str, port: int
) -> dict[str, str]:
    """``log_directory`` is an ``s3a://bucket/prefix`` location."""
    properties = {
        **wiring.conf,
        "spark.history.fs.logDirectory": log_directory,
        "spark.history.fs.update.interval": UPDATE_INTERVAL,
        "spark.history.ui.port": str(port),
    }
    options = [f"-D{key}={value}" for key, value in properties.items()]
    options.append(f"-Dlog4j2.configurationFile=file:{wiring.log4j}")
    return {
        **base,
        "SPARK_HOME": str(spark.SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_HISTORY_OPTS": shlex.join(options),
        "SPARK_DIST_CLASSPATH": os.pathsep.join(wiring.jars),
    }


def start(env: dict[str, str], log_file: Path) -> subprocess.Popen:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own group: Ctrl-C is ours to handle, stop_group() ends it
            preexec_fn=die_with_parent(),
        )


def applications(url: str, timeout: float = 5.0) -> list[dict]:
    """The applications it lists (its REST API)."""
    with urllib.request.urlopen(f"{url}/api/v1/applications", timeout=timeout) as answer:
        return json.loads(answer.read())


def wait_until_serving(process: subprocess.Popen, url: str, log_file: Path) -> None:
    wait_until_answers(
        process,
        lambda: applications(url, timeout=2),
        f"Spark's history server ({url})",
        log_file,
        START_TIMEOUT_SECONDS,
    )
