"""Is a component of the stack up, busy or not running? Probing with patience.

One probe that times out says nothing about a service on a loaded laptop: Airflow's api-server
answers its health endpoint in 11 ms when idle and not within 2 s while the first DAG run is
scheduled next to a Spark job. So a probe has three outcomes: ``UP`` (it answered), ``BUSY`` (it
did not answer in time, reset the connection, or answered 5xx: a live process that is slow or
settling) and ``DOWN`` (nothing listens: connection refused). ``await_up`` probes again with
backoff until its deadline and gives up at once only when the component is not running: its
recorded process (or container) is gone, or nothing listens and it is not ours.
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from enum import StrEnum

from musicpipe.stack.base import StackError


class Probe(StrEnum):
    UP = "up"
    BUSY = "busy"
    DOWN = "down"


class NotRunning(StackError):
    """The component is not running: only `up` helps."""


class StillBusy(StackError):
    """The component runs but did not answer within the time given."""


def probe_http(url: str, timeout: float = 2.0) -> Probe:
    """One GET: UP on any answer below 500, BUSY on a timeout, a reset or a 5xx, DOWN when the
    connection is refused (or the host has no such address)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return Probe.UP if resp.status < 500 else Probe.BUSY
    except urllib.error.HTTPError as exc:
        return Probe.UP if exc.code < 500 else Probe.BUSY
    except urllib.error.URLError as exc:
        return classify_error(exc.reason)
    except (OSError, http.client.HTTPException) as exc:
        return classify_error(exc)


def classify_error(exc: object) -> Probe:
    """What a failed request says about the server behind it."""
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return Probe.DOWN
    # Timeouts, resets, a server that closed the connection mid-answer: alive, but busy.
    if isinstance(exc, TimeoutError | ConnectionError | http.client.HTTPException):
        return Probe.BUSY
    return Probe.DOWN


def await_up(
    what: str,
    probe: Callable[[], Probe],
    alive: Callable[[], bool],
    timeout: float,
    advice: str = "start it with `make up` (or `musicpipe up`)",
    on_busy: Callable[[str], None] = lambda message: None,
    first_delay: float = 0.5,
    max_delay: float = 5.0,
) -> None:
    """Return once ``probe`` says UP. Raises NotRunning at once when ``alive`` says the
    component's process is gone (or nothing listens and ``alive`` has no process to vouch for
    it); StillBusy when it still had not answered at the deadline. A refused connection from a
    live process (one that is still opening its port) counts as busy."""
    deadline = time.monotonic() + timeout
    delay = first_delay
    last = Probe.DOWN
    while True:
        last = probe()
        if last is Probe.UP:
            return
        if not alive():
            raise NotRunning(f"{what} is not running; {advice}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise StillBusy(
                f"{what} is running but did not answer within {timeout:.0f} s (last probe: "
                f"{'no answer in time' if last is Probe.BUSY else 'connection refused'}); "
                "the machine may be overloaded: try again with a longer --timeout, or look at "
                "`musicpipe status` and the service logs"
            )
        on_busy(f"{what} is busy; asking again in {min(delay, left):.0f} s")
        time.sleep(min(delay, left))
        delay = min(delay * 2, max_delay)
