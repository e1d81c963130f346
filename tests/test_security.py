"""A hostile or broken server cannot take the key, hang a run, or get secrets shown (issue 18).

Every test drives real HTTP: a proxy in front of the sandbox misbehaves where the test says,
and a second server on another loopback port (another origin) plays the attacker's host.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner

from etl.cli import cli
from etl.client import Client, RetryPolicy
from etl.errors import ApiError, NotFound
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
        "Error: GET api/conversations: the list does not end: 600 records read, it announced 250"
    )
    assert pages < 20
