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
    """Glue's ETL jars in one of the images' folders, or on the driver class path that the
    installation's spark-defaults.conf names (where the Glue image lists its own)."""
    if any(any(Path(folder).glob("*.jar")) for folder in GLUE_JAR_FOLDERS):
        return True
    from musicpipe.glue.spark import spark_defaults

    entries = spark_defaults().get("spark.driver.extraClassPath", "").split(":")
    for entry in filter(None, entries):
        jars = Path("/").glob(entry.lstrip("/")) if "*" in entry else [Path(entry)]
        if any("glue" in jar.name.lower() and jar.suffix == ".jar" for jar in jars):
            return True
    return False


def library_folder() -> Path | None:
    """The folder to put first on a glueetl run's PYTHONPATH, or None for the real library."""
    choice = os.environ.get("MUSICPIPE_GLUE_ETL_LIBRARY", "")
    if choice == "real" or (not choice and glue_jars_present()):
        return None
    return FOLDER
