"""One deadline for a whole HTTP exchange (`--timeout`), however slowly a server answers.

Socket timeouts bound each wait for a byte, so a server that sends one byte just inside them
holds a request for as long as it likes. Two guards bound the exchange together:
- Until the answer's headers are in (connecting, sending, and the status line and headers,
  which http.client reads before any response exists), the connection is watched: one
  `Watchdog` thread for the process shuts down the socket of a connection whose exchange is
  past its deadline, the blocked read fails at once, and the connection raises `Overdue`.
  Neither urllib3 nor requests handles that exception: urllib3 closes the connection (it
  never goes back to the pool) and lets it through, so urllib3 does not retry it itself.
- The body is read in the pieces that have arrived, the deadline checked between them
  (`client.read_pieces`).
`watched(seconds)` is one exchange's deadline for the connections the thread uses inside it;
there `Overdue` becomes `DeadlineExceeded`, a requests Timeout: a GET is retried, a POST's
outcome is unknown.

Only public extension points: a requests `HTTPAdapter` whose pool manager makes pools
(`pool_classes_by_scheme`) of connections of our class (`ConnectionCls`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

DEFAULT_DEADLINE = 300.0  # seconds one exchange may take in all (--timeout)


class DeadlineExceeded(requests.exceptions.Timeout):
    """An answer still arriving when its exchange's deadline passed (a trickling server).

    A Timeout, so it is handled as a connection that broke mid-answer: a GET is retried,
    a POST's outcome is unknown.
    """


class Overdue(Exception):
    """A watched connection past its exchange's deadline. No OSError, HTTPException or
    urllib3 error, so that urllib3 and requests let it through to `watched`."""


@dataclass
class Deadline:
    """When one exchange must be over: `seconds` (--timeout) after it started, monotonic."""

    seconds: float
    ends: float

    @classmethod
    def start(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def restart(self) -> None:
        """A new exchange begins (urllib3 sends the request again): its own `seconds`."""
        self.ends = time.monotonic() + self.seconds

    def passed(self) -> bool:
        return time.monotonic() > self.ends

    def exceeded(self) -> DeadlineExceeded:
        answer = f"was still sending its answer after {self.seconds:g} s (--timeout)"
        return DeadlineExceeded(answer)

    def check(self, response: requests.Response) -> None:
        """Hang up and raise DeadlineExceeded once the deadline has passed."""
        if self.passed():
            response.close()
            raise self.exceeded()


def socket_waits(timeout: tuple[float, float], seconds: float) -> tuple[float, float]:
    """requests' (connect, read) timeouts, neither longer than a whole exchange's `seconds`."""
    connect, read = timeout
    return min(connect, seconds), min(read, seconds)


_current: ContextVar[Deadline | None] = ContextVar("etl_deadline", default=None)


@contextlib.contextmanager
def watched(seconds: float) -> Iterator[Deadline]:
    """The deadline of one exchange that begins now, for the connections this thread uses
    until the block ends; a connection hung up past it is DeadlineExceeded."""
    deadline = Deadline.start(seconds)
    token = _current.set(deadline)
    try:
        yield deadline
    except Overdue as exc:
        raise deadline.exceeded() from exc
    finally:
        _current.reset(token)


def current() -> Deadline | None:
    """The deadline of the exchange this thread is in, if any (urllib3's retries restart it)."""
    return _current.get()


class Watchdog:
    """One daemon thread, started at the first watch, that shuts down the socket of every
    watched connection whose deadline has passed.

    An entry belongs to the thread using its connection: it is added as an exchange starts on
    the connection and removed as soon as the answer's headers are in or the try failed, so
    the watchdog never touches a connection that is back in the pool or serves another
    exchange. A hang-up that found no socket (still connecting) is tried again each second.
    """

    AGAIN = 1.0

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._watched: dict[WatchedConnection, Deadline] = {}
        self._thread: threading.Thread | None = None
        self._wakes: float | None = None  # when the thread wakes next; None: when told

    def watch(self, connection: WatchedConnection, deadline: Deadline) -> None:
        with self._changed:
            self._watched[connection] = deadline
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="etl-deadline", daemon=True)
                self._thread.start()
            elif self._wakes is None or deadline.ends < self._wakes:
                self._changed.notify()  # an earlier deadline than the thread sleeps towards

    def forget(self, connection: WatchedConnection) -> None:
        with self._changed:
            self._watched.pop(connection, None)

    def watching(self) -> int:
        """How many connections are watched now."""
        with self._changed:
            return len(self._watched)

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                self._wakes = None
                for connection, deadline in self._watched.items():
                    if deadline.ends <= now:
                        connection.hang_up()
                        wake = now + self.AGAIN
                    else:
                        wake = deadline.ends
                    self._wakes = wake if self._wakes is None else min(self._wakes, wake)
                self._changed.wait(None if self._wakes is None else self._wakes - now)


WATCHDOG = Watchdog()


class WatchedConnection(HTTPConnection):
    """urllib3's connection, watched from the start of a request (or of the connect before
    it) until the answer's headers are in, when the thread is inside `watched`."""

    _deadline: Deadline | None = None

    def connect(self) -> None:
        self._watch()
        try:
            super().connect()
        except Exception as exc:
            self._unwatch(exc)
            raise

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._watch()
        try:
            super().request(*args, **kwargs)
        except Exception as exc:
            self._unwatch(exc)
            raise

    def getresponse(self) -> urllib3.HTTPResponse:
        try:
            return super().getresponse()
        except Exception as exc:
            self._unwatch(exc)
            raise
        finally:
            self._unwatch()

    def close(self) -> None:
        self._unwatch()
        super().close()

    def hang_up(self) -> None:
        """Shut the socket down (from the watchdog's thread): a blocked read ends at once."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _watch(self) -> None:
        deadline = _current.get()
        if deadline is None:
            return
        if deadline.passed():
            raise Overdue
        self._deadline = deadline
        WATCHDOG.watch(self, deadline)

    def _unwatch(self, failure: Exception | None = None) -> None:
        """Stop watching; a try that failed past the deadline is Overdue (it was hung up)."""
        deadline, self._deadline = self._deadline, None
        if deadline is None:
            return
        WATCHDOG.forget(self)
        if failure is not None and not isinstance(failure, Overdue) and deadline.passed():
            raise Overdue from failure


class WatchedHTTPSConnection(WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = WatchedConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, its connections watched (see the module's docstring)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # a SOCKS proxy has pools of its own
            manager.pool_classes_by_scheme = POOLS
        return manager
