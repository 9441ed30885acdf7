"""The Glue jobs' artifacts: their scripts and the `musicpipe` library they import.

Builds ``musicpipe_jobs.zip`` (the package minus what only the local tooling needs), uploads
it and the scripts under ``spark_jobs/`` to the artifacts bucket, and creates or updates the
manifest's Glue jobs. `musicpipe up` runs it against the emulator; promotion (#7) does the
same against AWS with the very same files.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

from musicpipe.manifest import GlueJobSpec, Manifest, load_manifest

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parents[1]
# What the jobs import; the CLI, the stack and the emulator stay out of the zip.
JOB_SUBPACKAGES = ("contract", "pipeline", "etl", "aws", "validation")


def package_files(
    subpackages: tuple[str, ...], modules: tuple[str, ...] = ()
) -> list[tuple[str, Path]]:
    """(name under musicpipe/, file) of the part of the package that ships somewhere: its
    __init__, the named top-level modules and every module of the subpackages."""
    files = [PACKAGE_ROOT / "__init__.py", *(PACKAGE_ROOT / m for m in modules)]
    for sub in subpackages:
        files += sorted((PACKAGE_ROOT / sub).rglob("*.py"))
    return [("musicpipe/" + path.relative_to(PACKAGE_ROOT).as_posix(), path) for path in files]


def build_jobs_zip() -> bytes:
    """The library zip, byte-identical for identical sources (fixed timestamps, sorted)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in package_files(JOB_SUBPACKAGES):
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _s3_parts(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def job_definition(spec: GlueJobSpec, role_arn: str) -> dict:
    """CreateJob/UpdateJob members for a job of the manifest."""
    definition: dict = {
        "Role": role_arn,
        "Command": {
            "Name": spec.command,
            "ScriptLocation": spec.script_location,
            "PythonVersion": spec.python_version,
        },
        "DefaultArguments": dict(spec.default_arguments),
        "ExecutionProperty": {"MaxConcurrentRuns": spec.max_concurrent_runs},
        "Timeout": spec.timeout_minutes,
        "MaxRetries": 0,
    }
    if spec.glue_version:
        definition["GlueVersion"] = spec.glue_version
    if spec.worker_type:
        definition["WorkerType"] = spec.worker_type
        definition["NumberOfWorkers"] = spec.number_of_workers
    if spec.max_capacity is not None:
        definition["MaxCapacity"] = spec.max_capacity
    return definition


def job_artifacts(manifest: Manifest, repo_root: Path = REPO_ROOT) -> list[tuple[str, str, bytes]]:
    """(bucket, key, bytes) of everything the jobs need in S3: the library zip, the scripts."""
    bucket, key = _s3_parts(manifest.extra_py_files)
    files = [(bucket, key, build_jobs_zip())]
    for spec in manifest.glue_jobs:
        script = repo_root / spec.script
        if not script.is_file():
            raise FileNotFoundError(f"{script}: the script of Glue job {spec.name} is missing")
        bucket, key = _s3_parts(spec.script_location)
        files.append((bucket, key, script.read_bytes()))
    return files


def job_differences(current: dict, wanted: dict) -> list[str]:
    """Which members of a Glue job differ from the definition (arguments by name)."""
    out = []
    for key, value in wanted.items():
        have = current.get(key)
        if key == "DefaultArguments":
            have = have or {}
            names = sorted(k for k in set(value) | set(have) if value.get(k) != have.get(k))
            if names:
                out.append(f"DefaultArguments {', '.join(names)}")
        elif key == "Command":
            names = sorted(k for k in value if (have or {}).get(k) != value[k])
            if names:
                out.append(", ".join(f"Command.{n}" for n in names))
        elif have != value:
            out.append(key)
    return out


def deploy_jobs(s3, glue, manifest: Manifest, account_id: str, repo_root: Path = REPO_ROOT):
    """Upload scripts and library, then create or update each job. Returns (job, action)."""
    for bucket, key, body in job_artifacts(manifest, repo_root):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    results = []
    for spec in manifest.glue_jobs:
        definition = job_definition(spec, manifest.glue_role_arn(account_id))
        try:
            current = glue.get_job(JobName=spec.name)["Job"]
        except glue.exceptions.EntityNotFoundException:
            glue.create_job(Name=spec.name, **definition)
            results.append((spec.name, "created"))
            continue
        if job_differences(current, definition):
            glue.update_job(JobName=spec.name, JobUpdate=definition)
            results.append((spec.name, "updated"))
        else:
            results.append((spec.name, "unchanged"))
    return results


def main(argv: list[str] | None = None) -> int:
    """Plain entry point for the Compose stack's one-shot `glue-jobs` container."""
    from musicpipe.aws.local import LocalAws

    parser = argparse.ArgumentParser(prog="python -m musicpipe.artifacts")
    parser.add_argument("--aws-endpoint", required=True, help="the local S3 endpoint")
    parser.add_argument("--glue-endpoint", required=True, help="the Glue job emulator")
    parser.add_argument("--account-id", required=True, help="for the jobs' role ARN")
    args = parser.parse_args(argv)
    manifest = load_manifest()
    aws = LocalAws(args.aws_endpoint, manifest.region)
    glue = aws.client("glue", endpoint=args.glue_endpoint)
    for name, action in deploy_jobs(aws.client("s3"), glue, manifest, args.account_id):
        print(f"{action:>9}  glue job  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
