"""The manifest names every resource of docs/data-contract.md §7, with overrides from file and
environment."""

from __future__ import annotations

import pytest

from musicpipe.manifest import DAG_TASK_IDS, ConfigError, load_manifest


def test_defaults_are_the_spec_names(tmp_path):
    m = load_manifest(cwd=tmp_path, environ={})
    assert m.buckets["raw"] == "rds.data"
    assert m.buckets["processed"] == "trial.data"
    assert m.buckets["quarantine"] == "warehouse.bucket"
    assert m.kpi_table == "kpi.table"
    assert m.tracker_table == "kpi.table_file_tracker"
    assert m.arrivals_queue == "music-arrivals"
    assert m.dag_id == "music_streaming_realtime_pipeline"
    assert m.metrics_namespace == "MusicStreaming/Pipeline"
    assert DAG_TASK_IDS == (
        "select_due_files",
        "wait_for_streams_files",
        "validate_data_quality",
        "check_validation_status",
        "realtime_etl_processing",
        "write_kpis_to_dynamodb",
        "archive_processed_files",
        "fail_on_failed_files",
    )
    assert m.source == ()


def test_tables_have_the_spec_keys(tmp_path):
    kpi, tracker = load_manifest(cwd=tmp_path, environ={}).tables
    assert (kpi.name, kpi.hash_key, kpi.range_key) == ("kpi.table", "pk", "sk")
    assert [(g.name, g.hash_key, g.range_key) for g in kpi.gsis] == [("gsi1", "gsi1pk", "gsi1sk")]
    assert (tracker.name, tracker.hash_key, tracker.range_key) == (
        "kpi.table_file_tracker",
        "file_key",
        None,
    )


def test_glue_jobs_match_aws_runtimes(tmp_path):
    validation, etl = load_manifest(cwd=tmp_path, environ={}).glue_jobs
    assert (validation.name, validation.command, validation.python_version) == (
        "music_streaming_validation",
        "pythonshell",
        "3.9",
    )
    assert (etl.name, etl.command, etl.glue_version) == (
        "music_streaming_etl_complete",
        "glueetl",
        "5.1",
    )
    for job in (validation, etl):
        assert job.script == f"spark_jobs/{job.name}.py"
        assert job.default_arguments["--raw_bucket"] == "rds.data"
        assert job.default_arguments["--extra-py-files"].startswith("s3://musicpipe.artifacts/")
    assert etl.default_arguments["--default_listen_duration_seconds"] == "180"
    assert validation.default_arguments["--validation_reject_threshold"] == "0.5"


def test_file_overrides_and_environment_wins(tmp_path):
    (tmp_path / "musicpipe.toml").write_text(
        '[names]\nraw_bucket = "my.raw"\nkpi_table = "kpis"\n'
        "[settings]\nvalidation_reject_threshold = 0.2\n"
    )
    m = load_manifest(cwd=tmp_path, environ={"MUSICPIPE_KPI_TABLE": "env-kpis"})
    assert m.raw_bucket == "my.raw"
    assert m.kpi_table == "env-kpis"
    assert m.settings["validation_reject_threshold"] == 0.2
    assert m.notification.bucket == "my.raw"
    assert m.glue_jobs[0].default_arguments["--validation_reject_threshold"] == "0.2"
    assert str(tmp_path / "musicpipe.toml") in m.source
    assert "MUSICPIPE_KPI_TABLE" in m.source


def test_config_path_from_environment(tmp_path):
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('[names]\narrivals_queue = "q2"\n')
    m = load_manifest(cwd=tmp_path, environ={"MUSICPIPE_CONFIG": str(cfg)})
    assert m.arrivals_queue == "q2"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('[names]\nraw_buckt = "x"\n', {}, "unknown key(s) ['raw_buckt']"),
        ("[nmes]\n", {}, "unknown section(s) ['nmes']"),
        ('[names]\nraw_bucket = "Bad_Bucket"\n', {}, "not a valid S3 bucket name"),
        ('[names]\nraw_bucket = "trial.data"\n', {}, "both name bucket 'trial.data'"),
        ("[settings]\nvalidation_reject_threshold = 2\n", {}, "between 0 and 1"),
        ('[settings]\ndefault_listen_duration_seconds = "x"\n', {}, "must be a int"),
        ("[names\n", {}, "not valid TOML"),
        ("", {"MUSICPIPE_RAW_BUCKET": " "}, "MUSICPIPE_RAW_BUCKET is set but empty"),
        ("", {"MUSICPIPE_GLUE_TIMEOUT_MINUTES": "soon"}, "MUSICPIPE_GLUE_TIMEOUT_MINUTES"),
    ],
)
def test_bad_configuration_is_named(tmp_path, toml, env, message):
    (tmp_path / "musicpipe.toml").write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load_manifest(cwd=tmp_path, environ=env)
    assert message in str(exc.value)


def test_missing_explicit_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_manifest(cwd=tmp_path, environ={"MUSICPIPE_CONFIG": str(tmp_path / "nope.toml")})


def test_retry_settings_default_and_override(tmp_path):
    (tmp_path / "musicpipe.toml").write_text("[settings]\nmax_file_attempts = 6\n")
    m = load_manifest(cwd=tmp_path, environ={"MUSICPIPE_RETRY_TIMER_SECONDS": "0"})
    assert m.settings["max_file_attempts"] == 6
    assert m.settings["retry_timer_seconds"] == 0
    assert m.settings["retry_base_seconds"] == 60
    assert m.settings["retry_max_seconds"] == 3600
    assert m.settings["claim_window_seconds"] == 7200


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[settings]\nmax_file_attempts = 0\n", {}, "max_file_attempts must be at least 1"),
        ("[settings]\nretry_base_seconds = 2.5\n", {}, "retry_base_seconds must be a whole"),
        ("", {"MUSICPIPE_RETRY_TIMER_SECONDS": "-5"}, "MUSICPIPE_RETRY_TIMER_SECONDS"),
        ("", {"MUSICPIPE_CLAIM_WINDOW_SECONDS": "soon"}, "must be a whole number"),
        ("[settings]\nretry_max_seconds = 10\n", {}, "retry_max_seconds (10) is below"),
    ],
)
def test_bad_retry_setting_is_named(tmp_path, toml, env, message):
    (tmp_path / "musicpipe.toml").write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load_manifest(cwd=tmp_path, environ=env)
    assert message in str(exc.value)
