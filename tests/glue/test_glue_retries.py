"""MaxRetries on the emulator, over the wire: a FAILED run is run again up to the job's limit,
each attempt a run of its own chained by PreviousRunId as Glue reports them; a stopped or
timed-out run is not; StartJobRun's JobRunId names the run a new one retries."""

from __future__ import annotations

import time

import pytest

from .test_glue_emulator import FAILS, SLEEPS, create_job, env, log_lines, put_script, wait

__all__ = ["env"]  # the fixture, used by name

# Fails on its first attempt only: a retry's --JOB_RUN_ID ends in _attempt_<n>.
FAILS_FIRST_TIME = """\
import sys
from awsglue.utils import getResolvedOptions
args = getResolvedOptions(sys.argv, ["batch"])  # JOB_RUN_ID always comes
print("RUN", args["JOB_RUN_ID"], "batch", args["batch"], flush=True)
if "_attempt_" not in args["JOB_RUN_ID"]:
    raise RuntimeError("the source was not there yet")
"""


def chain(glue, name: str) -> list[dict]:
    """The job's runs, oldest first."""
    return sorted(glue.get_job_runs(JobName=name)["JobRuns"], key=lambda r: r["StartedOn"])


def wait_for_runs(glue, name: str, count: int, timeout: float = 120) -> list[dict]:
    """Once ``count`` runs of the job exist and have all ended: them, oldest first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = chain(glue, name)
        if len(runs) >= count and all(
            r["JobRunState"] not in ("STARTING", "RUNNING", "STOPPING") for r in runs
        ):
            return runs
        time.sleep(0.3)
    raise AssertionError(f"{name}: {[(r['Id'], r['JobRunState']) for r in chain(glue, name)]}")


def test_a_run_that_always_fails_is_run_max_retries_more_times_chained(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "fails", FAILS), MaxRetries=2)
    first = glue.start_job_run(JobName=name, Arguments={"--batch": "b-7"})["JobRunId"]
    runs = wait_for_runs(glue, name, 3)
    time.sleep(2)  # a fourth attempt would be stored by now
    runs = chain(glue, name)
    assert [r["Id"] for r in runs] == [first, f"{first}_attempt_1", f"{first}_attempt_2"]
    assert [r["Attempt"] for r in runs] == [0, 1, 2]
    assert [r.get("PreviousRunId") for r in runs] == [None, first, f"{first}_attempt_1"]
    assert {r["JobRunState"] for r in runs} == {"FAILED"}
    assert {r["ErrorMessage"] for r in runs} == {"ValueError: bad input row 42 in streams1.csv"}
    # Each attempt ran with the run's own arguments, and says which run it retries.
    assert all(r["Arguments"] == {"--batch": "b-7"} for r in runs)
    retry_log = log_lines(aws, "/aws-glue/python-jobs/output", f"{first}_attempt_2")
    assert f"this run retries {first}_attempt_1, which FAILED" in retry_log[0]


def test_the_chain_ends_at_the_first_attempt_that_succeeds(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "flaky", FAILS_FIRST_TIME), MaxRetries=3)
    first = glue.start_job_run(JobName=name, Arguments={"--batch": "b-1"})["JobRunId"]
    runs = wait_for_runs(glue, name, 2)
    time.sleep(2)
    runs = chain(glue, name)
    assert [(r["Id"], r["JobRunState"]) for r in runs] == [
        (first, "FAILED"),
        (f"{first}_attempt_1", "SUCCEEDED"),
    ], [r.get("ErrorMessage") for r in runs]
    # The script saw its own run id and the run's argument.
    output = log_lines(aws, "/aws-glue/python-jobs/output", f"{first}_attempt_1")
    assert f"RUN {first}_attempt_1 batch b-1" in output


def test_without_max_retries_a_failed_run_stays_alone(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "fails", FAILS))
    first = glue.start_job_run(JobName=name)["JobRunId"]
    assert wait(glue, name, first)["JobRunState"] == "FAILED"
    time.sleep(2)
    assert [r["Id"] for r in chain(glue, name)] == [first]


def test_a_stopped_or_timed_out_run_is_not_retried(env):
    aws, glue = env
    script = put_script(aws, "sleeps", SLEEPS)
    stopped = create_job(glue, script, MaxRetries=2)
    run_id = glue.start_job_run(JobName=stopped)["JobRunId"]
    deadline = time.monotonic() + 30
    while glue.get_job_run(JobName=stopped, RunId=run_id)["JobRun"]["JobRunState"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    glue.batch_stop_job_run(JobName=stopped, JobRunIds=[run_id])
    assert wait(glue, stopped, run_id, timeout=30)["JobRunState"] == "STOPPED"
    timed_out = create_job(glue, script, MaxRetries=2, Timeout=1)
    other = glue.start_job_run(JobName=timed_out)["JobRunId"]
    assert wait(glue, timed_out, other, timeout=60)["JobRunState"] == "TIMEOUT"
    time.sleep(2)
    assert len(chain(glue, stopped)) == 1 and len(chain(glue, timed_out)) == 1


def test_start_job_run_with_a_job_run_id_retries_that_run(env):
    aws, glue = env
    name = create_job(glue, put_script(aws, "flaky", FAILS_FIRST_TIME))
    first = glue.start_job_run(JobName=name, Arguments={"--batch": "b"})["JobRunId"]
    assert wait(glue, name, first)["JobRunState"] == "FAILED"
    again = glue.start_job_run(JobName=name, JobRunId=first, Arguments={"--batch": "b"})
    assert again["JobRunId"] != first  # a run of its own, not the old one overwritten
    run = glue.get_job_run(JobName=name, RunId=again["JobRunId"])["JobRun"]
    assert run["PreviousRunId"] == first
    assert glue.get_job_run(JobName=name, RunId=first)["JobRun"]["JobRunState"] == "FAILED"
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.start_job_run(JobName=name, JobRunId="jr_not_a_run_of_this_job")


def test_max_retries_beyond_glues_limit_is_refused(env):
    aws, glue = env
    with pytest.raises(
        glue.exceptions.InvalidInputException, match="MaxRetries must be at most 10"
    ):
        create_job(glue, put_script(aws, "fails", FAILS), MaxRetries=11)
