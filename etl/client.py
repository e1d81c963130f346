"""HTTP access to the Smarticks API: auth, timeouts, retries and a shared rate-limit gate.

Requests go through `requests`, and urllib3's `Retry` repeats a GET (or PUT, DELETE) on a
connection error or a 5xx, with exponential backoff; a connection that cannot be made at all
is tried only a few times. A 429 is not urllib3's (it would sleep inside one thread, for as
long as the server asks): it closes the client's `RateGate`, shared by every thread, so that
no request goes out before its Retry-After has passed, and a Retry-After longer than the
patience (`--max-wait`) fails at once. A POST is repeated only when it surely did not reach
the server; otherwise its outcome is unknown (`OutcomeUnknown`) and the caller looks first.

Every exchange also has a deadline (`--timeout`, 300 s by default, as aiohttp's total
timeout): the socket timeouts bound each wait for a byte, not a server that trickles a few
bytes just inside them forever. Until the answer's headers are in, `etl.deadline` watches
the connection and hangs it up at the deadline; bodies are read in the pieces that have
arrived (`read_pieces`), and the deadline is checked between them. An answer still arriving
when it passes is dropped like a broken connection (`DeadlineExceeded`) and retried as one.

The key travels only in the `X-Smarticks-API-Key` header, never in a URL, so it cannot leak
into error messages, logs or progress output, all of which name the path alone. It is added
per request, and only to requests for the API's own origin (scheme, host and port): no
redirect is followed off that origin (see `Client._exchange`), and `Client.download` fetches
files elsewhere without it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from urllib3.util import Retry

from etl.deadline import (
    DEFAULT_DEADLINE,
    Deadline,
    DeadlineAdapter,
    DeadlineExceeded,
    socket_waits,
    watched,
)
from etl.deadline import current as current_deadline
from etl.errors import (
    ApiError,
    AuthError,
    ConfigError,
    Conflict,
    NotFound,
    OutcomeUnknown,
    ValidationFailed,
)
from etl.redact import redact_url

SERVER_ERRORS = frozenset({500, 502, 503, 504})  # repeated by urllib3's Retry
RETRY_STATUSES = SERVER_ERRORS | {429}
USER_AGENT = "smarticks-etl"
KEY_HEADER = "X-Smarticks-API-Key"
MAX_REDIRECTS = 5
DOWNLOAD_CHUNK = 256 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, exponential backoff with jitter, and a bound on total waiting.

    `attempts` bounds the tries of one request for 5xx answers, dropped connections and
    429s; a connection that cannot be made (refused, unknown host) gets `connect_attempts`
    tries, about 3 s of waiting with the defaults, since waiting longer rarely helps.
    `max_total_wait` is the patience (`--max-wait`): the most one request waits for 429s in
    all, and the longest Retry-After accepted at all.
    """

    attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 300.0
    connect_attempts: int = 4

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the given 1-based attempt."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def for_urllib3(self) -> Retry:
        """urllib3's Retry for connection errors and 5xx; 429 and redirects stay with us."""
        return _Retry(
            total=self.attempts - 1,
            connect=min(self.attempts, self.connect_attempts) - 1,
            redirect=False,
            status_forcelist=SERVER_ERRORS,
            allowed_methods=frozenset({"GET", "PUT", "DELETE"}),  # never a POST: not idempotent
            backoff_factor=self.base_delay,
            backoff_max=self.max_delay,
            backoff_jitter=self.base_delay,
            respect_retry_after_header=False,  # a 5xx backs off; a Retry-After is the gate's
            raise_on_status=False,  # the last 5xx comes back, and becomes our error
        )


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


@dataclass
class Reply:
    """A response with its whole body, read once (see `read_body`)."""

    response: requests.Response
    body: bytes

    @property
    def status(self) -> int:
        return self.response.status_code


def json_body(reply: Reply, path: str) -> Any:
    """A GET's JSON (None for an empty body).

    A body that is not JSON (a proxy's HTML page) is an ApiError that says so.
    """
    if not reply.body:
        return None
    try:
        return json.loads(reply.body)
    except ValueError as exc:  # also UnicodeDecodeError
        kind = reply.response.headers.get("Content-Type") or "no Content-Type"
        raise ApiError(reply.status, "GET", path, f"not JSON ({kind}): {exc}") from None


def error_detail(reply: Reply) -> tuple[str, list[dict]]:
    """The API's own message and per-field errors, as one readable line and the raw list."""
    try:
        body = json.loads(reply.body)
    except ValueError:
        return (reply.response.reason or "").strip(), []
    if not isinstance(body, dict):
        return "", []
    errors = (body.get("_embedded") or {}).get("errors") or []
    parts = [f"{e.get('path')}: {e.get('message')}" for e in errors if isinstance(e, dict)]
    message = str(body.get("message") or "")
    return "; ".join(parts) if parts else message, errors


class RateGate:
    """One gate for every thread of a client: after a 429 nobody sends until its Retry-After.

    `close_for` is only called with a wait within the patience (see `Client._retrying`), so
    nobody waits here longer than `--max-wait`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reopens = 0.0  # time.monotonic() when requests may go out again

    def close_for(self, seconds: float) -> None:
        with self._lock:
            self._reopens = max(self._reopens, time.monotonic() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._reopens - time.monotonic())

    def wait(self) -> None:
        while (delay := self.remaining()) > 0:
            time.sleep(delay)


class _Retry(Retry):
    """urllib3's Retry, reporting each retry to its client and waiting through the client.

    urllib3 makes a new Retry for every retry (`new`); each carries the client along.
    """

    client: Client | None = None

    def new(self, **kw: Any) -> _Retry:
        retry = super().new(**kw)
        retry.client = self.client
        return retry

    def increment(self, *args: Any, **kwargs: Any) -> _Retry:
        retry = super().increment(*args, **kwargs)  # raises once the tries are used up
        if self.client is not None:
            self.client._count()
            self.client._note_retry()
        return retry

    def sleep(self, response: Any = None) -> None:
        last = self.history[-1] if self.history else None
        reason = f"HTTP {last.status}" if last and last.status else _short(last and last.error)
        if self.client is not None:
            self.client._pause(self.get_backoff_time(), reason)
            if (deadline := current_deadline()) is not None:
                deadline.restart()  # the try that follows is a new exchange
        else:
            super().sleep(response)


def _short(error: Exception | None) -> str:
    """An urllib3 error as a few words for a retry notice."""
    if error is None:
        return "no answer"
    found = _ERRNO.search(str(error))
    return found[1].strip() if found else type(error).__name__


@dataclass
class Client:
    """A Smarticks API client, safe to share between threads.

    `requests_made` counts every HTTP request sent, retries and redirect hops included.
    `on_retry(seconds, reason)`, when set, hears of each wait before a retry (for a notice
    such as "retrying in 4 s: Connection refused").
    """

    url: str
    api_key: str = field(repr=False)
    timeout: tuple[float, float] = (10.0, 60.0)  # connect, and each wait for a byte
    deadline: float = DEFAULT_DEADLINE  # one exchange in all, redirects and body included
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pool_size: int = 16
    # Page-number walks (the small resources) stop with an error past this many pages.
    max_pages: int = 500
    on_retry: Callable[[float, str], None] | None = field(default=None, repr=False)
    # Clients of one server share a gate (a load's file downloads and its API calls).
    gate: RateGate | None = field(default=None, repr=False)
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
        self._tries = threading.local()  # tries of the request this thread is making
        self._rng = random.Random()
        self.session = requests.Session()
        # The environment (proxies, CA bundle) is read once, here; ~/.netrc never: the API
        # takes its key, and a password for the same host must not go along.
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(self.url)
        # As requests reads them: an empty variable is unset, never "do not verify".
        self.session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        retry = self.retry.for_urllib3()
        retry.client = self
        adapter = DeadlineAdapter(
            pool_connections=2, pool_maxsize=self.pool_size, max_retries=retry
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # The key is no session header: `_exchange` adds it to requests for the API's origin.
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        self._origin = origin(self.url)
        # No single wait (to connect, for the next bytes) is longer than a whole exchange.
        self._waits = socket_waits(self.timeout, self.deadline)

    def close(self) -> None:
        self.session.close()

    # -- requests -------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a JSON document, retrying transient failures (GETs are safe to repeat)."""
        return json_body(self._send("GET", path, params=params, idempotent=True), path)

    def post(self, path: str, body: Mapping[str, Any]) -> requests.Response:
        """POST JSON. Retried only when the request surely did not take effect (429, refused)."""
        return self._send("POST", path, body=body, idempotent=False).response

    def put(self, path: str, body: Mapping[str, Any]) -> requests.Response:
        """PUT JSON; a PUT sets state, so repeating it is safe."""
        return self._send("PUT", path, body=body, idempotent=True).response

    def delete(self, path: str) -> requests.Response:
        return self._send("DELETE", path, idempotent=True).response

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
        A retry (dropped connection, 5xx, 429 after its Retry-After) starts `out` over. A 404
        is NotFound; messages show the URL redacted (a file URL's token is a credential).
        """
        absolute = url if urlsplit(url).scheme else f"{self.url}/{url.lstrip('/')}"
        shown = redact_url(absolute)
        if urlsplit(absolute).scheme.lower() not in ("http", "https"):
            raise ApiError(None, "GET", shown, "only http(s) files can be downloaded")
        written = 0

        def attempt(deadline: Deadline) -> Reply:
            nonlocal written
            response = self._exchange("GET", shown, absolute, follow_elsewhere=True)
            if response.status_code >= 300:
                try:  # the error's body, for its message
                    return Reply(response, read_body(response, deadline))
                except AnswerTooLarge as exc:
                    raise ApiError(response.status_code, "GET", shown, str(exc)) from None
            out.seek(0)
            out.truncate()
            written = 0
            try:
                for chunk in read_pieces(response, DOWNLOAD_CHUNK, deadline):
                    out.write(chunk)
                    written += len(chunk)
            finally:
                response.close()
            return Reply(response, b"")

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
    ) -> Reply:
        url = f"{self.url}/{path.lstrip('/')}"
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if data else None

        def attempt(deadline: Deadline) -> Reply:
            response = self._exchange(method, path, url, params=params, data=data, headers=headers)
            try:  # a body cut short or past the deadline fails here, inside the retries
                return Reply(response, read_body(response, deadline))
            except AnswerTooLarge as exc:
                raise ApiError(response.status_code, method, path, str(exc)) from None

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
        """Send one request and follow a GET's redirects; the response is left streamed, for
        the caller to read under its deadline.

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
                timeout=self._waits,
                stream=True,
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
                why = f"{move}: not followed, the API key stays on its host"
                if origin(there)[:2] == ("https", self._origin[1]) and self._origin[0] == "http":
                    why += " (if the server moved to https, pass that as --url)"
                raise ApiError(status, method, path, why)
            if origin(here)[0] == "https" and origin(there)[0] != "https":
                raise ApiError(status, method, path, f"{move}: not followed from https to http")
            url, params = there, None
        raise ApiError(status, method, path, f"more than {MAX_REDIRECTS} redirects, last {move}")

    def _retrying(
        self,
        method: str,
        path: str,
        attempt: Callable[[Deadline], Reply],
        *,
        idempotent: bool,
        server: str,
    ) -> Reply:
        """Call `attempt` until it gets an answer that is not transient, as RetryPolicy says;
        each call is an exchange with a deadline of its own, which `attempt` is given.

        Inside `attempt`, urllib3's Retry has repeated connection errors and 5xx already. What
        is left here: a 429, which closes the shared gate for its Retry-After (one longer than
        the patience, `retry.max_total_wait` or `--max-wait`, fails at once, before the gate
        is closed, so nobody waits for it), a body cut short after its headers arrived,
        which urllib3 never sees, and an exchange past its deadline.
        """
        self._tries.count = 0
        waited = 0.0
        number = 0
        while True:
            number += 1
            self.gate.wait()
            try:
                with watched(self.deadline) as deadline:  # each try an exchange of its own
                    reply = attempt(deadline)
            except requests.RequestException as exc:
                if not idempotent and not _not_sent(exc):
                    raise OutcomeUnknown(method, path, describe(exc, server)) from exc
                if not idempotent or _retried_by_urllib3(exc):
                    raise _give_up(method, path, exc, self._tries.count, server) from exc
                failure: Exception = exc
                delay = self.retry.backoff(number, self._rng)
            else:
                status = reply.status
                if status < 400:
                    return reply
                if status in SERVER_ERRORS:  # urllib3 tried as often as it may
                    if not idempotent:
                        raise OutcomeUnknown(method, path, f"HTTP {status}")
                    error = _status_error(method, path, reply)
                    raise _give_up(method, path, error, self._tries.count, server)
                if status != 429:
                    raise _status_error(method, path, reply)
                failure = _status_error(method, path, reply)
                delay = self._rate_limited(method, path, reply.response, number)
            if (
                self._tries.count >= self.retry.attempts
                or waited + delay > self.retry.max_total_wait
            ):
                raise _give_up(method, path, failure, self._tries.count, server)
            waited += delay
            self._note_retry()
            self._pause(delay, _reason(failure))

    def _rate_limited(
        self, method: str, path: str, response: requests.Response, number: int
    ) -> float:
        """How long to wait after a 429; with a Retry-After, every thread waits that long."""
        after = parse_retry_after(response.headers.get("Retry-After"))
        if after is None:
            return self.retry.backoff(number, self._rng)
        if after > self.retry.max_total_wait:
            raise ApiError(
                429,
                method,
                path,
                f"the server asked to wait {after:.0f} s (Retry-After), longer than"
                f" --max-wait {self.retry.max_total_wait:.0f} s",
            )
        self.gate.close_for(after)
        return after

    def _pause(self, seconds: float, reason: str) -> None:
        """Wait before a retry, then for the gate: no retry goes out inside a Retry-After."""
        if self.on_retry is not None and seconds > 0:
            self.on_retry(seconds, reason)
        time.sleep(seconds)
        self.gate.wait()

    def _count(self) -> None:
        """Count a request about to go out, in all and among this thread's tries."""
        with self._count_lock:
            self.requests_made += 1
        self._tries.count = getattr(self._tries, "count", 0) + 1

    def _note_retry(self) -> None:
        with self._count_lock:
            self.retries_made += 1


def _retried_by_urllib3(exc: requests.RequestException) -> bool:
    """True when urllib3's Retry gave up on this error (it never sees a body cut short)."""
    return bool(exc.args) and isinstance(exc.args[0], urllib3.exceptions.MaxRetryError)


def _reason(failure: Exception) -> str:
    if isinstance(failure, ApiError):
        return f"HTTP {failure.status}" if failure.status else failure.detail
    return _short(failure)


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


def describe(exc: Exception, url: str) -> str:
    """What went wrong on the wire, naming the server and the system's reason when it gave one."""
    server = server_name(url)
    if isinstance(exc, DeadlineExceeded):
        return f"{server} {exc}"
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


# The largest answer read: a page of 1,000 conversations with their threads is about 10 MB.
MAX_ANSWER_BYTES = 256 * 1024 * 1024
READ_BYTES = 1 << 20  # the most taken at once: a page of 100 conversations in a few pieces


class AnswerTooLarge(Exception):
    """A body over MAX_ANSWER_BYTES: a broken or hostile server, not something to retry."""


def read_pieces(response: requests.Response, size: int, deadline: Deadline) -> Iterator[bytes]:
    """A streamed response's body in the pieces that have arrived, each at most `size` bytes,
    while `deadline` allows; past it, DeadlineExceeded.

    urllib3's `read1` returns as soon as some bytes are there (one read of the socket),
    where `read(size)`, `stream` and `iter_content` wait for `size` bytes however slowly
    they come. So the deadline is checked after every wait for a byte, and an exchange ends
    at most one read timeout past it. urllib3's errors become requests' as `iter_content`
    turns them.
    """
    raw = response.raw
    while True:
        deadline.check(response)
        try:
            piece = raw.read1(size, decode_content=True)
        except urllib3.exceptions.ProtocolError as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from exc
        except urllib3.exceptions.DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from exc
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ConnectionError(exc) from exc
        except urllib3.exceptions.SSLError as exc:
            raise requests.exceptions.SSLError(exc) from exc
        if not piece:
            return
        yield piece


def read_body(response: requests.Response, deadline: Deadline) -> bytes:
    """A response's whole body, up to MAX_ANSWER_BYTES, read while `deadline` allows.

    Pieces of up to a megabyte: requests' own `content` reads 10 KB pieces, and with several
    threads each piece waits for the interpreter lock behind whichever thread holds it.
    Errors are the ones requests raises (ChunkedEncodingError, ConnectionError...), as for
    `content`; a body without end is AnswerTooLarge instead of filling the memory, and one
    that trickles past the deadline is DeadlineExceeded.
    """
    pieces, size = [], 0
    for piece in read_pieces(response, READ_BYTES, deadline):
        size += len(piece)
        if size > MAX_ANSWER_BYTES:
            response.close()
            raise AnswerTooLarge(f"an answer over {MAX_ANSWER_BYTES >> 20} MB, not read further")
        pieces.append(piece)
    return b"".join(pieces)


def _status_error(method: str, path: str, reply: Reply) -> ApiError:
    detail, errors = error_detail(reply)
    status = reply.status
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
    return ApiError(None, method, path, f"{describe(failure, url)} (after {attempts} tries)")
