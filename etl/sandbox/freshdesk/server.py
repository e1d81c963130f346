"""The Freshdesk emulation over HTTP: the API v2 endpoints `etl migrate freshdesk` calls on
`http://127.0.0.1:PORT` (standing for https://acme.freshdesk.com), and the signed attachment
links on `http://localhost:PORT2` (standing for Freshdesk's S3 storage)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from urllib.parse import urlencode

from etl.sandbox.emulation import Emulation, Reply, Request, json_reply

from .store import FreshdeskStore

PER_PAGE_MAX = 100  # https://developers.freshdesk.com/api/#pagination
MAX_PAGES = 300  # List All Tickets stops at page 300
RATE_LIMIT = 400  # requests per minute (https://developers.freshdesk.com/api/#ratelimit)


class FreshdeskSandbox(Emulation):
    """A seeded Freshdesk account on loopback."""

    server_name = "FreshdeskSandbox/1.0"

    def __init__(
        self,
        seed: int = 1,
        tickets: int = 30,
        api_key: str = "freshdesk-sandbox-key",
        page_limit: int | None = None,
        **options,
    ):
        super().__init__(**options)
        self.store = FreshdeskStore(seed, tickets)
        self.api_key, self.page_limit = api_key, page_limit

    def started(self) -> None:
        self.store.base_url, self.store.files_url = self.url, self.files_url

    def rate_limited(self) -> Reply:
        # https://developers.freshdesk.com/api/#ratelimit: 429 with Retry-After in seconds
        headers = {"Retry-After": str(self.retry_after), "X-RateLimit-Total": str(RATE_LIMIT),
                   "X-RateLimit-Remaining": "0"}  # fmt: skip
        return json_reply(429, {"message": "You have exceeded the limit of requests"}, headers)

    def handle(self, request: Request) -> Reply:
        if request.role == "files":
            return self._signed_file(request)
        if request.path == "/inline/attachment":
            # Inline images: public token links on the account's own host.
            item = self.store.files.get(request.query.get("token", ""))
            return Reply(200, item.data, item.mime) if item else Reply(404, b"", "text/plain")
        if not self._authorized(request):
            # https://developers.freshdesk.com/api/#authentication
            body = {"code": "invalid_credentials",
                    "message": "You have to be logged in to perform this action."}  # fmt: skip
            return json_reply(401, body)
        with self.store.lock:
            status, body, link = self._route(request)
        remaining = max(0, RATE_LIMIT - len(self.request_log) % RATE_LIMIT)
        headers = {"X-RateLimit-Total": str(RATE_LIMIT), "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Used-CurrentRequest": "1"}  # fmt: skip
        if link:
            headers["Link"] = f'<{link}>; rel="next"'
        return json_reply(status, body, headers)

    def _authorized(self, request: Request) -> bool:
        # Basic auth with the API key as the user name and any password ("X").
        scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        return scheme.lower() == "basic" and user.partition(":")[0] == self.api_key

    def _signed_file(self, request: Request) -> Reply:
        if self.file_request_with_credentials(request):
            return Reply(400, b"<Error>Only one auth mechanism allowed</Error>", "text/xml")
        token = request.path.strip("/").split("/", 1)[0]
        item = self.store.files.get(token)
        if item is None or not request.query.get("X-Amz-Signature"):
            return Reply(403, b"<Error>AccessDenied</Error>", "text/xml")
        return Reply(200, item.data, item.mime)

    def _route(self, request: Request) -> tuple[int, object, str | None]:
        path, query = request.path, request.query
        if path == "/api/v2/tickets":
            return self._tickets(query)
        found = re.fullmatch(r"/api/v2/tickets/(\d+)/conversations", path)
        if found:
            ticket = self.store.tickets.get(int(found[1]))
            if ticket is None or ticket.deleted:
                return 404, {"code": "not_found"}, None
            items = [self.store.render_note(ticket, n) for n in ticket.notes]
            return self._page(path, items, query)
        if path == "/api/v2/agents":
            items = [self.store.render_agent(a) for a in sorted(self.store.agents)]
            return self._page(path, items, query)
        if path == "/api/v2/contacts":
            return self._contacts(query)
        if path == "/api/v2/companies":
            items = [self.store.render_company(c) for c in sorted(self.store.companies)]
            return self._page(path, items, query)
        if path == "/api/v2/contact_fields":
            return 200, self.store.render_contact_fields(), None
        found = re.fullmatch(r"/api/v2/contacts/(\d+)", path)
        if found:
            person = self.store.contacts.get(int(found[1]))
            if person is None:
                return 404, {"code": "not_found"}, None
            return 200, self.store.render_contact(person), None
        return 404, {"code": "not_found", "message": "No such endpoint"}, None

    def _tickets(self, query: dict) -> tuple[int, object, str | None]:
        # https://developers.freshdesk.com/api/#list_all_tickets: without updated_since only the
        # last 30 days; spam and deleted tickets only under filter=spam / filter=deleted;
        # order_by created_at|due_by|updated_at|status; include=requester,stats.
        tickets = list(self.store.tickets.values())
        wanted = query.get("filter")
        if wanted == "spam":
            tickets = [t for t in tickets if t.spam and not t.deleted]
        elif wanted == "deleted":
            tickets = [t for t in tickets if t.deleted]
        else:
            tickets = [t for t in tickets if not t.spam and not t.deleted]
            if query.get("updated_since"):
                since = _parse(query["updated_since"])
                if since is None:
                    return _invalid_date("updated_since")
                tickets = [t for t in tickets if t.updated_at >= since]
            else:
                newest = max((t.updated_at for t in tickets), default=0)
                tickets = [t for t in tickets if t.updated_at >= newest - 30 * 86400]
        key = {"updated_at": "updated_at", "status": "status"}.get(
            query.get("order_by", "created_at"), "created_at"
        )
        tickets.sort(
            key=lambda t: (getattr(t, key), t.id), reverse=query.get("order_type") != "asc"
        )
        include = set(query.get("include", "").split(","))
        items = [self.store.render_ticket(t, include) for t in tickets]
        return self._page("/api/v2/tickets", items, query)

    def _contacts(self, query: dict) -> tuple[int, object, str | None]:
        # https://developers.freshdesk.com/api/#list_all_contacts: filters email, mobile,
        # phone, company_id, state, _updated_since; paged like every list.
        people = sorted(self.store.contacts.values(), key=lambda p: p.id)
        if query.get("_updated_since"):
            since = _parse(query["_updated_since"])
            if since is None:
                return _invalid_date("_updated_since")
            people = [p for p in people if (p.updated_at or 0) >= since]
        for key in ("email", "phone", "mobile"):
            if query.get(key):
                people = [p for p in people if getattr(p, key) == query[key]]
        items = [self.store.render_contact(p) for p in people]
        return self._page("/api/v2/contacts", items, query)

    def _page(self, path: str, items: list, query: dict) -> tuple[int, object, str | None]:
        # https://developers.freshdesk.com/api/#pagination: page, per_page (30, at most 100),
        # and a Link header with rel="next" while there are more.
        size = min(int(query.get("per_page") or 30), PER_PAGE_MAX, self.page_limit or 10**9)
        number = max(1, int(query.get("page") or 1))
        if number > MAX_PAGES:
            return 400, {"description": "Validation failed", "errors": [
                {"field": "page", "message": "must be at most 300"}]}, None  # fmt: skip
        chunk = items[(number - 1) * size : number * size]
        link = None
        if number * size < len(items):
            link = f"{self.store.base_url}{path}?" + urlencode({**query, "page": number + 1})
        return 200, chunk, link


def _invalid_date(name: str) -> tuple[int, object, None]:
    # https://developers.freshdesk.com/api/#error (a 400 lists each field's problem)
    errors = [{"field": name, "message": "invalid date", "code": "invalid_value"}]
    return 400, {"description": "Validation failed", "errors": errors}, None


def _parse(value: str) -> int | None:
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None
