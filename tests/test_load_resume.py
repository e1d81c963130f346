"""Exactly once across crashes, and the instance-to-instance round trip.

- a crash between a create and its ledger entry: the rerun finds the conversation on the
  target instead of creating it again;
- kill -9 of a real `python -m etl load` mid-load, then a rerun: each conversation once;
- sandbox A -> etl sync -> etl export --format jsonl -> etl load -> sandbox B reproduces A.
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
from click.testing import CliRunner

from etl import mirror
from etl.cli import cli
from etl.client import Client
from etl.ledger import Ledger
from etl.load import LoadOptions, load
from etl.load import send as load_module

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "smarticks" / "conversations.jsonl"


@pytest.fixture(autouse=True)
def _fast_recovery(monkeypatch, tmp_path):
    monkeypatch.setattr(load_module, "RETRY_PAUSE", 0.0)
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


# -- round trip ---------------------------------------------------------------------------------


def cli_run(sandbox, *args, db):
    env = {
        "SMARTICKS_URL": sandbox.url,
        "SMARTICKS_API_KEY": sandbox.api_key,
        "SMARTICKS_DB": str(db),
    }
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def shape(store, cid) -> dict:
    """What a migration must keep of a conversation, comparable across instances."""
    conv = store.get_conversation(cid, embed=("threads", "tags"))
    threads = [t for t in reversed(conv["_embedded"]["threads"]) if t["type"] != "lineitem"]
    return {
        "subject": conv["subject"],
        "customer": (conv["customer"] or {}).get("email"),
        "status": conv["status"],
        "type": conv["type"],
        "createdAt": conv["createdAt"],
        "closedAt": conv["closedAt"],
        "assignee": (conv["assignee"] or {}).get("email"),
        "tags": sorted(t["name"] for t in conv["_embedded"]["tags"]),
        "fields": {f["name"]: f["text"] or f["value"] for f in conv["customFields"]},
        "threads": [
            (
                t["type"],
                t["createdAt"],
                t["body"],
                t["cc"],
                [a["fileName"] for a in t["_embedded"]["attachments"]],
            )
            for t in threads
        ],
    }


def test_round_trip_sync_export_load_reproduces_the_source(sandbox_factory, tmp_path):
    source = sandbox_factory(seed=8, conversations=45)
    target = sandbox_factory(empty=True)
    mirror_db, ledger_db = tmp_path / "a.db", tmp_path / "b.db"
    synced = cli_run(source, "sync", "--quiet", db=mirror_db)
    assert synced.exit_code == 0, synced.output
    exported = cli_run(
        source, "export", "--format", "jsonl", "--out", tmp_path / "dump", "--quiet", db=mirror_db
    )
    assert exported.exit_code == 0, exported.output

    store = source.store
    a_convs = {cid: shape(store, cid) for cid in store.conversation_ids()}
    trashed = {cid for cid in a_convs if store.conversations[cid].state == "deleted"}
    no_email = {cid for cid, c in a_convs.items() if not c["customer"]} - trashed
    loadable = [c for cid, c in a_convs.items() if cid not in trashed]
    assert len(loadable) >= 30 and trashed and no_email  # seed 8: all
    assert {a_convs[cid]["type"] for cid in no_email} >= {"email", "phone"}

    customers = cli_run(
        target,
        "load",
        "customers",
        tmp_path / "dump" / "customers.jsonl",
        "--mapping",
        "smarticks",
        db=ledger_db,
    )
    # Customers without an email arrive too (by phone or name), none rejected.
    a_people = [store.get_customer(i) for i in store.customer_ids()]
    with_email = [c for c in a_people if c["_embedded"]["emails"]]
    assert len(with_email) < len(a_people)
    assert customers.exit_code == 0, customers.output
    assert len(target.store.customer_ids()) == len(a_people)
    conversations = cli_run(
        target,
        "load",
        "conversations",
        tmp_path / "dump" / "conversations.jsonl",
        "--mapping",
        "smarticks",
        "--workers",
        "4",
        db=ledger_db,
    )
    assert conversations.exit_code == 0, conversations.output
    # Their conversations point at the customers that load made: none created twice.
    assert len(target.store.customer_ids()) == len(a_people)

    b_convs = [shape(target.store, cid) for cid in target.store.conversation_ids()]
    assert len(b_convs) == len(loadable)

    def key(conv):
        return json.dumps(conv, sort_keys=True)

    for a_conv, b_conv in zip(sorted(loadable, key=key), sorted(b_convs, key=key), strict=True):
        assert b_conv == a_conv
    assert target.store.notifications_sent == 0
    assert target.store.imported_creates == len(loadable)
    assert not (tmp_path / "conversations.rejects.csv").exists()

    def person(c: dict) -> tuple:  # the name as its two parts ("Mary, Jr." stays whole)
        return (c["firstName"] or None, c["lastName"] or None, c["notes"] or None)

    b_people = {
        c["_embedded"]["emails"][0]["value"].casefold(): person(c)
        for c in map(target.store.get_customer, target.store.customer_ids())
        if c["_embedded"]["emails"]
    }
    for a_person in with_email:
        email = a_person["_embedded"]["emails"][0]["value"].casefold()
        assert b_people.get(email) == person(a_person), email
    assert any(" " in (c["firstName"] or "") for c in with_email)  # seed 8 has such names
    assert any(c["notes"] for c in with_email)

    # Email-less customers arrive by phone and name, and their threads name the same customer.
    b_by_subject = {
        (c["subject"], c["createdAt"]): c["id"]
        for c in map(target.store.get_conversation, target.store.conversation_ids())
    }
    customer_threads = 0
    for cid in no_email:
        subject = (a_convs[cid]["subject"], a_convs[cid]["createdAt"])
        a_customer = store.get_customer(store.conversations[cid].customer_id)
        b_conv = target.store.get_conversation(b_by_subject[subject], embed=("threads",))
        b_customer = target.store.get_customer(b_conv["customer"]["id"])
        assert b_customer["_embedded"]["emails"] == [], subject
        phones = [p["value"] for p in b_customer["_embedded"]["phones"]]
        assert a_customer["_embedded"]["phones"][0]["value"] in phones, subject
        assert b_customer["firstName"] == a_customer["firstName"], subject
        authors = [
            t["createdBy"]["id"] for t in b_conv["_embedded"]["threads"] if t["type"] == "customer"
        ]
        assert set(authors) <= {b_customer["id"]}, subject
        customer_threads += len(authors)
    assert customer_threads  # seed 8's phone-only conversations have customer threads

    again = cli_run(
        target,
        "load",
        "conversations",
        tmp_path / "dump" / "conversations.jsonl",
        "--mapping",
        "smarticks",
        db=ledger_db,
    )
    assert re.search(r"created\s+0\b", again.output), again.output
    assert len(target.store.conversation_ids()) == len(loadable)
    verified = cli_run(target, "verify", db=ledger_db)
    assert verified.exit_code == 0, verified.output
