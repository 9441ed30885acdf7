"""Which stream files a run takes (docs/data-contract.md §8.1): one pure judge per object.

The DAG's first task, ``select_due_files``, lists ``streams/`` and asks :func:`judge` about
each object, given its tracker item, the retry settings, the time and when the reference files
last changed. The answer is one of:

* ``take``: new content, a FAILED file whose backoff has passed, a claim left by a dead run, a
  NOT_VALIDATED file whose reference files changed since, or a file ``musicpipe reprocess``
  marked;
* ``wait``: not yet (``until`` says when, or ``None``: until a reference file is replaced);
* ``give-up``: FAILED (or claimed by dead runs) ``max_attempts`` times: quarantined with the
  reason ``gave up after N attempts: <last error>``;
* ``skip``: COMPLETED at this ETag (the archive step archives an unchanged re-upload).

Pure: no I/O, no clock; Python 3.9-compatible like the rest of ``musicpipe.pipeline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from musicpipe.contract.status import StrEnum, TrackerStatus


class Verdict(StrEnum):
    TAKE = "take"
    WAIT = "wait"
    GIVE_UP = "give-up"
    SKIP = "skip"


@dataclass(frozen=True)
class RetrySettings:
    """The manifest's retry settings (retry_base_seconds, retry_max_seconds,
    max_file_attempts, claim_window_seconds)."""

    base_seconds: int = 60
    max_seconds: int = 3600
    max_attempts: int = 4
    claim_window_seconds: int = 7200


@dataclass(frozen=True)
class StreamObject:
    key: str
    etag: str  # without quotes
    last_modified: float  # UNIX time


@dataclass(frozen=True)
class Judgement:
    key: str
    verdict: Verdict
    reason: str
    until: float | None = None  # wait: when it is due (None: when a reference file changes)


def backoff_seconds(attempts: int, settings: RetrySettings) -> float:
    """The wait after the ``attempts``-th failed attempt: base × 2^(attempts−1), capped; 0
    before any attempt (a new or reprocessed file)."""
    if attempts < 1:
        return 0.0
    # Capped before the power grows large: 2**1000 seconds is no wait anyone needs.
    exponent = min(attempts - 1, 64)
    return float(min(settings.base_seconds * 2**exponent, settings.max_seconds))


def iso_epoch(text: object) -> float:
    """The tracker's ``…Z`` timestamps as UNIX time (0 when absent or unreadable)."""
    if not isinstance(text, str) or not text:
        return 0.0
    try:
        parsed = datetime.strptime(text.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        try:
            parsed = datetime.strptime(text.rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return 0.0
    return parsed.replace(tzinfo=timezone.utc).timestamp()


def _number(item: dict, name: str) -> float:
    try:
        return float(item.get(name) or 0)
    except (TypeError, ValueError):
        return 0.0


def judge(
    obj: StreamObject,
    item: dict | None,
    settings: RetrySettings,
    now: float,
    references_modified: float | None = None,
    claim_alive: bool = False,
) -> Judgement:
    """What a run does with one object of ``streams/`` (the rules of §8.1, in order).

    ``references_modified``: the newest LastModified of the songs and users files (None when
    neither exists). ``claim_alive``: whether the Glue run holding a PROCESSING or STAGED claim
    is still running (the caller asks Glue; ignored for other statuses).
    """
    key = obj.key
    if item is None:
        return Judgement(key, Verdict.TAKE, "new file")
    if item.get("etag") != obj.etag:
        return Judgement(
            key, Verdict.TAKE, f"new content (ETag {obj.etag}, tracker had {item.get('etag')})"
        )
    status = item.get("status")
    attempts = int(_number(item, "attempts"))
    error = str(item.get("error") or "no error recorded")
    updated = iso_epoch(item.get("updated_at"))
    reprocess = _number(item, "reprocess_epoch")
    if status == TrackerStatus.COMPLETED:
        return Judgement(key, Verdict.SKIP, "COMPLETED at this ETag: already counted")
    if status == TrackerStatus.QUARANTINED:
        # Quarantine deletes the original: one here again is an upload of the same bytes.
        return Judgement(key, Verdict.TAKE, "uploaded again after quarantine: validated anew")
    if status == TrackerStatus.FAILED:
        if attempts >= settings.max_attempts:
            return Judgement(key, Verdict.GIVE_UP, f"gave up after {attempts} attempts: {error}")
        if attempts == 0:
            return Judgement(key, Verdict.TAKE, "reprocess requested (attempts reset)")
        due = updated + backoff_seconds(attempts, settings)
        if now >= due:
            return Judgement(
                key,
                Verdict.TAKE,
                f"FAILED {attempts} of {settings.max_attempts} attempts, backoff of "
                f"{backoff_seconds(attempts, settings):.0f} s passed: {error}",
            )
        return Judgement(
            key,
            Verdict.WAIT,
            f"FAILED {attempts} of {settings.max_attempts} attempts: backoff until "
            f"{_utc(due)} ({due - now:.0f} s)",
            until=due,
        )
    if status in (TrackerStatus.PROCESSING, TrackerStatus.STAGED):
        claimed = _number(item, "claimed_epoch") or updated
        holder = f"batch {item.get('batch_id')}"
        expires = claimed + settings.claim_window_seconds
        if claim_alive and now < expires:
            return Judgement(
                key,
                Verdict.WAIT,
                f"{status} by {holder}, whose Glue run is still running (window until "
                f"{_utc(expires)})",
                until=expires,
            )
        why = "its Glue run is not running" if not claim_alive else "its claim window passed"
        # A PROCESSING claim left by dead runs again and again (a file that kills the job)
        # counts against the limit; a STAGED file's events are stored, so it is never given up.
        if status == TrackerStatus.PROCESSING and attempts >= settings.max_attempts:
            return Judgement(
                key,
                Verdict.GIVE_UP,
                f"gave up after {attempts} attempts: claim of {holder} left behind ({why})",
            )
        return Judgement(key, Verdict.TAKE, f"{status} claim of {holder} taken over: {why}")
    if status == TrackerStatus.NOT_VALIDATED:
        mark = _number(item, "not_validated_epoch") or updated
        if reprocess > mark:
            return Judgement(key, Verdict.TAKE, "reprocess requested")
        if references_modified is not None and references_modified > mark:
            return Judgement(
                key,
                Verdict.TAKE,
                f"a reference file changed at {_utc(references_modified)}, after the "
                f"NOT_VALIDATED mark of {_utc(mark)}",
            )
        return Judgement(
            key, Verdict.WAIT, "NOT_VALIDATED: waiting for a reference file to be replaced"
        )
    # Nothing is lost: a status this code does not know is processed rather than ignored.
    return Judgement(key, Verdict.TAKE, f"unknown tracker status {status!r}")


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ReprocessDecision:
    """What ``musicpipe reprocess`` does with one key: ``taken`` (and whether its tracker item
    gets the reprocess mark), or why not."""

    key: str
    taken: bool
    mark: bool
    reason: str


def reprocess_decision(
    key: str, etag: str | None, item: dict | None, claim_alive: bool = False
) -> ReprocessDecision:
    """Pure: ``etag`` is the object's in ``streams/`` (None: not there); ``claim_alive`` as for
    :func:`judge`. A taken file with a tracker item is marked (attempts 0, ``reprocess_epoch``)
    so the judge finds it due now; one without an item, or with new content, is due already."""
    status = item.get("status") if item else None
    if etag is None:
        if item and item.get("archived_key"):
            return ReprocessDecision(key, False, False, f"archived to {item['archived_key']}")
        if item and status == TrackerStatus.QUARANTINED:
            return ReprocessDecision(key, False, False, f"quarantined: {item.get('error')}")
        return ReprocessDecision(key, False, False, "not found in streams/")
    if item is None:
        return ReprocessDecision(key, True, False, "not tracked yet: due already")
    if item.get("etag") != etag:
        return ReprocessDecision(key, True, False, "new content: due already")
    if status == TrackerStatus.COMPLETED:
        return ReprocessDecision(key, False, False, "COMPLETED at this ETag: already counted")
    if status in (TrackerStatus.PROCESSING, TrackerStatus.STAGED) and claim_alive:
        return ReprocessDecision(
            key, False, False, f"held by a live run ({status}, batch {item.get('batch_id')})"
        )
    attempts = int(_number(item, "attempts"))
    return ReprocessDecision(key, True, True, f"{status} after {attempts} attempt(s): reset")
