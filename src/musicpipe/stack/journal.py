"""A journal of the local AWS's writes, so a moto server killed at any moment loses no
acknowledged write.

moto keeps its state in memory. The embedded stack runs it as ``python -m
musicpipe.stack.journal`` instead of ``python -m moto.server``: the same moto application,
wrapped in a WSGI layer that appends every successful S3 or DynamoDB write to
``<state>/journal/aws.journal`` *before* its response goes back to the client. State after a
kill = the snapshot the journal names as its base + the journal replayed in order.

Why not moto's own recorder (``MOTO_ENABLE_RECORDING``): it records every request (reads and
SQS long polls too, which a replay then waits through) before moto handles it, so failed
writes are replayed as well; it writes each entry with two unlocked writes from moto's many
threads, so two large concurrent bodies can interleave and break the file; a body sent without
Content-Length is recorded empty; and a multipart upload cannot be replayed, because moto hands
out a new UploadId and the recorded parts name the old one.

Here instead:

* only writes that succeeded (2xx) are journaled, S3 and DynamoDB only (SQS messages are
  re-derived from ``streams/``; CloudWatch is not kept, as at ``down``);
* a lock is held from handing the write to moto until its record is on file, so the journal's
  order is the order moto applied the writes in (reads are not serialised);
* each record is one length-prefixed, CRC-checked frame written with ``os.write`` before the
  client hears back: a kill leaves at most a torn last frame, whose write no client was told
  about (found by its CRC and cut off);
* CreateMultipartUpload records the UploadId moto answered, so a replay maps the recorded id
  to the new one.

The journal lives in the page cache until the OS writes it out: it survives the death of the
process (``kill -9``, a crash), not a power loss. Frame layout::

    b"MPJ1" | head length (u32) | body length (u64) | head (JSON) | body | CRC32 of head+body

The first frame is the journal's header: ``{"journal": 1, "base": <snapshot id or null>}``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import signal
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MAGIC = b"MPJ1"
FRAME = struct.Struct(">IQ")
CRC = struct.Struct(">I")
CONTROL = "/_musicpipe/journal"
# DynamoDB operations that change nothing; every other operation is journaled.
DYNAMODB_READS = frozenset(
    {
        "BatchGetItem",
        "DescribeBackup",
        "DescribeContinuousBackups",
        "DescribeContributorInsights",
        "DescribeEndpoints",
        "DescribeExport",
        "DescribeGlobalTable",
        "DescribeImport",
        "DescribeKinesisStreamingDestination",
        "DescribeLimits",
        "DescribeTable",
        "DescribeTimeToLive",
        "GetItem",
        "GetResourcePolicy",
        "ListBackups",
        "ListContributorInsights",
        "ListExports",
        "ListGlobalTables",
        "ListImports",
        "ListTables",
        "ListTagsOfResource",
        "Query",
        "Scan",
        "TransactGetItems",
    }
)
# Headers a replay sets itself (or must not send: Expect would wait for a 100 Continue).
HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect"})


# -- frames -----------------------------------------------------------------------------------
def encode_frame(head: dict, body: bytes = b"") -> bytes:
    head_bytes = json.dumps(head, separators=(",", ":")).encode()
    crc = zlib.crc32(body, zlib.crc32(head_bytes))
    return b"".join(
        (MAGIC, FRAME.pack(len(head_bytes), len(body)), head_bytes, body, CRC.pack(crc))
    )


def iter_frames(path: Path) -> Iterator[tuple[int, int, dict, bytes]]:
    """(offset, end, head, body) of every intact frame, in order; stops at the first frame
    that is torn or does not check out."""
    with path.open("rb") as fh:
        offset = 0
        while True:
            prefix = fh.read(len(MAGIC) + FRAME.size)
            if len(prefix) < len(MAGIC) + FRAME.size or prefix[: len(MAGIC)] != MAGIC:
                return
            head_len, body_len = FRAME.unpack(prefix[len(MAGIC) :])
            head_bytes = fh.read(head_len)
            body = fh.read(body_len)
            crc = fh.read(CRC.size)
            if len(head_bytes) < head_len or len(body) < body_len or len(crc) < CRC.size:
                return
            if CRC.unpack(crc)[0] != zlib.crc32(body, zlib.crc32(head_bytes)):
                return
            try:
                head = json.loads(head_bytes)
            except ValueError:
                return
            end = offset + len(prefix) + head_len + body_len + CRC.size
            yield offset, end, head, body
            offset = end


@dataclass
class JournalScan:
    """What a journal file holds: its base, its intact writes, and what follows them."""

    base: str | None
    writes: int = 0
    valid_length: int = 0
    size: int = 0
    first_write: float | None = None
    last_write: float | None = None
    by_service: dict[str, int] = field(default_factory=dict)
    torn_head: dict | None = None  # the head of a torn last frame, when it can be read

    @property
    def torn_bytes(self) -> int:
        return self.size - self.valid_length


def scan(path: Path) -> JournalScan | None:
    """None when there is no journal (or not even an intact header)."""
    if not path.is_file():
        return None
    frames = iter_frames(path)
    first = next(frames, None)
    if first is None or first[2].get("journal") != 1:
        return None
    result = JournalScan(base=first[2].get("base"), valid_length=first[1])
    for _, end, head, _ in frames:
        result.writes += 1
        result.valid_length = end
        result.first_write = result.first_write or head["t"]
        result.last_write = head["t"]
        result.by_service[head["service"]] = result.by_service.get(head["service"], 0) + 1
    result.size = path.stat().st_size
    if result.torn_bytes:
        result.torn_head = _torn_head(path, result.valid_length)
    return result


def _torn_head(path: Path, offset: int) -> dict | None:
    """The head of the frame at ``offset`` if it was written whole (its body may not be)."""
    with path.open("rb") as fh:
        fh.seek(offset)
        prefix = fh.read(len(MAGIC) + FRAME.size)
        if len(prefix) < len(MAGIC) + FRAME.size or prefix[: len(MAGIC)] != MAGIC:
            return None
        head_len, _ = FRAME.unpack(prefix[len(MAGIC) :])
        try:
            return json.loads(fh.read(head_len))
        except ValueError:
            return None


def describe_write(head: dict) -> str:
    """``PUT /bucket/key`` or ``DynamoDB BatchWriteItem``: a write, as a person reads it."""
    if head.get("service") == "dynamodb":
        return f"DynamoDB {head.get('target', '?').rsplit('.', 1)[-1]}"
    if head.get("service") == "moto":
        return "moto reset"
    return f"S3 {head.get('method')} {urlsplit(head.get('uri', '')).path}"


# -- the server side --------------------------------------------------------------------------
def service_of(environ: dict) -> str | None:
    """The AWS service a request is for, as moto's dispatcher tells it: the SigV4 credential
    scope, else DynamoDB's X-Amz-Target, else S3 (moto's default for unsigned requests) unless
    it is a query-protocol form post (SQS, CloudWatch)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = ""
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
    else:
        scope = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0]
    parts = scope.split("/")
    if len(parts) >= 5:
        return parts[3]
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        return "dynamodb"
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return None
    return "s3"


def is_write(environ: dict) -> str | None:
    """The service of a request that may change S3 or DynamoDB state, else None."""
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
        return None
    if environ.get("PATH_INFO", "").startswith("/moto-api/"):
        # moto's own API; a reset empties everything, so a replay must empty it there too.
        return "moto" if environ.get("PATH_INFO") == "/moto-api/reset" else None
    service = service_of(environ)
    if service == "s3":
        return service
    if service == "dynamodb":
        operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
        return None if operation in DYNAMODB_READS else service
    return None


def _read_body(environ: dict) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream itself
        return stream.read()
    return b""


def _headers(environ: dict) -> list[list[str]]:
    headers = [
        [key[5:].replace("_", "-").title(), value]
        for key, value in environ.items()
        if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in HOP_HEADERS
    ]
    if environ.get("CONTENT_TYPE"):
        headers.append(["Content-Type", environ["CONTENT_TYPE"]])
    return headers


def _uri(environ: dict) -> str:
    # The raw request URI keeps the key's percent-encoding exactly as the client sent it.
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw
    query = environ.get("QUERY_STRING")
    return environ.get("PATH_INFO", "") + (f"?{query}" if query else "")


UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")


class Journal:
    """The open journal file of a running server: one writer, under one lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.writes = 0

    def start_new(self, base: str | None) -> None:
        """A new, empty journal on top of ``base`` (written aside and renamed into place)."""
        with self.lock:
            self._close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".new")
            with tmp.open("wb") as fh:
                fh.write(encode_frame({"journal": 1, "base": base, "created": time.time()}))
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.path)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self.writes = 0

    def resume(self, valid_length: int) -> None:
        """Go on appending to the journal that was just replayed, cutting a torn last frame."""
        with self.lock:
            self._close()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            os.ftruncate(fd, valid_length)
            self.fd = fd
            self.writes = 0

    def stop(self) -> None:
        with self.lock:
            self._close()

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def append(self, head: dict, body: bytes) -> None:
        """Caller holds the lock."""
        if self.fd is None:
            raise RuntimeError("the journal is not open")
        view = memoryview(encode_frame(head, body))
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.writes += 1


class JournalingApp:
    """moto's WSGI application with every successful S3/DynamoDB write journaled."""

    def __init__(self, app, journal: Journal) -> None:
        self.app = app
        self.journal = journal

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(CONTROL):
            return self._control(environ, start_response)
        service = is_write(environ) if self.journal.fd is not None else None
        if service is None:
            return self.app(environ, start_response)
        # The body is read before the lock is taken: a slow upload holds up no other write.
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        head = {
            "t": time.time(),
            "service": service,
            "method": environ["REQUEST_METHOD"],
            "uri": _uri(environ),
            "headers": _headers(environ),
        }
        if service == "dynamodb":
            head["target"] = environ.get("HTTP_X_AMZ_TARGET", "")
        captured: list = []

        def capture(status, headers, exc_info=None):
            captured[:] = [status, headers]
            return lambda data: None

        with self.journal.lock:
            result = self.app(environ, capture)
            try:
                content = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            status, headers = captured
            if 200 <= int(status.split()[0]) < 300 and self.journal.fd is not None:
                if head["method"] == "POST" and "uploads" in parse_qs(
                    environ.get("QUERY_STRING", ""), keep_blank_values=True
                ):
                    found = UPLOAD_ID.search(content)
                    head["upload_id"] = found.group(1).decode() if found else None
                try:
                    self.journal.append(head, body)
                except OSError as exc:
                    # Not durable, so not acknowledged: the client sees a server error.
                    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
                    return [f"musicpipe journal write failed: {exc}".encode()]
        start_response(status, headers)
        return [content]

    def _control(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        action = environ["PATH_INFO"][len(CONTROL) :].strip("/")
        try:
            request = json.loads(_read_body(environ) or b"{}")
            if method == "POST" and action == "new":
                self.journal.start_new(request.get("base"))
            elif method == "POST" and action == "resume":
                self.journal.resume(int(request["valid_length"]))
            elif method == "POST" and action == "stop":
                self.journal.stop()
            elif not (method == "GET" and action == ""):
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"unknown journal action"]
        except (OSError, ValueError, KeyError) as exc:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [str(exc).encode()]
        state = {
            "path": str(self.journal.path),
            "active": self.journal.fd is not None,
            "writes": self.journal.writes,
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(state).encode()]


def control(endpoint: str, action: str, payload: dict | None = None) -> dict:
    """Call the journal's control route on a running server."""
    parts = urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        method = "GET" if action == "" else "POST"
        body = json.dumps(payload or {}).encode() if method == "POST" else None
        conn.request(method, f"{CONTROL}/{action}".rstrip("/"), body=body)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"journal {action or 'state'}: {resp.status} {data[:300]!r}")
        return json.loads(data)
    finally:
        conn.close()


# -- replay -----------------------------------------------------------------------------------
@dataclass
class ReplayResult:
    applied: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def replay(path: Path, endpoint: str, valid_length: int) -> ReplayResult:
    """Send the journal's writes, in order, to the (journal-less) server at ``endpoint``."""
    started = time.monotonic()
    parts = urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
    upload_ids: dict[str, str] = {}
    result = ReplayResult()
    try:
        frames = iter_frames(path)
        next(frames, None)  # the header
        for _, end, head, body in frames:
            if end > valid_length:
                break
            uri = head["uri"]
            for old, new in upload_ids.items():
                uri = uri.replace(f"uploadId={old}", f"uploadId={new}")
            headers = {k: v for k, v in head["headers"]}
            headers["Host"] = f"{parts.hostname}:{parts.port}"
            conn.request(head["method"], uri, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if 200 <= resp.status < 300:
                result.applied += 1
                if head.get("upload_id"):
                    found = UPLOAD_ID.search(data)
                    if found:
                        upload_ids[head["upload_id"]] = found.group(1).decode()
            else:
                detail = data[:200].decode(errors="replace")
                result.failed.append(f"{describe_write(head)}: HTTP {resp.status} {detail}")
    finally:
        conn.close()
    result.seconds = time.monotonic() - started
    return result


# -- the server -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """moto's server (``moto.server.main``, same app, same request handler) with the journal."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    # Journaling starts when `up` says so, after the snapshot and the journal are restored.
    wrapped = JournalingApp(app, Journal(args.journal))
    run_simple(args.host, args.port, wrapped, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
