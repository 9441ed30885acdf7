"""The README's first command, run exactly as a new user runs it: in a fresh clone of the
repository, on a fresh state, with both cores kept busy by a load generator (so a race between
`up`, `drop` and `wait` shows up), followed by `make down` and a look for any process of that
clone left behind. Once, loaded: the idle runs it used to make too found nothing the loaded
one does not, and cost two minutes of every CI run each.

The command is read from the README's quickstart, so if the README changes, this test runs
what it says.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from musicpipe.stack.preflight import free_ports

from . import oracle
from .conftest import REPO, SAMPLES, cpu_load

DEMO_TIMEOUT_S = 1200


def readme_quickstart() -> list[str]:
    """The commands of the README's quickstart block, in order."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_quickstart_is_demo_then_test():
    # The two commands a new user types; the test below runs the first one.
    assert readme_quickstart() == ["make demo", "make test"]


def processes_of(folder: Path) -> list[psutil.Process]:
    """Live processes whose command line or working directory lies in ``folder``."""
    found = []
    prefix = str(folder)
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info["cmdline"] or [])
        if prefix in cmdline or (info["cwd"] or "").startswith(prefix):
            found.append(proc)
    return found


def user_environment() -> dict[str, str]:
    """A new user's shell: no musicpipe settings, no AWS credentials; free ports (the only
    setting a test needs, so it never meets a stack a developer left running)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MUSICPIPE_", "AWS_", "AIRFLOW", "PYTEST", "VIRTUAL_ENV"))
    }
    aws, glue, airflow = free_ports(3)
    env.update(
        MUSICPIPE_AWS_PORT=str(aws),
        MUSICPIPE_GLUE_PORT=str(glue),
        MUSICPIPE_AIRFLOW_PORT=str(airflow),
        # The embedded default, also where a Docker engine answers (Compose has its own test).
        MUSICPIPE_STACK="embedded",
    )
    return env


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh clone of this repository's committed state, as `git clone` gives a user."""
    where = tmp_path_factory.mktemp("readme-demo") / "musicpipe"
    subprocess.run(["git", "clone", "-q", str(REPO), str(where)], check=True)
    yield where
    leftover = processes_of(where)
    for proc in leftover:
        proc.kill()
    shutil.rmtree(where, ignore_errors=True)


def latest_day_top_genre() -> tuple[str, str]:
    days = oracle.kpis_from_files(
        SAMPLES / "songs.csv",
        SAMPLES / "users.csv",
        sorted((SAMPLES / "streams").glob("*.csv")),
    )
    day = max(days)
    return day, days[day]["top_genres"]["genres"][0]["genre"]


@pytest.mark.timeout(DEMO_TIMEOUT_S + 400)
def test_make_demo_on_a_fresh_clone_on_a_busy_machine(clone, tmp_path):
    command = shlex.split(readme_quickstart()[0])
    env = user_environment()
    shutil.rmtree(clone / ".musicpipe", ignore_errors=True)  # a fresh state each time
    log = tmp_path / "demo.log"
    started = time.monotonic()
    try:
        with cpu_load(), log.open("w") as out:
            done = subprocess.run(
                command,
                cwd=clone,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=DEMO_TIMEOUT_S,
            )
        took = time.monotonic() - started
        output = log.read_text()
        print(f"{' '.join(command)} (loaded): {took:.0f} s")
        assert done.returncode == 0, f"exit {done.returncode}:\n{output[-6000:]}"
        day, genre = latest_day_top_genre()
        # The latest day's KPI tables, as `make kpis` prints them.
        assert f"top genres, {day}" in output, output[-4000:]
        assert f"by hour (UTC), {day}" in output
        assert genre in output
    finally:
        down = subprocess.run(
            ["make", "down"], cwd=clone, env=env, capture_output=True, text=True, timeout=300
        )
    assert down.returncode == 0, down.stdout + down.stderr
    left = processes_of(clone)
    assert not left, [(p.pid, p.info["cmdline"]) for p in left]
