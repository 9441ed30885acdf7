"""What promotion puts in an MWAA environment's source bucket (pure: file lists and contents).

MWAA runs what its source bucket holds: the DAGs folder (``DagS3Path``), ``requirements.txt``
and a startup script. The DAG imports ``musicpipe.dag`` and ``musicpipe.pipeline`` (which
import ``musicpipe.contract`` and ``musicpipe.aws.s3``), so those go into the DAGs folder
beside the DAG file (MWAA puts that folder on ``sys.path``), with an ``.airflowignore`` that
keeps Airflow from parsing them as DAG files. The DAG's Variable is exported by the startup
script, which Airflow reads without touching its database, as on the local stacks.
"""

from __future__ import annotations

import json
import shlex

from musicpipe.artifacts import REPO_ROOT, package_files
from musicpipe.dag.config import VARIABLE, variable_value
from musicpipe.manifest import Manifest

DAG_FILE = REPO_ROOT / "airflow" / "dags" / "music_streaming_realtime_pipeline.py"
# The Airflow image's additions are MWAA's requirements too: one list, tested against the lock.
REQUIREMENTS = REPO_ROOT / "docker" / "airflow" / "requirements.txt"
# What the DAG imports (and what that imports); the CLI, stacks and emulator stay home.
DAG_SUBPACKAGES = ("dag", "pipeline", "contract", "aws")
DEFAULT_REQUIREMENTS_PATH = "requirements.txt"
DEFAULT_STARTUP_SCRIPT_PATH = "startup.sh"


def aws_variable(manifest: Manifest, account_id: str) -> dict[str, object]:
    """The DAG's Variable on AWS: the manifest's names and the real queue URL; intervals keep
    the DAG's AWS defaults."""
    sqs = f"https://sqs.{manifest.region}.amazonaws.com"
    return variable_value(manifest.names, sqs, account_id, manifest.settings)


def startup_script(manifest: Manifest, account_id: str) -> bytes:
    value = json.dumps(aws_variable(manifest, account_id), sort_keys=True)
    return (
        "#!/bin/sh\n"
        "# Written by `musicpipe promote`: the DAG's configuration (musicpipe.toml's names).\n"
        f"export AIRFLOW_VAR_{VARIABLE.upper()}={shlex.quote(value)}\n"
    ).encode()


def dag_files(dag_prefix: str) -> list[tuple[str, bytes]]:
    """(key, bytes) of the DAGs folder: the DAG file, the musicpipe code it imports, and an
    .airflowignore for that code."""
    prefix = dag_prefix.strip("/")
    files = [(f"{prefix}/{DAG_FILE.name}", DAG_FILE.read_bytes())]
    for name, path in package_files(DAG_SUBPACKAGES, modules=("manifest.py",)):
        files.append((f"{prefix}/{name}", path.read_bytes()))
    files.append((f"{prefix}/.airflowignore", b"musicpipe/\n"))
    return files
