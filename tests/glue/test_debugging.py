"""Debug runs' argument and launch (the run itself: tests/cli/test_job_run.py)."""

from __future__ import annotations

import pytest

from musicpipe.glue import debugging


@pytest.mark.parametrize("value", ["x", "-1", "65536", "", "5678.0"])
def test_a_port_that_is_not_one_is_refused_with_the_argument_named(value):
    with pytest.raises(debugging.DebugSetupError, match="--musicpipe-debug .*expected a port"):
        debugging.requested_port({"--musicpipe-debug": value})


def test_a_run_without_the_argument_runs_its_script_as_fetched(tmp_path):
    script = tmp_path / "fetched.py"
    assert debugging.requested_port({"--batch_id": "x"}) is None
    assert debugging.prepare({}, script, tmp_path / "debug", print) == ([], script)
    assert not (tmp_path / "debug").exists()


def test_a_debug_run_listens_on_loopback_and_runs_from_the_jobs_folder(tmp_path):
    script = tmp_path / "work" / "my_job.py"
    script.parent.mkdir()
    script.write_text("print('x')\n")
    lines: list[str] = []
    options, runs = debugging.prepare(
        {"--musicpipe-debug": "5678"}, script, tmp_path / "debug" / "my_job", lines.append
    )
    assert options == ["-m", "debugpy", "--listen", "127.0.0.1:5678", "--wait-for-client"]
    assert runs == tmp_path / "debug" / "my_job" / "my_job.py"
    assert runs.read_text() == "print('x')\n"
    assert "127.0.0.1:5678" in lines[0] and str(runs) in lines[0]
    # Port 0: a free one, chosen here so the log can name it.
    options, _ = debugging.prepare({"--musicpipe-debug": "0"}, script, tmp_path / "d", print)
    assert not options[3].endswith(":0")
