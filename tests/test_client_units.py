"""Unit tests of the client's pure helpers, and of how it talks to a local HTTP server."""

import contextlib
import http.server
import json
import random
import socket
import threading
import time
from datetime import UTC, datetime

import pytest

from etl.client import (
    Client,
    RetryPolicy,
    insecure_url_warning,
    parse_retry_after,
    server_name,
)
from etl.errors import ApiError


def test_retry_after_in_seconds_and_as_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_exponentially_within_the_cap():
    policy = RetryPolicy(base_delay=1, max_delay=10)
    rng = random.Random(1)
    samples = [max(policy.backoff(5, rng) for _ in range(200))]
    assert all(s <= 10 for s in samples)
    assert max(policy.backoff(1, rng) for _ in range(200)) <= 1


def test_plain_http_warning_only_off_loopback():
    assert insecure_url_warning("http://127.0.0.1:8000") is None
    assert insecure_url_warning("http://localhost:8000") is None
    assert insecure_url_warning("http://[::1]:8000") is None
    assert insecure_url_warning("https://help.example.org") is None
    assert "unencrypted" in insecure_url_warning("http://help.example.org")
    assert insecure_url_warning("http://192.0.2.2:8956").startswith("http://192.0.2.2:8956 is")
    assert server_name("http://me:secret@Help.Example.org:8956/api") == "help.example.org:8956"


def test_quiet_keeps_the_plain_http_warning_out_of_cron_mail(capsys):
    from etl.cli.common import make_client

    make_client("http://192.0.2.2:8956", "key", quiet=True).close()
    assert capsys.readouterr().err == ""
    make_client("http://192.0.2.2:8956", "key").close()
    assert "warning: http://192.0.2.2:8956 is plain http" in capsys.readouterr().err


def test_the_key_is_not_in_the_clients_repr():
    client = Client("http://127.0.0.1:1", "s3cret-key")
    assert "s3cret-key" not in repr(client)
    # Nor a session header, which requests would carry along any redirect.
    assert "X-Smarticks-API-Key" not in client.session.headers


@contextlib.contextmanager
def serving(
    body: bytes,
    content_type: str,
    cut_short: int = 0,
    connections: list | None = None,
    status: int = 200,
    fail_first: int | None = None,
    on_failure=None,
):
    """A local HTTP/1.1 server answering every GET with `body`; yields (port, requests seen).

    The first `cut_short` answers stop halfway through the body and drop the connection.
    `connections`, if given, gets the client's port of each request. Answers carry `status`,
    or only the first `fail_first` of them, after calling `on_failure()`; the rest are 200.
    """
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            if connections is not None:
                connections.append(self.client_address[1])
            failing = fail_first is None or len(seen) <= fail_first
            if failing and status != 200 and on_failure is not None:
                on_failure()
            self.send_response(status if failing else 200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if len(seen) <= cut_short:
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port, seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_body_that_is_not_json_is_an_api_error_that_says_so():
    with serving(b"<html><body>Gateway sign-in</body></html>", "text/html") as (port, _):
        client = Client(f"http://127.0.0.1:{port}", "key")
        with pytest.raises(ApiError) as caught:
            client.get("conversations")
        assert str(caught.value).startswith("GET conversations: HTTP 200: not JSON (text/html)")
        client.close()


def test_a_body_is_read_whole_and_the_connection_kept_for_the_next_request():
    body = json.dumps({"items": ["x" * 100] * 5000}).encode()  # 500 KB, as a page of threads
    ports: list[int] = []
    with serving(body, "application/json", connections=ports) as (port, _):
        client = Client(f"http://127.0.0.1:{port}", "key")
        assert [client.get("api/tags") for _ in range(3)] == [json.loads(body)] * 3
        client.close()
    assert len(ports) == 3 and len(set(ports)) == 1  # one keep-alive connection


def test_a_body_cut_short_is_retried_like_any_dropped_connection():
    body = json.dumps({"items": list(range(20000))}).encode()
    with serving(body, "application/json", cut_short=1) as (port, seen):
        client = Client(f"http://127.0.0.1:{port}", "key", retry=RetryPolicy(base_delay=0.01))
        assert client.get("api/tags") == json.loads(body)
        assert client.retries_made == 1 and len(seen) == 2
        client.close()


def test_proxy_settings_are_read_from_the_environment_once_and_netrc_never(monkeypatch, tmp_path):
    (tmp_path / ".netrc").write_text("machine api.example.test login someone password secret\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with serving(b'{"ok": true}', "application/json") as (port, seen):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        client = Client("http://api.example.test", "key")
        monkeypatch.delenv("HTTP_PROXY")  # read when the client was made, not per request
        assert client.get("api/tags") == {"ok": True}
        client.close()
    # the request went through the proxy, with no credentials from ~/.netrc
    assert seen == [("http://api.example.test/api/tags", None)]


@pytest.mark.parametrize(
    ("requests_bundle", "curl_bundle", "verify"),
    [
        (None, None, True),
        ("", "", True),  # empty is unset, as requests reads it: never "do not verify"
        ("/certs/a.pem", "/certs/b.pem", "/certs/a.pem"),
        ("", "/certs/b.pem", "/certs/b.pem"),
    ],
)
def test_certificates_are_verified_against_the_bundle_the_environment_names(
    monkeypatch, requests_bundle, curl_bundle, verify
):
    for name, value in (("REQUESTS_CA_BUNDLE", requests_bundle), ("CURL_CA_BUNDLE", curl_bundle)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    client = Client("https://api.example.test", "key")
    assert client.session.verify == verify
    client.close()


def test_a_server_that_cannot_be_reached_is_named_with_the_reason():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(
        f"http://127.0.0.1:{port}", "key", retry=RetryPolicy(attempts=2, base_delay=0.01)
    )
    with pytest.raises(ApiError) as failed:
        client.get("api/mailboxes")
    client.close()
    assert str(failed.value) == (
        f"GET api/mailboxes: no response: could not connect to 127.0.0.1:{port} "
        "(Connection refused) (after 2 tries)"
    )


def free_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_gets_a_few_tries_and_a_5xx_the_full_patience():
    waits = []
    policy = RetryPolicy(base_delay=0.01)  # 8 tries, 4 of them for connections
    told = lambda seconds, reason: waits.append(reason)  # noqa: E731
    refused = Client(f"http://127.0.0.1:{free_port()}", "key", retry=policy, on_retry=told)
    with pytest.raises(ApiError, match=r"\(Connection refused\) \(after 4 tries\)"):
        refused.get("api/tags")
    assert refused.requests_made == 4 and refused.retries_made == 3
    assert waits == ["Connection refused"] * 2  # urllib3 retries the first failure at once
    with serving(b'{"message": "down"}', "application/json", status=503) as (port, seen):
        failing = Client(f"http://127.0.0.1:{port}", "key", retry=policy)
        with pytest.raises(ApiError, match=r"HTTP 503: down \(after 8 tries\)"):
            failing.get("api/tags")
    assert len(seen) == 8 and failing.requests_made == 8


def test_each_wait_before_a_retry_is_told_with_its_reason():
    told = []
    with serving(b'{"ok": true}', "application/json", status=503, fail_first=2) as (port, _):
        client = Client(
            f"http://127.0.0.1:{port}",
            "key",
            retry=RetryPolicy(base_delay=0.01),
            on_retry=lambda seconds, reason: told.append(reason),
        )
        assert client.get("api/tags") == {"ok": True}
    # urllib3 retries the first 503 at once, then waits: one notice, naming the status
    assert told == ["HTTP 503"]
    assert client.requests_made == 3 and client.retries_made == 2


def test_a_retry_after_a_5xx_waits_for_a_gate_another_thread_closed():
    clients = []
    with serving(
        b'{"ok": true}',
        "application/json",
        status=503,
        fail_first=1,
        on_failure=lambda: clients[0].gate.close_for(0.5),  # as a 429 to another thread would
    ) as (port, seen):
        clients.append(Client(f"http://127.0.0.1:{port}", "key", retry=RetryPolicy()))
        started = time.monotonic()
        assert clients[0].get("api/tags") == {"ok": True}
    assert len(seen) == 2
    # urllib3 retries a first 503 at once; this retry waited for the gate
    assert time.monotonic() - started >= 0.5
