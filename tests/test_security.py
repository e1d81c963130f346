"""A hostile or broken server cannot take the key, hang a run, or get secrets shown (issue 18).

Every test drives real HTTP: a proxy in front of the sandbox misbehaves where the test says,
and a second server on another loopback port (another origin) plays the attacker's host.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from click.testing import CliRunner

from etl import client as client_module
from etl.cli import cli
from etl.client import Client, RetryPolicy
from etl.errors import ApiError, NotFound
from etl.redact import redact_text, redact_url
from etl.sandbox import Sandbox
from etl.sandbox.handlers import served_type
from etl.sandbox.serve import exposure_warning
from etl.sandbox.server import key_matches
from etl.sandbox.zendesk import ZendeskSandbox
from tests.hostile import Answer, keys_received, proxy, redirect, serve

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FALLBACK = "admin@support.example.org"
EMPTY_PAGE = json.dumps(
    {"_embedded": {}, "page": {"size": 100, "totalElements": 0, "totalPages": 0, "number": 1}}
).encode()


def etl(url: str, key: str, *args):
    """Run the CLI with the URL and key in the environment, as cron would."""
    env = {"SMARTICKS_URL": url, "SMARTICKS_API_KEY": key}
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def attacker():
    """The other host: answers every request 200 with an empty page, and records it."""
    return serve(lambda request: Answer(200, {"Content-Type": "application/json"}, EMPTY_PAGE))


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


# ----- 1. the key never leaves its host --------------------------------------------------


@pytest.mark.parametrize("status", [302, 307])
def test_a_sync_refuses_a_redirect_to_another_host(sandbox, tmp_path, status):
    with attacker() as evil:

        def rule(request):
            if request.path.startswith("/api/conversations"):
                return redirect(status, evil.url + request.path)
            return None

        with proxy(sandbox.url, rule) as front:
            result = etl(front.url, sandbox.api_key, "sync", "--db", tmp_path / "m.db")
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert front.url in line and evil.url in line, line
    assert "not followed" in line
    assert evil.seen == [] and keys_received(evil) == []
    assert sandbox.api_key not in result.output


@pytest.mark.parametrize("status", [302, 307])
def test_a_load_never_sends_a_write_to_another_host(empty_sandbox, tmp_path, monkeypatch, status):
    monkeypatch.chdir(tmp_path)  # the rejects file lands here
    with attacker() as evil:

        def rule(request):
            if request.method != "GET":
                return redirect(status, evil.url + request.path)
            return None

        with proxy(empty_sandbox.url, rule) as front:
            result = etl(
                front.url,
                empty_sandbox.api_key,
                "load",
                "conversations",
                SAMPLES / "generic" / "conversations.csv",
                "--mapping",
                "generic",
                "--mailbox",
                2,
                "--timezone",
                "Europe/Paris",
                "--fallback-user",
                FALLBACK,
                "--db",
                tmp_path / "ledger.db",
            )
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert front.url in line and evil.url in line, line
    assert "never redirected" in line
    assert evil.seen == []  # neither the key nor a conversation's body went there
    assert any(r.method == "POST" and r.body for r in front.seen)  # the proxy did get one
    assert empty_sandbox.store.conversation_ids() == []


def test_a_same_origin_redirect_of_a_get_is_followed(sandbox, tmp_path):
    moved = []

    def rule(request):
        if request.path.startswith("/api/tags"):
            return redirect(302, "/moved" + request.path)
        if request.path.startswith("/moved/"):
            moved.append(request.headers.get("X-Smarticks-API-Key"))
            request.path = request.path.removeprefix("/moved")  # forwarded as the old path
        return None

    with proxy(sandbox.url, rule) as front:
        result = etl(front.url, sandbox.api_key, "sync", "--db", tmp_path / "m.db")
    assert result.exit_code == 0, result.output
    assert moved and all(key == sandbox.api_key for key in moved)
    with sqlite3.connect(tmp_path / "m.db") as conn:
        mirrored = conn.execute("SELECT count(*) FROM tags").fetchone()[0]
    assert mirrored == len(sandbox.store.tags) > 0


def test_a_write_is_not_redirected_even_on_its_own_host(sandbox):
    def rule(request):
        if request.method == "PUT":
            return redirect(307, "/elsewhere" + request.path)
        return None

    conversation = sandbox.store.conversation_ids()[0]
    with proxy(sandbox.url, rule) as front:
        client = Client(front.url, sandbox.api_key)
        with pytest.raises(ApiError, match="a PUT is never redirected"):
            client.put(f"api/conversations/{conversation}/tags", {"tags": ["x"]})
    assert [r.method for r in front.seen] == ["PUT"]


def test_too_many_redirects_on_the_same_host_end_in_an_error(sandbox):
    def rule(request):
        return redirect(302, request.path + "x")

    with proxy(sandbox.url, rule) as front:
        client = Client(front.url, sandbox.api_key)
        with pytest.raises(ApiError, match="more than 5 redirects"):
            client.get("api/tags")
    assert len(front.seen) == 6 and client.requests_made == 6


# ----- downloads ---------------------------------------------------------------------------


def file_server(content: bytes):
    return serve(lambda request: Answer(200, {"Content-Type": "application/pdf"}, content))


def test_a_download_from_the_api_host_carries_the_key_and_streams_the_file():
    content = bytes(range(256)) * 4000  # 1 MB, several chunks
    with file_server(content) as files:
        client = Client(files.url, "the-key")
        out = io.BytesIO(b"left over from an earlier try")
        assert client.download("storage/attachment/7/a.pdf?id=7&token=abc", out) == len(content)
    assert out.getvalue() == content
    assert keys_received(files) == ["the-key"]
    assert files.seen[0].path == "/storage/attachment/7/a.pdf?id=7&token=abc"
    assert client.requests_made == 1


def test_a_file_on_another_host_is_fetched_without_the_key(sandbox):
    with file_server(b"pdf") as files:
        client = Client(sandbox.url, sandbox.api_key)
        out = io.BytesIO()
        assert client.download(files.url + "/f.pdf", out) == 3
    assert out.getvalue() == b"pdf" and keys_received(files) == []


@pytest.mark.parametrize("status", [302, 307])
def test_a_download_redirected_to_another_host_drops_the_key_for_good(status):
    where = {}  # each server's URL, known once both are up
    api_answers = {"/f": lambda: redirect(status, where["other"] + "/bounce")}
    other_answers = {"/bounce": lambda: redirect(status, where["api"] + "/final")}

    def answering(answers):
        return lambda r: answers.get(r.path, lambda: Answer(200, {}, b"the file"))()

    with serve(answering(api_answers)) as api, serve(answering(other_answers)) as other:
        where.update(api=api.url, other=other.url)
        client = Client(api.url, "the-key")
        out = io.BytesIO()
        assert client.download("f", out) == len(b"the file")
    assert out.getvalue() == b"the file"
    assert [r.path for r in api.seen] == ["/f", "/final"]
    assert api.seen[0].headers.get("X-Smarticks-API-Key") == "the-key"
    # Back on the API's host after a hop elsewhere: the key is gone for good.
    assert "X-Smarticks-API-Key" not in api.seen[1].headers
    assert keys_received(other) == []
    assert client.requests_made == 3


def test_a_download_cut_short_or_failing_starts_the_file_over():
    content = b"0123456789" * 100_000
    answers = iter([Answer(200, {}, content, cut_short=True), Answer(503)])

    with serve(lambda request: next(answers, Answer(200, {}, content))) as files:
        client = Client(files.url, "k", retry=RetryPolicy(base_delay=0.0))
        out = io.BytesIO()
        assert client.download("/a", out) == len(content)
    assert out.getvalue() == content and client.requests_made == 3


def test_a_missing_file_is_not_found_and_its_token_is_not_shown():
    with serve(lambda request: Answer(404)) as files:
        client = Client(files.url, "k")
        with pytest.raises(NotFound) as caught:
            client.download(files.url + "/f.pdf?id=1&token=SECRET", io.BytesIO())
    assert "SECRET" not in str(caught.value) and "token=***" in str(caught.value)


# ----- 2. no wait without end ----------------------------------------------------------------


def etl_process(url: str, key: str, *args, timeout: float = 120):
    """Run `etl` in its own process, as cron does (fork, lock and exit code included)."""
    env = {**os.environ, "SMARTICKS_URL": url, "SMARTICKS_API_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "etl", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test instead of holding the suite
    )


@pytest.mark.parametrize(
    ("where", "every"),
    [("/api/conversations", 5), ("/api/mailboxes/", 2)],
    ids=["in-the-fetch-processes", "in-the-small-lists-threads"],
)
def test_a_huge_retry_after_fails_a_4_worker_sync_at_once_and_frees_the_lock(
    sandbox_factory, tmp_path, where, every
):
    sandbox = sandbox_factory(
        seed=3, conversations=300, rate_limit_every=every, retry_after=999999999, fault_paths=where
    )
    db = tmp_path / "m.db"
    args = ("sync", "--db", db, "--workers", 4, "--page-size", 10)
    failed = etl_process(sandbox.url, sandbox.api_key, *args)
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.count("Error:") == 1 and len(failed.stderr.splitlines()) == 1
    assert "the server asked to wait 999999999 s (Retry-After), longer than --max-wait 300 s" in (
        failed.stderr
    )
    sandbox.rate_limit_every = 0
    again = etl_process(sandbox.url, sandbox.api_key, *args, "--quiet")
    assert again.returncode == 0, again.stderr  # not 5: the failed run let go of the lock


def test_max_wait_sets_the_patience(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(seed=3, conversations=20, rate_limit_every=2, retry_after=2)
    result = etl(sandbox.url, sandbox.api_key, "sync", "--db", tmp_path / "m.db", "--max-wait", 1)
    assert result.exit_code == 1
    assert "asked to wait 2 s (Retry-After), longer than --max-wait 1 s" in error_line(result)


def test_a_download_waits_out_a_short_retry_after_and_refuses_a_long_one():
    answers = iter([Answer(429, {"Retry-After": "1"})])
    with serve(lambda request: next(answers, Answer(200, {}, b"file"))) as files:
        client = Client(files.url, "k")
        assert client.download("/a", io.BytesIO()) == 4
        assert client.requests_made == 2 and client.retries_made == 1
    with serve(lambda request: Answer(429, {"Retry-After": "86400"})) as files:
        client = Client(files.url, "k")
        with pytest.raises(ApiError, match="asked to wait 86400 s"):
            client.download("/a", io.BytesIO())
        assert client.requests_made == 1


# ----- 4. lists end ------------------------------------------------------------------------


def page_of(key: str, records: list[dict], total: int, pages: int, number: int) -> Answer:
    document = {
        "_embedded": {key: records},
        "page": {"size": len(records), "totalElements": total, "totalPages": pages},
    }
    return Answer(200, {"Content-Type": "application/json"}, json.dumps(document).encode())


def query_of(request) -> dict:
    return dict(parse_qsl(urlsplit(request.path).query))


def inventing_tags(request):
    """Every page of tags full of tags never seen, and ten billion pages to come."""
    if not request.path.startswith("/api/tags"):
        return None
    query = query_of(request)
    size, number = int(query["pageSize"]), int(query["page"])
    tags = [{"id": (number - 1) * size + i + 1, "name": f"t{number}-{i}"} for i in range(size)]
    return page_of("tags", tags, 10**12, 10**10, number)


def test_a_small_list_without_end_stops_at_the_page_ceiling(sandbox, tmp_path):
    with proxy(sandbox.url, inventing_tags) as front:
        args = ("sync", "--db", tmp_path / "m.db", "--only", "tags")
        result = etl(front.url, sandbox.api_key, *args)
        asked = sum(r.path.startswith("/api/tags") for r in front.seen)
        assert result.exit_code == 1
        assert error_line(result) == (
            "Error: GET api/tags: more than 500 pages; --max-pages allows more"
        )
        assert asked == 500
        front.seen.clear()
        raised = etl(front.url, sandbox.api_key, *args, "--max-pages", 700)
        assert "more than 700 pages" in error_line(raised)
        assert sum(r.path.startswith("/api/tags") for r in front.seen) == 700


def test_a_page_of_records_already_read_ends_a_page_number_walk(sandbox, tmp_path):
    def rotating(request):
        if not request.path.startswith("/api/users"):
            return None
        number = int(query_of(request)["page"])
        ids = [(i + number) % 100 + 1 for i in range(100)]  # the same 100 users, turned
        users = [{"id": i, "email": f"u{i}@example.org"} for i in ids]
        return page_of("users", users, 100_000, 1_000, number)

    with proxy(sandbox.url, rotating) as front:
        args = ("sync", "--db", tmp_path / "m.db", "--only", "users")
        result = etl(front.url, sandbox.api_key, *args)
    assert result.exit_code == 1
    assert error_line(result) == "Error: GET api/users: page 2 brought only records already read"


def test_a_keyset_list_of_ever_new_records_ends_past_twice_its_total(sandbox, tmp_path):
    template = sandbox.store.get_conversation(sandbox.store.conversation_ids()[0], embed=())
    invented = itertools.count(10**6)

    def inventing(request):
        if not request.path.startswith("/api/conversations"):
            return None
        query = query_of(request)
        size = int(query["pageSize"])
        since = query.get("updatedSince", "2020-01-01T00:00:00Z")
        start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        records = []
        for i in range(size):
            stamp = (start + timedelta(seconds=i + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            records.append({**template, "id": next(invented), "updatedAt": stamp})
        return page_of("conversations", records, 250, 10**10, int(query["page"]))

    with proxy(sandbox.url, inventing) as front:
        args = ("sync", "--db", tmp_path / "m.db", "--only", "conversations", "--page-size", 50)
        result = etl(front.url, sandbox.api_key, *args)
        pages = sum(r.path.startswith("/api/conversations") for r in front.seen)
    assert result.exit_code == 1, result.output
    assert error_line(result) == (
        "Error: GET api/conversations: the list does not end: 1050 records read, it announced 250"
    )
    assert pages < 30


# ----- 5. credentials in URLs are shown as *** ------------------------------------------------


def test_redact_url_masks_user_info_and_secret_query_values_only():
    assert redact_url("https://user:pw@help.example.org:8443/api") == (
        "https://***@help.example.org:8443/api"
    )
    assert redact_url("http://just-a-key@h/x") == "http://***@h/x"
    assert redact_url("https://s.example.org/f/a.pdf?id=71&token=c51354") == (
        "https://s.example.org/f/a.pdf?id=71&token=***"
    )
    assert redact_url("https://h/a?X-Amz-Signature=abc&page=2") == (
        "https://h/a?X-Amz-Signature=***&page=2"
    )
    plain = "https://help.example.org/api/conversations?page=2&pageSize=100"
    assert redact_url(plain) == plain
    assert redact_text("from http://a:b@h/x?token=t to https://o/y.") == (
        "from http://***@h/x?token=*** to https://o/y."
    )


def with_password(url: str) -> str:
    return url.replace("http://", "http://someone:PASSWORD@")


def test_a_password_in_the_url_is_never_printed(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = with_password(sandbox.url)
    shown = sandbox.url.replace("http://", "http://***@")
    db = tmp_path / "m.db"
    synced = etl(url, sandbox.api_key, "sync", "--db", db)
    assert synced.exit_code == 0, synced.output
    assert f"Synced {shown} into {db}" in synced.stdout
    backed = etl(url, sandbox.api_key, "backup", "--dir", tmp_path / "b", "--db", db)
    assert backed.exit_code == 0, backed.output
    assert f"Synced {shown} into {db}" in backed.stdout
    loaded = etl(
        url,
        sandbox.api_key,
        "load",
        "customers",
        SAMPLES / "generic" / "customers.csv",
        "--db",
        tmp_path / "ledger.db",
    )
    assert loaded.exit_code == 0, loaded.output
    assert f"for {shown}" in loaded.stdout
    ledger = ("--db", tmp_path / "ledger.db")
    checked = etl(url, sandbox.api_key, "verify", "--kind", "customers", *ledger)
    assert checked.exit_code == 0, checked.output
    assert f"loaded into {shown}:" in checked.stdout
    wrong = etl("ftp://someone:PASSWORD@h/", "k", "sync", "--db", db)
    assert wrong.exit_code == 2 and "ftp://***@h" in wrong.stderr
    gone = etl(with_password("http://127.0.0.1:9"), "k", "sync", "--db", tmp_path / "gone.db")
    assert gone.exit_code == 1 and "127.0.0.1:9" in gone.stderr
    status = CliRunner().invoke(cli, ["status", "--db", str(tmp_path / "ledger.db")])
    assert f"into {sandbox.url} " in status.output  # the load run names its target
    for result in (synced, backed, loaded, checked, wrong, gone, status):
        assert "PASSWORD" not in result.output
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) >= 4  # the mirror, the ledger, a snapshot, the load's report
    for path in written:  # nor stored: mirrors, snapshots, reports
        assert b"PASSWORD" not in path.read_bytes(), path


def test_a_token_in_a_url_is_not_shown_in_errors_or_run_records(sandbox, tmp_path):
    def rule(request):
        if request.path.startswith("/api/tags"):
            return redirect(302, "http://files.example.org/a.pdf?id=7&token=SECRET")
        return None

    db = tmp_path / "m.db"
    with proxy(sandbox.url, rule) as front:
        failed = etl(with_password(front.url), sandbox.api_key, "sync", "--db", db)
    assert failed.exit_code == 1
    assert "http://files.example.org/a.pdf?id=7&token=***" in error_line(failed)
    status = CliRunner().invoke(cli, ["status", "--db", str(db)])
    assert "token=***" in status.output
    for output in (failed.output, status.output):
        assert "SECRET" not in output and "PASSWORD" not in output


# ----- 7. the sandbox -------------------------------------------------------------------------


def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send a request's head (and maybe part of its body) on a bare socket; read the answer.

    The answer must come without the rest of the body: a server reading it first would
    wait, and the socket's timeout fails the test.
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline().strip()) != b"":
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        return status, headers, reader.read(int(headers.get("content-length", 0)))


def test_the_sandbox_refuses_a_keyless_upload_before_reading_it(sandbox):
    head = (
        "POST /api/conversations HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        "Content-Length: 60000000\n"
    )
    status, headers, body = raw_request(sandbox.url, head, b'{"subject": "')
    assert status == 401 and headers["connection"] == "close"
    assert json.loads(body)["errorCode"] == "UNAUTHORIZED"


@pytest.mark.parametrize("method", ["POST", "PUT", "GET", "DELETE"])
def test_the_sandbox_caps_the_body_of_every_route(sandbox_factory, method):
    sandbox = sandbox_factory(empty=True, max_body_mb=1)
    head = (
        f"{method} /api/customers/1 HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"X-Smarticks-API-Key: {sandbox.api_key}\nContent-Length: 1000001\n"
    )
    status, headers, body = raw_request(sandbox.url, head, b"{")
    assert status == 413 and headers["connection"] == "close"
    error = json.loads(body)
    assert error["errorCode"] == "REQUEST ENTITY TOO LARGE"
    assert error["message"] == "The request body is 1000001 bytes; at most 1 MB are accepted"


def upload(sandbox, name: str, mime: str, data: bytes) -> dict:
    conversation = sandbox.store.conversation_ids()[0]
    client = Client(sandbox.url, sandbox.api_key)
    attachment = {"fileName": name, "mimeType": mime, "data": base64.b64encode(data).decode()}
    client.post(
        f"api/conversations/{conversation}/threads",
        {"type": "note", "text": "file", "user": 1, "attachments": [attachment]},
    )
    thread = client.get(f"api/conversations/{conversation}")["_embedded"]["threads"][0]
    return thread["_embedded"]["attachments"][0]


def test_an_uploaded_html_page_is_served_as_a_download_never_as_html(sandbox):
    page = b"<html><script>alert(document.cookie)</script></html>"
    stored = upload(sandbox, 'r\u00e9sum\u00e9 "1".html', "text/html", page)
    response = requests.get(stored["fileUrl"])
    assert response.content == page
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"r_sum_ _1_.html\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.html"
    )


def test_a_plain_file_keeps_its_type_but_is_still_a_download(sandbox):
    stored = upload(sandbox, "box.png", "image/png", b"\x89PNG")
    response = requests.get(stored["fileUrl"])
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="box.png"')
    for mime in ("image/svg+xml", "application/xhtml+xml", "text/html; charset=utf-8", "x\r\ny"):
        assert served_type(mime) == "application/octet-stream"


def stderr_of_a_sandbox(*args: str) -> str:
    """Start `etl sandbox ARGS`, wait for its first line, stop it; what it said on stderr."""
    command = [sys.executable, "-m", "etl", "sandbox", "--port", "0", *args]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "sandbox at" in server.stdout.readline()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return server.stderr.read()


def test_the_sandbox_warns_when_it_listens_beyond_loopback_with_the_default_key():
    warning = stderr_of_a_sandbox("--host", "0.0.0.0", "--empty")
    assert warning.startswith("warning: listening on 0.0.0.0 with the well-known key")
    emulated = stderr_of_a_sandbox("--host", "0.0.0.0", "--flavor", "zendesk")
    assert emulated.startswith(
        "warning: listening on 0.0.0.0 with the Zendesk emulation's well-known credentials"
    )
    assert exposure_warning("127.0.0.1", "sandbox-key") is None
    assert exposure_warning("::1", "sandbox-key") is None
    assert exposure_warning("localhost", "sandbox-key") is None
    assert exposure_warning("0.0.0.0", "a-key-of-my-own") is None
    assert exposure_warning("", "sandbox-key").startswith("warning: listening on every interface")


# ----- where the issue is silent ---------------------------------------------------------------


def test_the_mirror_and_its_snapshots_are_readable_by_their_owner_alone(sandbox, tmp_path):
    db = tmp_path / "m.db"
    result = etl(sandbox.url, sandbox.api_key, "backup", "--dir", tmp_path / "b", "--db", db)
    assert result.exit_code == 0, result.output
    made = [db, Path(f"{db}-wal"), *(tmp_path / "b").iterdir()]
    assert len(made) == 3
    for path in made:
        if path.exists():
            assert path.stat().st_mode & 0o077 == 0, path


def test_the_sandbox_compares_keys_in_constant_time():
    assert key_matches("sandbox-key", ["nope", "sandbox-key"])
    assert not key_matches("sandbox-key", ["sandbox-ke", "sandbox-key2", ""])


def test_an_answer_without_end_is_cut_off_not_read_into_memory(monkeypatch):
    monkeypatch.setattr(client_module, "MAX_ANSWER_BYTES", 1 << 20)

    class Endless(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b'{"x": "' + b"y" * 65536
            with contextlib.suppress(OSError):
                for _ in range(1000):  # 64 MB, unless the client hangs up first
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Client(f"http://127.0.0.1:{server.server_port}", "k")
        with pytest.raises(ApiError, match=r"GET api/tags: HTTP 200: an answer over 1 MB"):
            client.get("api/tags")
        assert client.requests_made == 1  # not retried
    finally:
        server.shutdown()
        server.server_close()


def test_a_sync_killed_while_its_fetch_processes_wait_leaves_no_lock_behind(
    sandbox_factory, tmp_path
):
    sandbox = sandbox_factory(
        seed=3, conversations=300, retry_after=120, fault_paths="/api/conversations"
    )

    def limit_once_the_fetch_processes_read(method, path, query):
        # A segment's page: not a small list's, nor one of the planner's one-record probes.
        if path == "/api/conversations" and query.get("pageSize") == "10":
            sandbox.rate_limit_every = 1

    sandbox.on_request = limit_once_the_fetch_processes_read
    db = tmp_path / "m.db"
    env = {**os.environ, "SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": sandbox.api_key}
    command = [sys.executable, "-m", "etl", "sync", "--db", str(db), "--page-size", "10"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    children = []
    try:
        while not sandbox.status_counts[429]:  # a fetch thread now waits 120 s
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        children = children_of(first.pid)
        assert children == []  # one process since issue 20: the lock dies with it
        first.kill()
        first.wait(timeout=30)
        sandbox.on_request = None
        sandbox.rate_limit_every = 0
        again = subprocess.run([*command, "--quiet"], env=env, capture_output=True, timeout=120)
        assert again.returncode == 0, again.stderr  # not 5: nobody holds the lock any more
    finally:
        first.kill()
        for pid in children:  # orphans until their wait ends: this test started them
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError):
            stat = (entry / "stat").read_text()
            if entry.name.isdigit() and int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_max_wait_holds_for_the_source_of_a_migration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with (
        ZendeskSandbox(seed=1, tickets=5, rate_limit_every=1, retry_after=30) as zendesk,
        Sandbox(empty=True) as target,
    ):
        env = {"ZENDESK_EMAIL": zendesk.email, "ZENDESK_TOKEN": zendesk.token}
        args = ["migrate", "zendesk", "--source-url", zendesk.url, "--mailbox", "1"]
        result = CliRunner().invoke(
            cli,
            [*args, "--db", str(tmp_path / "m.db"), "--max-wait", "5"],
            env={"SMARTICKS_URL": target.url, "SMARTICKS_API_KEY": target.api_key, **env},
        )
    assert result.exit_code == 1, result.output
    assert "the source asks to wait 30 s" in error_line(result)


def test_a_redirect_from_http_to_https_says_to_pass_the_https_url(sandbox):
    def rule(request):  # the same host, on https
        return redirect(301, f"https://127.0.0.1{request.path}")

    with proxy(sandbox.url, rule) as front:
        client = Client(front.url, sandbox.api_key)
        with pytest.raises(ApiError) as caught:
            client.get("api/tags")
    assert str(caught.value) == (
        f"GET api/tags: HTTP 301: {front.url}/api/tags redirected to https://127.0.0.1/api/tags:"
        " not followed, the API key stays on its host (if the server moved to https, pass that"
        " as --url)"
    )


def test_a_migration_shows_neither_address_with_its_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with ZendeskSandbox(seed=1, tickets=3) as zendesk, Sandbox(empty=True) as target:
        env = {
            "SMARTICKS_URL": with_password(target.url),
            "SMARTICKS_API_KEY": target.api_key,
            "ZENDESK_EMAIL": zendesk.email,
            "ZENDESK_TOKEN": zendesk.token,
        }
        args = ["migrate", "zendesk", "--source-url", with_password(zendesk.url), "--mailbox", 1]
        args += ["--fallback-user", FALLBACK, "--db", tmp_path / "m.db"]
        result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
        shown = target.url.replace("http://", "http://***@")
    assert result.exit_code in (0, 3), result.output
    assert shown in result.output
    assert "PASSWORD" not in result.output
    for written in tmp_path.iterdir():
        if written.is_file():
            assert b"PASSWORD" not in written.read_bytes(), written


def test_a_source_emulation_refuses_a_big_body_unread():
    with ZendeskSandbox(seed=1, tickets=1) as zendesk:
        head = "POST /api/v2/tickets.json HTTP/1.1\nHost: x\nContent-Length: 60000000\n"
        status, headers, _ = raw_request(zendesk.url, head, b"{")
    assert status == 413 and headers["connection"] == "close"
