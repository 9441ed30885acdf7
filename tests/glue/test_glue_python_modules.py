"""--additional-python-modules on the emulator, over the wire: an s3:// wheel installed by pip
with the run's --python-modules-installer-option, importable by the script and by Spark's
Python workers (a UDF on the warm driver), cached per module set; a module that does not
install fails the run with pip's own message and leaves nothing behind."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import uuid
import zipfile
from pathlib import Path

from .test_glue_emulator import ARTIFACTS, create_job, env, log_lines, put_script, wait

__all__ = ["env"]  # the fixture, used by name

PRINTS_PROBE = """\
import probe_mod
print("PROBE", probe_mod.VALUE, flush=True)
"""

UDF_IMPORTS = """\
from pyspark.sql import SparkSession, functions as F
import probe_mod, plainmod

spark = SparkSession.builder.getOrCreate()

@F.udf("string")
def tagged(n):
    import probe_mod, plainmod  # in Spark's Python worker, not the driver
    return f"{probe_mod.VALUE}-{plainmod.VALUE}-{n}"

rows = spark.range(3).select(tagged("id").alias("t")).collect()
print("DRIVER", probe_mod.VALUE, plainmod.VALUE, flush=True)
print("UDF", sorted(r.t for r in rows), flush=True)
"""


def wheel(folder: Path, value: str) -> Path:
    """A pure-Python wheel of module ``probe_mod`` whose VALUE is ``value``."""
    name, version = "probe_mod", "1.0"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VALUE = {value!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    out = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return out


def put_wheel(aws, tmp_path: Path) -> tuple[str, str]:
    """A new wheel (its VALUE unique, so its module set is new to the cache) in S3."""
    value = uuid.uuid4().hex[:10]
    path = wheel(tmp_path, value)
    key = f"wheels/{uuid.uuid4().hex[:6]}/{path.name}"
    aws.client("s3").upload_file(str(path), ARTIFACTS, key)
    return f"s3://{ARTIFACTS}/{key}", value


def installed_folder(lines: list[str]) -> Path:
    line = next(line for line in lines if "--additional-python-modules" in line)
    return Path(re.search(r" into (\S+) ", line).group(1))


def test_a_wheel_from_s3_is_installed_once_and_imported_by_the_script(env, tmp_path):
    aws, glue = env
    url, value = put_wheel(aws, tmp_path)
    name = create_job(
        glue,
        put_script(aws, "probe", PRINTS_PROBE),
        DefaultArguments={
            "--additional-python-modules": url,
            # pip's own option, as on Glue: no index is asked, the wheel is all there is.
            "--python-modules-installer-option": "--no-index",
        },
    )
    first = glue.start_job_run(JobName=name)["JobRunId"]
    done = wait(glue, name, first, timeout=180)
    assert done["JobRunState"] == "SUCCEEDED", done.get("ErrorMessage")
    lines = log_lines(aws, "/aws-glue/python-jobs/output", first)
    assert f"PROBE {value}" in lines
    assert any("installing --additional-python-modules" in line for line in lines), lines
    folder = installed_folder(lines)
    try:
        second = glue.start_job_run(JobName=name)["JobRunId"]
        assert wait(glue, name, second, timeout=120)["JobRunState"] == "SUCCEEDED"
        again = log_lines(aws, "/aws-glue/python-jobs/output", second)
        assert f"PROBE {value}" in again
        assert any("installed already in" in line for line in again), again
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_glueetl_udf_imports_the_modules_and_the_extra_py_files(env, tmp_path):
    aws, glue = env
    url, value = put_wheel(aws, tmp_path)
    s3 = aws.client("s3")
    s3.put_object(Bucket=ARTIFACTS, Key="libs/plainmod.py", Body=b"VALUE = 'plain'\n")
    name = create_job(
        glue,
        put_script(aws, "udf", UDF_IMPORTS),
        command="glueetl",
        DefaultArguments={
            "--additional-python-modules": url,
            "--python-modules-installer-option": "--no-index",
            "--extra-py-files": f"s3://{ARTIFACTS}/libs/plainmod.py",
        },
    )
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    done = wait(glue, name, run_id, timeout=300)
    lines = log_lines(aws, "/aws-glue/jobs/output", run_id)
    try:
        assert done["JobRunState"] == "SUCCEEDED", done.get("ErrorMessage")
        assert f"DRIVER {value} plain" in lines
        expected = sorted(f"{value}-plain-{n}" for n in range(3))
        assert f"UDF {expected}" in lines
    finally:
        shutil.rmtree(installed_folder(lines), ignore_errors=True)


def test_a_module_that_does_not_install_fails_the_run_with_pips_message(env):
    aws, glue = env
    missing = f"musicpipe-no-such-module-{uuid.uuid4().hex[:6]}==1.0"
    name = create_job(
        glue,
        put_script(aws, "probe", PRINTS_PROBE),
        DefaultArguments={
            "--additional-python-modules": missing,
            "--python-modules-installer-option": "--no-index",
        },
    )
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    done = wait(glue, name, run_id, timeout=120)
    assert done["JobRunState"] == "FAILED"
    error = done["ErrorMessage"]
    assert f"installing {missing} failed" in error
    assert "Could not find a version that satisfies the requirement" in error  # pip's words
    lines = log_lines(aws, "/aws-glue/python-jobs/output", run_id)
    assert not any(line.startswith("PROBE") for line in lines)  # the script never ran
    folder = installed_folder(lines)
    assert not folder.exists() and not folder.with_name(folder.name + ".partial").exists()
