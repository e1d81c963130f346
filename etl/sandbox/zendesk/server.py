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
import re
from itertools import takewhile
from urllib.parse import quote, urlencode

from etl.sandbox.emulation import Emulation, Reply, Request, json_reply

from .store import HOLD_BACK, ZendeskStore

EXPORT_MAX = 1000  # per_page limit of the incremental ticket export
COMMENTS_MAX = 100  # page[size] limit of cursor pagination
SHOW_MANY_MAX = 100  # ids per show_many request
RATE_LIMIT = 700  # requests per minute the account's plan allows (Enterprise)


class ZendeskSandbox(Emulation):
    """A seeded Zendesk account on loopback; fault switches may be changed while it runs."""

    server_name = "ZendeskSandbox/1.0"

    def __init__(
        self,
        seed: int = 1,
        tickets: int = 40,
        email: str = "admin@acme.example.com",
        token: str = "zendesk-sandbox-token",
        page_limit: int | None = None,
        **options,
    ):
        super().__init__(**options)
        self.store = ZendeskStore(seed, tickets)
        self.email, self.token, self.page_limit = email, token, page_limit

    def started(self) -> None:
        self.store.base_url, self.store.files_url = self.url, self.files_url

    def rate_limited(self) -> Reply:
        # https://developer.zendesk.com/api-reference/introduction/rate-limits/
        body = {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"}
        return json_reply(429, body, {"Retry-After": str(self.retry_after)})

    def handle(self, request: Request) -> Reply:
        if request.role == "files":
            return self._serve_file(request)
        found = re.fullmatch(r"/attachments/token/(\w+)/?", request.path)
        if found:
            return self._redirect_to_file(found.group(1))
        if not self._authorized(request):
            # https://developer.zendesk.com/api-reference/introduction/security-and-auth/
            return json_reply(401, {"error": "Couldn't authenticate you"})
        with self.store.lock:
            status, body = _route(self, request.path, request.query)
        remaining = max(0, RATE_LIMIT - len(self.request_log) % RATE_LIMIT)
        # Documented on every Ticketing API response (Best practices for avoiding rate
        # limiting: "Monitoring API activity against your rate limit").
        limits = {
            "X-Rate-Limit": str(RATE_LIMIT),
            "X-Rate-Limit-Remaining": str(remaining),
            "ratelimit-limit": str(RATE_LIMIT),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": "41",
        }
        return json_reply(status, body, limits)

    def _authorized(self, request: Request) -> bool:
        # Basic auth with "{email_address}/token:{api_token}" (API token authentication).
        scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        return user == f"{self.email}/token:{self.token}"

    def _redirect_to_file(self, token: str) -> Reply:
        item = self.store.attachments.get(token)
        if item is None:
            return json_reply(404, {"error": "RecordNotFound", "description": "Not found"})
        location = f"{self.files_url}/{token}/{quote(item.file_name)}"
        return Reply(302, b"", "text/html", {"Location": location})

    def _serve_file(self, request: Request) -> Reply:
        if self.file_request_with_credentials(request):
            return Reply(403, b"credentials sent to the file host", "text/plain")
        token = request.path.strip("/").split("/", 1)[0]
        item = self.store.attachments.get(token)
        if item is None:
            return Reply(404, b"no such file", "text/plain")
        return Reply(200, item.data, item.content_type)


def _route(sandbox: ZendeskSandbox, path: str, query: dict) -> tuple[int, dict]:
    if path == "/api/v2/incremental/tickets/cursor.json":
        return _ticket_export(sandbox, query)
    found = re.fullmatch(r"/api/v2/tickets/(\d+)/comments(\.json)?", path)
    if found:
        return _comments(sandbox, int(found.group(1)), query, path)
    if path in ("/api/v2/users/show_many.json", "/api/v2/users/show_many"):
        return _show_many(sandbox, query)
    if path == "/api/v2/incremental/users/cursor.json":
        return _user_export(sandbox, query)
    if path in ("/api/v2/user_fields.json", "/api/v2/user_fields"):
        # https://developer.zendesk.com/api-reference/ticketing/users/user_fields/ (List)
        fields = sandbox.store.render_user_fields()
        return 200, {"user_fields": fields, "next_page": None, "previous_page": None,
                     "count": len(fields)}  # fmt: skip
    if path in ("/api/v2/ticket_fields.json", "/api/v2/ticket_fields"):
        # https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_fields/
        fields = sandbox.store.render_ticket_fields()
        return 200, {"ticket_fields": fields, "next_page": None, "previous_page": None,
                     "count": len(fields)}  # fmt: skip
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
    # (Incremental Ticket Export, Cursor Based): include= sideloads (metric_sets, users);
    # exclude_deleted; the paging and the rules of `_export`.
    store = sandbox.store
    found = _export(sandbox, query, store.tickets.values(), "tickets")
    if isinstance(found[0], int):
        return found
    page, body = found
    if query.get("exclude_deleted") == "true":
        page = [t for t in page if t.status != "deleted"]
    body["tickets"] = [store.render_ticket(t) for t in page]
    includes = set(query.get("include", "").split(","))
    if "metric_sets" in includes:
        body["metric_sets"] = [store.render_metric_set(t) for t in page]
    if "users" in includes:
        ids = sorted({t.requester_id for t in page} | {t.assignee_id for t in page} - {None})
        body["users"] = [store.render_user(store.users[i]) for i in ids]
    return 200, body


def _user_export(sandbox: ZendeskSandbox, query: dict) -> tuple[int, dict]:
    # (Incremental User Export, Cursor Based): the paging and the rules of `_export`.
    store = sandbox.store
    found = _export(sandbox, query, store.users.values(), "users")
    if isinstance(found[0], int):
        return found
    page, body = found
    body["users"] = [store.render_user(u) for u in page]
    return 200, body


def _export(sandbox: ZendeskSandbox, query: dict, records, name: str):
    """A cursor-based incremental export over `records` (each with `seq`, its place in the
    order of changes, and `updated_at`): (an error status, its body), or (the page's records,
    the body without them). As "Using the Incremental Export API" describes it: `start_time`
    (epoch seconds, not within the last minute) or `cursor`; `per_page` up to 1000; what
    changed within the minute before the request is left out, and the cursor stops before
    it; `end_of_stream` is true once the page reaches that point."""
    store = sandbox.store
    cutoff = store.now() - HOLD_BACK
    ordered = sorted(records, key=lambda r: r.seq)
    if "cursor" in query:
        after = _decode(query["cursor"])
        if after is None:
            return 400, {"error": "InvalidPaginationParameter", "description": "Invalid cursor"}
    elif query.get("start_time", "").isdigit():
        since = int(query["start_time"])
        if since > cutoff:
            too_recent = "Too recent start_time. Use a start_time older than a minute."
            return 400, {"error": "InvalidValue", "description": too_recent}
        after = max((r.seq for r in ordered if r.updated_at < since), default=0)
    else:
        return 400, {"error": "InvalidValue", "description": "start_time or cursor is required"}
    newer = (r for r in ordered if r.seq > after)
    ready = list(takewhile(lambda r: r.updated_at <= cutoff, newer))
    size = min(int(query.get("per_page") or EXPORT_MAX), EXPORT_MAX, sandbox.page_limit or 10**9)
    page = ready[:size]
    cursor = _encode(page[-1].seq if page else after)
    base = f"{store.base_url}/api/v2/incremental/{name}/cursor.json"
    keep = {k: v for k, v in query.items() if k not in ("cursor", "start_time")}
    return page, {
        "after_url": f"{base}?{urlencode({**keep, 'cursor': cursor})}",
        "after_cursor": cursor,
        "before_url": None,
        "before_cursor": None,
        "end_of_stream": len(ready) <= size,
    }


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
    # Side-loads (include=): identities and organizations, as the Users API offers them.
    store = sandbox.store
    found = [store.users.get(int(i)) for i in raw if i.strip().isdigit()]
    users = [u for u in found if u is not None]
    body: dict = {"users": [store.render_user(u) for u in users]}
    includes = set(query.get("include", "").split(","))
    if "identities" in includes:
        body["identities"] = [i for u in users for i in store.render_identities(u)]
    if "organizations" in includes:
        orgs = sorted({u.organization_id for u in users} - {None})
        body["organizations"] = [store.render_organization(o) for o in orgs]
    return 200, body
