"""Glue jobs as manifest entries: the pipeline's two by default, more from [[jobs]] tables in
musicpipe.toml, each checked with an error that names the file, the entry and the key."""

from __future__ import annotations

import pytest

from musicpipe.artifacts import job_definition
from musicpipe.manifest import ConfigError, load_manifest
from musicpipe.promote.policies import promoter_policy


def _config(tmp_path, text: str):
    (tmp_path / "musicpipe.toml").write_text(text)
    return load_manifest(cwd=tmp_path, environ={})


def test_a_third_job_is_one_entry_and_gets_its_commands_defaults(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "report.py").write_text("print('report')\n")
    m = _config(
        tmp_path,
        '[[jobs]]\nname = "daily_report"\ncommand = "glueetl"\nscript = "jobs/report.py"\n'
        'arguments = { report_prefix = "reports/", "--day" = "today" }\nnumber_of_workers = 5\n',
    )
    names = [spec.name for spec in m.glue_jobs]
    assert names == ["music_streaming_validation", "music_streaming_etl_complete", "daily_report"]
    report = m.glue_jobs[2]
    # The script is found relative to the config file, wherever the command runs.
    assert report.script == str(tmp_path / "jobs" / "report.py")
    assert report.script_location == "s3://musicpipe.artifacts/scripts/daily_report.py"
    assert (report.glue_version, report.worker_type, report.number_of_workers) == ("5.1", "G.1X", 5)
    assert report.max_retries == 0 and job_definition(report, "role")["MaxRetries"] == 0
    assert report.default_arguments["--report_prefix"] == "reports/"
    assert report.default_arguments["--day"] == "today"
    # What every job of the pipeline gets: the library and the resource names.
    assert report.default_arguments["--extra-py-files"] == m.extra_py_files
    assert report.default_arguments["--raw_bucket"] == "rds.data"
    assert report.source.endswith("musicpipe.toml [[jobs]]")
    assert [j["name"] for j in m.as_dict()["jobs"]] == names


def test_max_retries_reaches_the_job_definition(tmp_path):
    m = _config(
        tmp_path,
        '[[jobs]]\nname = "r"\ncommand = "pythonshell"\nscript = "r.py"\nmax_retries = 2\n',
    )
    assert job_definition(m.glue_jobs[2], "role")["MaxRetries"] == 2


def test_renaming_a_pipeline_job_keeps_its_script(tmp_path):
    m = _config(tmp_path, '[names]\nvalidation_job = "check_files"\n')
    validation = m.glue_jobs[0]
    assert validation.name == "check_files"
    assert validation.script == "spark_jobs/music_streaming_validation.py"
    assert validation.script_location.endswith("/scripts/check_files.py")


def test_the_promoter_may_create_every_job_of_the_manifest(tmp_path):
    m = _config(tmp_path, '[[jobs]]\nname = "extra"\ncommand = "pythonshell"\nscript = "x.py"\n')
    jobs = next(
        s for s in promoter_policy(m, "123456789012")["Statement"] if s["Sid"] == "GlueJobs"
    )
    assert jobs["Resource"][-1] == "arn:aws:glue:us-east-1:123456789012:job/extra"
    assert len(jobs["Resource"]) == 3


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('name = "a"\ncommand = "pyspark"\nscript = "a.py"', "unknown command 'pyspark'"),
        ('name = "a"\nscript = "a.py"', "command is required"),
        ('command = "glueetl"\nscript = "a.py"', "name is required"),
        ('name = "a"\ncommand = "glueetl"', "script is required"),
        ('name = "a/b"\ncommand = "glueetl"\nscript = "a.py"', "is not a job name"),
        ('name = "a"\ncommand = "glueetl"\nscript = "a.py"\nworkers = 2', "unknown key(s)"),
        ('name = "a"\ncommand = "glueetl"\nscript = "a.py"\nnumber_of_workers = 0', ">= 1"),
        ('name = "a"\ncommand = "glueetl"\nscript = "a.py"\narguments = { n = 1 }', "strings"),
        ('name = "a"\ncommand = "pythonshell"\nscript = "a.py"\nmax_capacity = 2', "0.0625"),
        ('name = "a"\ncommand = "pythonshell"\nscript = "a.py"\nmax_retries = 11', "0..10"),
        ('name = "a"\ncommand = "pythonshell"\nscript = "a.py"\nmax_retries = "2"', "0..10"),
        ('name = "a"\ncommand = "glueetl"\nscript = "a.py"\nmax_capacity = 1', "not for glueetl"),
        (
            'name = "a"\ncommand = "pythonshell"\nscript = "a.py"\nnumber_of_workers = 2',
            "number_of_workers is not for pythonshell",
        ),
        (
            'name = "music_streaming_etl_complete"\ncommand = "glueetl"\nscript = "a.py"',
            "job music_streaming_etl_complete is defined twice",
        ),
    ],
)
def test_bad_job_entries_are_named(tmp_path, entry, message):
    with pytest.raises(ConfigError) as exc:
        _config(tmp_path, f"[[jobs]]\n{entry}\n")
    assert message in str(exc.value)
    assert str(tmp_path / "musicpipe.toml") in str(exc.value)


def test_two_entries_with_one_name(tmp_path):
    entry = '[[jobs]]\nname = "twin"\ncommand = "pythonshell"\nscript = "t.py"\n'
    with pytest.raises(ConfigError, match="job twin is defined twice"):
        _config(tmp_path, entry + entry)


def test_jobs_must_be_tables(tmp_path):
    with pytest.raises(ConfigError, match=r"\[\[jobs\]\] tables"):
        _config(tmp_path, 'jobs = ["a"]\n')
