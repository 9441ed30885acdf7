"""The file tracker (docs/data-contract.md §3.1, §8): one item per stream file in the tracker table.

Item: ``file_key`` (the raw object key), ``etag``, ``status``, ``batch_id``, ``attempts``,
row counts (``rows_read``, ``rows_accepted``, ``rows_duplicate``, ``rows_rejected``),
``dates`` (the listen dates the file contributed to), ``error``, ``created_at``,
``updated_at``, ``reprocess_epoch`` (set by ``musicpipe reprocess``). Status flow: PROCESSING
→ STAGED → COMPLETED, or FAILED / QUARANTINED; NOT_VALIDATED while a reference file fails.

Claims are conditional writes, so two runs never process the same file at once: a file can
be claimed when it has no item, or its item is not PROCESSING, or the PROCESSING claim belongs
to a Glue run that is no longer running (killed) or is older than the stale-claim limit. A
file whose key and etag are COMPLETED is skipped. ``attempts`` counts the claims of the current
content: a new ETag starts again at 1. Python 3.9-compatible (the validation job uses it too).
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


def epoch_decimal(epoch: float) -> Decimal:
    """A UNIX time to the millisecond, as DynamoDB stores it (marks compared with each other)."""
    return Decimal(f"{epoch:.3f}")


class Tracker:
    def __init__(
        self, dynamodb_resource, table_name: str, claim_window_seconds: int = STALE_CLAIM_SECONDS
    ) -> None:
        self.table = dynamodb_resource.Table(table_name)
        # The manifest's claim_window_seconds (§8.1): the retry judge and the jobs that claim
        # must agree on when a PROCESSING claim is stale, or the judge would take a claim the
        # ETL then refuses.
        self.claim_window_seconds = claim_window_seconds

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
            fresh = self._claim_is_fresh(previous)
            alive = run_is_alive is None or run_is_alive(str(previous.get("run_id", "")))
            if not mine and fresh and alive:
                return False
        # New content is a new file for the retry limit (§8.1): its attempts start again.
        attempts = self._attempts_of(previous, etag) + 1
        stamp = now_iso()
        return self._update_if_unchanged(
            file_key,
            previous,
            "SET etag = :etag, #s = :processing, batch_id = :batch, run_id = :run, "
            "updated_at = :now, claimed_epoch = :epoch, "
            "created_at = if_not_exists(created_at, :now), attempts = :attempts REMOVE #e",
            {
                ":etag": etag,
                ":processing": TrackerStatus.PROCESSING,
                ":batch": batch_id,
                ":run": run_id,
                ":now": stamp,
                ":epoch": Decimal(str(int(time.time()))),
                ":attempts": Decimal(attempts),
            },
        )

    def _claim_is_fresh(self, item: dict) -> bool:
        """Whether the item's claim is younger than the claim window (§8.1)."""
        return int(item.get("claimed_epoch", 0)) > time.time() - self.claim_window_seconds

    @staticmethod
    def _attempts_of(previous: dict | None, etag: str) -> int:
        """The attempts so far of this content (a new ETag has had none)."""
        if previous is None or previous.get("etag") != etag:
            return 0
        return int(previous.get("attempts", 0))

    def _update_if_unchanged(
        self, file_key: str, previous: dict | None, expression: str, values: dict[str, object]
    ) -> bool:
        """One conditional write: only if the item is as it was read (or still absent); False
        when another writer came first. ``#s`` and ``#e`` name status and error."""
        if previous and "updated_at" in previous:
            condition = "updated_at = :seen"
            values = {**values, ":seen": previous["updated_at"]}
        elif previous:  # an item written by hand, not by a tracker
            condition = "attribute_exists(file_key) AND attribute_not_exists(updated_at)"
        else:
            condition = "attribute_not_exists(file_key)"
        names = {n: a for n, a in (("#s", "status"), ("#e", "error")) if n in expression}
        try:
            self.table.update_item(
                Key={"file_key": file_key},
                UpdateExpression=expression,
                ConditionExpression=condition,
                **({"ExpressionAttributeNames": names} if names else {}),
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == CONDITIONAL_CHECK_FAILED:
                return False
            raise
        return True

    def mark_not_validated(self, file_key: str, etag: str, batch_id: str, reason: str) -> bool:
        """Record that a reference file failed, so the file was not validated (§8.1); False
        when it was left as it is: COMPLETED at this ETag, or claimed PROCESSING by another
        batch within the stale limit (a run that may still be working on it)."""
        previous = self.get(file_key)
        if previous:
            status = previous.get("status")
            if status == TrackerStatus.COMPLETED and previous.get("etag") == etag:
                return False
            fresh = self._claim_is_fresh(previous)
            if (
                status == TrackerStatus.PROCESSING
                and previous.get("batch_id") != batch_id
                and fresh
            ):
                return False
        return self._update_if_unchanged(
            file_key,
            previous,
            "SET etag = :etag, #s = :status, batch_id = :batch, updated_at = :now, "
            "not_validated_epoch = :epoch, #e = :reason, attempts = :attempts, "
            "created_at = if_not_exists(created_at, :now)",
            {
                ":etag": etag,
                ":status": TrackerStatus.NOT_VALIDATED,
                ":batch": batch_id,
                ":now": now_iso(),
                ":epoch": epoch_decimal(time.time()),
                ":reason": reason[:4000],
                ":attempts": Decimal(self._attempts_of(previous, etag)),
            },
        )

    def mark_reprocess(self, item: dict, epoch: float) -> bool:
        """``musicpipe reprocess``: attempts back to 0 and a ``reprocess_epoch`` mark, so the
        retry judge takes the file now (§8.1). Conditional on the item being as read; False
        when it changed meanwhile."""
        return self._update_if_unchanged(
            item["file_key"],
            item,
            "SET attempts = :zero, reprocess_epoch = :epoch, updated_at = :now",
            {":zero": Decimal(0), ":epoch": epoch_decimal(epoch), ":now": now_iso()},
        )

    def give_up(self, item: dict, batch_id: str, reason: str) -> bool:
        """QUARANTINED with ``reason`` after the retry limit (§8.1), once the file was moved;
        conditional on the item being as the judge read it (False when it changed)."""
        return self._update_if_unchanged(
            item["file_key"],
            item,
            "SET #s = :status, #e = :reason, batch_id = :batch, updated_at = :now",
            {
                ":status": TrackerStatus.QUARANTINED,
                ":reason": reason[:4000],
                ":batch": batch_id,
                ":now": now_iso(),
            },
        )

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
