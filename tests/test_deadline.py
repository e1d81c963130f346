"""No request without end: a server that trickles its answer, each byte well inside the read
timeout, is dropped at the exchange's deadline (`--timeout`) and handled like a connection
that broke mid-answer, whether it trickles the body or the status line and headers.

Every test drives real HTTP against a server in `tests/hostile.py` that sends a megabyte of
body (half a day) or 60 KB of headers (most of an hour) a byte at a time; the deadlines are
a second or less, and nothing asserts how long anything took. A subprocess's own timeout is
the guard against a hang in it, and `no_hang` against one in this process.
"""

from __future__ import annotations

import faulthandler
import io
import json
import os
import re
import shutil
import sqlite3
import ssl
import subprocess
import sys
import time

import pytest

from etl.client import Client, RetryPolicy
from etl.deadline import WATCHDOG
from etl.errors import ApiError, OutcomeUnknown
from etl.sandbox import Sandbox
from etl.sandbox.zendesk import ZendeskSandbox
from etl.sources.http import Retrying, session
from tests.hostile import Answer, proxy, serve, trickling, trickling_head

TAGS = json.dumps(
    {
        "_embedded": {"tags": [{"id": 1, "name": "vip"}]},
        "page": {"size": 100, "totalElements": 1, "totalPages": 1, "number": 1},
    }
).encode()
JSON = {"Content-Type": "application/json"}
# Far beyond any test here (each takes seconds; the subprocesses' own timeouts are at most
# 120 s), far below the trickles (an hour and more) that a broken deadline would wait out.
HANG_SECONDS = 300


@pytest.fixture(autouse=True)
def no_hang(capfd):
    """A test still running after HANG_SECONDS ends the test run with every thread's stack,
    so a deadline that stopped working fails CI at once instead of waiting out a trickle.

    The stacks go to the terminal's stderr (a copy of it taken while pytest's capture is off),
    not to the capture, which a process that exits takes with it."""
    with capfd.disabled():
        terminal = os.fdopen(os.dup(2), "w")
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=terminal)
    yield
    faulthandler.cancel_dump_traceback_later()
    terminal.close()


FAST = RetryPolicy(attempts=3, base_delay=0.0)
# Each test with `slow` runs against a server that trickles the body, then the headers.
SLOW = pytest.mark.parametrize("slow", [trickling, trickling_head], ids=["body", "headers"])


def answers(*given: Answer, then: Answer):
    """A handler answering with `given` in turn, then `then` for good."""
    queue = iter(given)
    return lambda request: next(queue, then)


@pytest.fixture
def tls(tmp_path, monkeypatch) -> ssl.SSLContext:
    """A server's TLS context with a self-signed certificate for 127.0.0.1, which the clients
    made from now on trust (REQUESTS_CA_BUNDLE)."""
    openssl = shutil.which("openssl") or pytest.skip("no openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@SLOW
def test_a_get_whose_answer_trickles_past_the_deadline_is_retried_then_fails(slow):
    with serve(answers(then=slow(Answer(200, JSON, TAGS)))) as server:
        client = Client(server.url, "k", retry=FAST, deadline=0.5)
        with pytest.raises(ApiError) as failed:
            client.get("api/tags")
    port = server.url.rpartition(":")[2]
    assert str(failed.value) == (
        f"GET api/tags: no response: 127.0.0.1:{port} was still sending its answer after"
        " 0.5 s (--timeout) (after 3 tries)"
    )
    assert len(server.seen) == 3 and client.requests_made == 3
    assert WATCHDOG.watching() == 0  # every try stopped being watched as it ended


@SLOW
def test_a_get_that_trickled_once_is_answered_on_its_retry(slow):
    first = slow(Answer(200, JSON, TAGS))
    with serve(answers(first, then=Answer(200, JSON, TAGS))) as flaky:
        client = Client(flaky.url, "k", retry=FAST, deadline=0.5)
        assert client.get("api/tags")["_embedded"]["tags"] == [{"id": 1, "name": "vip"}]
    assert client.requests_made == 2 and client.retries_made == 1
    assert flaky.seen[0].peer != flaky.seen[1].peer  # the hung-up connection was not reused


def test_headers_trickled_over_https_are_cut_at_the_deadline(tls):
    first = trickling_head(Answer(200, JSON, TAGS))
    with serve(answers(first, then=Answer(200, JSON, TAGS)), tls=tls) as flaky:
        client = Client(flaky.url, "k", retry=FAST, deadline=0.5)
        assert client.get("api/tags")["_embedded"]["tags"] == [{"id": 1, "name": "vip"}]
    assert flaky.url.startswith("https://")
    assert client.requests_made == 2 and client.retries_made == 1


def test_a_connection_back_in_the_pool_outlives_its_exchange_deadline():
    with serve(answers(then=Answer(200, JSON, TAGS))) as server:
        client = Client(server.url, "k", retry=FAST, deadline=0.2)
        client.get("api/tags")
        assert WATCHDOG.watching() == 0
        time.sleep(0.5)  # past the first exchange's deadline: nothing may hang its socket up
        client.get("api/tags")
    assert server.seen[0].peer == server.seen[1].peer  # the same connection served both
    assert client.requests_made == 2 and client.retries_made == 0


def test_each_try_urllib3_makes_after_a_5xx_has_a_deadline_of_its_own():
    # urllib3 waits base_delay * 2 (2 s, at least twice the deadline) before the third try;
    # that wait is no part of the exchange that follows.
    first, second = Answer(503), Answer(503)
    with serve(answers(first, second, then=Answer(200, JSON, TAGS))) as flaky:
        client = Client(flaky.url, "k", retry=RetryPolicy(base_delay=1.0), deadline=1.0)
        assert client.get("api/tags")["_embedded"]["tags"] == [{"id": 1, "name": "vip"}]
    assert client.requests_made == 3


def test_an_answer_trickled_within_the_deadline_arrives_whole():
    body = json.dumps({"text": "x" * 300}).encode()
    slow_but_done = Answer(200, JSON, body, trickle=7, pause=0.001)
    with serve(answers(then=slow_but_done)) as slow:
        client = Client(slow.url, "k", retry=FAST, deadline=120)
        assert client.get("api/x") == {"text": "x" * 300}
        out = io.BytesIO()
        assert client.download("f", out) == len(body)
    assert out.getvalue() == body and client.requests_made == 2


def test_headers_trickled_within_the_deadline_arrive_whole():
    slow_but_done = Answer(200, JSON, TAGS, slow_head=True, pause=0.001)
    with serve(answers(then=slow_but_done)) as slow:
        client = Client(slow.url, "k", retry=FAST, deadline=120)
        assert client.get("api/tags")["_embedded"]["tags"] == [{"id": 1, "name": "vip"}]
    assert client.requests_made == 1 and client.retries_made == 0


@SLOW
def test_a_trickling_download_starts_over_and_then_fails_naming_its_host(slow):
    with serve(answers(then=slow(Answer(200, {}, b"%PDF")))) as server:
        client = Client("http://api.example.test", "k", retry=FAST, deadline=0.3)
        out = io.BytesIO()
        with pytest.raises(ApiError, match=r"was still sending its answer after 0.3 s"):
            client.download(f"{server.url}/f.pdf?token=SECRET", out)
    assert len(server.seen) == 3
    assert out.getvalue().strip() in (b"", b"%PDF", b"%PD", b"%P", b"%")  # a part, never more


@SLOW
def test_a_write_whose_answer_trickles_has_an_unknown_outcome_and_is_not_resent(slow):
    with serve(answers(then=slow(Answer(201, {"Resource-ID": "9"}, b"{}")))) as server:
        client = Client(server.url, "k", retry=FAST, deadline=0.3)
        with pytest.raises(OutcomeUnknown, match=r"--timeout"):
            client.create("api/customers", {"firstName": "A"})
    assert [r.method for r in server.seen] == ["POST"]


@SLOW
def test_a_source_reader_drops_a_trickling_answer_and_retries(slow):
    first = slow(Answer(200, JSON, b'{"tickets": []}'))
    with serve(answers(first, then=Answer(200, JSON, b'{"tickets": [1]}'))) as source:
        http = Retrying(retry=FAST, deadline=0.3)
        response = http.send(session(), "GET", f"{source.url}/api/v2/tickets", "/tickets")
        assert response.json() == {"tickets": [1]} and response.content == b'{"tickets": [1]}'
    assert http.requests_made == 2
    with serve(answers(then=first)) as source:
        with pytest.raises(ApiError, match=r"still sending its answer after 0.3 s.*3 tries"):
            Retrying(retry=FAST, deadline=0.3).send(session(), "GET", source.url, "/tickets")


def etl_process(url: str, key: str, *args, extra_env: dict | None = None):
    """`etl` in its own process, as cron runs it; its timeout fails a hang instead of the suite."""
    env = {**os.environ, "SMARTICKS_URL": url, "SMARTICKS_API_KEY": key, **(extra_env or {})}
    command = [sys.executable, "-m", "etl", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def with_password(url: str) -> str:
    return url.replace("http://", "http://admin:PASSWORD@")


@SLOW
def test_a_sync_held_by_a_trickling_list_fails_with_one_line_and_can_run_again(
    sandbox, tmp_path, slow
):
    def trickle_tags(request):
        if request.path.startswith("/api/tags"):
            return slow(Answer(200, JSON, TAGS))
        return None

    db = tmp_path / "m.db"
    with proxy(sandbox.url, trickle_tags) as front:
        args = ("sync", "--db", db, "--timeout", 1, "--max-wait", 1)
        failed = etl_process(with_password(front.url), sandbox.api_key, *args)
    assert failed.returncode == 1, failed.stderr
    server = front.url.removeprefix("http://")
    line = failed.stderr.strip()
    assert len(failed.stderr.splitlines()) == 1, failed.stderr
    found = re.fullmatch(
        rf"Error: GET api/tags: no response: {re.escape(server)} was still sending its answer"
        r" after 1 s \(--timeout\) \(after (\d+) tries\)",
        line,
    )
    assert found, line
    assert "PASSWORD" not in failed.stderr + failed.stdout
    tags_asked = sum(r.path.startswith("/api/tags") for r in front.seen)
    assert tags_asked == int(found[1]) >= 2  # retried like a dropped connection
    # The run is recorded as failed with the same line; nothing stays locked.
    with sqlite3.connect(db) as conn:
        status, errors = conn.execute(
            "SELECT status, errors FROM etl_runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        tags = conn.execute("SELECT count(*) FROM tags").fetchone()[0]
        cursors = [r[0] for r in conn.execute("SELECT resource FROM etl_cursors")]
    assert status == "failed" and line.removeprefix("Error: ") in errors
    assert tags == 0 and "conversations" not in cursors  # nothing past the failure committed
    again = etl_process(sandbox.url, sandbox.api_key, "sync", "--db", db, "--quiet")
    assert again.returncode == 0 and again.stderr == ""
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM tags").fetchone()[0] > 0


@SLOW
def test_a_sync_whose_list_trickled_once_completes_on_the_retry(sandbox, tmp_path, slow):
    trickled = []

    def trickle_first_tags(request):
        if request.path.startswith("/api/tags") and not trickled:
            trickled.append(request.path)
            return slow(Answer(200, JSON, TAGS))
        return None

    db = tmp_path / "m.db"
    with proxy(sandbox.url, trickle_first_tags) as front:
        done = etl_process(front.url, sandbox.api_key, "sync", "--db", db, "--timeout", 1)
    assert done.returncode == 0, done.stderr
    assert len(trickled) == 1
    with sqlite3.connect(db) as conn:
        status = conn.execute("SELECT status FROM etl_runs ORDER BY id DESC LIMIT 1").fetchone()
        tags = conn.execute("SELECT count(*) FROM tags").fetchone()[0]
    assert status == ("completed",) and tags == len(sandbox.store.tags)


@SLOW
def test_timeout_holds_for_the_source_of_a_migration(tmp_path, monkeypatch, slow):
    monkeypatch.chdir(tmp_path)  # the rejects and report files land here

    def trickle_tickets(request):
        if "/api/v2/incremental/tickets" in request.path:
            return slow(Answer(200, JSON, b'{"tickets": []}'))
        return None

    with (
        ZendeskSandbox(seed=1, tickets=5) as zendesk,
        Sandbox(empty=True) as target,
        proxy(zendesk.url, trickle_tickets) as front,
    ):
        env = {"ZENDESK_EMAIL": zendesk.email, "ZENDESK_TOKEN": zendesk.token}
        args = ["migrate", "zendesk", "--source-url", front.url, "--mailbox", 1]
        failed = etl_process(
            target.url, target.api_key, *args, "--db", tmp_path / "m.db", "--timeout", 0.5,
            "--max-wait", 0.5, extra_env=env,
        )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert len(failed.stderr.splitlines()) == 1, failed.stderr
    server = front.url.removeprefix("http://")
    assert f"{server} was still sending its answer after 0.5 s (--timeout)" in failed.stderr
    assert any("/api/v2/incremental/tickets" in r.path for r in front.seen)
