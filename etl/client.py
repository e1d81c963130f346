"""HTTP access to the Smarticks API: auth, timeouts, retries, a shared rate-limit gate, paging.

The key travels only in the `X-Smarticks-API-Key` header, never in a URL, so it cannot leak
into error messages, logs or progress output, all of which name the path alone. It is added
per request, and only to requests for the API's own origin (scheme, host and port): no
redirect is followed off that origin (see `Client._exchange`), and `Client.download` fetches
files elsewhere without it.
"""

from __future__ import annotations

import ctypes
import ipaddress
import itertools
import json
import multiprocessing
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from etl import timeutil
from etl.errors import (
    ApiError,
    AuthError,
    ConfigError,
    Conflict,
    NotFound,
    OutcomeUnknown,
    PagingError,
    ValidationFailed,
)
from etl.redact import redact_url

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "smarticks-etl"
KEY_HEADER = "X-Smarticks-API-Key"
MAX_REDIRECTS = 5
DOWNLOAD_CHUNK = 256 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, exponential backoff with jitter, and a bound on total waiting.

    `max_total_wait` is the patience (`--max-wait`): the most one request waits in all, and
    the longest Retry-After accepted at all.
    """

    attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 300.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the given 1-based attempt."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header given in seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def insecure_url_warning(url: str) -> str | None:
    """A warning when the key would cross a network in clear text (http to a non-loopback host)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return None
    host = parts.hostname or ""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return f"http://{server_name(url)} is plain http: the API key crosses the network unencrypted"


def origin(url: str) -> tuple[str, str, int | None]:
    """A URL's origin (scheme, host, port with the scheme's default filled in): whom the key
    may go to. Any user info in the URL is no part of it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def server_name(url: str) -> str:
    """A URL's host and port as a message names the server: never a user or password in it."""
    return urlsplit(url).netloc.rpartition("@")[2].lower() or "the server"


def json_body(
    response: requests.Response, path: str, decode: Callable[[bytes], Any] = json.loads
) -> Any:
    """A GET response's JSON (None for an empty body), read by the standard library's decoder.

    `response.json()` uses simplejson whenever it is installed (dlt brings it), and it decodes
    a page of conversations about 13% slower. A body that is not JSON (a proxy's HTML page) is
    an ApiError that says so. `decode` may replace `json.loads` (see `rawjson.page_reader`).
    """
    if not response.content:
        return None
    try:
        return decode(response.content)
    except ValueError as exc:  # also UnicodeDecodeError
        kind = response.headers.get("Content-Type") or "no Content-Type"
        raise ApiError(response.status_code, "GET", path, f"not JSON ({kind}): {exc}") from None


def error_detail(response: requests.Response) -> tuple[str, list[dict]]:
    """The API's own message and per-field errors, as one readable line and the raw list."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return (response.reason or "").strip(), []
    if not isinstance(body, dict):
        return "", []
    errors = (body.get("_embedded") or {}).get("errors") or []
    parts = [f"{e.get('path')}: {e.get('message')}" for e in errors if isinstance(e, dict)]
    message = str(body.get("message") or "")
    return "; ".join(parts) if parts else message, errors


class RateGate:
    """One gate for every request: after a 429 nobody sends until its Retry-After has passed.

    Threads share a gate by sharing the object. A gate made `shared` keeps its reopening time
    in shared memory, so processes forked after it was made share it too (time.monotonic is
    one clock for every process of a machine).
    """

    def __init__(self, shared: bool = False) -> None:
        if shared:
            self._reopens = multiprocessing.get_context("fork").Value("d", 0.0)
            self._lock = self._reopens.get_lock()
        else:
            self._reopens = ctypes.c_double(0.0)
            self._lock = threading.Lock()

    def close_for(self, seconds: float) -> None:
        with self._lock:
            self._reopens.value = max(self._reopens.value, time.monotonic() + seconds)

    def wait(self) -> None:
        while True:
            with self._lock:
                delay = self._reopens.value - time.monotonic()
            if delay <= 0:
                return
            time.sleep(delay)


@dataclass
class Client:
    """A Smarticks API client. `requests_made` counts every HTTP request sent."""

    url: str
    api_key: str = field(repr=False)
    timeout: tuple[float, float] = (10.0, 60.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pool_size: int = 16
    # When set (the sync's fetch processes share one), a request is sent only while holding
    # it, so `--workers` caps the requests in flight, not the readers.
    in_flight: Any = field(default=None, repr=False)
    gate: RateGate | None = field(default=None, repr=False)  # made here unless shared
    # Page-number walks (the small resources) stop with an error past this many pages.
    max_pages: int = 500
    requests_made: int = 0
    retries_made: int = 0

    def __post_init__(self) -> None:
        if not self.url:
            raise ConfigError("no API URL: pass --url or set SMARTICKS_URL")
        if not self.api_key:
            raise ConfigError("no API key: pass --api-key or set SMARTICKS_API_KEY")
        self.url = self.url.rstrip("/")
        if not urlsplit(self.url).scheme.startswith("http"):
            shown = redact_url(self.url)
            raise ConfigError(f"URL must start with http:// or https://, got {shown!r}")
        self.gate = self.gate or RateGate()
        self._count_lock = threading.Lock()
        self._rng = random.Random()
        self.session = requests.Session()
        # requests reads the environment (proxies, CA bundle, ~/.netrc) on every request; each
        # look-up drops the GIL and queued behind page transforms for it. Read it once here.
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(self.url)
        # As requests reads them: an empty variable is unset, never "do not verify".
        self.session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=2, pool_maxsize=self.pool_size, max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # The key is no session header: `_exchange` adds it to requests for the API's origin.
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        self._origin = origin(self.url)

    def close(self) -> None:
        self.session.close()

    # -- requests -------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a JSON document, retrying transient failures (GETs are safe to repeat)."""
        return json_body(self.get_response(path, params), path)

    def get_response(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET, retrying transient failures, and return the response undecoded."""
        return self._send("GET", path, params=params, idempotent=True)

    def post(self, path: str, body: Mapping[str, Any]) -> requests.Response:
        """POST JSON. Retried only when the request surely did not take effect (429, refused)."""
        return self._send("POST", path, body=body, idempotent=False)

    def put(self, path: str, body: Mapping[str, Any]) -> requests.Response:
        """PUT JSON; a PUT sets state, so repeating it is safe."""
        return self._send("PUT", path, body=body, idempotent=True)

    def delete(self, path: str) -> requests.Response:
        return self._send("DELETE", path, idempotent=True)

    def create(self, path: str, body: Mapping[str, Any]) -> int:
        """POST a new entity and return the id from the 201's Resource-ID (or Location)."""
        response = self.post(path, body)
        rid = response.headers.get("Resource-ID")
        if not rid and response.headers.get("Location"):
            rid = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        if not rid or not str(rid).isdigit():
            raise ApiError(response.status_code, "POST", path, "201 without a Resource-ID header")
        return int(rid)

    def download(self, url: str, out: BinaryIO) -> int:
        """Stream a file into `out` and return the bytes written.

        `url` is absolute or a path under the API's URL. The key goes only to the API's own
        origin: a file elsewhere, or a redirect off the origin (followed for files, at most
        MAX_REDIRECTS, never from https down to http), is fetched without it from then on.
        A retry (dropped connection, 5xx, 429 after its Retry-After) starts `out` over.
        """
        absolute = url if urlsplit(url).scheme else f"{self.url}/{url.lstrip('/')}"
        shown = redact_url(absolute)
        if urlsplit(absolute).scheme.lower() not in ("http", "https"):
            raise ApiError(None, "GET", shown, "only http(s) files can be downloaded")
        written = 0

        def attempt() -> requests.Response:
            nonlocal written
            response = self._exchange("GET", shown, absolute, follow_elsewhere=True)
            if response.status_code >= 300:
                read_whole(response)
                return response
            out.seek(0)
            out.truncate()
            written = 0
            try:
                for chunk in response.iter_content(DOWNLOAD_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
            finally:
                response.close()
            return response

        self._retrying("GET", shown, attempt, idempotent=True, server=absolute)
        return written

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        idempotent: bool,
    ) -> requests.Response:
        url = f"{self.url}/{path.lstrip('/')}"
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if data else None

        def attempt() -> requests.Response:
            response = self._exchange(method, path, url, params=params, data=data, headers=headers)
            if method == "GET":
                read_whole(response)
            return response

        return self._retrying(method, path, attempt, idempotent=idempotent, server=self.url)

    def _exchange(
        self,
        method: str,
        path: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        follow_elsewhere: bool = False,
    ) -> requests.Response:
        """Send one request and follow a GET's redirects; a GET's response is left streamed.

        requests would follow any redirect with the session's headers, so the key would reach
        whatever host a 302 names, and a POST redirected by 302 would go again as a GET
        without its body. Here a write is never redirected, and a GET only within the API's
        origin; with `follow_elsewhere` (files) anywhere, but the key is dropped for good at
        the first hop off the origin. Each hop counts as a request.
        """
        keyed = True
        for _hop in range(MAX_REDIRECTS + 1):
            keyed = keyed and origin(url) == self._origin
            sent = {**(headers or {}), **({KEY_HEADER: self.api_key} if keyed else {})}
            self._count()
            response = self.session.request(
                method,
                url,
                params=params,
                data=data,
                headers=sent,
                timeout=self.timeout,
                stream=method == "GET",
                allow_redirects=False,
            )
            if not 300 <= response.status_code < 400:
                return response
            response.close()
            here = response.url or url
            location = response.headers.get("Location")
            status = response.status_code
            if not location:
                raise ApiError(status, method, path, f"a redirect without a Location from {here}")
            there = urljoin(here, location)
            move = f"{redact_url(here)} redirected to {redact_url(there)}"
            if method != "GET":
                raise ApiError(status, method, path, f"{move}: a {method} is never redirected")
            if urlsplit(there).scheme.lower() not in ("http", "https"):
                raise ApiError(status, method, path, f"{move}: not an http(s) address")
            if not follow_elsewhere and origin(there) != self._origin:
                raise ApiError(
                    status, method, path, f"{move}: not followed, the API key stays on its host"
                )
            if origin(here)[0] == "https" and origin(there)[0] != "https":
                raise ApiError(status, method, path, f"{move}: not followed from https to http")
            url, params = there, None
        raise ApiError(status, method, path, f"more than {MAX_REDIRECTS} redirects, last {move}")

    def _retrying(
        self,
        method: str,
        path: str,
        attempt: Callable[[], requests.Response],
        *,
        idempotent: bool,
        server: str,
    ) -> requests.Response:
        """Call `attempt` until it gets an answer that is not transient, as RetryPolicy says.

        A Retry-After longer than the patience (`retry.max_total_wait`, `--max-wait`) fails at
        once, before the shared gate is closed: nobody waits for it, in no thread or process.
        """
        waited = 0.0
        for number in itertools.count(1):
            self.gate.wait()
            try:
                with self.in_flight or nullcontext():
                    response = attempt()
            except requests.RequestException as exc:
                failure: Exception = exc
                response = None
                if not (idempotent or _not_sent(exc)):
                    raise OutcomeUnknown(method, path, _describe(exc, server)) from exc
            if response is not None:
                status = response.status_code
                if status < 400:
                    return response
                if status not in RETRY_STATUSES or not (idempotent or status == 429):
                    if status in RETRY_STATUSES:
                        raise OutcomeUnknown(method, path, f"HTTP {status}")
                    raise _status_error(method, path, response)
                failure = _status_error(method, path, response)
            delay = self.retry.backoff(number, self._rng)
            if response is not None and response.status_code == 429:
                after = parse_retry_after(response.headers.get("Retry-After"))
                if after is not None:
                    if after > self.retry.max_total_wait:
                        raise ApiError(
                            429,
                            method,
                            path,
                            f"the server asked to wait {after:.0f} s (Retry-After), longer than"
                            f" --max-wait {self.retry.max_total_wait:.0f} s",
                        )
                    delay = after
                    self.gate.close_for(after)
            if number >= self.retry.attempts or waited + delay > self.retry.max_total_wait:
                raise _give_up(method, path, failure, number, server)
            waited += delay
            with self._count_lock:
                self.retries_made += 1
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _count(self) -> None:
        with self._count_lock:
            self.requests_made += 1


# urllib3's errors while a body is read, and what requests raises for each (as `content` does).
_BODY_ERRORS = (
    (urllib3.exceptions.ProtocolError, requests.exceptions.ChunkedEncodingError),
    (urllib3.exceptions.DecodeError, requests.exceptions.ContentDecodingError),
    (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ConnectionError),
    (urllib3.exceptions.SSLError, requests.exceptions.SSLError),
)


def read_whole(response: requests.Response) -> None:
    """Read a streamed response's body in one call, as `response.content` will return it.

    requests reads a body in 10 KB pieces, and each piece gives up the GIL and must win it
    back from whatever thread is transforming a page: a 500 KB page took 9.3 ms to read
    beside a busy thread, against 3.4 ms in one call (1.9 against 1.1 ms of CPU). Errors
    become the exceptions requests raises for them, so retries see no difference.
    """
    try:
        body = response.raw.read(decode_content=True)
    except tuple(error for error, _ in _BODY_ERRORS) as exc:
        response.close()
        raise next(ours for error, ours in _BODY_ERRORS if isinstance(exc, error))(exc) from exc
    # What requests itself sets once it has read a body; the connection goes back to the pool.
    response._content = body or b""
    response._content_consumed = True
    response.close()


def _not_sent(exc: requests.RequestException) -> bool:
    """True when the request never reached the server (connection refused or timed out)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _describe(exc: Exception, url: str) -> str:
    """What went wrong on the wire, naming the server and the system's reason when it gave one."""
    server = server_name(url)
    if isinstance(exc, requests.Timeout):
        return f"{server} did not answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"the TLS handshake with {server} failed (does it speak https?)"
    if isinstance(exc, requests.ConnectionError):
        found = _ERRNO.search(str(exc))
        reason = f" ({found[1].strip()})" if found else ""
        if _not_sent(exc):
            return f"could not connect to {server}{reason}"
        return f"{server} dropped the connection{reason}"
    return type(exc).__name__


def _status_error(method: str, path: str, response: requests.Response) -> ApiError:
    detail, errors = error_detail(response)
    status = response.status_code
    if status in (401, 403):
        why = "the API key was refused" + (f" ({detail})" if detail else "")
        return AuthError(status, method, path, why)
    if status == 400:
        return ValidationFailed(method, path, detail, errors)
    if status == 404:
        return NotFound(status, method, path, detail)
    if status == 409:
        return Conflict(status, method, path, detail)
    return ApiError(status, method, path, detail)


def _give_up(method: str, path: str, failure: Exception, attempts: int, url: str) -> ApiError:
    if isinstance(failure, ApiError):
        return ApiError(failure.status, method, path, f"{failure.detail} (after {attempts} tries)")
    return ApiError(None, method, path, f"{_describe(failure, url)} (after {attempts} tries)")


# -- paging ---------------------------------------------------------------------------------


@dataclass
class Page:
    """One page of a list endpoint: the records not seen before, and the server's total."""

    items: list[dict]
    total: int | None


_AFTER_KEY = re.compile(rb'\s*:\s*"([^"\\]{1,64})"')


def peek_last(body: bytes, field_name: str) -> tuple[int, str | None]:
    """How often `field_name` occurs in a raw page, and its last value, without decoding it.

    A keyset page's records are sorted on that field, so its last value is the one the next
    page starts from. Only a guess (a nested object might carry the same key), to be checked.
    """
    key = b'"' + field_name.encode() + b'"'
    at = body.rfind(key)
    if at < 0:
        return 0, None
    value = _AFTER_KEY.match(body, at + len(key))
    return body.count(key), value[1].decode() if value else None


class _Ahead:
    """The next page's request, sent before this page is decoded, in case the guess is right."""

    def __init__(self, client: Client, path: str, query: dict[str, Any]):
        self.query = query
        self.response: requests.Response | None = None
        self.thread = threading.Thread(target=self._run, args=(client, path), daemon=True)
        self.thread.start()

    def _run(self, client: Client, path: str) -> None:
        try:
            self.response = client.get_response(path, self.query)
        except Exception:  # noqa: BLE001 - the caller asks again and gets the error itself
            self.response = None

    def take(self, query: dict[str, Any]) -> requests.Response | None:
        """Its response if it asked for `query` and got one; else None, and the caller asks."""
        if query != self.query:
            return None
        self.thread.join()
        return self.response


def iter_pages(
    client: Client,
    path: str,
    key: str,
    params: Mapping[str, Any] | None = None,
    *,
    page_size: int = 100,
    keyset: tuple[str, str] | None = None,
    stop_before: str | None = None,
    max_requests: int = 1_000_000,
    look_ahead: bool = True,
    decode: Callable[[bytes], Any] = json.loads,
) -> Iterator[Page]:
    """Yield every page of a list endpoint; the one paging loop for all of them.

    With `keyset=(field, since_param)` (e.g. `("updatedAt", "updatedSince")`, sorted ascending
    on that field), each page after the first restarts from page 1 with `since_param` set to one
    second before the last record's timestamp. Page numbers then never shift when records change
    or vanish mid-sync: a changed record moves to the end, where the walk still reaches it.
    Records already yielded at the boundary second are dropped.

    More records than a page sharing one second can only be read by page number inside that
    second, where a change can shift one past a page boundary; so such a second is read again
    until a pass finds nothing new.

    `stop_before` (keyset only) ends the walk at the first record stamped at or after it: the
    sync splits one list into segments read in parallel that way.

    With `look_ahead` (keyset only), the request for the page after a full one goes out as
    soon as that page arrives, guessed from its raw text, and the page is decoded meanwhile;
    the walk uses the response only if it then asks for exactly that page.

    `decode` turns a page's body into its document (see `json_body`).

    Guards: a page identical to the previous one, or a walk that stops advancing, raises
    PagingError instead of looping forever.
    """
    base = {k: v for k, v in (params or {}).items() if v is not None}
    field_name, since_param = keyset or (None, None)
    anchor = base.pop(since_param, None) if since_param else None
    page_number = 1
    seen: dict[tuple[Any, Any], None] = {}
    previous_ids: list | None = None
    total: int | None = None
    stalled = 0
    requests = 0
    block: str | None = None  # the second being read by page number, if any
    look_ahead = look_ahead and field_name is not None
    ahead: _Ahead | None = None
    misses = 0

    def fetch(since: str | None, number: int) -> tuple[list[dict], dict]:
        nonlocal requests, ahead, misses
        requests += 1
        if requests > max_requests:
            raise PagingError(path, f"gave up after {max_requests} requests")
        query = {**base, "page": number, "pageSize": page_size}
        if since is not None:
            query[since_param] = since
        response = None
        if ahead is not None:
            response = ahead.take(query)
            misses += response is None
            ahead = None
        if response is None:
            response = client.get_response(path, query)
        if look_ahead and misses < 3 and block is None:
            ahead = guess_next(response.content, since)
        document = json_body(response, path, decode) or {}
        return ((document.get("_embedded") or {}).get(key)) or [], document.get("page") or {}

    def guess_next(body: bytes, since: str | None) -> _Ahead | None:
        """Start the request for the page after a full one, while this one is decoded.

        The walk's usual next step: page 1 from one second before the last record. The request
        is used only if the walk then asks for exactly it; after three wrong guesses it stops
        guessing, so an API this guess does not fit costs at most three requests.
        """
        count, last = peek_last(body, field_name)
        if count < page_size or not last or (stop_before is not None and last >= stop_before):
            return None
        try:
            following = timeutil.one_second_before(last)
            if since is not None and timeutil.parse(following) <= timeutil.parse(since):
                return None
        except ValueError:
            return None
        return _Ahead(
            client, path, {**base, "page": 1, "pageSize": page_size, since_param: following}
        )

    def keep(records: list[dict]) -> tuple[list[dict], bool]:
        """The records not yielded before, and whether `stop_before` was reached."""
        fresh = []
        for record in records:
            if stop_before is not None and record[field_name] >= stop_before:
                return fresh, True
            mark = (record.get("id"), record.get(field_name) if field_name else None)
            if mark not in seen:
                seen[mark] = None
                fresh.append(record)
        return fresh, False

    def reread(second: str) -> Iterator[Page]:
        """Read one crowded second again, pass after pass, until a pass finds nothing new."""
        for _ in range(5):
            found = 0
            for number in itertools.count(1):
                records, _info = fetch(timeutil.one_second_before(second), number)
                inside = [r for r in records if r[field_name] == second]
                fresh, _ = keep(inside)
                found += len(fresh)
                if fresh:
                    yield Page(fresh, total)
                if len(inside) < len(records) or len(records) < page_size:
                    break
            if not found:
                return

    while True:
        records, info = fetch(anchor, page_number)
        if total is None:
            total = info.get("totalElements")
        ids = [r.get("id") for r in records]
        if records and ids == previous_ids:
            raise PagingError(path, f"the server returned the same page twice (page {page_number})")
        previous_ids = ids
        fresh, reached_end = keep(records)
        yield Page(fresh, total)
        last_page = len(records) < page_size or reached_end
        if field_name is None:
            total_pages = info.get("totalPages")
            if last_page or (isinstance(total_pages, int) and page_number >= total_pages):
                return
            page_number += 1
            continue
        stalled = 0 if fresh else stalled + 1
        if stalled > 3:
            raise PagingError(path, "paging stopped advancing: full pages of records already seen")
        last = records[-1][field_name] if records else None
        if block is not None and (last_page or last != block):
            yield from reread(block)
            block = None
        if last_page:
            return
        new_anchor = timeutil.one_second_before(last)
        if anchor is None or timeutil.parse(new_anchor) > timeutil.parse(anchor):
            anchor = new_anchor
            seen = {m: None for m in seen if m[1] >= last}
            # The new window starts at the records of second `last`; skip whole pages of them
            # that were already read instead of asking for them again.
            page_number = len(seen) // page_size + 1
        else:
            page_number += 1
        if page_number > 1:
            block = last
