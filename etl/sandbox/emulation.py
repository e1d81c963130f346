"""What every emulated source helpdesk shares: two loopback servers, faults, a request log.

A source emulation (Zendesk, Help Scout) is an `Emulation` whose `handle` answers requests.
It serves the account's API on `http://127.0.0.1:PORT` and its file host on
`http://localhost:PORT2`: another host name, as the vendors keep files on other domains.
Faults apply to API requests: every Nth answered 429 (`rate_limit_every`, with the vendor's
own headers from `rate_limited`), a share answered 503 (`error_rate`), and `latency`.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict = field(default_factory=dict)


def json_reply(status: int, body, headers: dict | None = None) -> Reply:
    return Reply(status, json.dumps(body).encode("utf-8"), headers=dict(headers or {}))


@dataclass
class Request:
    role: str  # "api" or "files"
    method: str
    path: str
    query: dict
    headers: object  # the request's headers (email.message.Message)
    body: bytes


class Emulation:
    """Base class: serving, faults and bookkeeping; subclasses answer in `handle`."""

    server_name = "Emulation/1.0"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_every: int = 0,
        retry_after: int = 1,
        error_rate: float = 0.0,
        latency: float = 0.0,
        fault_seed: int = 0,
    ):
        self.host, self.port = host, port
        self.rate_limit_every, self.retry_after = rate_limit_every, retry_after
        self.error_rate, self.latency = error_rate, latency
        self.fault_rng = random.Random(fault_seed)
        self.request_log: deque = deque(maxlen=20_000)  # (role, path, query)
        self.credential_leaks: list[str] = []  # file-host requests that carried credentials
        self.status_counts: dict[int, int] = {}
        self._faults = 0
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    # -- to be provided by each source ------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def rate_limited(self) -> Reply:
        return json_reply(429, {"error": "rate limited"}, {"Retry-After": str(self.retry_after)})

    def started(self) -> None:
        """Called once both servers listen (their URLs are known)."""

    # -- serving -------------------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        return f"http://{self.host}:{self.port}" if self._servers else None

    @property
    def files_url(self) -> str | None:
        if not self._servers:
            return None
        return f"http://localhost:{self._servers[1].server_address[1]}"

    def start(self):
        if self._servers:
            return self
        api = _Server((self.host, self.port), self, "api")
        self.port = api.server_address[1]
        self._servers = [api, _Server((self.host, 0), self, "files")]
        self.started()
        for server in self._servers:
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            ).start()
        return self

    def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def requests_to(self, prefix: str) -> int:
        return sum(1 for _, path, _ in self.request_log if path.startswith(prefix))

    def file_request_with_credentials(self, request: Request) -> bool:
        """Record and refuse a file-host request that carries credentials."""
        headers = request.headers
        if headers.get("Authorization") or headers.get("Cookie"):
            self.credential_leaks.append(request.path)
            return True
        return False

    def _answer(self, request: Request) -> Reply:
        self.request_log.append((request.role, request.path, request.query))
        if self.latency:
            time.sleep(self.latency)
        if request.role == "api":
            with self._lock:
                self._faults += 1
                limited = self.rate_limit_every and self._faults % self.rate_limit_every == 0
                failed = (
                    not limited and self.error_rate and self.fault_rng.random() < self.error_rate
                )
            if limited:
                return self.rate_limited()
            if failed:
                return json_reply(503, {"error": "Service Unavailable"})
        return self.handle(request)

    def _count(self, status: int) -> None:
        with self._lock:
            self.status_counts[status] = self.status_counts.get(status, 0) + 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, emulation: Emulation, role: str):
        self.emulation, self.role = emulation, role
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return self.server.emulation.server_name

    def log_message(self, format, *args):  # noqa: A002 - no request logging on stderr
        pass

    def do_GET(self):
        emulation: Emulation = self.server.emulation
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            self.server.role,
            self.command,
            unquote(parts.path),
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            self.headers,
            body,
        )
        try:
            reply = emulation._answer(request)
        except Exception as exc:  # a bug in the emulation: answer 500, say what
            reply = json_reply(500, {"error": f"emulation error: {exc!r}"})
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        emulation._count(reply.status)

    do_POST = do_PUT = do_HEAD = do_GET
