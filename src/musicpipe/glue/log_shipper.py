"""A run's output and error lines, shipped to CloudWatch Logs as Glue writes them (stream =
run id, batches at least every second) and kept in a local copy that is always complete."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

# CloudWatch takes events of up to 256 KiB; at most 4 bytes a character in UTF-8.
MAX_MESSAGE_CHARS = 64 * 1024


class LogShipper:
    """Lines of one stream of a run, sent to CloudWatch Logs in batches, and kept on disk."""

    def __init__(self, logs, group: str, stream: str, local_file: Path) -> None:
        self.logs, self.group, self.stream = logs, group, stream
        self.local = local_file.open("a", encoding="utf-8", errors="replace")
        self.pending: list[dict] = []
        self.lock = threading.Lock()
        self.last_flush = time.monotonic()
        try:
            logs.create_log_group(logGroupName=group)
        except ClientError:
            pass  # exists
        try:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except ClientError:
            pass
        # A quiet script must still see its last lines in CloudWatch within a second or so.
        self.closed = threading.Event()
        self.flusher = threading.Thread(target=self._flush_periodically, daemon=True)
        self.flusher.start()

    def _flush_periodically(self) -> None:
        while not self.closed.wait(1.0):
            self.flush()

    def write(self, line: str) -> None:
        self.local.write(line + "\n")
        with self.lock:
            # CloudWatch refuses an empty message (a traceback's blank lines): a space keeps
            # the line. A message is at most 256 KiB.
            message = line[:MAX_MESSAGE_CHARS] or " "
            self.pending.append({"timestamp": int(time.time() * 1000), "message": message})
            if len(self.pending) >= 500 or time.monotonic() - self.last_flush > 1.0:
                self._flush_locked()

    def flush(self) -> None:
        with self.lock:
            self._flush_locked()
        self.local.flush()

    def _flush_locked(self) -> None:
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        try:
            self.logs.put_log_events(
                logGroupName=self.group, logStreamName=self.stream, logEvents=batch
            )
        except (ClientError, BotoCoreError) as exc:
            # Logs are best effort; the local copy stays complete. Nothing here may raise:
            # this runs in the pumps and in the run's own thread, whose death would leave the
            # run RUNNING for ever.
            self.local.write(f"[musicpipe] could not ship logs to CloudWatch: {exc}\n")

    def close(self) -> None:
        self.closed.set()
        self.flusher.join(timeout=5)
        self.flush()
        self.local.close()
