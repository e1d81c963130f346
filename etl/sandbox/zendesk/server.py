"""The Zendesk emulation over HTTP: the endpoints `etl migrate zendesk` calls, and a file host.

Two servers on loopback: the account (`http://127.0.0.1:PORT`, standing for
`https://{subdomain}.zendesk.com`) and its file host (`http://localhost:PORT2`, standing for
Zendesk's attachment storage on another domain). An attachment's `content_url` is on the
account and redirects to the file host, which refuses any request that carries credentials:
Zendesk's attachment reference warns that files "may be hosted externally so take care not to
inadvertently send Zendesk authentication credentials".
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from .store import ZendeskStore

EXPORT_MAX = 1000  # per_page limit of the incremental ticket export
COMMENTS_MAX = 100  # page[size] limit of cursor pagination
SHOW_MANY_MAX = 100  # ids per show_many request
RATE_LIMIT = 700  # requests per minute the account's plan allows (Enterprise)


class ZendeskSandbox:
    """A seeded Zendesk account on loopback; fault switches may be changed while it runs."""

    def __init__(
        self,
        seed: int = 1,
        tickets: int = 40,
        email: str = "admin@acme.example.com",
        token: str = "zendesk-sandbox-token",
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_every: int = 0,
        retry_after: int = 1,
        error_rate: float = 0.0,
        page_limit: int | None = None,
        latency: float = 0.0,
        fault_seed: int = 0,
    ):
        self.store = ZendeskStore(seed, tickets)
        self.email, self.token, self.host, self.port = email, token, host, port
        self.rate_limit_every, self.retry_after = rate_limit_every, retry_after
        self.error_rate, self.page_limit, self.latency = error_rate, page_limit, latency
        self.fault_rng = random.Random(fault_seed)
        self.request_log: deque = deque(maxlen=20_000)
        self.credential_leaks: list[str] = []  # file-host requests that carried credentials
        self.status_counts: dict[int, int] = {}
        self._faults = 0
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    @property
    def url(self) -> str | None:
        return f"http://{self.host}:{self.port}" if self._servers else None

    @property
    def files_url(self) -> str | None:
        if not self._servers:
            return None
        return f"http://localhost:{self._servers[1].server_address[1]}"

    def start(self) -> ZendeskSandbox:
        if self._servers:
            return self
        api = _Server((self.host, self.port), _Handler, self, "api")
        self.port = api.server_address[1]
        files = _Server((self.host, 0), _Handler, self, "files")
        self._servers = [api, files]
        self.store.base_url, self.store.files_url = self.url, self.files_url
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

    def __enter__(self) -> ZendeskSandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def requests_to(self, prefix: str) -> int:
        return sum(1 for _, path, _ in self.request_log if path.startswith(prefix))

    def _fault(self) -> int | None:
        with self._lock:
            self._faults += 1
            if self.rate_limit_every and self._faults % self.rate_limit_every == 0:
                return 429
            if self.error_rate and self.fault_rng.random() < self.error_rate:
                return 503
        return None

    def _count(self, status: int) -> None:
        with self._lock:
            self.status_counts[status] = self.status_counts.get(status, 0) + 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, sandbox: ZendeskSandbox, role: str):
        self.sandbox, self.role = sandbox, role
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ZendeskSandbox/1.0"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - no request logging on stderr
        pass

    def do_GET(self):
        sandbox: ZendeskSandbox = self.server.sandbox
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        sandbox.request_log.append((self.server.role, path, query))
        if sandbox.latency:
            time.sleep(sandbox.latency)
        if self.server.role == "files":
            self._serve_file(sandbox, path)
            return
        fault = sandbox._fault()
        if fault == 429:
            # https://developer.zendesk.com/api-reference/introduction/rate-limits/
            self._json(
                429,
                {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"},
                {"Retry-After": str(sandbox.retry_after)},
            )
            return
        if fault:
            self._json(fault, {"error": "ServiceUnavailable", "description": "Try again"})
            return
        match = re.fullmatch(r"/attachments/token/(\w+)/?", path)
        if match:
            self._redirect_to_file(sandbox, match.group(1))
            return
        if not self._authorized(sandbox):
            # https://developer.zendesk.com/api-reference/introduction/security-and-auth/
            self._json(401, {"error": "Couldn't authenticate you"})
            return
        with sandbox.store.lock:
            status, body = _route(sandbox, path, query)
        self._json(status, body)

    do_HEAD = do_GET

    def _authorized(self, sandbox: ZendeskSandbox) -> bool:
        # Basic auth with "{email_address}/token:{api_token}" (API token authentication).
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        return user == f"{sandbox.email}/token:{sandbox.token}"

    def _redirect_to_file(self, sandbox: ZendeskSandbox, token: str) -> None:
        item = sandbox.store.attachments.get(token)
        if item is None:
            self._json(404, {"error": "RecordNotFound", "description": "Not found"})
            return
        location = f"{sandbox.files_url}/{token}/{quote(item.file_name)}"
        self._send(302, b"", "text/html", {"Location": location})

    def _serve_file(self, sandbox: ZendeskSandbox, path: str) -> None:
        if self.headers.get("Authorization") or "token" in (self.headers.get("Cookie") or ""):
            sandbox.credential_leaks.append(path)
            self._send(403, b"credentials sent to the file host", "text/plain")
            return
        token = path.strip("/").split("/", 1)[0]
        item = sandbox.store.attachments.get(token)
        if item is None:
            self._send(404, b"no such file", "text/plain")
            return
        self._send(200, item.data, item.content_type)

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        sandbox: ZendeskSandbox = self.server.sandbox
        remaining = max(0, RATE_LIMIT - len(sandbox.request_log) % RATE_LIMIT)
        limits = {
            # Documented on every Ticketing API response (Best practices for avoiding rate
            # limiting: "Monitoring API activity against your rate limit").
            "X-Rate-Limit": str(RATE_LIMIT),
            "X-Rate-Limit-Remaining": str(remaining),
            "ratelimit-limit": str(RATE_LIMIT),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": "41",
        }
        data = json.dumps(body).encode("utf-8")
        self._send(status, data, "application/json; charset=utf-8", {**limits, **(headers or {})})

    def _send(self, status: int, body: bytes, kind: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.sandbox._count(status)


def _route(sandbox: ZendeskSandbox, path: str, query: dict) -> tuple[int, dict]:
    if path == "/api/v2/incremental/tickets/cursor.json":
        return _ticket_export(sandbox, query)
    found = re.fullmatch(r"/api/v2/tickets/(\d+)/comments(\.json)?", path)
    if found:
        return _comments(sandbox, int(found.group(1)), query, path)
    if path in ("/api/v2/users/show_many.json", "/api/v2/users/show_many"):
        return _show_many(sandbox, query)
    found = re.fullmatch(r"/api/v2/tickets/(\d+)/metrics(\.json)?", path)
    if found:
        ticket = sandbox.store.tickets.get(int(found.group(1)))
        if ticket is None:
            return 404, {"error": "RecordNotFound", "description": "Not found"}
        return 200, {"ticket_metric": sandbox.store.render_metric_set(ticket)}
    return 404, {"error": "InvalidEndpoint", "description": "Not found"}


def _encode(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text.removeprefix("seq:"))
    except (ValueError, binascii.Error):
        return None


def _ticket_export(sandbox: ZendeskSandbox, query: dict) -> tuple[int, dict]:
    # https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/
    # (Incremental Ticket Export, Cursor Based): start_time or cursor; per_page up to 1000;
    # include= sideloads (metric_sets, users); exclude_deleted; end_of_stream, after_cursor.
    store = sandbox.store
    if "cursor" in query:
        after = _decode(query["cursor"])
        if after is None:
            return 400, {"error": "InvalidPaginationParameter", "description": "Invalid cursor"}
        selected = [t for t in store.tickets.values() if t.seq > after]
    elif "start_time" in query and query["start_time"].isdigit():
        since = int(query["start_time"])
        selected = [t for t in store.tickets.values() if t.updated_at >= since]
        after = 0
    else:
        return 400, {"error": "InvalidValue", "description": "start_time or cursor is required"}
    if query.get("exclude_deleted") == "true":
        selected = [t for t in selected if t.status != "deleted"]
    selected.sort(key=lambda t: t.seq)
    size = min(int(query.get("per_page") or EXPORT_MAX), EXPORT_MAX, sandbox.page_limit or 10**9)
    page = selected[:size]
    last = page[-1].seq if page else max([after] + [t.seq for t in store.tickets.values()])
    cursor = _encode(last)
    base = f"{store.base_url}/api/v2/incremental/tickets/cursor.json"
    keep = {k: v for k, v in query.items() if k not in ("cursor", "start_time")}
    body: dict = {
        "tickets": [store.render_ticket(t) for t in page],
        "after_url": f"{base}?{urlencode({**keep, 'cursor': cursor})}",
        "after_cursor": cursor,
        "before_url": None,
        "before_cursor": None,
        "end_of_stream": len(selected) <= size,
    }
    includes = set(query.get("include", "").split(","))
    if "metric_sets" in includes:
        body["metric_sets"] = [store.render_metric_set(t) for t in page]
    if "users" in includes:
        ids = sorted({t.requester_id for t in page} | {t.assignee_id for t in page} - {None})
        body["users"] = [store.render_user(store.users[i]) for i in ids]
    return 200, body


def _comments(sandbox: ZendeskSandbox, ticket_id: int, query: dict, path: str):
    # https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_comments/
    # (List Comments), paged as in "Paginating through lists using cursor pagination":
    # page[size] (at most 100), page[after], and meta.has_more / meta.after_cursor / links.next.
    store = sandbox.store
    ticket = store.tickets.get(ticket_id)
    if ticket is None or ticket.status == "deleted":
        return 404, {"error": "RecordNotFound", "description": "Not found"}
    comments = sorted(ticket.comments, key=lambda c: (c.created_at, c.id))
    if query.get("sort_order") == "desc":
        comments.reverse()
    size = min(int(query.get("page[size]") or COMMENTS_MAX), COMMENTS_MAX)
    size = min(size, sandbox.page_limit or size)
    start = 0
    if query.get("page[after]"):
        position = _decode(query["page[after]"])
        if position is None:
            return 400, {"error": "InvalidPaginationParameter", "description": "Invalid cursor"}
        start = position
    page = comments[start : start + size]
    has_more = start + size < len(comments)
    after = _encode(start + size) if page else None
    next_url = None
    if has_more:
        next_url = f"{store.base_url}{path}?" + urlencode(
            {"page[size]": size, "page[after]": after}
        )
    return 200, {
        "comments": [store.render_comment(c) for c in page],
        "meta": {
            "has_more": has_more,
            "after_cursor": after,
            "before_cursor": _encode(start) if page else None,
        },
        "links": {"prev": None, "next": next_url},
    }


def _show_many(sandbox: ZendeskSandbox, query: dict) -> tuple[int, dict]:
    # https://developer.zendesk.com/api-reference/ticketing/users/users/#show-many-users
    # ids: a comma-separated list of up to 100 user ids; unknown ids are left out.
    raw = [part for part in query.get("ids", "").split(",") if part.strip()]
    if len(raw) > SHOW_MANY_MAX:
        return 400, {"error": "InvalidValue", "description": "Too many ids (max 100)"}
    users = [sandbox.store.users.get(int(i)) for i in raw if i.strip().isdigit()]
    return 200, {"users": [sandbox.store.render_user(u) for u in users if u is not None]}
