"""Promotion against a moto server (S3, DynamoDB, SQS, IAM, STS) and the Glue job emulator (Glue,
which moto serves without UpdateJob), through the CLI as a user runs it; MWAA, which moto does
not serve, through a botocore Stubber with the source bucket on moto."""

from __future__ import annotations

import json
import shutil

import pytest
from botocore.stub import ANY, Stubber

from musicpipe.artifacts import job_differences
from musicpipe.dag.config import load_dag_config
from musicpipe.manifest import load_manifest
from musicpipe.promote import mwaa
from musicpipe.promote.plan import (
    CREATE,
    REFUSE,
    SKIPPED,
    UNCHANGED,
    UPDATE,
    PromoteError,
    Promotion,
    apply,
)
from musicpipe.promote.policies import INLINE_POLICY_NAME, glue_job_policy, glue_trust_policy
from musicpipe.promote.target import target_clients

from ..conftest import REPO, run_cli

ACCOUNT = "123456789012"  # moto's account
MANIFEST = load_manifest(cwd=REPO, environ={})


@pytest.fixture
def target(aws, local_stack, monkeypatch):
    """An empty "account": moto reset, the emulator's jobs removed; the environment a user's
    shell would have for it (credentials, region, endpoints)."""
    glue = aws.client("glue", endpoint=local_stack.settings.glue_endpoint)
    for spec in MANIFEST.glue_jobs:
        glue.delete_job(JobName=spec.name)
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": MANIFEST.region,
        "AWS_ENDPOINT_URL": local_stack.settings.aws_endpoint,
        "AWS_ENDPOINT_URL_GLUE": local_stack.settings.glue_endpoint,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MUSICPIPE_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    return env


def cli(target, *args: str, **extra: str):
    import os

    env = {**os.environ, **target, **extra}
    return run_cli("promote", *args, env=env, cwd=REPO)


def rows(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "│" in line]


def test_plan_changes_nothing_apply_creates_as_planned_and_again_is_empty(target, aws):
    plan = cli(target, "plan", "--account", ACCOUNT)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"account {ACCOUNT}" in plan.stdout
    planned = rows(plan.stdout)
    for name in (*MANIFEST.buckets.values(), MANIFEST.kpi_table, MANIFEST.arrivals_queue):
        assert any(name in r and "create" in r for r in planned), name
    assert any("iam role" in r and "create" in r for r in planned)
    assert any(MANIFEST.etl_job in r and "create" in r for r in planned)
    assert aws.client("s3").list_buckets()["Buckets"] == []  # a plan changes nothing

    applied = cli(target, "apply", "--account", ACCOUNT)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "applied" in applied.stdout and "No changes" in applied.stdout

    s3, ddb, iam = aws.client("s3"), aws.client("dynamodb"), aws.client("iam")
    for role, bucket in MANIFEST.buckets.items():
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()), bucket
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        assert (versioning == "Enabled") == (role == "raw"), bucket
    for spec in MANIFEST.tables:
        table = ddb.describe_table(TableName=spec.name)["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        pitr = ddb.describe_continuous_backups(TableName=spec.name)["ContinuousBackupsDescription"]
        assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    gsis = ddb.describe_table(TableName=MANIFEST.kpi_table)["Table"]["GlobalSecondaryIndexes"]
    assert [g["IndexName"] for g in gsis] == ["gsi1"]
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=MANIFEST.arrivals_queue)["QueueUrl"]
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    assert policy["Statement"][0]["Principal"] == {"Service": "s3.amazonaws.com"}
    notification = s3.get_bucket_notification_configuration(Bucket=MANIFEST.raw_bucket)
    assert notification["QueueConfigurations"][0]["QueueArn"].endswith(MANIFEST.arrivals_queue)
    role = iam.get_role(RoleName=MANIFEST.glue_role_name)["Role"]
    assert role["AssumeRolePolicyDocument"] == glue_trust_policy()
    inline = iam.get_role_policy(RoleName=MANIFEST.glue_role_name, PolicyName=INLINE_POLICY_NAME)
    assert inline["PolicyDocument"] == glue_job_policy(MANIFEST, ACCOUNT)
    glue = aws.client("glue", endpoint=target["AWS_ENDPOINT_URL_GLUE"])
    etl = glue.get_job(JobName=MANIFEST.etl_job)["Job"]
    assert etl["Role"] == f"arn:aws:iam::{ACCOUNT}:role/{MANIFEST.glue_role_name}"
    assert etl["GlueVersion"] == "5.1" and etl["Command"]["Name"] == "glueetl"
    validation = glue.get_job(JobName=MANIFEST.validation_job)["Job"]
    assert validation["Command"]["PythonVersion"] == "3.9"
    script = s3.get_object(Bucket=MANIFEST.artifacts_bucket, Key=f"scripts/{MANIFEST.etl_job}.py")
    assert script["Body"].read() == (REPO / "spark_jobs" / f"{MANIFEST.etl_job}.py").read_bytes()

    again = cli(target, "apply", "--account", ACCOUNT)
    assert again.returncode == 0, again.stderr
    assert "No changes" in again.stdout and "applied" not in again.stdout


def test_a_changed_script_or_argument_shows_as_an_update(target, tmp_path):
    clients = target_clients(MANIFEST.region)
    apply(Promotion(clients, MANIFEST, ACCOUNT).plan())

    # A changed job script (in another checkout): its upload is an update, nothing else.
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "spark_jobs", checkout / "spark_jobs")
    script = checkout / "spark_jobs" / f"{MANIFEST.etl_job}.py"
    script.write_text(script.read_text() + "\n# changed\n")
    steps = Promotion(clients, MANIFEST, ACCOUNT, repo_root=checkout).plan()
    changed = [(s.kind, s.name, s.action) for s in steps if s.action != UNCHANGED and s.run]
    assert changed == [
        ("s3 object", f"s3://{MANIFEST.artifacts_bucket}/scripts/{MANIFEST.etl_job}.py", UPDATE)
    ]

    # A changed default argument (musicpipe.toml's settings) updates both jobs.
    plan = cli(target, "plan", "--account", ACCOUNT, MUSICPIPE_VALIDATION_REJECT_THRESHOLD="0.3")
    assert plan.returncode == 0, plan.stderr
    updates = [r for r in rows(plan.stdout) if "update" in r]
    assert len(updates) == 2 and all("--validation_reject_threshold" in r for r in updates)


def test_endpoint_url_sends_every_call_there(target, aws):
    """--endpoint-url (for tests and emulators) instead of the AWS_ENDPOINT_URL variables: with
    those unset, the plan still reads moto (anything else has no such account)."""
    env = {k: "" for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_GLUE")}
    endpoint = target["AWS_ENDPOINT_URL"]
    plan = cli(target, "plan", "--account", ACCOUNT, "--endpoint-url", endpoint, **env)
    assert plan.returncode == 0, plan.stderr
    assert any(MANIFEST.raw_bucket in r and "create" in r for r in rows(plan.stdout))


def test_a_wrong_account_is_refused_before_anything_is_read(target, aws):
    result = cli(target, "apply", "--account", "111111111111")
    assert result.returncode == 1
    assert f"belong to account {ACCOUNT}" in result.stderr and "not 111111111111" in result.stderr
    assert aws.client("s3").list_buckets()["Buckets"] == []
    default = cli(target, "--account", "111111111111")  # `promote --account` is a plan
    assert default.returncode == 1 and "not 111111111111" in default.stderr
    bad = cli(target, "plan", "--account", "12345")
    assert bad.returncode == 2 and "--account '12345': an AWS account id is 12 digits" in bad.stderr


def test_a_table_with_other_keys_stops_apply_before_any_change(target, aws):
    aws.client("dynamodb").create_table(
        TableName=MANIFEST.kpi_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    plan = cli(target, "plan", "--account", ACCOUNT)
    assert any(MANIFEST.kpi_table in r and REFUSE in r for r in rows(plan.stdout))
    result = cli(target, "apply", "--account", ACCOUNT)
    assert result.returncode == 1
    assert "nothing was changed" in result.stderr and "never deletes data" in result.stderr
    assert aws.client("s3").list_buckets()["Buckets"] == []
    items = aws.client("dynamodb").describe_table(TableName=MANIFEST.kpi_table)["Table"]
    assert items["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_the_glue_role_may_touch_only_the_manifest_s_resources():
    manifest = load_manifest(environ={"MUSICPIPE_RAW_BUCKET": "team.raw"})
    policy = glue_job_policy(manifest, ACCOUNT)
    resources = [
        r
        for s in policy["Statement"]
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    ]
    assert "arn:aws:s3:::team.raw/*" in resources and "arn:aws:s3:::rds.data/*" not in resources
    wildcard = [s for s in policy["Statement"] if s["Resource"] == "*"]
    assert [s["Action"] for s in wildcard] == ["cloudwatch:PutMetricData"]
    assert wildcard[0]["Condition"]["StringEquals"]["cloudwatch:namespace"] == (
        manifest.metrics_namespace
    )
    tables = {manifest.kpi_table, manifest.tracker_table}
    for arn in resources:
        if arn.startswith("arn:aws:s3:::"):
            assert arn.split(":::")[1].split("/")[0] in manifest.buckets.values(), arn
        elif arn.startswith("arn:aws:dynamodb:"):
            assert arn.split(":table/")[1].split("/")[0] in tables, arn
        else:
            assert arn == "*" or f":{ACCOUNT}:" in arn, arn


def test_a_failing_call_during_apply_names_the_step_and_what_was_done():
    from botocore.exceptions import ClientError

    from musicpipe.promote.plan import Step

    def denied() -> None:
        error = {"Error": {"Code": "AccessDenied", "Message": "not allowed"}}
        raise ClientError(error, "PutBucketVersioning")

    done = []
    steps = [
        Step("s3 bucket", "a", CREATE, run=lambda: done.append("a")),
        Step("s3 bucket settings", "a", UPDATE, "versioning", run=denied),
        Step("glue job", "j", CREATE, run=lambda: done.append("j")),
    ]
    with pytest.raises(PromoteError, match=r"s3 bucket settings a: .*AccessDenied.*1 change"):
        apply(steps)
    assert done == ["a"]  # stopped at the failing step


def test_job_differences_name_what_changed():
    wanted = {
        "Role": "r",
        "Command": {"Name": "glueetl", "ScriptLocation": "s3://a/b.py"},
        "DefaultArguments": {"--x": "1", "--y": "2"},
    }
    current = {
        "Role": "r",
        "Command": {"Name": "glueetl", "ScriptLocation": "s3://a/c.py", "PythonVersion": "3"},
        "DefaultArguments": {"--x": "1", "--y": "3", "--z": "0"},
    }
    assert job_differences(current, wanted) == [
        "Command.ScriptLocation",
        "DefaultArguments --y, --z",
    ]
    assert job_differences({**current, **wanted}, wanted) == []


# -- MWAA (Stubber) --------------------------------------------------------------------------

SOURCE = "mwaa-source.example"


def environment(versions: dict[str, str | None] | None = None) -> dict:
    versions = versions or {}
    env = {
        "Name": "analytics",
        "AirflowVersion": "3.3.1",
        "SourceBucketArn": f"arn:aws:s3:::{SOURCE}",
        "DagS3Path": "dags",
        "RequirementsS3Path": "requirements.txt",
        "StartupScriptS3Path": "startup.sh",
    }
    for key, label in (("requirements.txt", "Requirements"), ("startup.sh", "StartupScript")):
        if versions.get(key):
            env[f"{label}S3ObjectVersion"] = versions[key]
    return {"Environment": env}


@pytest.fixture
def mwaa_target(target, aws):
    """The source bucket on moto (versioned, as MWAA requires); an mwaa client to stub."""
    import boto3

    s3 = aws.client("s3")
    s3.create_bucket(Bucket=SOURCE)
    s3.put_bucket_versioning(Bucket=SOURCE, VersioningConfiguration={"Status": "Enabled"})
    real = target_clients(MANIFEST.region)
    stubbed = boto3.client(
        "mwaa", region_name=MANIFEST.region, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(stubbed)

    def clients(service: str):
        return stubbed if service == "mwaa" else real(service)

    with stubber:
        yield clients, stubber, s3
        stubber.assert_no_pending_responses()


def test_mwaa_gets_the_dag_its_code_requirements_and_variable(mwaa_target):
    clients, stubber, s3 = mwaa_target
    stubber.add_response("get_environment", environment(), {"Name": "analytics"})
    steps = Promotion(clients, MANIFEST, ACCOUNT, "analytics").plan()
    mwaa_steps = [
        s for s in steps if s.name.startswith(f"s3://{SOURCE}/") or s.kind == "mwaa environment"
    ]
    assert all(s.action == CREATE for s in mwaa_steps[:-1])
    # Without --update-environment the environment itself is left alone, and the plan says so.
    assert mwaa_steps[-1].action == SKIPPED and "--update-environment" in mwaa_steps[-1].detail
    apply(steps)

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=SOURCE)["Contents"]}
    assert "dags/music_streaming_realtime_pipeline.py" in keys
    assert {
        "dags/musicpipe/dag/config.py",
        "dags/musicpipe/pipeline/kpi_writer.py",
        "dags/musicpipe/manifest.py",
        "dags/.airflowignore",
    } <= keys
    assert not any(k.startswith("dags/musicpipe/stack/") for k in keys)  # local tooling stays
    assert s3.get_object(Bucket=SOURCE, Key="requirements.txt")["Body"].read() == (
        mwaa.REQUIREMENTS.read_bytes()
    )
    startup = s3.get_object(Bucket=SOURCE, Key="startup.sh")["Body"].read().decode()
    exported = startup.split("AIRFLOW_VAR_MUSIC_STREAMING_PIPELINE=", 1)[1].strip()
    config = load_dag_config(json.loads(exported.strip("'")))
    assert config.arrivals_queue_url == (
        f"https://sqs.{MANIFEST.region}.amazonaws.com/{ACCOUNT}/{MANIFEST.arrivals_queue}"
    )
    assert config.arrivals_poll_seconds == 20  # AWS's intervals, not the laptop's


def test_mwaa_is_updated_only_when_asked_and_then_to_the_uploaded_versions(mwaa_target):
    clients, stubber, s3 = mwaa_target
    stubber.add_response("get_environment", environment(), {"Name": "analytics"})
    stubber.add_response(
        "update_environment",
        {"Arn": "arn:aws:airflow:us-east-1:123456789012:environment/analytics"},
        {
            "Name": "analytics",
            "RequirementsS3Path": "requirements.txt",
            "RequirementsS3ObjectVersion": ANY,
            "StartupScriptS3Path": "startup.sh",
            "StartupScriptS3ObjectVersion": ANY,
        },
    )
    steps = Promotion(clients, MANIFEST, ACCOUNT, "analytics", update_environment=True).plan()
    assert steps[-1].kind == "mwaa environment" and steps[-1].action == UPDATE
    apply(steps)
    # The environment now runs the uploaded versions: nothing left to do.
    versions = {
        key: s3.head_object(Bucket=SOURCE, Key=key)["VersionId"]
        for key in ("requirements.txt", "startup.sh")
    }
    stubber.add_response("get_environment", environment(versions), {"Name": "analytics"})
    again = Promotion(clients, MANIFEST, ACCOUNT, "analytics", update_environment=True).plan()
    assert [s for s in again if s.run is not None] == []


def test_a_missing_mwaa_environment_is_named(mwaa_target):
    clients, stubber, _ = mwaa_target
    stubber.add_client_error(
        "get_environment", service_error_code="ResourceNotFoundException", http_status_code=404
    )
    with pytest.raises(PromoteError, match="MWAA environment 'analytics' not found"):
        Promotion(clients, MANIFEST, ACCOUNT, "analytics").plan()


def test_a_bucket_name_taken_by_another_account_is_named():
    import boto3

    s3 = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(s3) as stubber:
        stubber.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        with pytest.raises(PromoteError, match="bucket rds.data exists but this account may not"):
            Promotion(lambda service: s3, MANIFEST, ACCOUNT).plan()


# -- the promoter's own permissions -----------------------------------------------------------

# IAM action for an API operation where it is not "<prefix>:<Operation>".
S3_ACTIONS = {
    "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
}
PREFIX = {"mwaa": "airflow"}


def _resource(service: str, params: dict, region: str) -> str:
    if service == "s3":
        return f"arn:aws:s3:::{params['Bucket']}" + (f"/{params['Key']}" if "Key" in params else "")
    if service == "dynamodb":
        return f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{params['TableName']}"
    if service == "sqs":
        name = params.get("QueueName") or params["QueueUrl"].rsplit("/", 1)[1]
        return f"arn:aws:sqs:{region}:{ACCOUNT}:{name}"
    if service == "iam":
        return f"arn:aws:iam::{ACCOUNT}:role/{params['RoleName']}"
    if service == "glue":
        return f"arn:aws:glue:{region}:{ACCOUNT}:job/{params.get('JobName') or params['Name']}"
    if service == "logs":
        return f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{params.get('logGroupName', '')}"
    if service == "mwaa":
        return f"arn:aws:airflow:{region}:{ACCOUNT}:environment/{params['Name']}"
    return "*"


def _allowed(policy: dict, action: str, resource: str) -> bool:
    from fnmatch import fnmatchcase

    for s in policy["Statement"]:
        actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        resources = [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
        if action in actions and any(fnmatchcase(resource, r) for r in resources):
            return True
    return False


def test_the_promoter_policy_allows_every_call_an_apply_makes(target, mwaa_target):
    """Every API call of a plan + apply + plan (MWAA included) is checked against the policy
    `musicpipe promote policy` prints, by action and resource."""
    from musicpipe.promote.policies import promoter_policy

    clients, stubber, _ = mwaa_target
    calls: list[tuple[str, str, dict]] = []

    def recording(service: str):
        client = clients(service)
        if not getattr(client, "_recorded", False):
            # The API parameters of every call, as the caller gave them.
            client.meta.events.register(
                "provide-client-params",
                lambda params, model, **_: calls.append((service, model.name, dict(params))),
            )
            client._recorded = True
        return client

    stubber.add_response("get_environment", environment(), {"Name": "analytics"})
    stubber.add_response(
        "update_environment",
        {"Arn": "arn"},
        {
            "Name": "analytics",
            **{
                k: ANY
                for k in (
                    "RequirementsS3Path",
                    "RequirementsS3ObjectVersion",
                    "StartupScriptS3Path",
                    "StartupScriptS3ObjectVersion",
                )
            },
        },
    )
    promotion = Promotion(recording, MANIFEST, ACCOUNT, "analytics", update_environment=True)
    apply(promotion.plan())
    stubber.add_response("get_environment", environment(), {"Name": "analytics"})
    promotion.plan()  # the plan after an apply reads a little more (existing resources)

    policy = promoter_policy(MANIFEST, ACCOUNT, "analytics", SOURCE)
    seen = {(svc, op, _resource(svc, params, MANIFEST.region)) for svc, op, params in calls}
    assert len({op for _, op, _ in seen}) > 20
    for service, op, resource in sorted(seen):
        action = f"{PREFIX.get(service, service)}:{op}"
        if service == "s3":
            action = S3_ACTIONS.get(op, action)
        assert _allowed(policy, action, resource), (action, resource)
    # Passing the role to Glue is allowed, and only to Glue.
    passrole = [s for s in policy["Statement"] if s["Action"] == "iam:PassRole"]
    assert passrole[0]["Condition"]["StringEquals"]["iam:PassedToService"] == "glue.amazonaws.com"
