"""Hostile servers for the security tests: a proxy in front of the sandbox that misbehaves
where a test says, and a bare server that records everything sent to it.

Both are real HTTP servers on loopback ports; a different port is a different origin.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

KEY_HEADER = "X-Smarticks-API-Key"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: int = 0  # the client's port: one per connection


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    cut_short: bool = False  # send half the body announced, then hang up
    # Send the body `trickle` bytes at a time, `pause` seconds apart (a server that stays
    # just inside the client's read timeout), until it is sent or the client hangs up.
    trickle: int = 0
    pause: float = 0.0
    # Send the status line and headers a byte at a time, `pause` seconds apart, before the
    # body (http.client reads them before any response exists).
    slow_head: bool = False


@dataclass
class Server:
    url: str
    seen: list[Seen]


Handler = Callable[[Seen], Answer]


@contextlib.contextmanager
def serve(handle: Handler, tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering every request with `handle(seen)`;
    https with `tls`."""
    seen: list[Seen] = []

    class RequestHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # Headers and body leave in two writes: without this, each answer waits 40 ms
            # for the client's delayed ACK.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = dict(self.headers.items())
            request = Seen(self.command, self.path, headers, body, self.client_address[1])
            seen.append(request)
            answer = handle(request)
            if answer.slow_head:
                if not self.trickle(self.head(answer), 1, answer.pause):
                    return
            else:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
            if answer.cut_short:
                self.wfile.write(answer.body[: len(answer.body) // 2])
                self.close_connection = True
                return
            if answer.trickle:
                self.trickle(answer.body, answer.trickle, answer.pause)
                return
            self.wfile.write(answer.body)

        def head(self, answer: Answer) -> bytes:
            """The status line and headers as `send_response` and `end_headers` write them."""
            lines = [f"{self.protocol_version} {answer.status} {self.responses[answer.status][0]}"]
            lines += [f"{name}: {value}" for name, value in answer.headers.items()]
            lines += [f"Content-Length: {len(answer.body)}", "", ""]
            return "\r\n".join(lines).encode("latin-1")

        def trickle(self, data: bytes, size: int, pause: float) -> bool:
            """Send `data` `size` bytes at a time, `pause` apart; False if the client hung up."""
            try:
                for start in range(0, len(data), size):
                    self.wfile.write(data[start : start + size])
                    time.sleep(pause)
            except OSError:
                self.close_connection = True
                return False
            return True

        do_POST = do_PUT = do_DELETE = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        scheme = "https" if tls else "http"
        yield Server(f"{scheme}://127.0.0.1:{server.server_port}", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def forward(upstream: str) -> Handler:
    """A handler passing each request to `upstream` (the sandbox) and its answer back."""
    parts = urlsplit(upstream)
    local = threading.local()

    def handle(request: Seen) -> Answer:
        if getattr(local, "connection", None) is None:
            local.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection = local.connection
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if request.body:
            headers["Content-Length"] = str(len(request.body))
        try:
            connection.request(request.method, request.path, request.body or None, headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            local.connection = None
            connection.close()
            raise
        kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
        return Answer(response.status, kept, body)

    return handle


def proxy(
    upstream: str, rule: Callable[[Seen], Answer | None]
) -> contextlib.AbstractContextManager:
    """A proxy in front of `upstream` that answers with `rule(request)` where that is not None."""
    passing = forward(upstream)
    return serve(lambda request: rule(request) or passing(request))


def trickling(answer: Answer, size: int = 1 << 20, pause: float = 0.05) -> Answer:
    """`answer` sent a byte at a time, `pause` apart, padded with spaces to `size` bytes
    (still valid JSON): a megabyte takes half a day, every byte well inside a read timeout."""
    body = answer.body + b" " * max(0, size - len(answer.body))
    return Answer(answer.status, answer.headers, body, trickle=1, pause=pause)


def trickling_head(answer: Answer, size: int = 60_000, pause: float = 0.05) -> Answer:
    """`answer` with its status line and headers sent a byte at a time, `pause` apart, padded
    by one header to about `size` bytes (under http.client's 64 KB a line): most of an hour."""
    padded = {**answer.headers, "X-Padding": "x" * size}
    return Answer(answer.status, padded, answer.body, slow_head=True, pause=pause)


def redirect(status: int, to: str) -> Answer:
    return Answer(status, {"Location": to})


def keys_received(server: Server) -> list[str]:
    """Every API key (or Authorization) the server was sent."""
    return [
        value
        for request in server.seen
        for name, value in request.headers.items()
        if name.lower() in (KEY_HEADER.lower(), "authorization")
    ]
