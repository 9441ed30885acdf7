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
items). A cell longer than ``reading.MAX_READABLE_FIELD_CHARS`` makes the file unreadable:
that much text in one cell is a quote left open, and reading on would hold the file in memory.

Reference files (songs, users) get the same file-level checks and give back the set of their
trimmed ids. If either fails, the batch fails: stream files are reported ``NOT_VALIDATED`` and
left where they are for the next run (see :func:`musicpipe.contract.report.build_report`).

The report (:func:`musicpipe.contract.report.build_report`): ``batch_id``, ``overall_status``,
``error`` (why the batch failed, else null), ``generated_at``, ``threshold``, ``summary`` (file
and row counts), and ``files``: the reference files, then the stream files by key, each with
``key``, ``etag`` (S3 ETag without quotes), ``kind``, ``status`` (PASSED / FAILED /
NOT_VALIDATED), ``missing_columns``, ``rows_read``, ``rows_rejected`` (every reason, zeros
included), ``error`` and ``quarantined_to`` (the ``s3://`` URL of the quarantined copy, set by
the job, else null).

Three modules hold it: this one the file and row verdicts, :mod:`musicpipe.contract.reading`
the reading (chunks, lines, records, header, the file-level checks) and
:mod:`musicpipe.contract.report` the results and the report.

Python 3.9-compatible and stdlib-only: the job runs in Glue's Python shell.
"""

from __future__ import annotations

from collections.abc import Set
from fractions import Fraction

from musicpipe.contract.columns import REFERENCE_ID_COLUMN, SONGS, STREAMS, USERS
from musicpipe.contract.reading import Scan, cell, longest_cell, scan_file
from musicpipe.contract.report import DEFAULT_THRESHOLD, FileResult
from musicpipe.contract.rules import MAX_FIELD_CHARS, REASONS, reject_reason
from musicpipe.contract.status import ValidationStatus


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
        value = (cell(row, positions[id_column]) or "").strip()
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

    scan = scan_file(source, kind, on_row)
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
            cell(row, positions["user_id"]),
            cell(row, positions["track_id"]),
            cell(row, positions["listen_time"]),
            known_tracks,
            known_users,
            longest_field=longest_cell(row, width),
        )
        if reason is not None:
            rejected[reason] += 1

    scan = scan_file(source, STREAMS, on_row)
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


def _result(key: str, kind: str, etag: str | None, scan: Scan) -> FileResult:
    return FileResult(
        key=key,
        kind=kind,
        etag=etag,
        status=ValidationStatus.FAILED if scan.errors else ValidationStatus.PASSED,
        missing_columns=list(scan.missing),
        rows_read=scan.rows_read if scan.readable else 0,
        error="; ".join(scan.errors) if scan.errors else None,
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
