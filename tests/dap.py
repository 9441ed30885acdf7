"""A minimal client of the Debug Adapter Protocol, as VS Code speaks it to debugpy: enough to
attach, set a breakpoint, see the stop, read a frame and go on. Messages are JSON with a
Content-Length header (https://microsoft.github.io/debug-adapter-protocol/overview)."""

from __future__ import annotations

import json
import socket
import time


class DapClient:
    def __init__(self, host: str, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:  # the run's process may still be starting debugpy's listener
            try:
                self.sock = socket.create_connection((host, port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.sock.settimeout(timeout)
        self.stream = self.sock.makefile("rb")
        self.seq = 0
        self.unread: list[dict] = []  # events and responses read while waiting for another

    def close(self) -> None:
        self.stream.close()
        self.sock.close()

    def send(self, command: str, **arguments) -> int:
        self.seq += 1
        body = json.dumps(
            {"seq": self.seq, "type": "request", "command": command, "arguments": arguments}
        ).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def _read(self) -> dict:
        length = 0
        while (line := self.stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if not length:
            raise ConnectionError("the debug adapter closed the connection")
        return json.loads(self.stream.read(length))

    def _next(self, wanted) -> dict:
        for message in self.unread:
            if wanted(message):
                self.unread.remove(message)
                return message
        while not wanted(message := self._read()):
            self.unread.append(message)
        return message

    def response(self, seq: int) -> dict:
        message = self._next(lambda m: m["type"] == "response" and m["request_seq"] == seq)
        assert message["success"], message
        return message.get("body", {})

    def request(self, command: str, **arguments) -> dict:
        return self.response(self.send(command, **arguments))

    def event(self, name: str) -> dict:
        return self._next(lambda m: m["type"] == "event" and m["event"] == name).get("body", {})
