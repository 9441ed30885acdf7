"""Busy is not down: probes against real sockets, and waiting with backoff until an answer."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from musicpipe.stack.preflight import free_ports
from musicpipe.stack.probe import NotRunning, Probe, StillBusy, await_up, probe_http


@contextmanager
def http_server(status: int = 200, stall_until: float = 0.0):
    """A server on loopback that answers ``status``, holding every request that arrives
    before the monotonic time ``stall_until`` until a little after it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            while time.monotonic() < stall_until:
                time.sleep(0.05)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_listener():
    """A port that accepts connections and never answers: a process too busy to reply."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


def closed_port_url() -> str:
    (port,) = free_ports(1)
    return f"http://127.0.0.1:{port}/"


def test_a_closed_port_is_down():
    assert probe_http(closed_port_url()) is Probe.DOWN


def test_a_silent_server_is_busy_not_down():
    with silent_listener() as url:
        started = time.monotonic()
        assert probe_http(url, timeout=0.5) is Probe.BUSY
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(("status", "probe"), [(200, Probe.UP), (404, Probe.UP), (503, Probe.BUSY)])
def test_answers_by_status(status, probe):
    with http_server(status) as url:
        assert probe_http(url) is probe


def test_await_up_ends_at_once_when_the_process_is_gone():
    started = time.monotonic()
    with pytest.raises(NotRunning, match="make up"):
        await_up("moto", lambda: probe_http(closed_port_url()), lambda: False, timeout=60)
    assert time.monotonic() - started < 2


def test_await_up_waits_out_a_busy_server():
    # The first probes time out (as Airflow's did right after `up`), then it answers.
    with http_server(stall_until=time.monotonic() + 4) as url:
        said = []
        started = time.monotonic()
        await_up(
            "Airflow",
            lambda: probe_http(url, timeout=1),
            lambda: True,
            timeout=30,
            on_busy=said.append,
        )
        assert 3 < time.monotonic() - started < 20
        assert said and all("Airflow is busy" in s for s in said)


def test_await_up_gives_a_refusing_live_process_time_to_open_its_port():
    (port,) = free_ports(1)

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    servers = []

    def open_later():
        time.sleep(2)  # refused until then, as a service still starting
        servers.append(ThreadingHTTPServer(("127.0.0.1", port), Ok))
        servers[0].serve_forever()

    threading.Thread(target=open_later, daemon=True).start()
    try:
        started = time.monotonic()
        await_up("glue", lambda: probe_http(f"http://127.0.0.1:{port}/"), lambda: True, 30)
        assert 1.5 < time.monotonic() - started < 15
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_await_up_gives_up_on_a_server_that_never_answers():
    with silent_listener() as url:
        started = time.monotonic()
        with pytest.raises(StillBusy, match="longer --timeout"):
            await_up("moto", lambda: probe_http(url, timeout=0.5), lambda: True, timeout=3)
        assert 3 <= time.monotonic() - started < 10
