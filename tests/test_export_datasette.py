"""Datasette serves the mirror with full-text search, from the metadata file etl writes."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers_mirror import rows, sync_into

from etl import mirror
from etl.sandbox import Sandbox


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the Unix socket datasette listens on (no port to pick or race for)."""

    def __init__(self, path: Path):
        super().__init__("localhost", timeout=30)
        self.socket_path = str(path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`datasette smarticks.db --metadata smarticks.datasette.json`, as the README says."""
    folder = tmp_path_factory.mktemp("datasette")
    path = folder / "smarticks.db"
    with Sandbox(seed=7, conversations=120) as sandbox:
        sync_into(sandbox, path)
    mirror.open_mirror(path).conn.close()  # any etl command writes the metadata beside it
    metadata = folder / "smarticks.datasette.json"
    assert metadata.is_file()
    sock = folder / "d.sock"
    datasette = Path(sys.executable).parent / "datasette"
    server = subprocess.Popen(
        [str(datasette), "serve", str(path), "--metadata", str(metadata), "--uds", str(sock)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "datasette did not start"
            time.sleep(0.1)
        yield path, sock
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()


def get(sock: Path, url: str) -> dict:
    connection = UnixConnection(sock)
    try:
        for _ in range(50):  # the socket exists a moment before it accepts
            try:
                connection.request("GET", url)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                time.sleep(0.1)
        answer = connection.getresponse()
        body = answer.read()
        assert answer.status == 200, body[:500]
        return json.loads(body)
    finally:
        connection.close()


def search(sock: Path, table: str, words: str) -> set[int]:
    found = get(sock, f"/smarticks/{table}.json?_search={quote(words)}&_shape=objects&_size=max")
    return {row["id"] for row in found["rows"]}


@pytest.mark.parametrize("table", ["conversations", "conversations_sheet"])
def test_conversations_and_their_sheet_are_searchable(served, table):
    path, sock = served
    expected = {
        cid
        for (cid,) in rows(
            path,
            "SELECT c.id FROM conversations c WHERE c.subject LIKE '%refund%' OR EXISTS (SELECT 1 "
            "FROM threads t WHERE t.conversation_id = c.id AND t.body_text LIKE '%refund%')",
        )
    }
    assert expected
    assert search(sock, table, "refund") == expected


@pytest.mark.parametrize("table", ["customers", "customers_sheet"])
def test_customers_and_their_sheet_are_searchable_by_name_and_email(served, table):
    path, sock = served
    [(cid, first, email)] = rows(
        path, "SELECT id, first_name, email FROM customers WHERE email IS NOT NULL LIMIT 1"
    )
    same_name = {
        i for (i,) in rows(path, "SELECT id FROM customers WHERE first_name = ?", (first,))
    }
    assert cid in search(sock, table, first) and search(sock, table, first) >= same_name
    assert cid in search(sock, table, email)


def test_the_index_itself_is_found_without_the_metadata(served):
    _, sock = served
    found = get(sock, "/smarticks/search_index.json?_search=refund&_shape=objects&_size=5")
    texts = [f"{r['title']} {r['body']}".lower() for r in found["rows"]]
    assert texts and all("refund" in text for text in texts)


def test_number_fields_come_out_of_the_sheet_as_numbers_sorted_as_numbers(served):
    _, sock = served
    found = get(
        sock,
        "/smarticks/conversations_sheet.json?_sort=Amount&Amount__notblank=1"
        "&_col=Amount&_shape=objects&_size=max",
    )
    amounts = [row["Amount"] for row in found["rows"]]
    assert len(amounts) >= 10 and all(isinstance(a, int | float) for a in amounts)
    assert amounts == sorted(amounts)  # 9.5 before 10, not after it as text would sort
