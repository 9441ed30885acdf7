"""The pytest plugin (`musicpipe.testing`) as a team uses it: a repository of its own with a
musicpipe.toml, one job and a test file, no conftest; pytest run there in a child process
finds the fixtures through the entry point, starts a private stack, runs the job through the
Glue API, and leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

CONFIG = """\
[[jobs]]
name = "hello_job"
command = "pythonshell"
script = "jobs/hello.py"
arguments = { greeting = "default" }
"""
HELLO = """\
import sys
from awsglue.utils import getResolvedOptions

args = getResolvedOptions(sys.argv, ["greeting"])
print(f"hello {args['greeting']}", flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
if args["greeting"] == "boom":
    raise ValueError("boom from hello_job")
"""
USER_TESTS = """\
from pathlib import Path


def test_the_job_says_its_greeting(run_glue_job):
    run = run_glue_job("hello_job", {"greeting": "plugin"})
    assert run.succeeded, run.error
    assert run.output == ["hello plugin"]
    assert "a line on stderr" in run.error_log
    assert run.run_id.startswith("jr_") and run.duration_s >= 0


def test_a_failing_run_reports_its_error_and_traceback(run_glue_job):
    run = run_glue_job("hello_job", {"greeting": "boom"})
    assert run.state == "FAILED"
    assert "ValueError: boom from hello_job" in run.error
    assert any("Traceback" in line for line in run.error_log)


def test_an_edit_on_disk_is_what_runs(run_glue_job, musicpipe_stack):
    script = Path(__file__).parents[1] / "jobs" / "hello.py"
    script.write_text(script.read_text() + "print('edited', flush=True)\\n")
    run = run_glue_job("hello_job")
    assert run.output[-1] == "edited"
    # The stack is there for a test's own checks too.
    glue = musicpipe_stack.aws.client("glue", endpoint=musicpipe_stack.settings.glue_endpoint)
    assert glue.get_job(JobName="hello_job")["Job"]["Command"]["Name"] == "pythonshell"
"""


def test_a_users_job_test_runs_on_a_private_stack_and_leaves_nothing(tmp_path):
    project = tmp_path / "team-repo"
    (project / "jobs").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "musicpipe.toml").write_text(CONFIG)
    (project / "jobs" / "hello.py").write_text(HELLO)
    (project / "tests" / "test_hello.py").write_text(USER_TESTS)
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    basetemp = tmp_path / "inner"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUSICPIPE_", "PYTEST"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "3 passed" in result.stdout, result.stdout[-3000:]
    # The session's stack (its state lives under the inner basetemp) is stopped at the end.
    left = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if str(basetemp) in " ".join(p.info["cmdline"] or [])
    ]
    assert not left, left


def test_loading_the_plugin_starts_nothing_and_imports_no_stack():
    # pytest loads it in every run of an environment with musicpipe: it must cost nothing.
    code = "import sys, musicpipe.testing; print([m for m in sys.modules if 'musicpipe' in m])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "musicpipe.testing" in out and "musicpipe.stack" not in out, out
