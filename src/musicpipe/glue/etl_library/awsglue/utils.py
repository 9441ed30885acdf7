"""The installed AWSGlueDataplanePython's own ``awsglue.utils`` (getResolvedOptions and the
rest), loaded from its file: this package shadows that one's name."""

from __future__ import annotations

import importlib.util
import sys
from importlib.metadata import distribution

_path = distribution("AWSGlueDataplanePython").locate_file("awsglue/utils.py")
_spec = importlib.util.spec_from_file_location(__name__, str(_path))
assert _spec is not None and _spec.loader is not None
_module = sys.modules[__name__]
_spec.loader.exec_module(_module)  # the real module's names, defined in this one
