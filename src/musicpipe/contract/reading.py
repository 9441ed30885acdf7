"""Reading a CSV file for validation: bytes in, the file-level checks of
:mod:`musicpipe.contract.validation`, each data row handed to a callback.

A *source* is ``bytes``, a binary stream with ``read(n)`` or an iterable of ``bytes`` chunks;
it is read in chunks and decoded line by line (strict UTF-8, a leading BOM tolerated, no NUL),
records come from Python's ``csv`` reader and must all end with the same line break, and the
header must have the kind's required columns (:mod:`musicpipe.contract.columns`). The rules
and the wording of every error are those of docs/data-contract.md §2, described in
:mod:`musicpipe.contract.validation`. Pure: no I/O beyond reading the source.

Python 3.9-compatible and stdlib-only: the job runs in Glue's Python shell.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field

from musicpipe.contract.columns import column_positions, missing_columns

CHUNK_SIZE = 1 << 16
# Python's csv refuses cells over 131,072 characters with an error for the whole file; cells
# up to this size are read so that the row rules can reject their rows one by one.
MAX_READABLE_FIELD_CHARS = 16 * 1024 * 1024
_UTF8_BOM = codecs.BOM_UTF8


class FileCheckError(Exception):
    """A file-level check failed while reading (decoding or CSV parsing)."""


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
class Scan:
    """What reading one file found; the caller turns it into a FileResult."""

    errors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    rows_read: int = 0
    readable: bool = True  # False: decode/CSV error, so row counts mean nothing


def scan_file(source, kind: str, on_row) -> Scan:
    """Run the file-level checks, calling ``on_row(row, positions, width)`` for each data row
    of a file whose header has every required column (``width``: the header's cell count)."""
    scan = Scan()
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


def cell(row: list[str], index: int) -> str | None:
    return row[index] if index < len(row) else None


def longest_cell(row: list[str], width: int) -> int:
    """Length in characters of the row's longest cell under a header column. Cells past the
    header's last column are read by no reader (Spark drops them), so they are not measured."""
    return max((len(cell) for cell in row[:width]), default=0)
