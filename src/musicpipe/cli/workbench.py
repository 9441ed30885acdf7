"""The Glue workbench commands: `pyspark` (a session wired as glueetl runs are),
`spark-history` (Spark's history server over the runs' event logs) and `notebook` (JupyterLab
with AWS's Glue kernel on the local Glue)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from musicpipe.cli.console import EXIT_USAGE, cli_errors, console, err, fail
from musicpipe.cli.context import current_stack, require_running
from musicpipe.processes import ServerStartError, port_is_free, stop_group
from musicpipe.stack.base import StackError

# Everything after FILE belongs to the file, as with `python FILE ARGS`.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
PASS_THROUGH_ALL = {**PASS_THROUGH, "allow_interspersed_args": False}


def pyspark(
    ctx: typer.Context,
    file: str = typer.Argument(
        None, help="A Python file to run, with ARGS after it (default: an interactive shell)."
    ),
    code: str = typer.Option(
        None, "-c", help="Python code to run instead of a file; ARGS follow it."
    ),
) -> None:
    """A PySpark prompt, FILE or -c CODE with `spark` and `sc`, wired as glueetl runs are."""
    from musicpipe.glue import pyspark_session

    if code is None and file is not None and not Path(file).is_file():
        raise fail(f"{file}: no such file; give a Python file to run, or -c CODE", EXIT_USAGE)
    with cli_errors(), _spark_errors():
        stack = current_stack()
        require_running(stack)
        state_dir = stack.settings.state_dir / "pyspark"
        env = pyspark_session.environment(
            dict(os.environ),
            aws_endpoint=stack.settings.aws_endpoint,
            glue_endpoint=stack.settings.glue_endpoint,
            region=stack.manifest.region,
            state_dir=state_dir,
            log=_progress,
        )
    cmd = pyspark_session.command(code, file, list(ctx.args))
    # Ctrl-C is the session's (it interrupts a statement at the prompt), not ours.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        returncode = subprocess.run(cmd, env=env).returncode
    finally:
        signal.signal(signal.SIGINT, previous)
    raise typer.Exit(returncode if returncode >= 0 else 128 - returncode)


def spark_history(
    path: str = typer.Option(
        None,
        "--path",
        help="s3://bucket/prefix/ of the event logs "
        "(default: s3://<artifacts bucket>/spark-event-logs/).",
    ),
    port: int = typer.Option(18080, "--port", min=1, max=65535, help="Loopback port to serve on."),
) -> None:
    """Serve the runs' Spark event logs with Spark's history server, until Ctrl-C."""
    from musicpipe.glue import spark, spark_history, spark_ui
    from musicpipe.glue.spark_ui import SparkUiError

    with cli_errors(), _spark_errors():
        stack = current_stack()
        location = path or f"s3://{stack.manifest.artifacts_bucket}/spark-event-logs/"
        try:
            bucket, prefix = spark_ui.s3_location(location, "--path")
        except SparkUiError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        if not port_is_free(port):
            raise StackError(f"port {port} on 127.0.0.1 is in use: pick another with --port N")
        require_running(stack)
        if _ensure_folder(stack.aws.client("s3"), bucket, prefix):
            err.print(
                f"No event logs under s3://{bucket}/{prefix} yet: runs with --enable-spark-ui "
                f"true --spark-event-logs-path s3://{bucket}/{prefix} appear as they end."
            )
        from musicpipe.aws.local import local_environment

        wiring = spark.glueetl_spark(
            stack.settings.aws_endpoint,
            stack.manifest.region,
            stack.settings.state_dir / "pyspark",
            log=_progress,
        )
        env = spark_history.environment(
            local_environment(dict(os.environ), stack.settings.aws_endpoint, stack.manifest.region),
            wiring,
            f"s3a://{bucket}/{prefix}",
            port,
        )
    log_file = stack.settings.logs_dir / "spark-history.log"
    url = f"http://127.0.0.1:{port}"

    def serving() -> None:
        with err.status(f"starting Spark's history server on {url} …"):
            spark_history.wait_until_serving(process, url, log_file)
        console.print(f"Spark history server: {url} (event logs: s3://{bucket}/{prefix})")
        console.print("Ctrl-C stops it.", style="dim")

    _hold_the_stop()
    process = spark_history.start(env, log_file)
    _in_foreground(process, "Spark's history server", log_file, serving)


def notebook(
    port: int = typer.Option(
        8888, "--port", min=1, max=65535, help="Loopback port to serve on (refused if taken)."
    ),
    folder: Path = typer.Option(
        Path("."), "--dir", help="The folder JupyterLab opens (default: the current one)."
    ),
) -> None:
    """JupyterLab on loopback with AWS's Glue PySpark kernel, its sessions on the local Glue,
    until Ctrl-C (installs the notebook extra on first use)."""
    from musicpipe.aws.local import local_environment
    from musicpipe.glue import notebook as nb

    if not folder.is_dir():
        raise fail(f"--dir {folder}: no such folder", EXIT_USAGE)
    with cli_errors():
        stack = current_stack()
        if not port_is_free(port):
            raise StackError(f"port {port} on 127.0.0.1 is in use: pick another with --port N")
        require_running(stack)
        settings, region = stack.settings, stack.manifest.region
        try:
            env_dir = nb.ensure_environment(_progress)
        except nb.NotebookError as exc:
            raise fail(str(exc)) from None
        home = settings.state_dir / "notebook"
        kernel_env = nb.kernel_environment(
            aws_endpoint=settings.aws_endpoint,
            glue_endpoint=settings.glue_endpoint,
            region=region,
            role_arn=stack.manifest.glue_role_arn(stack.account_id),
        )
        nb.write_kernel_spec(home / "jupyter", env_dir, kernel_env)
        base = local_environment(
            dict(os.environ), settings.aws_endpoint, region, settings.glue_endpoint
        )
        env = nb.jupyter_environment(base, home / "jupyter", home / "runtime")
    token = nb.new_token()
    log_file = settings.logs_dir / "notebook.log"
    url = f"http://127.0.0.1:{port}"

    def serving() -> None:
        with err.status(f"starting JupyterLab on {url} …"):
            specs = nb.wait_until_serving(process, url, token, log_file)
        if nb.KERNEL_NAME not in specs.get("kernelspecs", {}):
            raise ServerStartError(f"JupyterLab does not list the {nb.KERNEL_NAME} kernel")
        # One line, never folded: the URL with its token is what a user copies.
        console.print(f"JupyterLab: {url}/lab?token={token}", soft_wrap=True, markup=False)
        console.print(
            f"Kernel: Glue PySpark (local stack), sessions on {settings.glue_endpoint}; "
            f"log: {log_file}",
            markup=False,
            soft_wrap=True,
        )
        console.print("Ctrl-C stops it (and the sessions its kernels started).", style="dim")

    _hold_the_stop()
    process = nb.start(nb.lab_command(env_dir, port, folder.resolve(), token), env, log_file)
    _in_foreground(process, "JupyterLab", log_file, serving)


def _hold_the_stop() -> None:
    """`kill` (SIGTERM) ends a foreground server as Ctrl-C does: it is stopped either way."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _in_foreground(
    process: subprocess.Popen, name: str, log_file: Path, serving: Callable[[], None]
) -> None:
    """``serving()`` (wait until the server answers, say where), then hold it until Ctrl-C or
    SIGTERM; its process group is stopped on every way out."""
    try:
        serving()
        process.wait()
        raise fail(f"{name} exited with code {process.returncode}; see {log_file}")
    except ServerStartError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err.print(f"stopping {name}")
    finally:
        stop_group(process)


def _ensure_folder(s3, bucket: str, prefix: str) -> bool:
    """Make ``prefix`` a folder S3A sees (the server refuses a missing log directory); True when
    it holds no object yet."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        raise StackError(
            f"bucket {bucket} does not exist in the local S3: create it, or pass --path "
            "s3://bucket/prefix/ where the runs write their event logs"
        ) from None
    if not prefix:
        return False
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=2).get("Contents", [])
    if not listed:
        s3.put_object(Bucket=bucket, Key=prefix, Body=b"")  # the folder marker S3A itself writes
    return not [o for o in listed if o["Key"] != prefix]


@contextmanager
def _spark_errors() -> Iterator[None]:
    """Spark that cannot be set up (the S3A jars not fetched) ends with its message."""
    from musicpipe.glue.spark import SparkSetupError

    try:
        yield
    except SparkSetupError as exc:
        raise fail(str(exc)) from None


def _progress(message: str) -> None:
    err.print(message, markup=False, highlight=False)
