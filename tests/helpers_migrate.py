"""What the `etl migrate` tests share: an empty Smarticks sandbox to migrate into, running the
command against a source emulation, reading its figures and ledger, and the kill -9 halfway.

A test module takes the fixtures `target` and `in_tmp` (autouse) by importing their functions.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from etl.cli import cli
from etl.sandbox import Sandbox

FALLBACK = "admin@support.example.org"
ON_TARGET = {"agent2@support.example.org", "agent3@support.example.org"}  # the rest: FALLBACK


@pytest.fixture(name="target")
def empty_target():
    """An empty Smarticks sandbox (mailboxes, users, fields): where the migration goes."""
    with Sandbox(empty=True) as server:
        yield server


@pytest.fixture(name="in_tmp", autouse=True)
def working_in_tmp(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the rejects and report files land here


def system(source) -> str:
    """The source emulation's name in `etl migrate NAME` and in the ledger."""
    return type(source).__name__.removesuffix("Sandbox").lower()  # HelpScoutSandbox: helpscout


def credentials(source) -> dict:
    """The source emulation's secrets, in the variables `etl migrate` reads."""
    name = type(source).__name__
    if name == "ZendeskSandbox":
        return {"ZENDESK_EMAIL": source.email, "ZENDESK_TOKEN": source.token}
    if name == "HelpScoutSandbox":
        return {"HELPSCOUT_CLIENT_ID": source.client_id,
                "HELPSCOUT_CLIENT_SECRET": source.client_secret}  # fmt: skip
    return {"FRESHDESK_API_KEY": source.api_key}


def environment(source, target, db) -> dict:
    return {
        "SMARTICKS_URL": target.url,
        "SMARTICKS_API_KEY": target.api_key,
        "SMARTICKS_DB": str(db),
        **credentials(source),
    }


def command(source, *extra) -> list[str]:
    return ["migrate", system(source), "--source-url", source.url, "--mailbox", "1",
            *map(str, extra)]  # fmt: skip


def migrate(source, target, db, *extra):
    """`etl migrate` from the source emulation into the target sandbox, in this process."""
    env = environment(source, target, db)
    return CliRunner().invoke(cli, command(source, *extra), env=env)


def figure(output: str, label: str) -> int:
    found = re.search(rf"^\s+{re.escape(label)}\s+(\d+)", output, re.MULTILINE)
    assert found, f"no {label!r} line in:\n{output}"
    return int(found.group(1))


def images_named(body: str, images: list[tuple[str, str]]) -> str:
    """The body as the target should hold it: each inline image of an attachment, given as
    (its link at the source, its file name), named in place of its dead link."""
    for url, name in images:
        body = re.sub(r'<img src="' + re.escape(url) + r'"[^>]*>', f"[image: {name}]", body)
    return body


def target_ids(db, source) -> dict[int, int]:
    """Source id -> target conversation id, from the ledger."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT source_id, target_id FROM etl_load_items WHERE system = ? "
            "AND kind = 'conversations' AND state = 'done'",
            (system(source),),
        ).fetchall()
    return {int(s): t for s, t in rows}


def kill_halfway_then_rerun(
    source, target, tmp_path, at_least: int, total: int, count=None, workers: int = 4
):
    """`etl migrate` in a child process, killed with SIGKILL once the target holds `at_least`
    conversations (of `total`; or what `count(target)` counts), then run again to its end;
    returns the rerun."""
    count = count or (lambda server: len(server.store.conversation_ids()))
    env = dict(os.environ, **environment(source, target, tmp_path / "m.db"))
    args = [sys.executable, "-m", "etl", *command(source, "--fallback-user", FALLBACK,
                                                    "--workers", workers)]  # fmt: skip
    first = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while count(target) < at_least and time.monotonic() < deadline:
        if first.poll() is not None:
            pytest.fail(f"the migration ended before the kill: {first.communicate()}")
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert at_least <= count(target) < total
    rerun = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    return rerun
