"""`musicpipe`: start, inspect and feed the local AWS mirror of the pipeline.

One module per command group, all registered on the one app (app.py): stack.py (up, down,
status, env, manifest), runs.py (wait), data.py (drop, kpis, generate), jobs.py (logs) and
promote.py (promote plan|apply|policy). console.py holds what they share (the consoles, exit
codes, errors, `--json`), context.py the stack they talk to. The modules import console.py and
context.py, never this package's ``__init__``.
"""

from musicpipe.cli.app import app

__all__ = ["app"]
