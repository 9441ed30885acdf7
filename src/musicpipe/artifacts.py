"""The Glue jobs' artifacts: their scripts and the `musicpipe` library they import.

Builds ``musicpipe_jobs.zip`` (the package minus what only the local tooling needs), uploads
it and the scripts under ``spark_jobs/`` to the artifacts bucket, and creates or updates the
manifest's Glue jobs. `musicpipe up` runs it against the emulator; promotion (#7) does the
same against AWS with the very same files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

from musicpipe.aws.s3 import head_or_none, plain_etag
from musicpipe.bootstrap import CREATED, UNCHANGED, UPDATED, Change
from musicpipe.manifest import ConfigError, GlueJobSpec, Manifest, load_manifest

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parents[1]
# What the jobs import; the CLI, the stack and the emulator stay out of the zip.
JOB_SUBPACKAGES = ("contract", "pipeline", "etl", "aws", "validation")
# Object metadata: the SHA-256 of what we uploaded, so a deploy compares without a GET.
SHA_METADATA = "musicpipe-sha256"


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
        "MaxRetries": spec.max_retries,
    }
    if spec.glue_version:
        definition["GlueVersion"] = spec.glue_version
    if spec.worker_type:
        definition["WorkerType"] = spec.worker_type
        definition["NumberOfWorkers"] = spec.number_of_workers
    if spec.max_capacity is not None:
        definition["MaxCapacity"] = spec.max_capacity
    return definition


def script_path(spec: GlueJobSpec, repo_root: Path = REPO_ROOT) -> Path:
    """The job's script on disk (a config file's entry holds an absolute path)."""
    return repo_root / spec.script


def check_scripts(manifest: Manifest, repo_root: Path = REPO_ROOT) -> None:
    """Every job's script exists, before anything is uploaded."""
    for spec in manifest.glue_jobs:
        script = script_path(spec, repo_root)
        if not script.is_file():
            raise ConfigError(
                f"{script}: the script of Glue job {spec.name} (from {spec.source}) does not "
                "exist; write it, or fix the entry's script path"
            )


def job_artifacts(manifest: Manifest, repo_root: Path = REPO_ROOT) -> list[tuple[str, str, bytes]]:
    """(bucket, key, bytes) of everything the jobs need in S3: the library zip, the scripts."""
    check_scripts(manifest, repo_root)
    bucket, key = _s3_parts(manifest.extra_py_files)
    files = [(bucket, key, build_jobs_zip())]
    for spec in manifest.glue_jobs:
        bucket, key = _s3_parts(spec.script_location)
        files.append((bucket, key, script_path(spec, repo_root).read_bytes()))
    return files


def upload_if_changed(s3, bucket: str, key: str, body: bytes) -> str:
    """Put the object unless S3 holds these bytes already (the SHA-256 stored in its metadata
    when we uploaded it, or an ETag that is the bytes' MD5); created | updated | unchanged."""
    sha = hashlib.sha256(body).hexdigest()
    head = head_or_none(s3, bucket, key)
    if head is not None and (
        head.get("Metadata", {}).get(SHA_METADATA) == sha
        or plain_etag(head.get("ETag")) == hashlib.md5(body).hexdigest()
    ):
        return UNCHANGED
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={SHA_METADATA: sha})
    return CREATED if head is None else UPDATED


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


def deploy_jobs(
    s3, glue, manifest: Manifest, account_id: str, repo_root: Path = REPO_ROOT
) -> list[Change]:
    """Upload what changed (scripts, library, by content), then create or update each job.
    A job whose script was uploaded again is "updated" even when its definition is the same."""
    uploaded = {}
    for bucket, key, body in job_artifacts(manifest, repo_root):
        uploaded[f"s3://{bucket}/{key}"] = upload_if_changed(s3, bucket, key, body)
    library = manifest.extra_py_files
    results = [Change("glue library", library, uploaded[library], "what the jobs import")]
    for spec in manifest.glue_jobs:
        results.append(
            deploy_job(
                glue, spec, manifest.glue_role_arn(account_id), uploaded[spec.script_location]
            )
        )
    return results


def deploy_job(glue, spec: GlueJobSpec, role_arn: str, script: str = UNCHANGED) -> Change:
    """Create or update one job; ``script``: what happened to its script in S3."""
    definition = job_definition(spec, role_arn)
    detail = {CREATED: "script uploaded", UPDATED: "script changed"}.get(script, "")
    try:
        current = glue.get_job(JobName=spec.name)["Job"]
    except glue.exceptions.EntityNotFoundException:
        glue.create_job(Name=spec.name, **definition)
        return Change("glue job", spec.name, CREATED, f"{spec.command}, from {spec.source}")
    differences = job_differences(current, definition)
    if differences:
        glue.update_job(JobName=spec.name, JobUpdate=definition)
    if differences or script != UNCHANGED:
        changed = ", ".join([*differences, *([detail] if detail else [])])
        return Change("glue job", spec.name, UPDATED, changed)
    return Change("glue job", spec.name, UNCHANGED, spec.command)


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
    for change in deploy_jobs(aws.client("s3"), glue, manifest, args.account_id):
        print(f"{change.action:>9}  {change.kind}  {change.name}  {change.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
