"""The ``write_kpis_to_dynamodb`` step (docs/data-contract.md §6.1; the items of §5): staged KPI
items → the KPI table.

Staging layout (written by the ETL, docs/data-contract.md §3.7)::

    s3://<processed>/kpis/staging/<batch_id>/manifest.json
        {"batch_id": str, "dates": ["YYYY-MM-DD", ...], "files": [{"file_key", "etag"}, ...],
         "item_count": int}
    s3://<processed>/kpis/staging/<batch_id>/items.jsonl
        one DynamoDB item per line, plain JSON; pk "DATE#<date>", sk "GENRE#<g>" |
        "TOP_GENRES" | "HOUR#<HH>".

What a run does, in order:

1. Read and validate everything before writing anything: every line parses (numbers become
   ``Decimal``/``int``; ``NaN``/``Infinity`` are refused), has a string pk/sk of a known shape,
   its pk date is one of ``manifest.dates``, no (pk, sk) appears twice, and the line count equals
   ``item_count``. A bad line raises :class:`StagingError` naming the line; nothing is written.
2. For each manifest date, Query ``pk = DATE#<date>`` (paginated, keys only, consistent read)
   for what the table holds now.
3. Whole-item puts of every staged item (never ``ADD``/``UpdateItem``), then deletes of every
   existing item of a recomputed date whose sk is not staged (a genre or hour that no longer has
   events; a date without staged items loses all its items). Puts go first so a reader never
   sees a recomputed day with fewer items than it will end up with.
4. Only when every put and delete has succeeded: tracker status ``COMPLETED`` for each manifest
   file this batch still owns. Any failure before that raises and leaves them ``STAGED``; the
   next run repeats the whole step, which is harmless because every write is a whole-item put or
   a delete (running it twice gives the same table, apart from ``updated_at``).

``updated_at`` is stamped by this step (one UTC timestamp per run, ISO 8601 with ``Z``): it says
when the item was last written to the table. For genre items ``gsi1pk``/``gsi1sk`` are filled in
(``GENRE#<genre>`` / ``DATE#<date>``) when the ETL left them out, and must have exactly those
values when it did not.

Retries, two layers:

* **botocore** (the client's retry config, ``standard`` or ``adaptive`` mode; see
  :data:`RETRY_CONFIG`) retries each *request* that fails outright: throttling
  (``ProvisionedThroughputExceededException``, ``ThrottlingException``,
  ``RequestLimitExceeded``), 5xx and connection errors. This module does not re-implement it.
* **this module** retries ``UnprocessedItems``: a ``BatchWriteItem`` that succeeds (HTTP 200) but
  leaves some requests undone, which botocore never retries. Each chunk of at most 25 requests
  is re-sent with only its unprocessed requests, after an exponential backoff with full jitter
  (``sleep(rng() * min(max_delay, base_delay * 2 ** retry))``, base 0.05 s, cap 5 s), for at most
  ``max_attempts`` calls (10); then :class:`UnprocessedItemsError` says how many stayed
  unprocessed. If botocore gives up on a throttled request, that ClientError is treated the
  same way (the whole chunk counts as unprocessed) so a long throttling spell spends this
  layer's budget too instead of failing at once; any other ClientError is raised immediately.

Python 3.9-compatible; boto3 and the standard library only.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.config import Config
from botocore.exceptions import ClientError

from musicpipe.aws.s3 import CONDITIONAL_CHECK_FAILED, error_code, read_or_none, same_etag
from musicpipe.contract.layout import staging_prefix
from musicpipe.contract.status import TrackerStatus
from musicpipe.pipeline.tracker import Tracker

GSI_NAME = "gsi1"

BATCH_WRITE_LIMIT = 25  # BatchWriteItem: at most 25 put/delete requests per call
BASE_DELAY_SECONDS = 0.05
MAX_DELAY_SECONDS = 5.0
MAX_ATTEMPTS = 10  # BatchWriteItem calls per chunk, the first one included

# Request-level retries (throttling, 5xx, connection errors) are botocore's job. Callers that
# build their own DynamoDB resource for this step should give it this config.
RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
    }
)

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR_SK_RE = re.compile(r"^HOUR#(?:[01]\d|2[0-3])$")


class KpiWriteError(RuntimeError):
    """The KPI step could not finish; the batch's files stay STAGED for the next run."""


class StagingError(KpiWriteError):
    """The staged manifest or items are missing or invalid; nothing was written."""


class UnprocessedItemsError(KpiWriteError):
    """BatchWriteItem kept returning UnprocessedItems after every allowed attempt."""

    def __init__(self, message: str, unprocessed: int, not_attempted: int) -> None:
        super().__init__(message)
        self.unprocessed = unprocessed
        self.not_attempted = not_attempted


@dataclass
class WriteResult:
    items_written: int
    items_deleted: int
    dates: list[str]
    files_completed: list[str]
    # Manifest files not marked COMPLETED because another batch owns them now (re-uploaded and
    # claimed again) or their tracker item is not STAGED/COMPLETED for this batch.
    files_skipped: list[str] = field(default_factory=list)
    batch_id: str = ""


@dataclass
class StagedBatch:
    batch_id: str
    dates: list[str]
    files: list[dict]
    items: list[dict]


def staging_keys(batch_id: str) -> tuple[str, str]:
    """The (manifest, items) keys of a batch's staging folder in the processed bucket."""
    base = staging_prefix(batch_id)
    return base + "manifest.json", base + "items.jsonl"


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-finite number {name} (DynamoDB numbers must be finite)")


def _valid_date(value: object) -> bool:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def read_staged_batch(s3, processed_bucket: str, batch_id: str) -> StagedBatch:
    """Read and validate a batch's staging folder. Raises StagingError naming what is wrong."""
    manifest_key, items_key = staging_keys(batch_id)
    where = f"s3://{processed_bucket}/{manifest_key}"
    raw = read_or_none(s3, processed_bucket, manifest_key)
    if raw is None:
        raise StagingError(f"no staging manifest at {where}: was the batch staged by the ETL?")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StagingError(f"{where}: not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise StagingError(f"{where}: expected a JSON object")
    if manifest.get("batch_id") != batch_id:
        raise StagingError(f"{where}: batch_id {manifest.get('batch_id')!r} != {batch_id!r}")
    dates = manifest.get("dates")
    if not isinstance(dates, list) or not all(_valid_date(d) for d in dates):
        raise StagingError(f"{where}: 'dates' must be a list of YYYY-MM-DD strings: {dates!r}")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("file_key"), str) and f["file_key"] for f in files
    ):
        raise StagingError(f"{where}: 'files' must be a list of {{file_key, etag}} objects")
    item_count = manifest.get("item_count")
    if not isinstance(item_count, int) or isinstance(item_count, bool) or item_count < 0:
        raise StagingError(f"{where}: 'item_count' must be a non-negative integer")

    items_where = f"s3://{processed_bucket}/{items_key}"
    body = read_or_none(s3, processed_bucket, items_key)
    if body is None:
        if item_count:
            raise StagingError(f"{items_where}: missing, but the manifest says {item_count} items")
        body = b""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StagingError(f"{items_where}: not UTF-8: {exc}") from exc
    items = list(_parse_items(text, set(dates), items_where))
    if len(items) != item_count:
        raise StagingError(
            f"{items_where}: {len(items)} items, but the manifest says item_count={item_count} "
            "(truncated or mixed staging?)"
        )
    return StagedBatch(batch_id=batch_id, dates=sorted(set(dates)), files=files, items=items)


def _parse_items(text: str, dates: set[str], where: str) -> Iterator[dict]:
    seen: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label = f"{where} line {number}"
        try:
            item = json.loads(line, parse_float=Decimal, parse_constant=_reject_constant)
        except ValueError as exc:
            raise StagingError(f"{label}: not a valid item: {exc}") from exc
        if not isinstance(item, dict):
            raise StagingError(f"{label}: expected a JSON object, got {type(item).__name__}")
        pk, sk = item.get("pk"), item.get("sk")
        if not isinstance(pk, str) or not pk.startswith("DATE#"):
            raise StagingError(f"{label}: pk must be 'DATE#<YYYY-MM-DD>', got {pk!r}")
        date = pk[len("DATE#") :]
        if date not in dates:
            raise StagingError(
                f"{label}: pk {pk!r} is for a date not in the manifest's dates {sorted(dates)}"
            )
        if not isinstance(sk, str) or not (
            (sk.startswith("GENRE#") and len(sk) > len("GENRE#"))
            or sk == "TOP_GENRES"
            or _HOUR_SK_RE.match(sk)
        ):
            raise StagingError(
                f"{label}: sk must be 'GENRE#<genre>', 'TOP_GENRES' or 'HOUR#<HH>', got {sk!r}"
            )
        if "date" in item and item["date"] != date:
            raise StagingError(f"{label}: date {item['date']!r} does not match pk {pk!r}")
        if sk.startswith("GENRE#"):
            for attr, wanted in (("gsi1pk", sk), ("gsi1sk", pk)):
                if attr not in item:
                    item[attr] = wanted
                elif item[attr] != wanted:
                    raise StagingError(f"{label}: {attr} must be {wanted!r}, got {item[attr]!r}")
        if (pk, sk) in seen:
            raise StagingError(f"{label}: ({pk}, {sk}) already staged on line {seen[(pk, sk)]}")
        seen[(pk, sk)] = number
        yield item


def _existing_keys(table, pk: str) -> list[dict]:
    """Keys of every item with this pk (paginated, consistent read)."""
    keys: list[dict] = []
    kwargs: dict = {
        "KeyConditionExpression": Key("pk").eq(pk),
        "ProjectionExpression": "pk, sk",
        "ConsistentRead": True,
    }
    while True:
        page = table.query(**kwargs)
        keys.extend({"pk": i["pk"], "sk": i["sk"]} for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return keys
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def backoff_delay(
    retry: int,
    rng: Callable[[], float] = random.random,
    base: float = BASE_DELAY_SECONDS,
    cap: float = MAX_DELAY_SECONDS,
) -> float:
    """Full jitter: a uniform draw from [0, min(cap, base * 2**retry)); ``retry`` counts from 0."""
    return rng() * min(cap, base * (2**retry))


def batch_write(
    dynamodb_resource,
    table_name: str,
    requests: list[dict],
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    max_attempts: int = MAX_ATTEMPTS,
    base_delay: float = BASE_DELAY_SECONDS,
    max_delay: float = MAX_DELAY_SECONDS,
) -> int:
    """Send put/delete requests with BatchWriteItem in chunks of 25, retrying UnprocessedItems
    (and throttling that botocore gave up on) with exponential backoff and full jitter.

    ``requests`` are resource-level (plain Python values, Decimals for numbers):
    ``{"PutRequest": {"Item": {...}}}`` or ``{"DeleteRequest": {"Key": {...}}}``; the resource's
    client serializes them (boto3's TypeSerializer) and deserializes UnprocessedItems. Returns the
    number of requests written; raises UnprocessedItemsError when a chunk stays incomplete.
    """
    done = 0
    for start in range(0, len(requests), BATCH_WRITE_LIMIT):
        pending = requests[start : start + BATCH_WRITE_LIMIT]
        attempt = 0
        while pending:
            attempt += 1
            try:
                response = dynamodb_resource.batch_write_item(RequestItems={table_name: pending})
                unprocessed = response.get("UnprocessedItems", {}).get(table_name, [])
            except ClientError as exc:
                if error_code(exc) not in THROTTLING_CODES:
                    raise
                unprocessed = pending  # botocore's own retries ran out: the chunk is undone
            done += len(pending) - len(unprocessed)
            pending = unprocessed
            if not pending:
                break
            if attempt >= max_attempts:
                not_attempted = len(requests) - start - BATCH_WRITE_LIMIT
                not_attempted = max(0, not_attempted)
                raise UnprocessedItemsError(
                    f"BatchWriteItem on {table_name}: {len(pending)} item(s) still unprocessed "
                    f"after {attempt} attempts ({done} written, {not_attempted} not attempted); "
                    "the batch's files stay STAGED and the next run retries",
                    unprocessed=len(pending),
                    not_attempted=not_attempted,
                )
            sleep(backoff_delay(attempt - 1, rng, base_delay, max_delay))
    return done


def write_staged_kpis(
    s3,
    dynamodb_resource,
    processed_bucket: str,
    kpi_table: str,
    tracker_table: str,
    batch_id: str,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    max_attempts: int = MAX_ATTEMPTS,
) -> WriteResult:
    """Write a batch's staged KPI items to the KPI table, then mark its files COMPLETED.

    See the module docstring for the order of operations and the retry layers. Raises
    StagingError (bad or missing staging, nothing written), UnprocessedItemsError, or the
    ClientError of a failed write; in every failure case the batch's files stay STAGED.
    """
    batch = read_staged_batch(s3, processed_bucket, batch_id)
    table = dynamodb_resource.Table(kpi_table)
    stamp = _now_iso()

    staged_keys: dict[str, set[str]] = {f"DATE#{d}": set() for d in batch.dates}
    puts: list[dict] = []
    for item in batch.items:
        staged_keys[item["pk"]].add(item["sk"])
        puts.append({"PutRequest": {"Item": dict(item, updated_at=stamp)}})

    deletes: list[dict] = []
    for pk, keep in staged_keys.items():
        for key in _existing_keys(table, pk):
            if key["sk"] not in keep:
                deletes.append({"DeleteRequest": {"Key": key}})

    retry: dict[str, Any] = {"sleep": sleep, "rng": rng, "max_attempts": max_attempts}
    written = batch_write(dynamodb_resource, kpi_table, puts, **retry)
    deleted = batch_write(dynamodb_resource, kpi_table, deletes, **retry)

    # Every item is in place: only now may the batch's files become COMPLETED.
    tracker = Tracker(dynamodb_resource, tracker_table)
    completed: list[str] = []
    skipped: list[str] = []
    for entry in batch.files:
        file_key = entry["file_key"]
        current = tracker.get(file_key)
        owned = (
            current is not None
            and current.get("batch_id") == batch_id
            and current.get("status") in (TrackerStatus.STAGED, TrackerStatus.COMPLETED)
            and (not entry.get("etag") or same_etag(current.get("etag"), entry["etag"]))
        )
        if not owned:
            skipped.append(file_key)
            continue
        try:
            tracker.set_status(file_key, TrackerStatus.COMPLETED, batch_id)
        except ClientError as exc:
            if error_code(exc) != CONDITIONAL_CHECK_FAILED:
                raise
            skipped.append(file_key)  # claimed by another batch between get and update
            continue
        completed.append(file_key)

    return WriteResult(
        items_written=written,
        items_deleted=deleted,
        dates=batch.dates,
        files_completed=completed,
        files_skipped=skipped,
        batch_id=batch_id,
    )


def _query_all(table, **kwargs) -> list[dict]:
    items: list[dict] = []
    while True:
        page = table.query(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def kpi_items_for_date(dynamodb_resource, kpi_table: str, date: str) -> list[dict]:
    """All KPI items of one day: one Query on ``pk = DATE#<date>`` (pages followed), sorted by sk:
    ``GENRE#…`` items, then ``HOUR#…``, then ``TOP_GENRES``."""
    table = dynamodb_resource.Table(kpi_table)
    return _query_all(table, KeyConditionExpression=Key("pk").eq(f"DATE#{date}"))


def genre_history(dynamodb_resource, kpi_table: str, genre: str) -> list[dict]:
    """One genre over time: one Query on ``gsi1`` (``gsi1pk = GENRE#<genre>``), oldest date
    first. The index is eventually consistent, like every GSI."""
    table = dynamodb_resource.Table(kpi_table)
    return _query_all(
        table,
        IndexName=GSI_NAME,
        KeyConditionExpression=Key("gsi1pk").eq(f"GENRE#{genre}"),
    )
