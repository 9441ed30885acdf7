"""The one typer app: every command of the command modules is registered here, by name.

The commands stay top-level (`musicpipe up`, `musicpipe drop`, ...): each module holds plain
functions and this module registers them, in the order `musicpipe --help` lists them. Two are
groups of their own: `job` (`musicpipe job run|runs|logs`) and `promote`
(`musicpipe promote plan|apply|policy`).
"""

from __future__ import annotations

import os

import typer

from musicpipe.cli import data, jobs, promote, runs, stack, workbench
from musicpipe.processes import PRIVATE_UMASK

app = typer.Typer(
    help="Local-first AWS mirror for the music-streaming pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _private_state() -> None:
    # What the CLI writes (the state folder, snapshots, PID and log files) is the user's
    # alone; the services it starts get the same umask (processes.py).
    os.umask(PRIVATE_UMASK)


for command in (
    stack.up,
    stack.down,
    stack.status,
    stack.env,
    data.drop,
    runs.wait,
    runs.reprocess,
    data.kpis,
    jobs.deploy,
    jobs.logs,
    stack.manifest,
    data.generate,
):
    app.command()(command)
app.command(context_settings=workbench.PASS_THROUGH_ALL)(workbench.pyspark)
app.command("spark-history")(workbench.spark_history)
app.command()(workbench.notebook)
app.add_typer(jobs.job_app, name="job")
app.add_typer(promote.promote_app, name="promote")
