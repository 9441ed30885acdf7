"""Airflow's components as the stack starts them: a DAG that cannot be imported stops `up`
with Airflow's own error, and nothing is left running."""

from __future__ import annotations

import json
import stat

import pytest

from musicpipe.manifest import load_manifest
from musicpipe.stack import airflow as airflow_stack
from musicpipe.stack.airflow import AirflowError, AirflowServices
from musicpipe.stack.settings import load_settings

from ..conftest import isolated_env


def test_local_connection_and_variable_point_at_the_stack(tmp_path):
    env = isolated_env(tmp_path / "state")
    settings, manifest = load_settings(environ=env), load_manifest(environ=env)
    airflow_env = AirflowServices(settings, manifest).environment()
    variable = json.loads(airflow_env["AIRFLOW_VAR_MUSIC_STREAMING_PIPELINE"])
    assert variable["arrivals_queue_url"] == (
        f"http://127.0.0.1:{settings.aws_port}/123456789012/music-arrivals"
    )
    assert variable["raw_bucket"] == "rds.data" and variable["dag_id"] == manifest.dag_id
    extra = json.loads(airflow_env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]
    assert extra["endpoint_url"] == settings.aws_endpoint
    assert extra["service_config"]["glue"]["endpoint_url"] == settings.glue_endpoint


def test_a_dag_that_does_not_import_stops_up_with_its_error(tmp_path, monkeypatch):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "music_streaming_realtime_pipeline.py").write_text(
        "from airflow.sdk import DAG\nraise RuntimeError('the DAG file is broken on purpose')\n"
    )
    monkeypatch.setattr(airflow_stack, "DAGS_FOLDER", dags)
    env = isolated_env(tmp_path / "state")
    services = AirflowServices(load_settings(environ=env), load_manifest(environ=env))
    try:
        with pytest.raises(AirflowError, match="broken on purpose"):
            services.start(health_timeout=240)
        assert not services.is_running()
        # `airflow db migrate` created the database with the stack's umask: the user's alone.
        assert stat.S_IMODE((services.home / "airflow.db").stat().st_mode) == 0o600
    finally:
        services.stop()
