"""Create every resource of the manifest on an AWS-compatible endpoint, idempotently.

Each step looks first and changes only what differs, so a second run reports every resource as
``unchanged``. ``plan`` mode looks without changing anything (``musicpipe status`` uses it).
Depends on boto3 and the standard library only: the LocalStack ready hook runs it as
``python -m musicpipe.bootstrap --endpoint http://localhost:4566``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from botocore.exceptions import ClientError

from musicpipe.aws.local import LOCAL_ACCOUNT_ID, LocalAws
from musicpipe.aws.s3 import error_code
from musicpipe.manifest import Manifest, TableSpec, load_manifest

CREATED, UPDATED, UNCHANGED, MISSING, DRIFTED = (
    "created",
    "updated",
    "unchanged",
    "missing",
    "drifted",
)


class BootstrapError(RuntimeError):
    """A resource exists in a shape bootstrap cannot fix without losing data."""


@dataclass(frozen=True)
class Change:
    kind: str  # "s3 bucket", "dynamodb table", ...
    name: str
    action: str  # created | updated | unchanged | missing (plan) | drifted (plan)
    detail: str = ""


class Bootstrapper:
    def __init__(
        self, clients, manifest: Manifest, apply: bool = True, account_id: str = LOCAL_ACCOUNT_ID
    ) -> None:
        """``clients`` is a callable service-name → boto3 client (e.g. LocalAws.client);
        ``account_id`` names the queue in a plan when the queue does not exist yet."""
        self.client = clients
        self.manifest = manifest
        self.apply = apply
        self.account_id = account_id
        self.changes: list[Change] = []

    def _note(self, kind: str, name: str, action: str, detail: str = "") -> None:
        if not self.apply and action in (CREATED, UPDATED):
            action = MISSING if action == CREATED else DRIFTED
        self.changes.append(Change(kind, name, action, detail))

    def run(self) -> list[Change]:
        self.buckets()
        self.tables()
        queue_arn = self.queue()
        self.notification(queue_arn)
        self.log_groups()
        return self.changes

    # -- S3 ------------------------------------------------------------------------------
    def buckets(self) -> None:
        s3 = self.client("s3")
        region = self.manifest.region
        for role, bucket in self.manifest.buckets.items():
            try:
                s3.head_bucket(Bucket=bucket)
                self._note("s3 bucket", bucket, UNCHANGED, role)
                continue
            except ClientError as exc:
                if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
            if self.apply:
                kwargs: dict = {"Bucket": bucket}
                if region != "us-east-1":
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
                s3.create_bucket(**kwargs)
            self._note("s3 bucket", bucket, CREATED, role)

    # -- DynamoDB ------------------------------------------------------------------------
    def tables(self) -> None:
        ddb = self.client("dynamodb")
        for spec in self.manifest.tables:
            try:
                current = ddb.describe_table(TableName=spec.name)["Table"]
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                if self.apply:
                    ddb.create_table(**table_definition(spec))
                    ddb.get_waiter("table_exists").wait(
                        TableName=spec.name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
                    )
                self._note("dynamodb table", spec.name, CREATED, key_summary(spec))
                continue
            problem = table_drift(spec, current)
            if problem:
                if self.apply:
                    raise BootstrapError(
                        f"table {spec.name} exists with {problem}. Keys cannot be changed in "
                        "place: back up what you need and start fresh (`musicpipe up --fresh`)."
                    )
                self._note("dynamodb table", spec.name, DRIFTED, problem)
            else:
                self._note("dynamodb table", spec.name, UNCHANGED, key_summary(spec))

    # -- SQS -----------------------------------------------------------------------------
    def queue(self) -> str:
        sqs = self.client("sqs")
        name = self.manifest.arrivals_queue
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            created = False
        except ClientError as exc:
            if error_code(exc) not in (
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
            ):
                raise
            if not self.apply:
                self._note("sqs queue", name, CREATED, "S3 may send")
                return queue_arn(self.manifest.region, self.account_id, name)
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            created = True
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "Policy"])
        arn = attrs["Attributes"]["QueueArn"]
        wanted = queue_policy(arn, self.manifest.raw_bucket)
        current = json.loads(attrs["Attributes"].get("Policy", "{}") or "{}")
        if current != wanted:
            if self.apply:
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(wanted)})
            action = CREATED if created else UPDATED
            self._note("sqs queue", name, action, "policy lets S3 send")
        else:
            self._note("sqs queue", name, CREATED if created else UNCHANGED, "S3 may send")
        return arn

    def notification(self, queue_arn_: str) -> None:
        s3 = self.client("s3")
        spec = self.manifest.notification
        label = f"s3://{spec.bucket}/{spec.prefix}*{spec.suffix} → {spec.queue}"
        try:
            config = s3.get_bucket_notification_configuration(Bucket=spec.bucket)
        except ClientError as exc:
            if error_code(exc) in ("NoSuchBucket", "404") and not self.apply:
                self._note("s3 notification", spec.config_id, CREATED, label)
                return
            raise
        config.pop("ResponseMetadata", None)
        wanted = {
            "Id": spec.config_id,
            "QueueArn": queue_arn_,
            "Events": list(spec.events),
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "prefix", "Value": spec.prefix},
                        {"Name": "suffix", "Value": spec.suffix},
                    ]
                }
            },
        }
        queues = config.get("QueueConfigurations", [])
        ours = [q for q in queues if q.get("Id") == spec.config_id]
        if ours and _same_notification(ours[0], wanted):
            self._note("s3 notification", spec.config_id, UNCHANGED, label)
            return
        if self.apply:
            # Keep notifications that others configured on the bucket.
            config["QueueConfigurations"] = [q for q in queues if q.get("Id") != spec.config_id] + [
                wanted
            ]
            s3.put_bucket_notification_configuration(
                Bucket=spec.bucket, NotificationConfiguration=config
            )
        self._note("s3 notification", spec.config_id, UPDATED if ours else CREATED, label)

    # -- CloudWatch Logs -----------------------------------------------------------------
    def log_groups(self) -> None:
        logs = self.client("logs")
        existing: set[str] = set()
        for page in logs.get_paginator("describe_log_groups").paginate(
            logGroupNamePrefix="/aws-glue/"
        ):
            existing.update(g["logGroupName"] for g in page["logGroups"])
        for group in self.manifest.log_groups:
            if group in existing:
                self._note("log group", group, UNCHANGED)
                continue
            if self.apply:
                logs.create_log_group(logGroupName=group)
            self._note("log group", group, CREATED)


def table_definition(spec: TableSpec) -> dict:
    def key_schema(hash_key: str, range_key: str | None) -> list[dict]:
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        return schema

    definition: dict = {
        "TableName": spec.name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": a, "AttributeType": "S"} for a in spec.attributes()
        ],
        "KeySchema": key_schema(spec.hash_key, spec.range_key),
    }
    if spec.gsis:
        definition["GlobalSecondaryIndexes"] = [
            {
                "IndexName": gsi.name,
                "KeySchema": key_schema(gsi.hash_key, gsi.range_key),
                "Projection": {"ProjectionType": "ALL"},
            }
            for gsi in spec.gsis
        ]
    return definition


def key_summary(spec: TableSpec) -> str:
    keys = spec.hash_key + (f" + {spec.range_key}" if spec.range_key else "")
    for gsi in spec.gsis:
        keys += f"; {gsi.name}: {gsi.hash_key} + {gsi.range_key}"
    return keys


def table_drift(spec: TableSpec, current: dict) -> str:
    """What differs between an existing table and its spec ('' when it matches)."""
    wanted = table_definition(spec)
    if current["KeySchema"] != wanted["KeySchema"]:
        return f"key schema {current['KeySchema']} (expected {wanted['KeySchema']})"
    have = {g["IndexName"]: g["KeySchema"] for g in current.get("GlobalSecondaryIndexes", [])}
    for gsi in wanted.get("GlobalSecondaryIndexes", []):
        if have.get(gsi["IndexName"]) != gsi["KeySchema"]:
            return f"index {gsi['IndexName']} missing or with other keys"
    return ""


def queue_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def queue_policy(queue_arn_: str, bucket: str) -> dict:
    """The queue policy that lets the raw bucket's event notifications reach the queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowRawBucketNotifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn_,
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
            }
        ],
    }


def _same_notification(current: dict, wanted: dict) -> bool:
    def rules(cfg: dict) -> list:
        raw = cfg.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        return sorted((r["Name"].lower(), r["Value"]) for r in raw)

    return (
        current.get("QueueArn") == wanted["QueueArn"]
        and sorted(current.get("Events", [])) == sorted(wanted["Events"])
        and rules(current) == rules(wanted)
    )


def bootstrap(
    clients, manifest: Manifest, apply: bool = True, account_id: str = LOCAL_ACCOUNT_ID
) -> list[Change]:
    return Bootstrapper(clients, manifest, apply=apply, account_id=account_id).run()


def drop_test_events(sqs, manifest: Manifest, changes: list[Change]) -> None:
    """Putting a notification configuration makes S3 send an s3:TestEvent to the queue. It is
    not an arrival; delete it so it does not start a DAG run. Other messages are made visible
    again at once. Does nothing unless ``changes`` created or updated the notification."""
    if not any(c.kind == "s3 notification" and c.action in (CREATED, UPDATED) for c in changes):
        return
    url = sqs.get_queue_url(QueueName=manifest.arrivals_queue)["QueueUrl"]
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=30
        ).get("Messages", [])
        if not messages:
            return
        for m in messages:
            if '"s3:TestEvent"' in m["Body"]:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            else:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
                return  # a real arrival: leave it and everything after it to Airflow


def summarize(changes: list[Change]) -> str:
    changed = [c for c in changes if c.action not in (UNCHANGED,)]
    if not changed:
        return f"No changes: all {len(changes)} resources already in place."
    counts: dict[str, int] = {}
    for c in changed:
        counts[c.action] = counts.get(c.action, 0) + 1
    parts = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    return f"{parts}; {len(changes) - len(changed)} unchanged."


def main(argv: list[str] | None = None) -> int:
    """Plain entry point for the LocalStack ready hook (no CLI framework needed there)."""
    parser = argparse.ArgumentParser(prog="python -m musicpipe.bootstrap")
    parser.add_argument("--endpoint", required=True, help="loopback AWS-compatible endpoint URL")
    args = parser.parse_args(argv)
    manifest = load_manifest()
    aws = LocalAws(args.endpoint, manifest.region)
    changes = bootstrap(aws.client, manifest)
    drop_test_events(aws.client("sqs"), manifest, changes)
    for c in changes:
        print(f"{c.action:>9}  {c.kind:<16} {c.name}  {c.detail}")
    print(summarize(changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
