"""The file tracker (docs/data-contract.md §3.1, §8): one item per stream file in the tracker table.

Item: ``file_key`` (the raw object key), ``etag``, ``status``, ``batch_id``, ``attempts``,
row counts (``rows_read``, ``rows_accepted``, ``rows_duplicate``, ``rows_rejected``),
``dates`` (the listen dates the file contributed to), ``error``, ``created_at``,
``updated_at``. Status flow: PROCESSING → STAGED → COMPLETED, or FAILED / QUARANTINED.

Claims are conditional writes, so two runs never process the same file at once: a file can
be claimed when it has no item, or its item is not PROCESSING, or the PROCESSING claim belongs
to a Glue run that is no longer running (killed) or is older than the stale-claim limit. A
file whose key and etag are COMPLETED is skipped. Python 3.9-compatible (the validation job
uses it too).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable

from botocore.exceptions import ClientError

from musicpipe.aws.s3 import CONDITIONAL_CHECK_FAILED, error_code
from musicpipe.contract.status import TrackerStatus

STALE_CLAIM_SECONDS = 2 * 3600  # longer than any Glue Timeout the manifest sets


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Tracker:
    def __init__(self, dynamodb_resource, table_name: str) -> None:
        self.table = dynamodb_resource.Table(table_name)

    def get(self, file_key: str) -> dict | None:
        return self.table.get_item(Key={"file_key": file_key}, ConsistentRead=True).get("Item")

    def is_completed(self, file_key: str, etag: str) -> bool:
        item = self.get(file_key)
        return bool(
            item and item.get("status") == TrackerStatus.COMPLETED and item.get("etag") == etag
        )

    def claim(
        self,
        file_key: str,
        etag: str,
        batch_id: str,
        run_id: str = "",
        run_is_alive: Callable[[str], bool] | None = None,
    ) -> bool:
        """Mark the file PROCESSING for this batch; False when it must be left alone.

        Left alone: this key and etag are COMPLETED, or another batch holds it PROCESSING with
        a run that is still alive (``run_is_alive`` asks Glue) and younger than the stale
        limit. The write is conditional on the item being unchanged since it was read, so of
        two runs claiming at once exactly one wins.
        """
        previous = self.get(file_key)
        if (
            previous
            and previous.get("status") == TrackerStatus.COMPLETED
            and previous.get("etag") == etag
        ):
            return False
        if previous and previous.get("status") == TrackerStatus.PROCESSING:
            mine = previous.get("batch_id") == batch_id
            fresh = int(previous.get("claimed_epoch", 0)) > time.time() - STALE_CLAIM_SECONDS
            alive = run_is_alive is None or run_is_alive(str(previous.get("run_id", "")))
            if not mine and fresh and alive:
                return False
        stamp = now_iso()
        if previous:
            condition = "updated_at = :seen"
            values = {":seen": previous.get("updated_at", "")}
        else:
            condition, values = "attribute_not_exists(file_key)", {}
        try:
            self.table.update_item(
                Key={"file_key": file_key},
                UpdateExpression=(
                    "SET etag = :etag, #s = :processing, batch_id = :batch, run_id = :run, "
                    "updated_at = :now, claimed_epoch = :epoch, "
                    "created_at = if_not_exists(created_at, :now), "
                    "attempts = if_not_exists(attempts, :zero) + :one REMOVE #e"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status", "#e": "error"},
                ExpressionAttributeValues={
                    **values,
                    ":etag": etag,
                    ":processing": TrackerStatus.PROCESSING,
                    ":batch": batch_id,
                    ":run": run_id,
                    ":now": stamp,
                    ":epoch": Decimal(str(int(time.time()))),
                    ":zero": Decimal(0),
                    ":one": Decimal(1),
                },
            )
        except ClientError as exc:
            if error_code(exc) == CONDITIONAL_CHECK_FAILED:
                return False
            raise
        return True

    def set_status(
        self,
        file_key: str,
        status: str,
        batch_id: str,
        counts: dict[str, int] | None = None,
        dates: Iterable[str] | None = None,
        error: str | None = None,
        etag: str | None = None,
    ) -> None:
        """Move the file to ``status`` if this batch still owns it (or it has no item yet)."""
        names = {"#s": "status"}
        values: dict[str, object] = {":status": status, ":now": now_iso(), ":batch": batch_id}
        sets = ["#s = :status", "updated_at = :now", "batch_id = :batch"]
        removes: list[str] = []
        if etag is not None:
            sets.append("etag = :etag")
            values[":etag"] = etag
        for name, value in sorted((counts or {}).items()):
            sets.append(f"{name} = :{name}")
            values[f":{name}"] = Decimal(int(value))
        if dates is not None:
            sets.append("dates = :dates")
            values[":dates"] = sorted(set(dates))
        if error:
            names["#e"] = "error"
            sets.append("#e = :error")
            values[":error"] = error[:4000]
        elif status != TrackerStatus.FAILED:
            names["#e"] = "error"
            removes.append("#e")
        expression = "SET " + ", ".join(sets) + (f" REMOVE {', '.join(removes)}" if removes else "")
        self.table.update_item(
            Key={"file_key": file_key},
            UpdateExpression=expression,
            ConditionExpression="attribute_not_exists(file_key) OR batch_id = :batch",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def items(self, status: str | None = None) -> list[dict]:
        items: list[dict] = []
        kwargs: dict[str, object] = {"ConsistentRead": True}
        while True:
            page = self.table.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if status is not None:
            items = [i for i in items if i.get("status") == status]
        return items
