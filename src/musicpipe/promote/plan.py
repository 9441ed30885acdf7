"""Bring an AWS account in line with the manifest: a plan first, then the same steps applied.

``Promotion.plan()`` only reads. Each step says what it would do and carries the call that does
it; ``apply(steps)`` runs them in order. Steps never delete anything: a resource that could only
be fixed by replacing it (a table with other keys) stops the apply before any change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from musicpipe.artifacts import (
    REPO_ROOT,
    SHA_METADATA,
    job_artifacts,
    job_definition,
    job_differences,
)
from musicpipe.aws.s3 import error_code
from musicpipe.bootstrap import DRIFTED, MISSING, bootstrap
from musicpipe.manifest import Manifest
from musicpipe.promote import mwaa
from musicpipe.promote.policies import (
    INLINE_POLICY_NAME,
    as_document,
    glue_job_policy,
    glue_trust_policy,
)

CREATE, UPDATE, UNCHANGED, REFUSE, SKIPPED = "create", "update", "unchanged", "refuse", "skipped"
SHA_KEY = SHA_METADATA  # object metadata: what was uploaded, to compare without a GET
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
ENCRYPTED = ("AES256", "aws:kms", "aws:kms:dsse")


class PromoteError(RuntimeError):
    """Promotion cannot go on; the message says what to do."""


class PromoteUsageError(PromoteError):
    """A promote argument is malformed (the CLI's usage error, exit 2)."""


@dataclass
class Step:
    kind: str
    name: str
    action: str  # create | update | unchanged | refuse | skipped
    detail: str = ""
    run: Callable[[], None] | None = None


def _once(fn: Callable[[], object]) -> Callable[[], None]:
    done: list[bool] = []

    def run() -> None:
        if not done:
            fn()
            done.append(True)

    return run


class Promotion:
    def __init__(
        self,
        clients: Callable[[str], Any],
        manifest: Manifest,
        account_id: str,
        mwaa_environment: str | None = None,
        update_environment: bool = False,
        repo_root: Path = REPO_ROOT,
    ) -> None:
        """``clients``: service name → boto3 client for the target account."""
        self.client = clients
        self.manifest = manifest
        self.account_id = account_id
        self.mwaa_environment = mwaa_environment
        self.update_environment = update_environment
        self.repo_root = repo_root

    @property
    def role_arn(self) -> str:
        return self.manifest.glue_role_arn(self.account_id)

    def plan(self) -> list[Step]:
        try:
            existing = self._existing_buckets()
            return [
                *self._core(),
                *self._bucket_settings(existing),
                *self._table_settings(),
                *self._role(),
                *self._uploads(self.manifest.buckets["artifacts"], self._job_files()),
                *self._jobs(),
                *self._mwaa(),
            ]
        except ClientError as exc:
            op = exc.operation_name
            raise PromoteError(f"{op} failed while planning: {exc}") from None

    def _existing_buckets(self) -> set[str]:
        """The manifest's buckets that exist. S3 names are global: one may belong to someone
        else, which stops the plan."""
        s3 = self.client("s3")
        existing = set()
        for bucket in self.manifest.buckets.values():
            try:
                s3.head_bucket(Bucket=bucket)
                existing.add(bucket)
            except ClientError as exc:
                if error_code(exc) in ("403", "Forbidden", "AccessDenied"):
                    raise PromoteError(
                        f"bucket {bucket} exists but this account may not use it (S3 bucket "
                        "names are global; it is probably another account's). Choose another "
                        "name in musicpipe.toml [names]."
                    ) from None
                if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
        return existing

    # -- buckets, tables, queue, notification, log groups: the bootstrap's own steps --------
    def _core(self) -> list[Step]:
        changes = bootstrap(self.client, self.manifest, apply=False, account_id=self.account_id)
        run = _once(lambda: bootstrap(self.client, self.manifest, account_id=self.account_id))
        steps = []
        for c in changes:
            if c.kind == "dynamodb table" and c.action == DRIFTED:
                steps.append(
                    Step(c.kind, c.name, REFUSE, f"{c.detail}: keys cannot change in place")
                )
            elif c.action in (MISSING, DRIFTED):
                action = CREATE if c.action == MISSING else UPDATE
                steps.append(Step(c.kind, c.name, action, c.detail, run))
            else:
                steps.append(Step(c.kind, c.name, UNCHANGED, c.detail))
        return steps

    def _bucket_settings(self, existing: set[str]) -> list[Step]:
        s3 = self.client("s3")
        steps = []
        for role, bucket in self.manifest.buckets.items():
            wanted = {"public access blocked", "default encryption (SSE-S3)"}
            if role == "raw":
                wanted.add("versioning")  # an overwritten or deleted raw file can be recovered
            have = self._bucket_state(s3, bucket) if bucket in existing else set()
            missing = sorted(wanted - have)
            if not missing:
                steps.append(
                    Step("s3 bucket settings", bucket, UNCHANGED, ", ".join(sorted(wanted)))
                )
                continue

            def run(bucket=bucket, missing=missing) -> None:
                if "public access blocked" in missing:
                    s3.put_public_access_block(
                        Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK
                    )
                if "default encryption (SSE-S3)" in missing:
                    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    s3.put_bucket_encryption(
                        Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]}
                    )
                if "versioning" in missing:
                    s3.put_bucket_versioning(
                        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
                    )

            action = UPDATE if bucket in existing else CREATE
            steps.append(Step("s3 bucket settings", bucket, action, ", ".join(missing), run))
        return steps

    @staticmethod
    def _bucket_state(s3, bucket: str) -> set[str]:
        """The settings an existing bucket already has."""
        have = set()
        try:
            block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
            if all(block.get(k) for k in PUBLIC_ACCESS_BLOCK):
                have.add("public access blocked")
        except ClientError as exc:
            if error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise
        try:
            rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
            algorithms = {
                r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
                for r in rules.get("Rules", [])
            }
            if algorithms & set(ENCRYPTED):
                have.add("default encryption (SSE-S3)")
        except ClientError as exc:
            if error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
                raise
        if s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled":
            have.add("versioning")
        return have

    def _table_settings(self) -> list[Step]:
        ddb = self.client("dynamodb")
        steps = []
        for spec in self.manifest.tables:
            try:
                table = ddb.describe_table(TableName=spec.name)["Table"]
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                table = None
            on_demand = (
                table is not None
                and table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST"
            )
            pitr = False
            if table is not None:
                backups = ddb.describe_continuous_backups(TableName=spec.name)
                status = backups["ContinuousBackupsDescription"].get(
                    "PointInTimeRecoveryDescription", {}
                )
                pitr = status.get("PointInTimeRecoveryStatus") == "ENABLED"
            missing = [
                what
                for what, ok in (("on-demand", on_demand or table is None), ("PITR", pitr))
                if not ok
            ]
            if not missing:
                steps.append(Step("dynamodb settings", spec.name, UNCHANGED, "on-demand, PITR"))
                continue

            def run(name=spec.name, missing=missing) -> None:
                if "on-demand" in missing:
                    ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")
                    ddb.get_waiter("table_exists").wait(TableName=name)
                ddb.update_continuous_backups(
                    TableName=name,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )

            action = CREATE if table is None else UPDATE
            steps.append(Step("dynamodb settings", spec.name, action, ", ".join(missing), run))
        return steps

    # -- the Glue jobs' role -----------------------------------------------------------------
    def _role(self) -> list[Step]:
        iam = self.client("iam")
        name = self.manifest.glue_role_name
        trust = glue_trust_policy()
        policy = glue_job_policy(self.manifest, self.account_id)
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            role = None
        steps = []
        if role is None:

            def create() -> None:
                iam.create_role(
                    RoleName=name,
                    AssumeRolePolicyDocument=json.dumps(trust),
                    Description="musicpipe Glue jobs (written by musicpipe promote)",
                )

            steps.append(Step("iam role", name, CREATE, "Glue may assume it", create))
        elif as_document(role["AssumeRolePolicyDocument"]) != trust:

            def retrust() -> None:
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))

            steps.append(Step("iam role", name, UPDATE, "trust: only glue.amazonaws.com", retrust))
        else:
            steps.append(Step("iam role", name, UNCHANGED, "Glue may assume it"))
        current = None
        if role is not None:
            try:
                current = as_document(
                    iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME)[
                        "PolicyDocument"
                    ]
                )
            except ClientError as exc:
                if error_code(exc) != "NoSuchEntity":
                    raise
        label = f"{name}/{INLINE_POLICY_NAME}"
        detail = f"{len(policy['Statement'])} statements on the manifest's resources"
        if current == policy:
            steps.append(Step("iam policy", label, UNCHANGED, detail))
        else:

            def put() -> None:
                iam.put_role_policy(
                    RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(policy)
                )

            steps.append(
                Step("iam policy", label, CREATE if current is None else UPDATE, detail, put)
            )
        return steps

    # -- uploads (job artifacts, MWAA files) -------------------------------------------------
    def _job_files(self) -> list[tuple[str, bytes]]:
        return [(key, body) for _, key, body in job_artifacts(self.manifest, self.repo_root)]

    def _uploads(self, bucket: str, files: list[tuple[str, bytes]]) -> list[Step]:
        s3 = self.client("s3")
        steps = []
        for key, body in files:
            sha = hashlib.sha256(body).hexdigest()
            try:
                current = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(SHA_KEY)
                exists = True
            except ClientError as exc:
                if error_code(exc) not in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                    raise
                current, exists = None, False
            label = f"s3://{bucket}/{key}"
            if current == sha:
                steps.append(Step("s3 object", label, UNCHANGED, f"{len(body):,} bytes"))
                continue

            def put(key=key, body=body, sha=sha) -> None:
                s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={SHA_KEY: sha})

            action = UPDATE if exists else CREATE
            detail = f"{len(body):,} bytes" + (", content changed" if exists else "")
            steps.append(Step("s3 object", label, action, detail, put))
        return steps

    # -- Glue jobs ---------------------------------------------------------------------------
    def _jobs(self) -> list[Step]:
        glue = self.client("glue")
        steps = []
        for spec in self.manifest.glue_jobs:
            definition = job_definition(spec, self.role_arn)
            summary = f"{spec.command}" + (
                f" Glue {spec.glue_version}" if spec.glue_version else ""
            )
            try:
                current = glue.get_job(JobName=spec.name)["Job"]
            except ClientError as exc:
                if error_code(exc) != "EntityNotFoundException":
                    raise

                def create(name=spec.name, definition=definition) -> None:
                    glue.create_job(Name=name, **definition)

                steps.append(Step("glue job", spec.name, CREATE, summary, create))
                continue
            differ = job_differences(current, definition)
            if not differ:
                steps.append(Step("glue job", spec.name, UNCHANGED, summary))
                continue

            def update(name=spec.name, definition=definition) -> None:
                glue.update_job(JobName=name, JobUpdate=definition)

            steps.append(Step("glue job", spec.name, UPDATE, ", ".join(differ), update))
        return steps

    # -- MWAA --------------------------------------------------------------------------------
    def _mwaa(self) -> list[Step]:
        if not self.mwaa_environment:
            hint = "--mwaa-environment NAME deploys the DAG"
            return [Step("mwaa environment", "(none named)", SKIPPED, hint)]
        client = self.client("mwaa")
        try:
            env = client.get_environment(Name=self.mwaa_environment)["Environment"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise PromoteError(
                    f"MWAA environment {self.mwaa_environment!r} not found in "
                    f"{self.manifest.region}; create it (console or IaC), then promote"
                ) from None
            raise
        bucket = env["SourceBucketArn"].split(":::", 1)[1]
        requirements_key = env.get("RequirementsS3Path") or mwaa.DEFAULT_REQUIREMENTS_PATH
        startup_key = env.get("StartupScriptS3Path") or mwaa.DEFAULT_STARTUP_SCRIPT_PATH
        files = [
            *mwaa.dag_files(env.get("DagS3Path") or "dags"),
            (requirements_key, mwaa.REQUIREMENTS.read_bytes()),
            (startup_key, mwaa.startup_script(self.manifest, self.account_id)),
        ]
        # DAG files are picked up by MWAA by itself; requirements and the startup script only
        # when the environment is updated to their new versions (MWAA restarts for that).
        steps = self._uploads(bucket, files)
        changed = {s.name.removeprefix(f"s3://{bucket}/") for s in steps if s.run is not None}
        versioned = {requirements_key: "Requirements", startup_key: "StartupScript"}
        reasons = []
        for key, label in versioned.items():
            if key in changed:
                reasons.append(f"new {key}")
            elif env.get(f"{label}S3Path") != key or env.get(
                f"{label}S3ObjectVersion"
            ) != self._version(bucket, key):
                reasons.append(f"the environment does not run the current {key}")
        name = self.mwaa_environment
        airflow = env.get("AirflowVersion")
        if not reasons:
            steps.append(Step("mwaa environment", name, UNCHANGED, f"Airflow {airflow}"))
        elif not self.update_environment:
            why = "; ".join(reasons) + ": --update-environment applies them (MWAA restarts)"
            steps.append(Step("mwaa environment", name, SKIPPED, why))
        else:

            def update() -> None:
                # After the uploads: the versions are those just written.
                arguments = {}
                for key, label in versioned.items():
                    arguments[f"{label}S3Path"] = key
                    arguments[f"{label}S3ObjectVersion"] = self._version(bucket, key)
                client.update_environment(Name=name, **arguments)

            steps.append(Step("mwaa environment", name, UPDATE, "; ".join(reasons), update))
        return steps

    def _version(self, bucket: str, key: str) -> str | None:
        try:
            return self.client("s3").head_object(Bucket=bucket, Key=key).get("VersionId")
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise


def pending(steps: list[Step]) -> bool:
    """Would apply do (or refuse) anything?"""
    return any(s.run is not None or s.action == REFUSE for s in steps)


def apply(steps: list[Step]) -> int:
    """Run the steps' changes in order; refuses before any change if a step refuses."""
    refused = [s for s in steps if s.action == REFUSE]
    if refused:
        raise PromoteError(
            "nothing was changed: "
            + "; ".join(f"{s.kind} {s.name}: {s.detail}" for s in refused)
            + ". Promotion never deletes data; migrate or rename it (musicpipe.toml [names])."
        )
    ran = 0
    for step in steps:
        if step.run is None:
            continue
        try:
            step.run()
        except ClientError as exc:
            raise PromoteError(
                f"{step.kind} {step.name}: {exc}. The {ran} change(s) before it were applied; "
                "`promote plan` shows what is left."
            ) from None
        ran += 1
    return ran
