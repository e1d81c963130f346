"""Reading a Freshdesk account through its API v2: HTTP only, nothing is saved here.

- Auth: Basic with the API key as the user name and `X` as the password; only to the
  account's host. Attachment links are signed S3 URLs: fetched by a session that carries no
  credentials (S3 refuses a request with two kinds of auth anyway).
- Tickets: `GET /api/v2/tickets?updated_since=...&order_by=updated_at&order_type=asc` with
  the requester and the stats (resolved_at, closed_at) included, 100 a page, walked as a
  keyset (see `ticket_pages`), the `Link: rel="next"` header saying whether more follow.
  Without `updated_since` Freshdesk lists only the last 30 days: the first walk asks from
  1970. A walk's cursor is (since, page, until); the next walk starts from `until`. Spam
  and deleted tickets are listed only by `filter=spam` and `filter=deleted`, read in full
  each run so that the summary counts them.
- Conversations: `GET /api/v2/tickets/{id}/conversations`. Agents: `GET /api/v2/agents`.
- Contacts: `GET /api/v2/contacts` (every one, then those changed `_updated_since` the last
  walk), with the companies and contact fields to name their company and custom fields.
  Contacts who answered on a ticket they did not open: `GET /api/v2/contacts/{id}`.
- 429: wait its `Retry-After`; 5xx: backoff.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import requests

from etl.client import insecure_url_warning
from etl.errors import ApiError, ConfigError, PagingError
from etl.mapping import one_second_before
from etl.sources.http import (
    Counted,
    Download,
    Retrying,
    api_base,
    download,
    json_body,
    server_time,
    session,
)

PER_PAGE = 100
MAX_PAGES = 300  # Freshdesk's List All Tickets stops at page 300 (the keyset walk stays far below)
FOREVER = "1970-01-01T00:00:00Z"


@dataclass
class TicketPage:
    tickets: list[dict]
    cursor: dict


@dataclass
class FreshdeskReader(Counted):
    """GETs against one Freshdesk account; `requests_made` counts every request sent."""

    url: str
    api_key: str = field(repr=False)
    http: Retrying = field(default_factory=Retrying)

    def __post_init__(self) -> None:
        if not self.url:
            raise ConfigError(
                "no Freshdesk address: pass --source-url (https://DOMAIN.freshdesk.com)"
            )
        if not self.api_key:
            raise ConfigError(
                "no Freshdesk API key: pass --source-api-key (or set FRESHDESK_API_KEY)"
            )
        self.url = api_base(self.url, "/api/v2")
        self.session = session()
        self.session.auth = (self.api_key, "X")
        self.files = session()  # signed attachment links: never any credentials

    @property
    def warning(self) -> str | None:
        found = insecure_url_warning(self.url)
        return found.replace("the API key", "the Freshdesk API key") if found else None

    def close(self) -> None:
        self.session.close()
        self.files.close()

    # -- the endpoints ---------------------------------------------------------------------

    def ticket_pages(self, cursor: dict | None) -> Iterator[TicketPage]:
        """Every ticket changed since the last walk (all of them the first time).

        A keyset walk in updated_at order: each next request asks page 1 again from the last
        `updated_at` seen (inclusive), so a ticket that changes meanwhile moves to the end of
        the walk instead of pushing others past a page boundary, and the walk never reaches
        Freshdesk's page limit; only a second holding more than a page steps page numbers.
        """
        cursor = dict(cursor or {})
        since, until = cursor.get("since") or FOREVER, cursor.get("until")
        number = int(cursor.get("page") or 1)
        while number <= MAX_PAGES:
            params = {"updated_since": since, "order_by": "updated_at", "order_type": "asc",
                      "per_page": PER_PAGE, "page": number,
                      "include": "requester,stats"}  # fmt: skip
            items, response = self._get("api/v2/tickets", params)
            until = until or server_time(response)
            if not _has_next(response) or not items:
                yield TicketPage(items, {"since": one_second_before(until)})
                return
            last = items[-1].get("updated_at") or since
            if last != since:
                since, number = last, 1
            else:  # a second crowded beyond one page
                number += 1
            yield TicketPage(items, {"since": since, "page": number, "until": until})
        raise PagingError("/api/v2/tickets", f"more than {MAX_PAGES} pages within {since}")

    def contact_pages(self, cursor: dict | None) -> Iterator[TicketPage]:
        """Every contact changed since the last walk (all of them the first time): page by
        page with `_updated_since` the last walk's start; the cursor is (since, page, until)."""
        cursor = dict(cursor or {})
        since, until = cursor.get("since"), cursor.get("until")
        number = int(cursor.get("page") or 1)
        while number <= MAX_PAGES:
            params: dict = {"per_page": PER_PAGE, "page": number}
            if since:
                params["_updated_since"] = since
            items, response = self._get("api/v2/contacts", params)
            until = until or server_time(response)
            if not _has_next(response) or not items:
                yield TicketPage(items, {"since": one_second_before(until)})
                return
            number += 1
            yield TicketPage(items, {"since": since, "page": number, "until": until})
        raise PagingError("/api/v2/contacts", f"more than {MAX_PAGES} pages")

    def companies(self) -> list[dict]:
        return self._all("api/v2/companies", {"per_page": PER_PAGE})

    def contact_fields(self) -> list[dict]:
        items, _ = self._get("api/v2/contact_fields", {})
        return list(items or [])

    def flagged(self, which: str) -> list[dict]:
        """Every ticket under a predefined filter: `spam` or `deleted`."""
        return self._all("api/v2/tickets", {"filter": which, "per_page": PER_PAGE})

    def conversations(self, ticket_id: int | str) -> list[dict]:
        return self._all(f"api/v2/tickets/{ticket_id}/conversations", {"per_page": PER_PAGE})

    def agents(self) -> list[dict]:
        return self._all("api/v2/agents", {"per_page": PER_PAGE})

    def contacts(self, ids: Iterable[int | str]) -> list[dict]:
        out = []
        for ident in sorted({str(i) for i in ids if i is not None}):
            try:
                body, _ = self._get(f"api/v2/contacts/{ident}", {})
            except ApiError as exc:
                if exc.status == 404:  # deleted since: the thread keeps its author's id only
                    continue
                raise
            out.append(body)
        return out

    def download(self, url: str) -> Download | None:
        """A signed attachment link's bytes, without credentials; None when gone or expired."""
        return download(self.http, self.files, url)

    # -- requests ----------------------------------------------------------------------------

    def _all(self, path: str, params: dict) -> list[dict]:
        out: list[dict] = []
        for number in range(1, MAX_PAGES + 1):
            items, response = self._get(path, {**params, "page": number})
            out.extend(items)
            if not _has_next(response):
                return out
        raise PagingError(f"/{path}", f"more than {MAX_PAGES} pages")

    def _get(self, path: str, params: dict):
        response = self.http.send(self.session, "GET", f"{self.url}/{path}", f"/{path}",
                                  params=params)  # fmt: skip
        refused = "Freshdesk refused the API key (check --source-api-key)"
        return json_body(response, path, refused, _detail), response


def _has_next(response: requests.Response) -> bool:
    return "next" in (response.links or {})


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.reason or "").strip()
    if isinstance(body, dict):
        errors = "; ".join(
            f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or []
        )
        return errors or str(body.get("message") or body.get("description") or "")
    return ""
