"""The retry judge (musicpipe.pipeline.retries, docs/data-contract.md §8.1): every rule, the
backoff curve, its cap and the attempt limit, as plain function calls."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from musicpipe.pipeline.retries import (
    RetrySettings,
    StreamObject,
    Verdict,
    backoff_seconds,
    iso_epoch,
    judge,
    reprocess_decision,
)

SETTINGS = RetrySettings(
    base_seconds=60, max_seconds=3600, max_attempts=4, claim_window_seconds=7200
)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
OBJ = StreamObject("streams/a.csv", "etag1", NOW - 1000)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def item(status: str, *, ago: float = 10, attempts: int = 1, **extra) -> dict:
    """A tracker item as DynamoDB gives it back (numbers are Decimals), updated ``ago`` s ago."""
    return {
        "file_key": OBJ.key,
        "etag": "etag1",
        "status": status,
        "batch_id": "b-old",
        "run_id": "jr_1",
        "attempts": Decimal(attempts),
        "updated_at": iso(NOW - ago),
        "claimed_epoch": Decimal(int(NOW - ago)),
        **extra,
    }


def test_new_file_and_new_content_are_taken():
    assert judge(OBJ, None, SETTINGS, NOW).verdict == Verdict.TAKE
    # A different ETag is new content whatever the status: even COMPLETED, even at the limit.
    for status in ("COMPLETED", "FAILED", "QUARANTINED", "NOT_VALIDATED"):
        verdict = judge(OBJ, item(status, attempts=9, etag="old"), SETTINGS, NOW)
        assert verdict.verdict == Verdict.TAKE, status
        assert "new content" in verdict.reason


def test_completed_at_this_etag_is_skipped():
    verdict = judge(OBJ, item("COMPLETED"), SETTINGS, NOW)
    assert verdict.verdict == Verdict.SKIP
    assert "COMPLETED at this ETag" in verdict.reason


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [(1, 60), (2, 120), (3, 240), (4, 480), (5, 960), (6, 1920), (7, 3600), (8, 3600), (200, 3600)],
)
def test_backoff_doubles_from_the_base_up_to_the_cap(attempts, wait):
    assert backoff_seconds(attempts, SETTINGS) == wait


def test_no_backoff_before_any_attempt():
    assert backoff_seconds(0, SETTINGS) == 0


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_failed_waits_for_its_backoff_then_is_taken(attempts):
    wait = 60 * 2 ** (attempts - 1)
    early = judge(OBJ, item("FAILED", ago=wait - 1, attempts=attempts), SETTINGS, NOW)
    assert early.verdict == Verdict.WAIT
    assert early.until == pytest.approx(NOW + 1, abs=0.01)
    assert f"FAILED {attempts} of 4 attempts" in early.reason
    due = judge(OBJ, item("FAILED", ago=wait, attempts=attempts, error="boom"), SETTINGS, NOW)
    assert due.verdict == Verdict.TAKE
    assert "boom" in due.reason


def test_the_cap_bounds_the_wait():
    capped = RetrySettings(base_seconds=60, max_seconds=100, max_attempts=10)
    assert judge(OBJ, item("FAILED", ago=99, attempts=5), capped, NOW).verdict == Verdict.WAIT
    assert judge(OBJ, item("FAILED", ago=100, attempts=5), capped, NOW).verdict == Verdict.TAKE


def test_failed_at_the_limit_is_given_up_with_its_last_error():
    failed = item("FAILED", ago=1, attempts=4, error="ValueError: header lacks listen_time")
    verdict = judge(OBJ, failed, SETTINGS, NOW)
    assert verdict.verdict == Verdict.GIVE_UP
    assert verdict.reason == "gave up after 4 attempts: ValueError: header lacks listen_time"
    # One attempt fewer: still retried (after its backoff).
    assert judge(OBJ, item("FAILED", ago=1, attempts=3), SETTINGS, NOW).verdict == Verdict.WAIT


def test_a_reprocessed_file_is_due_now():
    # `musicpipe reprocess` resets attempts to 0: no backoff, no limit.
    reset = item("FAILED", ago=1, attempts=0, reprocess_epoch=Decimal(str(NOW - 1)))
    assert judge(OBJ, reset, SETTINGS, NOW).verdict == Verdict.TAKE
    marked = item("NOT_VALIDATED", ago=100, attempts=0, not_validated_epoch=Decimal(NOW - 100))
    marked["reprocess_epoch"] = Decimal(str(NOW - 1))
    assert judge(OBJ, marked, SETTINGS, NOW).verdict == Verdict.TAKE


@pytest.mark.parametrize("status", ["PROCESSING", "STAGED"])
def test_a_claim_of_a_live_run_waits_for_its_window(status):
    held = item(status, ago=100)
    verdict = judge(OBJ, held, SETTINGS, NOW, claim_alive=True)
    assert verdict.verdict == Verdict.WAIT
    assert verdict.until == pytest.approx(NOW - 100 + 7200, abs=1)
    assert "still running" in verdict.reason


@pytest.mark.parametrize("status", ["PROCESSING", "STAGED"])
def test_a_claim_of_a_dead_run_or_past_its_window_is_taken(status):
    dead = judge(OBJ, item(status, ago=5), SETTINGS, NOW, claim_alive=False)
    assert dead.verdict == Verdict.TAKE
    assert "not running" in dead.reason
    old = judge(OBJ, item(status, ago=7200), SETTINGS, NOW, claim_alive=True)
    assert old.verdict == Verdict.TAKE
    assert "window passed" in old.reason


def test_a_dead_processing_claim_counts_against_the_limit_a_staged_one_does_not():
    processing = judge(OBJ, item("PROCESSING", attempts=4), SETTINGS, NOW)
    assert processing.verdict == Verdict.GIVE_UP
    assert processing.reason.startswith("gave up after 4 attempts: claim of batch b-old")
    # STAGED: its events are stored; only the KPI write is left, which is always retried.
    assert judge(OBJ, item("STAGED", attempts=9), SETTINGS, NOW).verdict == Verdict.TAKE


def test_not_validated_is_taken_once_a_reference_file_is_newer_than_its_mark():
    mark = NOW - 100
    waiting = item("NOT_VALIDATED", ago=100, not_validated_epoch=Decimal(str(mark)))
    older = judge(OBJ, waiting, SETTINGS, NOW, references_modified=mark - 50)
    assert older.verdict == Verdict.WAIT
    assert older.until is None
    assert "reference file" in older.reason
    assert judge(OBJ, waiting, SETTINGS, NOW, references_modified=None).verdict == Verdict.WAIT
    newer = judge(OBJ, waiting, SETTINGS, NOW, references_modified=mark + 1)
    assert newer.verdict == Verdict.TAKE
    # Not a FAILED file: the attempt limit does not apply to it.
    stuck = item("NOT_VALIDATED", attempts=9, not_validated_epoch=Decimal(str(mark)))
    assert judge(OBJ, stuck, SETTINGS, NOW, references_modified=mark + 1).verdict == Verdict.TAKE


def test_same_bytes_uploaded_again_after_quarantine_is_validated_again():
    assert judge(OBJ, item("QUARANTINED"), SETTINGS, NOW).verdict == Verdict.TAKE


def test_an_unknown_status_is_taken_not_lost():
    verdict = judge(OBJ, item("SOMETHING_NEW"), SETTINGS, NOW)
    assert verdict.verdict == Verdict.TAKE
    assert "SOMETHING_NEW" in verdict.reason


def test_tracker_timestamps_read_back():
    assert iso_epoch(iso(NOW)) == pytest.approx(NOW)
    assert iso_epoch("2026-12-01T12:00:00Z") == NOW
    assert iso_epoch(None) == 0 and iso_epoch("yesterday") == 0


@pytest.mark.parametrize(
    ("etag", "record", "alive", "taken", "mark", "reason"),
    [
        (None, None, False, False, False, "not found in streams/"),
        (
            None,
            {"status": "COMPLETED", "archived_key": "archive/x"},
            False,
            False,
            False,
            "archived",
        ),
        (None, {"status": "QUARANTINED", "error": "bad"}, False, False, False, "quarantined: bad"),
        ("e1", None, False, True, False, "not tracked yet"),
        ("e2", {"status": "COMPLETED", "etag": "e1"}, False, True, False, "new content"),
        ("e1", {"status": "COMPLETED", "etag": "e1"}, False, False, False, "COMPLETED at this"),
        ("e1", {"status": "PROCESSING", "etag": "e1"}, True, False, False, "held by a live run"),
        ("e1", {"status": "STAGED", "etag": "e1"}, False, True, True, "STAGED after 0"),
        (
            "e1",
            {"status": "FAILED", "etag": "e1", "attempts": 4},
            False,
            True,
            True,
            "FAILED after 4",
        ),
        ("e1", {"status": "NOT_VALIDATED", "etag": "e1"}, False, True, True, "NOT_VALIDATED"),
    ],
)
def test_reprocess_takes_what_a_run_can_redo(etag, record, alive, taken, mark, reason):
    decision = reprocess_decision("streams/a.csv", etag, record, claim_alive=alive)
    assert (decision.taken, decision.mark) == (taken, mark)
    assert reason in decision.reason
