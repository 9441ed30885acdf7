"""`musicpipe notebook`: JupyterLab on loopback with AWS's own Glue PySpark kernel, whose
sessions are the local Glue emulator's (its Interactive Sessions API, :mod:`.sessions`).

The kernel is `aws-glue-sessions`' ``glue_pyspark``, unpatched. It reads its settings from the
environment, which the kernel spec we write sets: ``glue_endpoint_url`` (the Glue client's
endpoint), ``glue_role_arn``, the region, dummy credentials and ``AWS_ENDPOINT_URL`` for its S3
and IAM clients. One thing it does not take from an endpoint setting: before a session it asks
the real STS (``sts.<region>.amazonaws.com``, a fixed URL) for the caller's user id, to tag
the session with it, unless it believes it runs in Glue Studio (``request_origin`` =
``GlueStudioNotebook``), where it reads the id from ``userId`` instead. The spec sets both, so
no request leaves the machine; the only effect is that ``CreateSession`` carries that
``RequestOrigin``. (Its ``%status`` and ``%%tags`` magics still call STS for the account id.)

JupyterLab and the kernel are an optional extra, kept out of the project's own environment:
installed on first use, with uv (or pip), into a cached virtual environment per pinned set
(:data:`PACKAGES`), and announced as it happens.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from musicpipe.installs import InstallError, cache_home, install_once, run_steps, venv_steps
from musicpipe.processes import die_with_parent, wait_until_answers

# What the notebook environment holds (its own venv: JupyterLab's dependencies stay out of
# the project's lock). aws-glue-sessions pins no JupyterLab; this set was tried together.
PACKAGES = ("jupyterlab==4.6.6", "aws-glue-sessions==1.0.9")
KERNEL_NAME = "glue_pyspark"
KERNEL_MODULE = "aws_glue_interactive_sessions_kernel.glue_pyspark.GlueKernel"
START_TIMEOUT_SECONDS = 120


class NotebookError(RuntimeError):
    """The notebook environment cannot be installed or JupyterLab did not start; the message
    says what to do."""


def cache_root() -> Path:
    return Path(os.environ.get("MUSICPIPE_NOTEBOOK_CACHE", cache_home() / "notebook"))


def environment_dir(packages: tuple[str, ...] = PACKAGES) -> Path:
    digest = hashlib.sha256("\n".join(packages).encode()).hexdigest()[:12]
    return cache_root() / f"env-{digest}"


def python_of(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def ensure_environment(log: Callable[[str], None], packages: tuple[str, ...] = PACKAGES) -> Path:
    """The notebook venv, installed first if it is not there (complete) yet (musicpipe.installs:
    an interrupted install is never taken for a finished one; two first starts install once)."""
    target = environment_dir(packages)

    def build(partial: Path) -> None:
        log(
            f"Installing the notebook extra ({', '.join(packages)}) into {target}: once, "
            "about a minute; later starts reuse it"
        )
        started = time.monotonic()
        steps = venv_steps(partial, packages)
        try:
            run_steps(steps, "the notebook extra")
        except InstallError as exc:
            raise NotebookError(str(exc)) from None
        log(f"Notebook extra installed in {time.monotonic() - started:.0f} s")

    return install_once(
        target,
        build,
        lambda: log(f"Waiting for another process installing the notebook extra into {target}"),
        {"packages": list(packages)},
    )


def kernel_environment(
    *, aws_endpoint: str, glue_endpoint: str, region: str, role_arn: str
) -> dict[str, str]:
    """What the Glue kernel reads (see the module docstring): the local endpoints, dummy
    credentials, and the Glue Studio origin that keeps its user-id lookup off the real STS."""
    from musicpipe.aws.local import local_exports

    return {
        **local_exports(aws_endpoint, region, glue_endpoint),
        "glue_endpoint_url": glue_endpoint,
        "glue_role_arn": role_arn,  # the region it takes from AWS_REGION
        "request_origin": "GlueStudioNotebook",
        "userId": getpass.getuser(),
    }


def write_kernel_spec(data_dir: Path, env_dir: Path, kernel_env: dict[str, str]) -> Path:
    """The ``glue_pyspark`` kernel spec under ``data_dir`` (a Jupyter data directory), run by
    the notebook venv's Python with ``kernel_env``; written on every start, so a changed
    endpoint never leaves a stale spec. It shadows the one `install-glue-kernels` would
    write, which points at AWS."""
    folder = data_dir / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [str(python_of(env_dir)), "-m", KERNEL_MODULE, "-f", "{connection_file}"],
        "display_name": "Glue PySpark (local stack)",
        "language": "python",
        "env": kernel_env,
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
    for logo in env_dir.glob(
        f"lib/python*/site-packages/{KERNEL_MODULE.rsplit('.', 2)[0]}/{KERNEL_NAME}/logo-*.png"
    ):
        shutil.copyfile(logo, folder / logo.name)
    return folder


def jupyter_environment(base: dict[str, str], data_dir: Path, runtime_dir: Path) -> dict[str, str]:
    """``base`` with Jupyter looking at our data directory first (our kernel spec) and keeping
    its runtime files (connection files, the server's info) in the stack's state."""
    env = dict(base)
    env["JUPYTER_PATH"] = os.pathsep.join(
        p for p in (str(data_dir), base.get("JUPYTER_PATH", "")) if p
    )
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    return env


def new_token() -> str:
    return secrets.token_hex(24)


def lab_command(env_dir: Path, port: int, root_dir: Path, token: str) -> list[str]:
    return [
        str(python_of(env_dir)),
        "-m",
        "jupyterlab",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",  # the port asked for or an error, never another one silently
        "--no-browser",
        f"--ServerApp.root_dir={root_dir}",
        f"--IdentityProvider.token={token}",
        # It refuses root unless told; as root here (a container, CI) it is the user's choice.
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]


def start(cmd: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own group: stop_group() ends it and its kernels
            preexec_fn=die_with_parent(),  # SIGTERM when the command dies, even by kill -9
        )


def kernel_specs(url: str, token: str, timeout: float = 5.0) -> dict:
    request = urllib.request.Request(
        f"{url}/api/kernelspecs", headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def wait_until_serving(process: subprocess.Popen, url: str, token: str, log_file: Path) -> dict:
    """JupyterLab's kernel specs once it answers."""
    return wait_until_answers(
        process,
        lambda: kernel_specs(url, token, timeout=2),
        f"JupyterLab ({url})",
        log_file,
        START_TIMEOUT_SECONDS,
    )
