"""`python -m musicpipe.cli ...`: the same as the `musicpipe` command."""

from musicpipe.cli.app import app

app()
