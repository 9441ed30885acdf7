"""A PySpark session wired as the emulator's glueetl runs are: `musicpipe pyspark`.

:func:`environment` builds the session process's environment from the same wiring the runner
uses (:func:`musicpipe.glue.spark.glueetl_spark`: S3A to the local S3 with the dummy
credentials, ``s3://`` through S3A, UTC, the same shuffle sizing and logging), plus a live
Spark UI on a free loopback port. The session runs in a process of its own,
``python -m musicpipe.glue.pyspark_session [-c CODE | FILE] [ARGS...]``, whose pyspark starts
its own JVM from ``PYSPARK_SUBMIT_ARGS`` (not a warm driver of the emulator: those serve runs),
and it predefines ``spark`` and ``sc`` for the code, the file or the interactive prompt.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

from musicpipe.aws.local import local_environment
from musicpipe.glue import etl_library_path, spark

APP_NAME = "musicpipe-pyspark"
UI_URL_ENV = "MUSICPIPE_PYSPARK_UI_URL"


def environment(
    base: dict[str, str],
    *,
    aws_endpoint: str,
    glue_endpoint: str,
    region: str,
    state_dir: Path,
    log=print,
) -> dict[str, str]:
    """The session process's environment: the local stack's endpoints and dummy credentials,
    and the glueetl driver's Spark settings with a live UI."""
    env = local_environment(base, aws_endpoint, region, glue_endpoint)
    wiring = spark.glueetl_spark(aws_endpoint, region, state_dir, log=log)
    env.update(wiring.env())
    conf = spark.ui_conf(spark.free_port())
    library = etl_library_path.library_folder()
    if library is not None:  # GlueContext, DynamicFrame, Job, as in a glueetl run
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(library), env.get("PYTHONPATH")]))
        conf["spark.executorEnv.PYTHONPATH"] = env["PYTHONPATH"]
    port = int(conf["spark.ui.port"])
    env["PYSPARK_SUBMIT_ARGS"] = wiring.submit_args(APP_NAME, [], conf)
    env[UI_URL_ENV] = f"http://127.0.0.1:{port}"
    # No gateway of someone else's: this session starts its own JVM.
    for key in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET"):
        env.pop(key, None)
    return env


def command(code: str | None, file: str | None, args: list[str]) -> list[str]:
    """The session process's command line."""
    head = [sys.executable, "-m", "musicpipe.glue.pyspark_session"]
    if code is not None:
        return [*head, "-c", code, *([file] if file else []), *args]
    if file is not None:
        return [*head, file, *args]
    return head


def _session_globals() -> dict:
    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName(APP_NAME).getOrCreate()
    return {"__name__": "__main__", "spark": session, "sc": session.sparkContext}


def _interact(namespace: dict) -> None:
    import code

    try:
        import readline
        import rlcompleter

        readline.set_completer(rlcompleter.Completer(namespace).complete)
        readline.parse_and_bind("tab: complete")
    except ImportError:  # no readline (some Pythons): the prompt still works, without it
        pass
    session = namespace["spark"]
    banner = (
        f"PySpark {session.version} as a musicpipe glueetl run sees it "
        f"(S3 at {os.environ.get('AWS_ENDPOINT_URL')}).\n"
        f"Spark UI: {os.environ.get(UI_URL_ENV)}\n"
        "`spark` and `sc` are defined. Ctrl-D ends the session."
    )
    code.interact(banner=banner, local=namespace, exitmsg="")


def main(argv: list[str]) -> int:
    if argv[:1] == ["-c"]:
        if len(argv) < 2:
            print("error: -c needs the code to run", file=sys.stderr)
            return 2
        namespace = _session_globals()
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), namespace)  # noqa: S102 - the user's own code
    elif argv:
        path = Path(argv[0])
        if not path.is_file():
            print(f"error: {argv[0]}: no such file", file=sys.stderr)
            return 2
        namespace = _session_globals()
        sys.argv = [str(path), *argv[1:]]
        sys.path.insert(0, str(path.resolve().parent))  # as `python FILE` does
        runpy.run_path(str(path), init_globals=namespace, run_name="__main__")
    else:
        _interact(_session_globals())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
