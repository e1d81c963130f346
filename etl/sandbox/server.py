"""The HTTP side: a keep-alive threaded server, auth, faults, and the Sandbox object."""

import base64
import binascii
import hmac
import logging
import random
import socket
import sys
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from . import faults, render, routes
from .errors import ApiFailure
from .handlers import Request, Response
from .seed import populate
from .store import Store

log = logging.getLogger("etl.sandbox")
# The most a request body may hold: a conversation with a 20 MB attachment, base64 in JSON.
MAX_BODY_MB = 32
DEFAULT_API_KEY = "sandbox-key"  # printed in the README: fine on loopback only
CORS_HEADERS = "Content-Type, Authorization, X-Smarticks-API-Key"


def key_from_request(headers, query: dict) -> list[str]:
    """Every API key the request offers: query param, X-Smarticks-API-Key, Authorization."""
    keys = []
    if query.get("api_key"):
        keys.append(query["api_key"])
    if headers.get("X-Smarticks-API-Key"):
        keys.append(headers["X-Smarticks-API-Key"].strip())
    auth = (headers.get("Authorization") or "").strip()
    if auth:
        scheme, _, rest = auth.partition(" ")
        if scheme.lower() == "basic" and rest:
            try:
                user = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
                keys.append(user.partition(":")[0])
            except (binascii.Error, ValueError):
                pass
        keys.append(scheme)  # the reference's literal `Authorization: <key> <password>`
    return keys


def key_matches(key: str, offered: list[str]) -> bool:
    """Whether any offered key is the key, compared in constant time (no timing oracle)."""
    wanted = key.encode()
    return any(hmac.compare_digest(wanted, candidate.encode()) for candidate in offered)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, sandbox):
        self.sandbox = sandbox
        self.open_sockets = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        """A client hanging up mid-request is normal (a killed sync): say nothing about it."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Cut every kept-alive connection so no handler serves after stop()."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SmarticksSandbox/1.0"
    sys_version = ""
    wbufsize = 256 * 1024  # headers and body leave in one write
    timeout = 120  # idle keep-alive connections are closed after this

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - silence default request logging
        pass

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # ----- request processing ---------------------------------------------------------

    def _admit(self, sandbox, method: str, path: str, query: dict) -> None:
        """Refuse a request before a byte of its body is read: no valid key, or a body too big.

        Reading first let keyless clients make the server hold their uploads in memory. A
        refused body stays unread, so the connection is closed after the answer.
        """
        if method != "OPTIONS":  # a CORS preflight carries no key
            try:
                needs_auth = routes.match(path)[2]
            except ApiFailure:
                needs_auth = True  # no route: nothing to say to a caller without a key
            offered = key_from_request(self.headers, query)
            if needs_auth and not key_matches(sandbox.api_key, offered):
                self.close_connection = True
                raise ApiFailure(401, "API Key is either not provided or not valid")
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise ApiFailure(411, "Send a Content-Length; chunked bodies are not supported")
        length = int(self.headers.get("Content-Length") or 0)
        if length > sandbox.max_body:
            self.close_connection = True
            cap = f"{sandbox.max_body / 1e6:g} MB"
            raise ApiFailure(413, f"The request body is {length} bytes; at most {cap} are accepted")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        kind = (self.headers.get("Content-Type") or "").lower()
        if self.command in ("POST", "PUT") and kind and "json" not in kind:
            raise ApiFailure(415, f"Send JSON (Content-Type: application/json), not {kind}")
        return body

    def _handle(self):
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        path = unquote(parts.path) or "/"
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        method = self.command
        try:
            self._admit(sandbox, method, path, query)
            body = self._read_body()
        except (ValueError, ApiFailure) as exc:
            if not isinstance(exc, ApiFailure):
                self.close_connection = True
            failure = exc if isinstance(exc, ApiFailure) else ApiFailure(400, "Bad Content-Length")
            self._send_failure(failure)
            return
        sandbox._record(method, path, query)
        if sandbox.latency:
            time.sleep(sandbox.latency)
        fault = sandbox._fault_for(path)
        if fault == "drop":
            sandbox._count(None)
            self.close_connection = True
            return
        if fault is not None:
            self._send_fault(fault)
            return
        try:
            if sandbox.on_request is not None:
                sandbox.on_request(method, path, query)
            response = self._route(sandbox, method, path, query, body)
        except ApiFailure as failure:
            self._send_failure(failure)
            return
        except Exception as exc:  # a bug in the sandbox or a test hook: answer 500, keep it
            log.exception("sandbox failed on %s %s", method, path)
            sandbox.errors.append(f"{method} {path}: {exc!r}")
            self._send_failure(ApiFailure(500, f"Sandbox error: {exc!r}"))
            return
        self._send(response)

    def _route(self, sandbox, method, path, query, body) -> Response:
        methods, params, _public = routes.match(path)
        if method == "OPTIONS":
            allow = routes.allowed(methods)
            return Response(
                204,
                headers={
                    "Allow": allow,
                    "Access-Control-Allow-Origin": "*",
                    "Access-Control-Allow-Methods": allow,
                    "Access-Control-Allow-Headers": CORS_HEADERS,
                },
            )
        handler = methods.get(method)
        if handler is None:
            raise ApiFailure(
                405, f"Method {method} not allowed here", headers={"Allow": routes.allowed(methods)}
            )
        request = Request(sandbox.store, method, path, params, query, body)
        return handler(request)

    # ----- responses ------------------------------------------------------------------

    def _send_fault(self, status: int) -> None:
        sandbox = self.server.sandbox
        headers = {}
        if status == 429:
            value = faults.retry_after_value(sandbox.retry_after, sandbox.retry_after_http_date)
            headers["Retry-After"] = value
            failure = ApiFailure(429, "Too many requests, retry later", headers=headers)
        else:
            failure = ApiFailure(status, "Injected failure")
        self._send_failure(failure)

    def _send_failure(self, failure: ApiFailure) -> None:
        self._send(Response(failure.status, render.to_json(failure.body()), failure.headers))

    def _send(self, response: Response) -> None:
        body = response.body.encode("utf-8") if isinstance(response.body, str) else response.body
        self.send_response(response.status)
        if response.status != 204 and (body or response.status != 201):
            self.send_header("Content-Type", _content_type(response.content_type))
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.server.sandbox._count(response.status)


def _content_type(kind: str) -> str:
    return f"{kind}; charset=utf-8" if kind in ("application/json", "text/plain") else kind


class Sandbox:
    """A seeded Smarticks API on loopback. Fault switches may be changed while it runs."""

    def __init__(
        self,
        seed=1,
        conversations=200,
        customers=None,
        empty=False,
        api_key=DEFAULT_API_KEY,
        host="127.0.0.1",
        port=0,
        latency=0.0,
        error_rate=0.0,
        rate_limit_every=0,
        retry_after=1,
        drop_rate=0.0,
        *,
        retry_after_http_date=False,
        fault_paths=None,
        fault_seed=0,
        mailboxes=3,
        users=8,
        log_size=10_000,
        max_body_mb=MAX_BODY_MB,
        attachment_files=0,
    ):
        self.seed, self.api_key, self.host, self.port = seed, api_key, host, port
        self.max_body = int(max_body_mb * 1_000_000)
        self.store = Store()
        populate(self.store, seed, conversations, customers, empty, mailboxes, users)
        self.latency, self.error_rate, self.drop_rate = latency, error_rate, drop_rate
        self.rate_limit_every, self.retry_after = rate_limit_every, retry_after
        self.retry_after_http_date, self.fault_paths = retry_after_http_date, fault_paths
        self.fault_rng = random.Random(fault_seed)
        # Serve seeded attachments' files, each at most this many bytes (0: metadata only).
        self.attachment_files = attachment_files
        self.on_request = None
        self.requests_served = 0
        self.dropped_connections = 0
        self.status_counts = Counter()
        self.request_log = deque(maxlen=log_size)
        self.errors = []
        self._fault_number = 0
        self._stats_lock = threading.Lock()
        self._server = None
        self._thread = None

    @property
    def url(self) -> str | None:
        """`http://host:port` once started."""
        return None if self._server is None else f"http://{self.host}:{self.port}"

    def start(self) -> "Sandbox":
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self.store.base_url = self.url
        if self.attachment_files:
            self.store.serve_seeded_files(self.attachment_files)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- bookkeeping used by the handler --------------------------------------------

    def _record(self, method: str, path: str, query: dict) -> None:
        self.request_log.append((method, path, dict(query)))

    def _fault_for(self, path: str):
        if not faults.applies(self.fault_paths, path):
            return None
        with self._stats_lock:
            self._fault_number += 1
            return faults.decide(self, self._fault_number, self.fault_rng)

    def _count(self, status: int | None) -> None:
        with self._stats_lock:
            if status is None:
                self.dropped_connections += 1
            else:
                self.requests_served += 1
                self.status_counts[status] += 1
