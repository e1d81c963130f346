"""Reading a Help Scout account through the Mailbox API 2.0: HTTP only, nothing is saved here.

- Auth: OAuth2 client credentials (`POST /v2/oauth2/token` with the app's id and secret) for
  a bearer token, asked again once when the API says the token expired (they last 2 days).
  The secret travels in that form body only, the token in the Authorization header only.
- Conversations: `GET /v2/conversations?status=all&embed=threads`, in createdAt order (which
  no change moves, so pages do not shift under a reader), filtered by `modifiedSince` from the
  second run on. A walk's cursor is where it is (since, page) and when it began (until); the
  next walk starts from `until`.
- Customers: `GET /v2/customers`, walked like the conversations, each with its entries
  embedded. Users: `GET /v2/users`, every page. Attachments: `GET .../attachments/{id}/data`,
  base64.
- 429: wait Help Scout's `X-RateLimit-Retry-After` (or `Retry-After`); 5xx: backoff.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from etl.client import insecure_url_warning
from etl.errors import ApiError, AuthError, ConfigError, PagingError
from etl.mapping import one_second_before
from etl.sources.http import Counted, Retrying, api_base, display, json_body, server_time, session

DEFAULT_URL = "https://api.helpscout.net"
MAX_PAGES = 100_000


@dataclass
class ConversationPage:
    conversations: list[dict]
    cursor: dict  # where the walk goes on from after this page


@dataclass
class HelpScoutReader(Counted):
    """GETs against one Help Scout account; `requests_made` counts every request sent."""

    url: str
    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    http: Retrying = field(
        default_factory=lambda: Retrying(
            retry_after_headers=("X-RateLimit-Retry-After", "Retry-After")
        )
    )

    def __post_init__(self) -> None:
        self.url = api_base(self.url or DEFAULT_URL, "/v2")
        if not self.client_id or not self.client_secret:
            raise ConfigError(
                "no Help Scout app credentials: pass --source-client-id and "
                "--source-client-secret (or set HELPSCOUT_CLIENT_ID and HELPSCOUT_CLIENT_SECRET)"
            )
        self.session = session()
        self._token: str | None = None

    @property
    def warning(self) -> str | None:
        found = insecure_url_warning(self.url)
        return found.replace("the API key", "the app secret") if found else None

    def close(self) -> None:
        self.session.close()

    # -- the endpoints ---------------------------------------------------------------------

    def conversation_pages(self, cursor: dict | None) -> Iterator[ConversationPage]:
        """Every conversation changed since the last walk (all of them the first time)."""
        params = {"status": "all", "embed": "threads"}
        for items, after in self._changed("v2/conversations", "conversations", params, cursor):
            yield ConversationPage(items, after)

    def customer_pages(self, cursor: dict | None) -> Iterator[ConversationPage]:
        """Every customer changed since the last walk (all of them the first time), each with
        its emails, phones, social profiles, websites and address embedded."""
        for items, after in self._changed("v2/customers", "customers", {}, cursor):
            yield ConversationPage(items, after)

    def _changed(
        self, path: str, key: str, extra: dict, cursor: dict | None
    ) -> Iterator[tuple[list[dict], dict]]:
        """A list's pages in createdAt order (which no change moves, so pages do not shift
        under a reader), `modifiedSince` the last walk: (records, the cursor after them)."""
        cursor = dict(cursor or {})
        since, number, until = (
            cursor.get("since"),
            int(cursor.get("page") or 1),
            cursor.get("until"),
        )
        for _ in range(MAX_PAGES):
            params = {**extra, "sortField": "createdAt", "sortOrder": "asc", "page": number}
            if since:
                params["modifiedSince"] = since
            body, response = self._get(path, params)
            until = until or server_time(response)
            page = body.get("page") or {}
            items = list((body.get("_embedded") or {}).get(key) or [])
            if number >= int(page.get("totalPages") or 1) or not items:
                yield items, {"since": one_second_before(until)}
                return
            number += 1
            yield items, {"since": since, "page": number, "until": until}
        raise PagingError(f"/{path}", f"more than {MAX_PAGES} pages")

    def users(self) -> list[dict]:
        out: list[dict] = []
        for number in range(1, MAX_PAGES):
            body, _ = self._get("v2/users", {"page": number})
            out.extend((body.get("_embedded") or {}).get("users") or [])
            if number >= int((body.get("page") or {}).get("totalPages") or 1):
                return out
        raise PagingError("/v2/users", f"more than {MAX_PAGES} pages")

    def attachment(self, url: str) -> bytes | None:
        """An attachment's bytes from its Get Attachment Data link; None when it is gone."""
        path = urlsplit(url).path.lstrip("/")
        if urlsplit(url).netloc != urlsplit(self.url).netloc:
            raise ApiError(None, "GET", display(url), "an attachment link off the API's host")
        try:
            body, _ = self._get(path, {})
        except ApiError as exc:
            if exc.status in (404, 410):
                return None
            raise
        try:
            return base64.b64decode(body.get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(200, "GET", f"/{path}", "the attachment data is not base64") from None

    # -- requests ----------------------------------------------------------------------------

    def _get(self, path: str, params: dict) -> tuple[dict, requests.Response]:
        for attempt in (1, 2):
            response = self.http.send(
                self.session, "GET", f"{self.url}/{path}", f"/{path}",
                params=params, headers={"Authorization": f"Bearer {self.token()}"},
            )  # fmt: skip
            if response.status_code == 401 and attempt == 1:
                self._token = None  # expired: ask for a new one, once
                continue
            break
        body = json_body(response, path, "Help Scout refused the token", _detail)
        return (body if isinstance(body, dict) else {}), response

    def token(self) -> str:
        if self._token is None:
            response = self.http.send(
                self.session, "POST", f"{self.url}/v2/oauth2/token", "/v2/oauth2/token",
                data={"grant_type": "client_credentials", "client_id": self.client_id,
                      "client_secret": self.client_secret},
            )  # fmt: skip
            if response.status_code in (400, 401, 403):
                raise AuthError(
                    response.status_code,
                    "POST",
                    "/v2/oauth2/token",
                    "Help Scout refused the app's id and secret "
                    "(check --source-client-id/--source-client-secret)",
                )
            if response.status_code >= 400:
                raise ApiError(response.status_code, "POST", "/v2/oauth2/token", "")
            self._token = str((response.json() or {}).get("access_token") or "")
            if not self._token:
                raise ApiError(response.status_code, "POST", "/v2/oauth2/token", "no token")
        return self._token


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.reason or "").strip()
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or "")
    return ""
