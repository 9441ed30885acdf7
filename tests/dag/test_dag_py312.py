"""The DAG imports on Python 3.12, as MWAA runs it (the project itself runs on 3.11).

Builds a Python 3.12 environment with only what the DAG needs (Airflow and the Amazon provider
at the locked versions; musicpipe from the checkout's src/ on PYTHONPATH), cached under
~/.cache/musicpipe keyed by the lock file, and loads the DAG folder there with Airflow's
DagBag. Skips, saying so, where no Python 3.12 interpreter exists.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_dag_integrity import QUEUE, probe

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
DAG_REQUIREMENTS = [
    "apache-airflow",
    "apache-airflow-providers-amazon[aiobotocore,common-messaging]",
]


def python312() -> str | None:
    candidates = [os.environ.get("MUSICPIPE_PYTHON312"), shutil.which("python3.12")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except OSError:
            continue
        if out.stdout.strip() == "True":
            return candidate
    return None


@pytest.fixture(scope="module")
def py312_env() -> Path:
    interpreter = python312()
    if interpreter is None:
        pytest.skip("no Python 3.12 interpreter here (set MUSICPIPE_PYTHON312 to one)")
    key = hashlib.sha256(LOCK.read_bytes() + "".join(DAG_REQUIREMENTS).encode()).hexdigest()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "musicpipe"
    env_dir = cache / f"py312-dag-{key[:12]}"
    python = env_dir / "bin" / "python"
    if not (env_dir / ".complete").exists():
        shutil.rmtree(env_dir, ignore_errors=True)
        uv = str(Path(sys.executable).parent / "uv")
        for cmd in (
            [uv, "venv", "--quiet", "--python", interpreter, str(env_dir)],
            # The lock is the constraint: the same versions as the 3.11 environment.
            [uv, "pip", "install", "--quiet", "--python", str(python), "-c", str(LOCK)]
            + DAG_REQUIREMENTS,
        ):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
            assert done.returncode == 0, f"{cmd}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        (env_dir / ".complete").touch()
    return python


def test_the_dag_imports_on_python_312(py312_env, tmp_path):
    loaded = probe(
        tmp_path,
        REPO / "airflow" / "dags",
        json.dumps({"arrivals_queue_url": QUEUE}),
        python=str(py312_env),
        pythonpath=str(REPO / "src"),
    )
    assert loaded["import_errors"] == {}
    assert loaded["io"] == []
    assert "check_validation_status" in loaded["dag"]["tasks"]
