"""The supervisor's rules as plain functions: backoff, window, limit, what is restarted, what
`status` is told; and its settings, checked."""

from __future__ import annotations

import os
import signal

import pytest

from musicpipe.manifest import ConfigError, load_manifest
from musicpipe.stack.embedded import EmbeddedStack
from musicpipe.stack.settings import load_settings
from musicpipe.stack.supervision import (
    NOT_A_CHILD,
    RestartPolicy,
    Watch,
    describe_exit,
    given_up,
    record_death,
    record_restart,
    record_running,
    record_stop,
    restart_delay,
    restart_due,
    supervision_state,
    to_document,
)
from musicpipe.stack.supervisor import Supervisor

POLICY = RestartPolicy(backoff_s=1, max_backoff_s=60, limit=5, window_s=600)


def test_backoff_doubles_from_one_second_to_the_maximum():
    delays = [restart_delay(RestartPolicy(limit=10), [0.0] * n, now=1.0) for n in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_the_limit_counts_only_restarts_inside_the_window():
    assert restart_delay(POLICY, [100, 200, 300, 400], now=500) == 16
    assert restart_delay(POLICY, [100, 200, 300, 400, 500], now=600) is None  # 5 in 600 s
    # The oldest fell out of the window: one more is allowed, and the backoff counts only
    # the recent ones.
    assert restart_delay(POLICY, [100, 200, 300, 400, 500], now=700.5) == 16
    assert restart_delay(RestartPolicy(limit=0), [], now=0) is None  # 0: never restart


def test_a_death_schedules_a_restart_and_the_limit_gives_up():
    watch = Watch("glue")
    now = 1000.0
    for n in range(5):
        line = record_death(watch, POLICY, now, "killed by signal 9 (SIGKILL)")
        assert line == f"glue died (killed by signal 9 (SIGKILL)); restarting in {2**n:g} s"
        assert watch.dead and not restart_due(watch, now + 2**n - 0.01)
        assert restart_due(watch, now + 2**n)
        record_restart(watch, now + 2**n)
        assert not watch.dead and watch.restarts == n + 1
        now += 2**n + 1
    line = record_death(watch, POLICY, now, "exited with code 1")
    assert "given up: 5 restart(s) within 600 s" in line and "musicpipe up" in line
    assert watch.given_up and not restart_due(watch, now + 3600)
    assert watch.describe() == "given up after 5 restart(s)"
    assert watch.last_death == now and watch.last_exit == "exited with code 1"


@pytest.mark.parametrize("name", ["glue", "airflow-scheduler", "airflow-api-server"])
def test_the_glue_emulator_and_airflow_are_restarted(name):
    watch = Watch(name)
    record_death(watch, POLICY, 0, NOT_A_CHILD)
    assert watch.restart_at == 1


def test_moto_is_watched_never_restarted():
    watch = Watch("moto")
    assert watch.describe() == "watched"
    line = record_death(watch, POLICY, 0, NOT_A_CHILD)
    assert watch.restart_at is None and not restart_due(watch, 10**6)
    assert "not restarted" in line and "journal is replayed" in line and "musicpipe up" in line
    assert watch.describe() == "died, not restarted"


def test_exit_statuses_in_words():
    assert describe_exit(signal.SIGKILL) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(3 << 8) == "exited with code 3"
    assert describe_exit(None) == NOT_A_CHILD
    # A real one: a child that exits 7.
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    assert describe_exit(os.waitpid(pid, 0)[1]) == "exited with code 7"


def test_what_status_reads():
    glue, moto = Watch("glue", given_up=True, dead=True), Watch("moto")
    doc = to_document(42, 1.0, POLICY, [glue, moto])
    assert doc["services"]["glue"]["supervision"] == "given up after 0 restart(s)"
    assert given_up(doc) == ["glue"]
    assert supervision_state(True, doc) == "given up"
    assert supervision_state(True, to_document(42, 1.0, POLICY, [moto])) == "running"
    assert supervision_state(False, doc) == "stopped"


def test_what_is_supervised(tmp_path):
    def supervised(**env):
        environ = {"MUSICPIPE_STATE_DIR": str(tmp_path), **env}
        stack = EmbeddedStack(load_settings(tmp_path, environ), load_manifest(tmp_path, environ))
        return Supervisor(stack)

    with_airflow = supervised()
    assert set(with_airflow.processes) == {
        "moto",
        "glue",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    }
    assert set(with_airflow.starters) == set(with_airflow.processes) - {"moto"}
    assert set(supervised(MUSICPIPE_AIRFLOW="false").processes) == {"moto", "glue"}
    assert supervised(MUSICPIPE_RESTART_LIMIT="2").policy == RestartPolicy(limit=2)


def test_restart_settings_from_the_config_file_and_the_environment(tmp_path):
    (tmp_path / "musicpipe.toml").write_text(
        "[stack]\nrestart_backoff_seconds = 0.5\nrestart_limit = 3\n"
    )
    s = load_settings(tmp_path, {"MUSICPIPE_RESTART_WINDOW_SECONDS": "60"})
    assert (s.restart_backoff_seconds, s.restart_limit, s.restart_window_seconds) == (0.5, 3, 60)
    assert s.restart_max_backoff_seconds == 60


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MUSICPIPE_RESTART_LIMIT", "-1", "restart_limit must be a whole number ≥ 0"),
        ("MUSICPIPE_RESTART_LIMIT", "2.5", "MUSICPIPE_RESTART_LIMIT or [stack] restart_limit"),
        ("MUSICPIPE_RESTART_BACKOFF_SECONDS", "0", "restart_backoff_seconds must be a positive"),
        ("MUSICPIPE_RESTART_WINDOW_SECONDS", "soon", "MUSICPIPE_RESTART_WINDOW_SECONDS"),
        ("MUSICPIPE_RESTART_MAX_BACKOFF_SECONDS", "inf", "restart_max_backoff_seconds must be"),
        ("MUSICPIPE_RESTART_MAX_BACKOFF_SECONDS", "0.5", "at least restart_backoff_seconds"),
    ],
)
def test_bad_restart_settings_are_named(tmp_path, variable, value, message):
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path, {variable: value})
    assert message in str(err.value)


def test_a_service_stopped_on_purpose_is_not_restarted():
    """As `restart: unless-stopped`: a stop (the PID file removed) cancels a pending restart."""
    watch = Watch("glue")
    record_death(watch, POLICY, 0, NOT_A_CHILD)
    assert "stopped on purpose" in (record_stop(watch) or "")
    assert record_stop(watch) is None  # said once
    assert not restart_due(watch, 10**6) and watch.describe() == "stopped on purpose, not restarted"
    record_running(watch)  # started again by someone: watched again
    assert not watch.stopped and watch.describe() == "watched"
