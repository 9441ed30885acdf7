"""The IAM documents promotion writes, generated from the manifest (pure functions).

The Glue jobs' role may touch exactly the manifest's buckets, tables, metric namespace, Glue log
groups and the ETL job's own runs (to tell whether a claim's run is still alive); nothing else.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from musicpipe.manifest import Manifest

INLINE_POLICY_NAME = "musicpipe-glue-jobs"


def glue_trust_policy() -> dict:
    """Only the Glue service may assume the jobs' role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "glue.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def glue_job_policy(manifest: Manifest, account_id: str) -> dict:
    """What the validation and ETL jobs do, and only on the manifest's resources."""
    n, region = manifest.names, manifest.region
    buckets = manifest.buckets
    objects = [f"arn:aws:s3:::{buckets[r]}/*" for r in ("raw", "processed", "quarantine")]
    tables = [
        f"arn:aws:dynamodb:{region}:{account_id}:table/{n[k]}"
        for k in ("kpi_table", "tracker_table")
    ]
    artifacts = buckets["artifacts"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListPipelineBuckets",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [f"arn:aws:s3:::{b}" for b in buckets.values()],
            },
            {
                # Read raw files, move them to quarantine/archive, write events, reports, KPIs
                # (Spark's S3A writes in multipart uploads).
                "Sid": "PipelineObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": objects,
            },
            {
                "Sid": "JobArtifacts",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [
                    f"arn:aws:s3:::{artifacts}/scripts/*",
                    f"arn:aws:s3:::{artifacts}/libs/*",
                ],
            },
            {
                "Sid": "GlueTempDir",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{artifacts}/temporary/*"],
            },
            {
                "Sid": "KpiAndTrackerTables",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:DescribeTable",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:Query",
                    "dynamodb:Scan",
                ],
                "Resource": tables + [f"{t}/index/*" for t in tables],
            },
            {
                "Sid": "PipelineMetrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                # PutMetricData takes no resource ARN; the namespace condition scopes it.
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": n["metrics_namespace"]}},
            },
            {
                "Sid": "GlueJobLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"arn:aws:logs:{region}:{account_id}:log-group:/aws-glue/*",
            },
            {
                # A claim whose Glue run has ended may be taken over (pipeline/tracker.py).
                "Sid": "OwnRunsState",
                "Effect": "Allow",
                "Action": ["glue:GetJobRun"],
                "Resource": f"arn:aws:glue:{region}:{account_id}:job/{n['etl_job']}",
            },
        ],
    }


def as_document(value: str | dict) -> dict:
    """A policy document as IAM returns it: a dict (botocore decodes it) or URL-encoded JSON."""
    if isinstance(value, dict):
        return value
    return json.loads(unquote(value))


def promoter_policy(
    manifest: Manifest,
    account_id: str,
    mwaa_environment: str | None = None,
    mwaa_source_bucket: str | None = None,
) -> dict:
    """What `musicpipe promote apply` itself calls, on the manifest's resources only (the
    tests check every call of an apply against it)."""
    n, region = manifest.names, manifest.region
    buckets = [f"arn:aws:s3:::{b}" for b in manifest.buckets.values()]
    tables = [
        f"arn:aws:dynamodb:{region}:{account_id}:table/{n[k]}"
        for k in ("kpi_table", "tracker_table")
    ]
    role = manifest.glue_role_arn(account_id)
    statements = [
        {"Sid": "WhoAmI", "Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
        {
            "Sid": "Buckets",
            "Effect": "Allow",
            "Action": [
                "s3:CreateBucket",
                "s3:ListBucket",
                "s3:GetBucketPublicAccessBlock",
                "s3:PutBucketPublicAccessBlock",
                "s3:GetEncryptionConfiguration",
                "s3:PutEncryptionConfiguration",
                "s3:GetBucketVersioning",
                "s3:PutBucketVersioning",
                "s3:GetBucketNotification",
                "s3:PutBucketNotification",
            ],
            "Resource": buckets,
        },
        {
            "Sid": "JobArtifacts",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [f"arn:aws:s3:::{n['artifacts_bucket']}/*"],
        },
        {
            "Sid": "Tables",
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeTable",
                "dynamodb:CreateTable",
                "dynamodb:UpdateTable",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:UpdateContinuousBackups",
            ],
            "Resource": tables,
        },
        {
            "Sid": "ArrivalsQueue",
            "Effect": "Allow",
            "Action": [
                "sqs:GetQueueUrl",
                "sqs:CreateQueue",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
            ],
            "Resource": f"arn:aws:sqs:{region}:{account_id}:{n['arrivals_queue']}",
        },
        {
            "Sid": "GlueLogGroups",
            "Effect": "Allow",
            "Action": ["logs:DescribeLogGroups", "logs:CreateLogGroup"],
            "Resource": f"arn:aws:logs:{region}:{account_id}:log-group:*",
        },
        {
            "Sid": "GlueJobRole",
            "Effect": "Allow",
            "Action": [
                "iam:GetRole",
                "iam:CreateRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:GetRolePolicy",
                "iam:PutRolePolicy",
            ],
            "Resource": role,
        },
        {
            "Sid": "PassRoleToGlueOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role,
            "Condition": {"StringEquals": {"iam:PassedToService": "glue.amazonaws.com"}},
        },
        {
            "Sid": "GlueJobs",
            "Effect": "Allow",
            "Action": ["glue:GetJob", "glue:CreateJob", "glue:UpdateJob"],
            # Every job of the manifest, also those a [[jobs]] entry adds.
            "Resource": [
                f"arn:aws:glue:{region}:{account_id}:job/{spec.name}" for spec in manifest.glue_jobs
            ],
        },
    ]
    if mwaa_environment:
        statements.append(
            {
                # UpdateEnvironment also needs what MWAA itself asks for (see its docs).
                "Sid": "MwaaEnvironment",
                "Effect": "Allow",
                "Action": ["airflow:GetEnvironment", "airflow:UpdateEnvironment"],
                "Resource": f"arn:aws:airflow:{region}:{account_id}:environment/{mwaa_environment}",
            }
        )
    if mwaa_source_bucket:
        statements.append(
            {
                "Sid": "MwaaSourceBucket",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{mwaa_source_bucket}/*",
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
