"""Which Glue ETL library (GlueContext, DynamicFrame, Job, transforms) a glueetl run imports:
inside the AWS Glue libs image the real one, whose jars are there; anywhere else musicpipe's
on plain Spark (``etl_library/``), put on the run's PYTHONPATH. ``MUSICPIPE_GLUE_ETL_LIBRARY``
= ``real`` or ``musicpipe`` overrides the choice."""

from __future__ import annotations

import os
from pathlib import Path

FOLDER = Path(__file__).with_name("etl_library")
# Where the Glue libs images keep the Glue ETL jars (Glue 5 and 4 layouts).
GLUE_JAR_FOLDERS = ("/usr/share/aws/glue/etl/jars", "/home/glue_user/aws-glue-libs/jars")


def glue_jars_present() -> bool:
    return any(any(Path(folder).glob("*.jar")) for folder in GLUE_JAR_FOLDERS)


def library_folder() -> Path | None:
    """The folder to put first on a glueetl run's PYTHONPATH, or None for the real library."""
    choice = os.environ.get("MUSICPIPE_GLUE_ETL_LIBRARY", "")
    if choice == "real" or (not choice and glue_jars_present()):
        return None
    return FOLDER
