"""Reading a Zendesk account through its API: HTTP only, nothing is saved here.

- Auth: Basic with `{email}/token:{api_token}` (Zendesk's API token authentication). The token
  travels in that header only, and only to the account's host: attachment files are fetched by
  a second session that carries no credentials, following Zendesk's redirects to wherever the
  files live.
- Tickets: the cursor-based incremental export (`/api/v2/incremental/tickets/cursor.json`),
  from `start_time=0` or a saved cursor, with the ticket metrics side-loaded
  (`include=metric_sets`) for `solved_at`. Deleted tickets are in the export, with status
  `deleted`.
- Comments: `/api/v2/tickets/{id}/comments.json` with cursor pagination (`page[size]`).
- Users: `/api/v2/users/show_many.json`, 100 ids a request; every end user through the
  cursor-based incremental user export, with identities (all emails, phones, social
  handles) and organizations side-loaded by show_many; the user fields' titles.
- 429: wait the `Retry-After` seconds and ask again (the export allows 10 requests a minute);
  5xx and dropped connections: retried with backoff. Every request is a GET, safe to repeat.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import requests

from etl.client import insecure_url_warning
from etl.errors import ApiError, ConfigError, PagingError
from etl.sources.http import Counted, Download, Retrying, api_base, download, json_body, session

EXPORT_PATH = "api/v2/incremental/tickets/cursor.json"
USERS_PATH = "api/v2/incremental/users/cursor.json"
EXPORT_PAGE = 1000  # the export's largest page
COMMENTS_PAGE = 100  # cursor pagination's largest page
SHOW_MANY = 100  # ids per show_many request


@dataclass
class TicketPage:
    """One page of the incremental export: tickets, their metric sets, the cursor after it."""

    tickets: list[dict]
    metric_sets: list[dict]
    after_cursor: str
    end_of_stream: bool


@dataclass
class UserPage:
    """One page of the incremental user export, with its end users' identities and
    organizations, and the cursor after it."""

    users: list[dict]
    identities: list[dict]
    organizations: list[dict]
    after_cursor: str
    end_of_stream: bool


@dataclass
class ZendeskReader(Counted):
    """GETs against one Zendesk account; `requests_made` counts every request sent."""

    url: str
    email: str = field(repr=False)
    token: str = field(repr=False)
    http: Retrying = field(default_factory=Retrying)
    page_size: int = EXPORT_PAGE

    def __post_init__(self) -> None:
        if not self.url:
            raise ConfigError(
                "no Zendesk address: pass --source-url (https://SUBDOMAIN.zendesk.com)"
            )
        if not self.email or not self.token:
            raise ConfigError(
                "no Zendesk credentials: pass --source-email and --source-token "
                "(or set ZENDESK_EMAIL and ZENDESK_TOKEN)"
            )
        self.url = api_base(self.url, "/api/v2")
        self.session = session()
        self.session.auth = (f"{self.email}/token", self.token)
        self.files = session()  # attachment downloads: never any credentials

    def close(self) -> None:
        self.session.close()
        self.files.close()

    @property
    def warning(self) -> str | None:
        """A warning when the token would cross a network unencrypted."""
        found = insecure_url_warning(self.url)
        return found.replace("the API key", "the Zendesk token") if found else None

    # -- the endpoints ---------------------------------------------------------------------

    def ticket_pages(self, cursor: str | None) -> Iterator[TicketPage]:
        """Export pages from `cursor` (None: from the beginning) until the end of the stream."""
        for body, after, end in self._export(EXPORT_PATH, cursor, {"include": "metric_sets"}):
            yield TicketPage(
                list(body.get("tickets") or []), list(body.get("metric_sets") or []), after, end
            )

    def user_pages(self, cursor: str | None) -> Iterator[UserPage]:
        """The incremental user export from `cursor` (None: from the beginning), each page's
        end users with their identities and organizations side-loaded."""
        for body, after, end in self._export(USERS_PATH, cursor, {}):
            users = list(body.get("users") or [])
            wanted = [u["id"] for u in users if u.get("role") == "end-user"]
            found = self.users(wanted, include="identities,organizations")
            yield UserPage(users, found.get("identities", []), found.get("organizations", []),
                           after, end)  # fmt: skip

    def _export(
        self, path: str, cursor: str | None, extra: dict
    ) -> Iterator[tuple[dict, str, bool]]:
        """A cursor-based incremental export's pages: (body, the cursor after it, whether the
        stream ended); from `cursor`, or from the beginning (`start_time=0`)."""
        params: dict = {"per_page": self.page_size, **extra}
        if cursor:
            params["cursor"] = cursor
        else:
            params["start_time"] = 0
        while True:
            body = self._get_json(path, params)
            after = body.get("after_cursor") or cursor or ""
            end = bool(body.get("end_of_stream"))
            yield body, after, end
            if end:
                return
            empty = not any(isinstance(v, list) and v for v in body.values())
            if not after or (after == cursor and empty):
                raise PagingError(f"/{path}", "the export did not advance its cursor")
            cursor = after
            params = {"per_page": self.page_size, **extra, "cursor": cursor}

    def comments(self, ticket_id: int | str) -> list[dict]:
        """Every comment of a ticket, oldest first."""
        path = f"api/v2/tickets/{ticket_id}/comments.json"
        params: dict = {"page[size]": COMMENTS_PAGE}
        out: list[dict] = []
        seen: set[str] = set()
        while True:
            body = self._get_json(path, params)
            out.extend(body.get("comments") or [])
            meta = body.get("meta") or {}
            after = meta.get("after_cursor")
            if not meta.get("has_more") or not after:
                return out
            if after in seen:
                raise PagingError(f"/{path}", "the same page came back twice")
            seen.add(after)
            params = {"page[size]": COMMENTS_PAGE, "page[after]": after}

    def users(self, ids: Iterable[int | str], include: str = "") -> dict[str, list[dict]]:
        """The users with these ids (unknown ids are left out by Zendesk), and what `include`
        side-loads (`identities`, `organizations`), by their key in the answer."""
        wanted = sorted({str(i) for i in ids if i is not None})
        out: dict[str, list[dict]] = {"users": []}
        for start in range(0, len(wanted), SHOW_MANY):
            params = {"ids": ",".join(wanted[start : start + SHOW_MANY])}
            if include:
                params["include"] = include
            body = self._get_json("api/v2/users/show_many.json", params)
            for key in ("users", *filter(None, include.split(","))):
                out.setdefault(key, []).extend(body.get(key) or [])
        return out

    def user_fields(self) -> list[dict]:
        """The custom user fields (keys and titles), following `next_page`."""
        return self._listed("api/v2/user_fields.json", "user_fields")

    def ticket_fields(self) -> list[dict]:
        """The ticket fields (titles, dropdown options), following `next_page`."""
        return self._listed("api/v2/ticket_fields.json", "ticket_fields")

    def _listed(self, path: str, key: str) -> list[dict]:
        """Every record of an offset-paginated list, following `next_page` on the account."""
        out: list[dict] = []
        body = self._get_json(path, {})
        for _ in range(1000):
            out.extend(body.get(key) or [])
            following = body.get("next_page")
            if not following or not str(following).startswith(self.url + "/"):
                return out
            body = self._get_json(str(following)[len(self.url) + 1 :], {})
        raise PagingError(f"/{path}", "more than 1000 pages")

    def download(self, url: str) -> Download | None:
        """An attachment's bytes, following redirects, without credentials; None when gone."""
        return download(self.http, self.files, url)

    # -- requests ----------------------------------------------------------------------------

    def _get_json(self, path: str, params: dict) -> dict:
        url = f"{self.url}/{path}"
        response = self.http.send(self.session, "GET", url, f"/{path}", params=params)
        refused = "Zendesk refused the email and API token (check --source-email/--source-token)"
        body = json_body(response, path, refused, _detail)
        if not isinstance(body, dict):
            raise ApiError(response.status_code, "GET", f"/{path}", "not a JSON object")
        return body


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.reason or "").strip()
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("title") or "")
        return " ".join(str(p) for p in (error, body.get("description")) if p)
    return ""
