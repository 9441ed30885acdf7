"""A validated file's verdict (:class:`FileResult`) and the batch report built from them
(docs/data-contract.md §2): ``validation_reports/<batch_id>/report.json``, and the job's log
line per file. Pure: no I/O.

Python 3.9-compatible and stdlib-only: the job runs in Glue's Python shell.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from musicpipe.contract.columns import REFERENCE_ID_COLUMN, STREAMS
from musicpipe.contract.rules import REASONS
from musicpipe.contract.status import ValidationStatus

DEFAULT_THRESHOLD = 0.5
REFERENCE_FAILED = "reference files failed"
NO_STREAM_FILES = "no stream files to validate"


@dataclass
class FileResult:
    """The verdict on one file, as it appears in the report's ``files`` list."""

    key: str
    kind: str
    status: ValidationStatus
    etag: str | None = None
    missing_columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    error: str | None = None
    # Set by the job when a FAILED stream file has been moved to quarantine.
    quarantined_to: str | None = None

    @property
    def total_rejected(self) -> int:
        return sum(self.rows_rejected.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "etag": self.etag,
            "kind": self.kind,
            "status": self.status,
            "missing_columns": list(self.missing_columns),
            "rows_read": self.rows_read,
            "rows_rejected": {reason: int(self.rows_rejected.get(reason, 0)) for reason in REASONS},
            "error": self.error,
            "quarantined_to": self.quarantined_to,
        }


def failed_file(key: str, kind: str, error: str, etag: str | None = None) -> FileResult:
    """A file that could not be read at all (does not exist, access denied, wrong place)."""
    return FileResult(key=key, kind=kind, status=ValidationStatus.FAILED, etag=etag, error=error)


def not_validated(key: str, etag: str | None = None, error: str = REFERENCE_FAILED) -> FileResult:
    """A stream file left alone because the reference files failed."""
    return FileResult(
        key=key, kind=STREAMS, status=ValidationStatus.NOT_VALIDATED, etag=etag, error=error
    )


def build_report(
    batch_id: str,
    reference_results: Iterable[FileResult],
    stream_results: Iterable[FileResult],
    threshold: float = DEFAULT_THRESHOLD,
    generated_at: datetime | None = None,
) -> dict[str, object]:
    """The validation report (``validation_reports/<batch_id>/report.json``).

    ``overall_status`` is PASSED when both reference files (songs and users) passed and at
    least one stream file passed; otherwise FAILED, with the reason in the top-level ``error``.
    """
    references = list(reference_results)
    streams = sorted(stream_results, key=lambda r: r.key)
    by_kind = {r.kind: r for r in references}
    references_ok = all(
        kind in by_kind and by_kind[kind].status == ValidationStatus.PASSED
        for kind in REFERENCE_ID_COLUMN
    ) and all(r.status == ValidationStatus.PASSED for r in references)
    counts = dict.fromkeys(ValidationStatus, 0)
    for result in streams:
        counts[result.status] = counts.get(result.status, 0) + 1

    if not references_ok:
        problems = [
            f"{r.key}: {r.error}" for r in references if r.status != ValidationStatus.PASSED
        ]
        problems += [
            f"{kind} reference file was not checked"
            for kind in REFERENCE_ID_COLUMN
            if kind not in by_kind
        ]
        error: str | None = f"{REFERENCE_FAILED}: " + "; ".join(problems)
    elif not streams:
        error = NO_STREAM_FILES
    elif counts[ValidationStatus.PASSED] == 0:
        error = f"no stream file passed validation ({len(streams)} failed)"
    else:
        error = None

    stamp = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        "batch_id": batch_id,
        "overall_status": ValidationStatus.PASSED if error is None else ValidationStatus.FAILED,
        "error": error,
        "generated_at": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "threshold": float(threshold),
        "summary": {
            "reference_files_passed": references_ok,
            "stream_files": len(streams),
            "stream_files_passed": counts[ValidationStatus.PASSED],
            "stream_files_failed": counts[ValidationStatus.FAILED],
            "stream_files_not_validated": counts[ValidationStatus.NOT_VALIDATED],
            "stream_rows_read": sum(r.rows_read for r in streams),
            "stream_rows_rejected": sum(r.total_rejected for r in streams),
        },
        "files": [r.as_dict() for r in references + streams],
    }


def summary_line(result: FileResult) -> str:
    """One line per file for the job's log."""
    rejected = ", ".join(f"{k}={v}" for k, v in result.rows_rejected.items() if v) or "none"
    line = (
        f"{result.status:<13} {result.kind:<7} {result.key}  rows_read={result.rows_read} "
        f"rejected: {rejected}"
    )
    if result.error:
        line += f"  error: {result.error}"
    if result.quarantined_to:
        line += f"  quarantined to {result.quarantined_to}"
    return line
