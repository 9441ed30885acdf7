"""Which runtime a job's GlueVersion gets, as on AWS, and the runtimes themselves.

Glue 5.0 and 5.1 run Spark 3.5 on Python 3.11: the emulator's own pyspark. Glue 6.0 runs Spark
4.1 (Python 3.13, Java 17): a cached environment with pip's pyspark 4.1 and what a job script
needs beside it, installed on first use (musicpipe.installs) under
``~/.cache/musicpipe/glue-runtimes/`` (``MUSICPIPE_GLUE_RUNTIMES``), its S3A jars fetched for
its own Hadoop. Older versions run on the nearest runtime here. Where a run's Spark or Python
differs from its version's on AWS, the run's first log line says so.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from musicpipe.glue.errors import InvalidInput
from musicpipe.installs import InstallError, cache_home, install_once, run_steps, venv_steps

# GlueVersion → (Spark, Python) on AWS Glue, for the versions CreateJob accepts.
GLUE_VERSIONS = {
    "0.9": ("2.2", "2.7"),
    "1.0": ("2.4", "3.6"),
    "2.0": ("2.4", "3.7"),
    "3.0": ("3.1", "3.7"),
    "4.0": ("3.3", "3.10"),
    "5.0": ("3.5", "3.11"),
    "5.1": ("3.5", "3.11"),
    "6.0": ("4.1", "3.13"),
}
# The Spark runtimes this emulator has besides its own pyspark: what each installs.
SPARK_RUNTIMES = {
    "4.1": (
        "pyspark==4.1.4",
        "boto3",
        "AWSGlueDataplanePython==5.1.0",
        "pyarrow",
        "debugpy",
    ),
}
# Python shell: the PythonVersion values Glue offers.
PYTHON_SHELL_VERSIONS = ("3", "3.9", "3.11")


class GlueRuntimeError(RuntimeError):
    """A Glue version's runtime could not be installed; the message says why."""


def check_glue_version(version: str | None) -> None:
    """CreateJob/UpdateJob: a GlueVersion AWS Glue does not have is refused."""
    if version is not None and version not in GLUE_VERSIONS:
        raise InvalidInput(
            f"Unsupported Glue version {version!r}; supported: {', '.join(GLUE_VERSIONS)}"
        )


@dataclass(frozen=True)
class SparkRuntime:
    """A Spark other than the emulator's own: its Python and its Spark home."""

    spark: str
    python: Path
    spark_home: Path


def local_spark() -> str:
    from musicpipe.glue.spark import SPARK_HOME

    for jar in (SPARK_HOME / "jars").glob("spark-core_*.jar"):
        # spark-core_2.12-3.5.4.jar, or the Glue image's spark-core_2.12-3.5.4-amzn-0.jar → 3.5
        found = re.match(r"spark-core_[\d.]+-(\d+\.\d+)", jar.name)
        if found:
            return found.group(1)
    return "3.5"


def runtime_note(glue_version: str, spark_version: str) -> str | None:
    """The first log line of a glueetl run whose Spark or Python differs from AWS's."""
    if glue_version not in GLUE_VERSIONS:
        return None
    spark, python = GLUE_VERSIONS[glue_version]
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if (spark, python) == (spark_version, here):
        return None
    return (
        f"[musicpipe] Glue {glue_version} runs Spark {spark} on Python {python}; this run: "
        f"Spark {spark_version} on Python {here} (the nearest this machine has)"
    )


def python_shell_note(python_version: str) -> str | None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python_version in ("3", here):
        return None
    return (
        f"[musicpipe] Python shell {python_version}: this run uses Python {here} "
        "(the nearest this machine has)"
    )


def spark_for(glue_version: str) -> str:
    """The Spark a glueetl run of ``glue_version`` gets here."""
    wanted = GLUE_VERSIONS.get(glue_version, ("3.5", ""))[0]
    return wanted if wanted in SPARK_RUNTIMES else local_spark()


def cache_root() -> Path:
    return Path(os.environ.get("MUSICPIPE_GLUE_RUNTIMES", cache_home() / "glue-runtimes"))


def ensure_runtime(spark: str, log: Callable[[str], None]) -> SparkRuntime:
    """The runtime of Spark ``spark`` (a key of SPARK_RUNTIMES), installed first if needed."""
    packages = SPARK_RUNTIMES[spark]
    key = "\n".join([sys.version.split()[0], *packages])
    target = cache_root() / f"spark-{spark}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def build(partial: Path) -> None:
        log(
            f"[musicpipe] installing the Spark {spark} runtime ({', '.join(packages)}) into "
            f"{target}: once, a minute or two; later runs reuse it"
        )
        steps = venv_steps(partial, packages)
        try:
            run_steps(steps, f"the Spark {spark} runtime")
        except InstallError as exc:
            raise GlueRuntimeError(str(exc)) from None

    install_once(
        target,
        build,
        lambda: log(f"[musicpipe] waiting for another run installing the Spark {spark} runtime"),
        {"packages": list(packages)},
    )
    python = target / "bin" / "python"
    site = next((target / "lib").glob("python*/site-packages"))
    return SparkRuntime(spark, python, site / "pyspark")
