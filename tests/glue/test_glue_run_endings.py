"""How glueetl and Python shell runs end when something goes wrong under them: the Spark
driver killed mid-run, log lines CloudWatch refuses. Each must end FAILED with its reason, not
stay RUNNING and hold the job's only concurrent run (found by tests/test_self_healing.py)."""

from __future__ import annotations

import os
import signal
import time

from botocore.exceptions import ClientError

from .test_glue_emulator import REPORTS_JVM, _jvm_of, create_job, env, log_lines, put_script, wait

__all__ = ["env"]  # the fixture, used by name


# Spark started, then a wait for something that never comes. Killed mid-call, the script
# fails with py4j's chained traceback (blank lines in it); killed while it waits, it may not
# notice: either way the run must end FAILED, naming the driver, and free the job.
WAITS_FOR_EVER = """\
import sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("JVM", spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid(), flush=True)
print(spark.range(10).count(), flush=True)
time.sleep(3600)
"""


def test_a_run_whose_spark_driver_is_killed_fails_instead_of_holding_the_job(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "forever", WAITS_FOR_EVER), command="glueetl")
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    deadline = time.monotonic() + 300
    while True:
        try:
            jvm = _jvm_of(aws, run_id)
            break
        except (StopIteration, ClientError):  # no line yet, or no log stream yet
            assert time.monotonic() < deadline, glue.get_job_run(JobName=name, RunId=run_id)
            time.sleep(0.3)
    os.kill(jvm, signal.SIGKILL)

    done = wait(glue, name, run_id, timeout=90)  # its Timeout would be hours away
    assert done["JobRunState"] == "FAILED"
    assert "The Spark driver exited (killed by signal 9)" in done["ErrorMessage"]
    # The next run gets a new driver and succeeds.
    name2 = create_job(glue, put_script(aws, "jvm", REPORTS_JVM), command="glueetl")
    run2 = glue.start_job_run(JobName=name2, Arguments={"--fail": "no"})["JobRunId"]
    after = wait(glue, name2, run2, timeout=300)
    assert after["JobRunState"] == "SUCCEEDED", after.get("ErrorMessage")
    assert _jvm_of(aws, run2) != jvm


# A traceback's blank lines, a very long line, and an error: CloudWatch refuses an empty event
# and one over 256 KiB; the run must still end FAILED with every line in its logs.
AWKWARD_LINES = """\
import sys
print("before")
print()
print("after")
print("x" * 300_000)
sys.stdout.flush()
raise RuntimeError("the end")
"""


def test_blank_and_huge_log_lines_do_not_keep_a_run_running(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "awkward", AWKWARD_LINES))
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    done = wait(glue, name, run_id, timeout=60)
    assert done["JobRunState"] == "FAILED"
    assert done["ErrorMessage"] == "RuntimeError: the end"
    out = log_lines(aws, "/aws-glue/python-jobs/output", run_id)
    assert out[:3] == ["before", " ", "after"]
    assert out[3] == "x" * 64 * 1024  # cut to what one event may hold
    errors = log_lines(aws, "/aws-glue/python-jobs/error", run_id)
    assert "Traceback (most recent call last):" in errors and " " not in errors[:1]
