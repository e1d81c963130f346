"""The Help Scout emulation over HTTP: the Mailbox API 2.0 endpoints `etl migrate helpscout`
calls, on `http://127.0.0.1:PORT` (standing for https://api.helpscout.net), and the web file
host on `http://localhost:PORT2` (standing for https://secure.helpscout.net)."""

from __future__ import annotations

import base64
import math
import re
import secrets
from datetime import datetime
from urllib.parse import parse_qsl

from etl.sandbox.emulation import Emulation, Reply, Request, json_reply

from .store import HelpScoutStore

PAGE_SIZE = 25  # https://developer.helpscout.com/mailbox-api/overview/pagination/
CUSTOMERS_PAGE = 50  # List Customers' page
RATE_LIMIT = (
    400  # requests per minute (https://developer.helpscout.com/mailbox-api/overview/rate-limiting/)
)


class HelpScoutSandbox(Emulation):
    """A seeded Help Scout account on loopback."""

    server_name = "HelpScoutSandbox/1.0"

    def __init__(
        self,
        seed: int = 1,
        conversations: int = 30,
        client_id: str = "helpscout-sandbox-app",
        client_secret: str = "helpscout-sandbox-secret",
        page_limit: int | None = None,
        token_uses: int | None = None,
        **options,
    ):
        super().__init__(**options)
        self.store = HelpScoutStore(seed, conversations)
        self.client_id, self.client_secret, self.page_limit = client_id, client_secret, page_limit
        self.token_uses = token_uses  # a token expires after this many requests (None: never)
        self.tokens: dict[str, int] = {}  # access token -> requests it served

    def started(self) -> None:
        self.store.api_url, self.store.files_url = self.url, self.files_url

    def rate_limited(self) -> Reply:
        # https://developer.helpscout.com/mailbox-api/overview/rate-limiting/: 429 with
        # X-RateLimit-Retry-After, the seconds until the next window.
        headers = {
            "X-RateLimit-Limit-Minute": str(RATE_LIMIT),
            "X-RateLimit-Remaining-Minute": "0",
            "X-RateLimit-Retry-After": str(self.retry_after),
        }
        return json_reply(429, {"error": "Too many requests"}, headers)

    def expire_tokens(self) -> None:
        """Every access token given out so far stops working (they last 2 days at Help Scout)."""
        with self._lock:
            self.tokens.clear()

    def handle(self, request: Request) -> Reply:
        if request.role == "files":
            return self._web_file(request)
        if request.path == "/v2/oauth2/token" and request.method == "POST":
            return self._token(request)
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        with self._lock:
            valid = scheme.lower() == "bearer" and token in self.tokens
            if valid and self.token_uses is not None and self.tokens[token] >= self.token_uses:
                del self.tokens[token]  # expired
                valid = False
            if valid:
                self.tokens[token] += 1
        if not valid:
            # https://developer.helpscout.com/mailbox-api/overview/errors/
            return json_reply(401, {"error": "Unauthorized", "message": "Invalid access token"})
        with self.store.lock:
            status, body = self._route(request)
        remaining = max(0, RATE_LIMIT - len(self.request_log) % RATE_LIMIT)
        headers = {
            "X-RateLimit-Limit-Minute": str(RATE_LIMIT),
            "X-RateLimit-Remaining-Minute": str(remaining),
        }
        reply = json_reply(status, body, headers)
        reply.content_type = "application/hal+json;charset=UTF-8"
        return reply

    def _token(self, request: Request) -> Reply:
        # https://developer.helpscout.com/mailbox-api/overview/authentication/
        # (Client Credentials Flow: POST /v2/oauth2/token, form-encoded)
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return json_reply(401, {"error": "invalid_client"})
        token = secrets.token_hex(16)
        with self._lock:
            self.tokens[token] = 0
        return json_reply(
            200, {"token_type": "bearer", "access_token": token, "expires_in": 172800}
        )

    def _web_file(self, request: Request) -> Reply:
        if self.file_request_with_credentials(request):
            return Reply(403, b"credentials sent to the file host", "text/plain")
        found = re.fullmatch(r"/file/(\w+)/.+", request.path)
        item = next((f for f in self.store.files.values() if found and f.token == found[1]), None)
        if item is None:
            return Reply(404, b"no such file", "text/plain")
        return Reply(200, item.data, item.mime)

    def _route(self, request: Request) -> tuple[int, dict]:
        path, query = request.path, request.query
        if path == "/v2/conversations":
            return self._conversations(query)
        found = re.fullmatch(r"/v2/conversations/(\d+)/attachments/(\d+)/data", path)
        if found:
            # https://developer.helpscout.com/mailbox-api/endpoints/conversations/attachments/get-data
            conv = self.store.conversations.get(int(found[1]))
            item = self.store.files.get(int(found[2]))
            if conv is None or item is None:
                return 404, {"error": "Not Found"}
            return 200, {"data": base64.b64encode(item.data).decode("ascii")}
        found = re.fullmatch(r"/v2/conversations/(\d+)/threads", path)
        if found:
            conv = self.store.conversations.get(int(found[1]))
            if conv is None:
                return 404, {"error": "Not Found"}
            threads = sorted(conv.threads, key=lambda t: (t.created_at, t.id), reverse=True)
            items = [self.store.render_thread(conv, t) for t in threads]
            return 200, self._page("threads", items, query, len(items) or 1)
        if path == "/v2/customers":
            return self._customers(query)
        if path == "/v2/users":
            items = [self.store.render_user(u) for u in self.store.users.values()]
            return 200, self._page("users", items, query, 50)
        return 404, {"error": "Not Found"}

    def _conversations(self, query: dict) -> tuple[int, dict]:
        # https://developer.helpscout.com/mailbox-api/endpoints/conversations/list/
        # status defaults to active (all: every status), sortField/sortOrder, modifiedSince
        # (modified after), page, embed=threads.
        status = query.get("status", "active")
        convs = list(self.store.conversations.values())
        if status != "all":
            wanted = {"open": "active"}.get(status, status)
            convs = [c for c in convs if c.status == wanted]
        if query.get("modifiedSince"):
            since = _parse(query["modifiedSince"])
            if since is None:
                return 400, {"error": "Bad Request", "message": "modifiedSince: not a date"}
            convs = [c for c in convs if c.modified_at > since]
        field = {"modifiedAt": "modified_at", "number": "number"}.get(
            query.get("sortField", "createdAt"), "created_at"
        )
        descending = query.get("sortOrder", "desc") == "desc"
        convs.sort(key=lambda c: (getattr(c, field), c.id), reverse=descending)
        embed = "threads" in query.get("embed", "").split(",")
        items = [self.store.render_conversation(c, embed) for c in convs]
        return 200, self._page("conversations", items, query, PAGE_SIZE)

    def _customers(self, query: dict) -> tuple[int, dict]:
        # https://developer.helpscout.com/mailbox-api/endpoints/customers/list/: sortField
        # createdAt (default), firstName, lastName, modifiedAt; sortOrder desc (default);
        # modifiedSince (modified after); page; 50 a page.
        people = list(self.store.customers.values())
        if query.get("modifiedSince"):
            since = _parse(query["modifiedSince"])
            if since is None:
                return 400, {"error": "Bad Request", "message": "modifiedSince: not a date"}
            people = [p for p in people if p.modified_at > since]
        field = {"firstName": "first", "lastName": "last", "modifiedAt": "modified_at"}.get(
            query.get("sortField", "createdAt"), "created_at"
        )
        descending = query.get("sortOrder", "desc") == "desc"
        people.sort(key=lambda p: (getattr(p, field), p.id), reverse=descending)
        items = [self.store.render_customer(p) for p in people]
        return 200, self._page("customers", items, query, CUSTOMERS_PAGE)

    def _page(self, key: str, items: list, query: dict, size: int) -> dict:
        # https://developer.helpscout.com/mailbox-api/overview/pagination/
        size = min(size, self.page_limit or size)
        number = max(1, int(query.get("page") or 1))
        pages = max(1, math.ceil(len(items) / size))
        chunk = items[(number - 1) * size : number * size]
        base = f"{self.store.api_url}/v2/{key}"
        links = {"self": {"href": f"{base}?page={number}"}, "first": {"href": f"{base}?page=1"},
                 "last": {"href": f"{base}?page={pages}"}}  # fmt: skip
        if number < pages:
            links["next"] = {"href": f"{base}?page={number + 1}"}
        return {
            "_embedded": {key: chunk},
            "_links": links,
            "page": {"size": size, "totalElements": len(items), "totalPages": pages,
                     "number": number},
        }  # fmt: skip


def _parse(value: str) -> int | None:
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None
