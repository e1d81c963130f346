"""Exactly once across crashes (the instance-to-instance round trip is in test_migration.py).

- a crash between a create and its ledger entry: the rerun finds the conversation on the
  target instead of creating it again;
- kill -9 of a real `python -m etl load` mid-load, then a rerun: each conversation once.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl import mirror
from etl.client import Client
from etl.ledger import Ledger
from etl.load import LoadOptions, attachments, load
from etl.load import send as load_module

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "smarticks" / "conversations.jsonl"


@pytest.fixture(autouse=True)
def _fast_recovery(monkeypatch, tmp_path):
    monkeypatch.setattr(load_module, "RETRY_PAUSE", 0.0)
    monkeypatch.setattr(attachments, "DOWNLOAD_ATTEMPTS", 1)  # sample file hosts are offline
    monkeypatch.chdir(tmp_path)


def subjects(sandbox) -> list[str]:
    return sorted(
        sandbox.store.get_conversation(cid)["subject"] for cid in sandbox.store.conversation_ids()
    )


def many_conversations(path: Path, copies: int) -> list[str]:
    """The sample's 14 conversations `copies` times, each with its own id and subject."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["state"] != "deleted"]
    made = []
    with open(path, "w", encoding="utf-8") as handle:
        for copy in range(copies):
            for row in rows:
                subject = f"{row['subject']} [{copy}]"
                handle.write(json.dumps(dict(row, id=f"{copy}-{row['id']}", subject=subject)))
                handle.write("\n")
                made.append(subject)
    return sorted(made)


def test_a_crash_between_create_and_ledger_entry_creates_no_duplicate(
    empty_sandbox, tmp_path, monkeypatch
):
    client = Client(empty_sandbox.url, empty_sandbox.api_key)
    database = mirror.open_mirror(tmp_path / "l.db")
    real_created = Ledger.created
    calls = []

    def crash_on_third(self, source_id, target_id, existing=False):
        calls.append(source_id)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies right after the target said 201
        real_created(self, source_id, target_id, existing)

    monkeypatch.setattr(Ledger, "created", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        load(client, database.conn, SAMPLE, LoadOptions(mapping="smarticks"))
    monkeypatch.setattr(Ledger, "created", real_created)
    assert len(empty_sandbox.store.conversation_ids()) == 3
    states = Ledger(database.conn, client.url, "smarticks", "conversations").entries()
    assert states[calls[2]].state == "sending"  # the intent was recorded before the create

    report = load(client, database.conn, SAMPLE, LoadOptions(mapping="smarticks"))
    assert report.recovered == 1  # found on the target by subject, customer and createdAt
    assert report.created == 11
    assert report.already_loaded == 2
    assert len(subjects(empty_sandbox)) == len(set(subjects(empty_sandbox))) == 14
    assert empty_sandbox.store.imported_creates == 14


def test_kill_9_mid_load_then_rerun_leaves_each_conversation_exactly_once(
    sandbox_factory, tmp_path
):
    sandbox = sandbox_factory(empty=True, latency=0.03)
    source = tmp_path / "conversations.jsonl"
    expected = many_conversations(source, copies=5)  # 70 conversations
    env = dict(
        os.environ,
        SMARTICKS_URL=sandbox.url,
        SMARTICKS_API_KEY=sandbox.api_key,
        SMARTICKS_DB=str(tmp_path / "ledger.db"),
    )
    command = [
        sys.executable,
        "-m",
        "etl",
        "load",
        "conversations",
        str(source),
        "--mapping",
        "smarticks",
        "--workers",
        "4",
    ]
    first = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while len(sandbox.store.conversation_ids()) < 20 and time.monotonic() < deadline:
        if first.poll() is not None:
            pytest.fail(f"the load ended before the kill: {first.communicate()}")
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    at_kill = len(sandbox.store.conversation_ids())
    assert first.returncode == -signal.SIGKILL
    assert 20 <= at_kill < len(expected)

    rerun = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    created = int(re.search(r"created\s+(\d+)", rerun.stdout).group(1))
    recovered = re.search(r"created before a stop\s+(\d+)", rerun.stdout)
    already = int(re.search(r"already loaded\s+(\d+)", rerun.stdout).group(1))
    found = int(recovered.group(1)) if recovered else 0
    assert already + found + created == len(expected)
    assert subjects(sandbox) == expected  # every source conversation once, nothing missing
    assert sandbox.store.imported_creates == len(expected)
    assert sandbox.store.notifications_sent == 0
