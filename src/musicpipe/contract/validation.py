"""File-level and row-level validation of docs/data-contract.md §2, as pure functions (no I/O).

The ``music_streaming_validation`` job reads each object from S3 and hands its body here; tests
hand bytes. A *source* is any of: ``bytes``; a binary stream with ``read(n)`` (a file opened
``"rb"``, ``io.BytesIO``, botocore's ``StreamingBody``); or an iterable of ``bytes`` chunks or
lines. It is read in chunks and parsed row by row, so a 100 MB file never sits in memory as a
list of rows (the reference files keep only their set of ids).

File-level checks, in order, each making the file **FAILED**:

1. decodes as UTF-8 (strict; a leading BOM is tolerated): the error names the byte offset and
   the line of the first byte that does not decode. A NUL character fails too (binary or UTF-16
   data). Text that the ``csv`` module cannot parse (a bare CR inside an unquoted field) fails
   as "not readable as CSV".
2. not empty: 0 bytes, or nothing but whitespace.
3. the header (the first non-empty line) has every required column of its kind, matched as in
   :mod:`musicpipe.contract.columns`; the whole header is read.
4. at least one data row: a header-only file is FAILED with "no data rows".

Rows are the CSV records after the header; empty lines are not rows (Spark's CSV reader skips
them too). A row with fewer fields than the header has ``None`` for the missing ones.

Stream files that pass the file-level checks then get the row rules of
:mod:`musicpipe.contract.rules` (first rule broken wins), and are FAILED when the rejected share
is strictly greater than the threshold (exactly 50 % rejected passes the default 0.5).

What a result reports when the file fails a file-level check: ``rows_read`` counts the data
rows of a readable file (a file that lacks a column is still read to the end to count them),
and is 0 when the file is empty, header-only or not decodable; ``rows_rejected`` stays all
zeros, since row rules are applied only to files whose columns are all there. ``error`` names
every problem found, ``"; "``-separated.

Records end with LF or with CRLF, the same in the whole file (else FAILED: "mixed line
endings"). Quoting follows RFC 4180 as Python's ``csv`` reads it (lenient: a quote left open
at the end of the file closes there): separators, doubled quotes and line breaks (LF or
CRLF) inside a quoted field belong to the field. The ETL (Spark's multi-line CSV mode) and
the oracle (DuckDB) read the same records; ``tests/test_csv_dialect.py`` holds them to it.

Cell sizes: a stream row with a cell longer than ``rules.MAX_FIELD_CHARS`` is rejected alone
(``field_too_large``). A reference file with such a cell FAILS (its values end up in KPI
items). A cell longer than :data:`MAX_READABLE_FIELD_CHARS` makes the file unreadable: that
much text in one cell is a quote left open, and reading on would hold the file in memory.

Reference files (songs, users) get the same file-level checks and give back the set of their
trimmed ids. If either fails, the batch fails: stream files are reported ``NOT_VALIDATED`` and
left where they are for the next run (see :func:`build_report`).

The report (:func:`build_report`): ``batch_id``, ``overall_status``, ``error`` (why the batch
failed, else null), ``generated_at``, ``threshold``, ``summary`` (file and row counts), and
``files``: the reference files, then the stream files by key, each with ``key``, ``etag`` (S3
ETag without quotes), ``kind``, ``status`` (PASSED / FAILED / NOT_VALIDATED), ``missing_columns``,
``rows_read``, ``rows_rejected`` (every reason, zeros included), ``error`` and
``quarantined_to`` (the ``s3://`` URL of the quarantined copy, set by the job, else null).

Python 3.9-compatible and stdlib-only: the job runs in Glue's Python shell.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction

from musicpipe.contract.columns import (
    SONGS,
    STREAMS,
    USERS,
    column_positions,
    missing_columns,
)
from musicpipe.contract.rules import MAX_FIELD_CHARS, REASONS, reject_reason
from musicpipe.contract.status import ValidationStatus

DEFAULT_THRESHOLD = 0.5
REFERENCE_FAILED = "reference files failed"
NO_STREAM_FILES = "no stream files to validate"

# Which id each reference file contributes to the row rules.
REFERENCE_ID_COLUMN = {SONGS: "track_id", USERS: "user_id"}

CHUNK_SIZE = 1 << 16
# Python's csv refuses cells over 131,072 characters with an error for the whole file; cells
# up to this size are read so that the row rules can reject their rows one by one.
MAX_READABLE_FIELD_CHARS = 16 * 1024 * 1024
_UTF8_BOM = codecs.BOM_UTF8


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


class FileCheckError(Exception):
    """A file-level check failed while reading (decoding or CSV parsing)."""


# -- reading -------------------------------------------------------------------------------


def _chunks(source) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source):
            yield bytes(source)
        return
    if isinstance(source, str):
        raise TypeError("validation reads bytes, not text: pass the file's raw bytes")
    read = getattr(source, "read", None)
    if read is not None:
        while True:
            chunk = read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk
    else:
        for chunk in source:
            if isinstance(chunk, str):
                raise TypeError("validation reads bytes, not text: pass the file's raw bytes")
            if chunk:
                yield bytes(chunk)


class _Lines:
    """Decoded lines of a byte source, with the position of each for error messages.

    Lines are split on LF and keep their ending (CRLF included), which is what ``csv.reader``
    wants. UTF-8 never uses the byte 0x0A inside a multi-byte character, so decoding line by
    line is exact.
    """

    def __init__(self, source) -> None:
        self.source = source
        self.line_no = 0  # physical lines handed out so far
        self.last_ending = ""  # "\r\n", "\n", or "" (the end of the file) of the last line
        self.offset = 0  # byte offset of the next line
        self.total_bytes = 0
        self.has_content = False  # any non-whitespace character seen

    def __iter__(self) -> Iterator[str]:
        carry: list[bytes] = []
        for chunk in _chunks(self.source):
            self.total_bytes += len(chunk)
            parts = chunk.split(b"\n")
            if len(parts) == 1:
                carry.append(chunk)
                continue
            carry.append(parts[0])
            yield self._decode(b"".join(carry) + b"\n")
            for part in parts[1:-1]:
                yield self._decode(part + b"\n")
            carry = [parts[-1]] if parts[-1] else []
        if carry:
            yield self._decode(b"".join(carry))

    def _decode(self, raw: bytes) -> str:
        start = self.offset
        self.line_no += 1
        self.offset += len(raw)
        self.last_ending = "\r\n" if raw.endswith(b"\r\n") else "\n" if raw.endswith(b"\n") else ""
        skip = 0
        if self.line_no == 1 and raw.startswith(_UTF8_BOM):
            skip = len(_UTF8_BOM)
        try:
            text = raw[skip:].decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[skip + exc.start : skip + exc.start + 1]
            raise FileCheckError(
                f"not valid UTF-8: byte 0x{bad.hex().upper()} at byte offset "
                f"{start + skip + exc.start} (line {self.line_no}, byte {skip + exc.start + 1} "
                f"of the line) does not decode ({exc.reason})"
            ) from None
        if "\x00" in text:
            raise FileCheckError(
                f"not a UTF-8 text file: NUL character on line {self.line_no} "
                "(binary or UTF-16 data?)"
            )
        if not self.has_content and text.strip():
            self.has_content = True
        return text


_ENDING_NAMES = {"\r\n": "CRLF", "\n": "LF"}


class _Records:
    """The csv reader's records (blank lines included, as ``[]``), noting in ``problem`` the
    first record that does not end with the line break the first one ends with. The csv
    module reads a line at a time, so the last line it took ends the record; line breaks
    inside quoted fields are data and may be either. Spark's multi-line reader takes the first
    line's break for the whole file and would join the records of a file that mixes them."""

    def __init__(self, lines: _Lines) -> None:
        self.lines = lines
        self.problem: str | None = None

    def __iter__(self) -> Iterator[list[str]]:
        first = ""
        for row in csv.reader(iter(self.lines)):
            ending = self.lines.last_ending
            if ending and not first:
                first = ending
            elif ending and ending != first and self.problem is None:
                self.problem = (
                    f"mixed line endings: line {self.lines.line_no} ends with "
                    f"{_ENDING_NAMES[ending]}, the first line with {_ENDING_NAMES[first]} "
                    "(records must all end with LF or all with CRLF)"
                )
            yield row


@dataclass
class _Scan:
    """What reading one file found; the caller turns it into a FileResult."""

    errors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    rows_read: int = 0
    readable: bool = True  # False: decode/CSV error, so row counts mean nothing


def _scan(source, kind: str, on_row) -> _Scan:
    """Run the file-level checks, calling ``on_row(row, positions, width)`` for each data row
    of a file whose header has every required column (``width``: the header's cell count)."""
    scan = _Scan()
    # A process-wide setting of the csv module; set on every call, since anything else in the
    # process may have changed it.
    csv.field_size_limit(MAX_READABLE_FIELD_CHARS)
    lines = _Lines(source)
    records = _Records(lines)
    reader = iter(records)
    try:
        header = None
        for row in reader:
            if row:  # empty lines before the header are not the header
                header = row
                break
        if header is None or not any(cell.strip() for cell in header):
            # No real header: the file is empty or whitespace only (then no line has anything
            # but whitespace), or its first line is blank cells followed by something.
            scan.rows_read = sum(1 for row in reader if row)
            if not lines.has_content:
                scan.rows_read = 0
                scan.errors.append(
                    "empty file (0 bytes)"
                    if lines.total_bytes == 0
                    else "empty file (whitespace only)"
                )
                return scan
            header = header or []
        scan.missing = missing_columns(kind, header)
        if scan.missing:
            scan.errors.append(
                "missing required column(s): "
                + ", ".join(scan.missing)
                + " (header: "
                + ", ".join(repr(c) for c in header)
                + ")"
            )
            for row in reader:
                if row:
                    scan.rows_read += 1
        else:
            positions = column_positions(kind, header)
            for row in reader:
                if row:
                    scan.rows_read += 1
                    on_row(row, positions, len(header))
        if scan.rows_read == 0 and not scan.missing:
            scan.errors.append("no data rows")
        if records.problem:
            scan.errors.append(records.problem)
    except FileCheckError as exc:
        scan.readable = False
        scan.errors.append(str(exc))
    except csv.Error as exc:
        scan.readable = False
        detail = str(exc)
        if "new-line character" in detail:
            detail = "a bare CR (carriage return without line feed) outside quotes"
        elif "field larger than field limit" in detail:
            detail = (
                f"a cell of more than {MAX_READABLE_FIELD_CHARS:,} characters (a quote left open?)"
            )
        scan.errors.append(f"not readable as CSV: line {lines.line_no}: {detail}")
    return scan


def _field(row: list[str], index: int) -> str | None:
    return row[index] if index < len(row) else None


def longest_cell(row: list[str], width: int) -> int:
    """Length in characters of the row's longest cell under a header column. Cells past the
    header's last column are read by no reader (Spark drops them), so they are not measured."""
    return max((len(cell) for cell in row[:width]), default=0)


# -- files ---------------------------------------------------------------------------------


def validate_reference_file(
    source, kind: str, key: str, etag: str | None = None
) -> tuple[FileResult, set[str]]:
    """Check a songs or users file; return its result and the set of its trimmed ids."""
    if kind not in REFERENCE_ID_COLUMN:
        raise ValueError(f"{kind!r} is not a reference kind ({SONGS!r} or {USERS!r})")
    id_column = REFERENCE_ID_COLUMN[kind]
    ids: set[str] = set()
    rows = [0]
    too_large: list[str] = []  # the first row with a cell over the limit

    def on_row(row: list[str], positions: dict[str, int], width: int) -> None:
        rows[0] += 1
        value = (_field(row, positions[id_column]) or "").strip()
        if value:
            ids.add(value)
        longest = longest_cell(row, width)
        if longest > MAX_FIELD_CHARS and not too_large:
            # Reference values go into KPI items (track names, artists): a file with a giant
            # cell fails whole rather than dropping a song or user in silence.
            too_large.append(
                f"data row {rows[0]} has a cell of {longest:,} characters, more than the limit "
                f"of {MAX_FIELD_CHARS:,}"
            )

    scan = _scan(source, kind, on_row)
    scan.errors += too_large
    result = _result(key, kind, etag, scan)
    return result, (ids if result.status == ValidationStatus.PASSED else set())


def validate_stream_file(
    source,
    key: str,
    known_tracks: Set[str],
    known_users: Set[str],
    threshold: float = DEFAULT_THRESHOLD,
    etag: str | None = None,
) -> FileResult:
    """Check a stream file and count its rejected rows by reason."""
    limit = threshold_fraction(threshold)
    rejected = dict.fromkeys(REASONS, 0)

    def on_row(row: list[str], positions: dict[str, int], width: int) -> None:
        reason = reject_reason(
            _field(row, positions["user_id"]),
            _field(row, positions["track_id"]),
            _field(row, positions["listen_time"]),
            known_tracks,
            known_users,
            longest_field=longest_cell(row, width),
        )
        if reason is not None:
            rejected[reason] += 1

    scan = _scan(source, STREAMS, on_row)
    result = _result(key, STREAMS, etag, scan)
    if result.status == ValidationStatus.PASSED:
        result.rows_rejected = rejected
        total = result.total_rejected
        if Fraction(total, result.rows_read) > limit:
            result.status = ValidationStatus.FAILED
            result.error = (
                f"{total} of {result.rows_read} rows rejected "
                f"({100.0 * total / result.rows_read:.1f} %), more than the threshold of "
                f"{_percent(threshold)}: "
                + ", ".join(f"{reason} {n}" for reason, n in rejected.items() if n)
            )
    return result


def _result(key: str, kind: str, etag: str | None, scan: _Scan) -> FileResult:
    return FileResult(
        key=key,
        kind=kind,
        etag=etag,
        status=ValidationStatus.FAILED if scan.errors else ValidationStatus.PASSED,
        missing_columns=list(scan.missing),
        rows_read=scan.rows_read if scan.readable else 0,
        error="; ".join(scan.errors) if scan.errors else None,
    )


def failed_file(key: str, kind: str, error: str, etag: str | None = None) -> FileResult:
    """A file that could not be read at all (does not exist, access denied, wrong place)."""
    return FileResult(key=key, kind=kind, status=ValidationStatus.FAILED, etag=etag, error=error)


def not_validated(key: str, etag: str | None = None, error: str = REFERENCE_FAILED) -> FileResult:
    """A stream file left alone because the reference files failed."""
    return FileResult(
        key=key, kind=STREAMS, status=ValidationStatus.NOT_VALIDATED, etag=etag, error=error
    )


def threshold_fraction(threshold: float | str) -> Fraction:
    """The threshold as an exact fraction (``0.5`` is exactly one half), checked to be a share."""
    try:
        value = Fraction(str(threshold).strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"reject threshold must be a number, got {threshold!r}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"reject threshold is a share between 0 and 1, got {threshold!r}")
    return value


def _percent(threshold: float) -> str:
    return f"{float(threshold) * 100:g} %"


# -- the report ----------------------------------------------------------------------------


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
