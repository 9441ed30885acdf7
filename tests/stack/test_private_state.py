"""The state folder (Airflow's login and database, snapshots, the journal, logs) is readable by
the stack's user only: 700 folders, 600 files, also for what the services create."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from musicpipe.processes import ManagedProcess, make_private

from ..conftest import run_cli


def loose(folder: Path) -> list[str]:
    """Every path under ``folder`` that group or others may read, write or enter."""
    return [
        f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p}"
        for p in (folder, *folder.rglob("*"))
        if not p.is_symlink() and p.lstat().st_mode & 0o077
    ]


def test_up_and_down_leave_nothing_readable_by_others(stack_env):
    state = Path(stack_env["MUSICPIPE_STATE_DIR"])
    # A state folder from before: 755 and 644, as the issue found it.
    (state / "airflow").mkdir(parents=True)
    os.chmod(state, 0o755)
    old = state / "airflow" / "airflow.db"
    old.write_text("")
    os.chmod(old, 0o644)
    try:
        run_cli("up", env=stack_env, check=True)
        # moto's journal and the Glue emulator's store are created by the services.
        assert (state / "journal" / "aws.journal").exists()
        assert (state / "glue").is_dir()
        assert loose(state) == []
        run_cli("down", env=stack_env, check=True)
        assert (state / "snapshot" / "meta.json").exists()
        assert loose(state) == []
    finally:
        run_cli("down", "--no-save", env=stack_env)
        for name in ("supervisor", "glue", "moto"):
            ManagedProcess(name, state).stop()


def test_services_create_private_files(tmp_path):
    """The umask is the child's: what a service (and its children) creates is 600 / 700 even
    when the caller's own umask is looser."""
    proc = ManagedProcess("writer", tmp_path)
    target = tmp_path / "out"
    previous = os.umask(0o022)
    try:
        proc.start(
            ["bash", "-c", f"mkdir {target} && echo x > {target}/file && sleep 30"],
            env=dict(os.environ),
        )
        for _ in range(100):
            if (target / "file").exists():
                break
            time.sleep(0.05)
    finally:
        os.umask(previous)
        proc.stop(timeout=5)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "file").stat().st_mode) == 0o600


def test_make_private_tightens_an_old_folder(tmp_path):
    folder = tmp_path / "state"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "f").write_text("")
    os.chmod(folder / "a", 0o755)
    os.chmod(folder / "a" / "f", 0o664)
    make_private(folder)
    assert stat.S_IMODE((folder / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "a" / "f").stat().st_mode) == 0o600
    assert loose(folder) == []
