"""The installed Glue library's own ``awsglue.utils`` (getResolvedOptions and the rest),
loaded from its file: this package shadows that one's name. Found as the AWSGlueDataplanePython
distribution's, else as the first other ``awsglue/utils.py`` on the path."""

from __future__ import annotations

import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

_OURS = Path(__file__).resolve().parent


def _installed_utils() -> str:
    try:
        return str(distribution("AWSGlueDataplanePython").locate_file("awsglue/utils.py"))
    except PackageNotFoundError:
        pass
    for entry in sys.path:
        candidate = Path(entry or ".") / "awsglue" / "utils.py"
        if candidate.is_file() and candidate.resolve().parent != _OURS:
            return str(candidate)
    raise ImportError(
        "awsglue.utils: no Glue library is installed beside musicpipe's stand-in "
        "(pip install AWSGlueDataplanePython)"
    )


_spec = importlib.util.spec_from_file_location(__name__, _installed_utils())
assert _spec is not None and _spec.loader is not None
_spec.loader.exec_module(sys.modules[__name__])  # the real module's names, defined in this one
