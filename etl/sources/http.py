"""The retry loop every source reader shares: HTTP only.

429: wait what the source says (`Retry-After`, or its own header such as Help Scout's
`X-RateLimit-Retry-After`), never less; a wait longer than the patience
(`RetryPolicy.max_total_wait`) fails at once. 5xx and dropped connections: backoff with
jitter, and so is an answer still arriving at the exchange's deadline (`--timeout`, read as
the Smarticks client reads). Messages name the path, never a query string or a credential.
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

from etl import timeutil
from etl.client import (
    AnswerTooLarge,
    RetryPolicy,
    describe,
    parse_retry_after,
    read_body,
    server_name,
)
from etl.deadline import DEFAULT_DEADLINE, DeadlineAdapter, socket_waits, watched
from etl.errors import ApiError, AuthError, ConfigError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "smarticks-etl (migration)"


def session() -> requests.Session:
    """A session that reads nothing from the environment: credentials go only where set.
    Its connections keep to the deadline of `Retrying`'s exchanges, headers included."""
    made = requests.Session()
    made.trust_env = False  # no ~/.netrc
    made.mount("http://", DeadlineAdapter())
    made.mount("https://", DeadlineAdapter())
    made.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
    return made


def server_time(response: requests.Response) -> str:
    """The server's clock at a response (its Date header, else ours), as the APIs write times:
    where a walk that began then takes up next time."""
    try:
        when = parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        when = datetime.now(UTC)
    return timeutil.format(when)


def api_base(url: str, api_path: str) -> str:
    """The account's address as given, without a trailing slash or the API's path (`/api/v2`);
    a ConfigError unless it is http(s)."""
    url = url.rstrip("/")
    if url.endswith(api_path):
        url = url[: -len(api_path)]
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"--source-url must start with https://, got {url!r}")
    return url


@dataclass
class Download:
    data: bytes
    content_type: str


def download(http: Retrying, files: requests.Session, url: str) -> Download | None:
    """A file's bytes and type, by a session that carries no credentials (the link is enough);
    None when the file is gone (403, 404, 410)."""
    response = http.send(files, "GET", url, display(url))
    if response.status_code in (403, 404, 410):
        return None
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip()
    return Download(response.content, kind)


def json_body(
    response: requests.Response,
    path: str,
    refused: str,
    detail: Callable[[requests.Response], str],
):
    """A GET's JSON body. 401/403: an AuthError saying `refused`; another error: an ApiError
    with the source's own `detail` of it; a body that is not JSON: an ApiError."""
    if response.status_code in (401, 403):
        raise AuthError(response.status_code, "GET", f"/{path}", refused)
    if response.status_code >= 400:
        raise ApiError(response.status_code, "GET", f"/{path}", detail(response))
    try:
        return response.json()
    except ValueError:
        raise ApiError(response.status_code, "GET", f"/{path}", "not JSON") from None


class Counted:
    """A reader's `requests_made` and `rate_limited`, as its `http` counts them."""

    http: Retrying

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    @property
    def rate_limited(self) -> int:
        return self.http.rate_limited


def display(url: str) -> str:
    """A URL as messages name it: host and path, never a query (tokens live there)."""
    return f"{server_name(url)}{urlsplit(url).path}"


@dataclass
class Retrying:
    """Sends requests with the retry rules above; counts requests and 429s (thread-safe)."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: tuple[float, float] = (10.0, 60.0)
    deadline: float = DEFAULT_DEADLINE  # one exchange in all (--timeout)
    retry_after_headers: tuple[str, ...] = ("Retry-After",)
    requests_made: int = 0
    rate_limited: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random()
        self._lock = threading.Lock()

    def send(
        self, http: requests.Session, method: str, url: str, what: str, **kwargs
    ) -> requests.Response:
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            with self._lock:
                self.requests_made += 1
            try:
                response = self._exchange(http, method, url, what, **kwargs)
            except requests.RequestException as exc:
                response, failure = None, describe(exc, url)
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                failure = f"HTTP {response.status_code}"
            delay = self.retry.backoff(attempt, self._rng)
            if response is not None and response.status_code == 429:
                with self._lock:
                    self.rate_limited += 1
                after = self._retry_after(response)
                delay = after if after is not None else max(delay, 10.0)
                if after is not None and after > self.retry.max_total_wait:
                    raise ApiError(
                        429,
                        method,
                        what,
                        f"the source asks to wait {after:.0f} s, more than --max-wait "
                        f"{self.retry.max_total_wait:.0f} s",
                    )
            if attempt >= self.retry.attempts or waited + delay > self.retry.max_total_wait:
                raise ApiError(None, method, what, f"{failure} (after {attempt} tries)")
            waited += delay
            time.sleep(delay)

    def _exchange(
        self, http: requests.Session, method: str, url: str, what: str, **kwargs
    ) -> requests.Response:
        """One request, its body read within the deadline. The body read is what the
        response's `content` and `json()` give from then on (its `raw`)."""
        waits = socket_waits(self.timeout, self.deadline)
        with watched(self.deadline) as deadline:
            response = http.request(method, url, timeout=waits, stream=True, **kwargs)
            try:
                body = read_body(response, deadline)
            except AnswerTooLarge as exc:
                raise ApiError(response.status_code, method, what, str(exc)) from None
            finally:
                response.close()
        response.raw = io.BytesIO(body)
        return response

    def _retry_after(self, response: requests.Response) -> float | None:
        for name in self.retry_after_headers:
            found = parse_retry_after(response.headers.get(name))
            if found is not None:
                return found
        return None
