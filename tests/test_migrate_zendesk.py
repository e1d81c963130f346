"""`etl migrate zendesk` over real HTTP: the Zendesk emulation -> an empty Smarticks sandbox.

A full migration compared field by field and attachments by their bytes, inline images,
deleted and spam tickets, a rerun, a delta after cut-over, a kill -9 and a rerun, 429s,
a dry run, a custom mapping, and the token kept out of output and files.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from helpers_migrate import (
    FALLBACK,
    environment,
    figure,
    images_named,
    kill_halfway_then_rerun,
    migrate,
    target_ids,
)
from helpers_migrate import empty_target as empty_target  # the fixture `target`
from helpers_migrate import working_in_tmp as working_in_tmp  # `in_tmp`, autouse

from etl.cli import cli
from etl.sandbox import Sandbox
from etl.sandbox.zendesk import ZendeskSandbox
from etl.sandbox.zendesk.store import PNG, iso

STATUS = {"new": "active", "open": "active", "pending": "pending", "hold": "pending"}
STATUS |= {"solved": "closed", "closed": "closed"}
CHANNEL = {"voice": "phone", "chat": "chat", "native_messaging": "chat"}


@pytest.fixture
def zendesk():
    with ZendeskSandbox(seed=1, tickets=40, page_limit=10) as server:
        yield server


def live_tickets(zendesk):
    return [t for t in zendesk.store.tickets.values() if t.status != "deleted"]


def expected_body(comment, zendesk) -> str:
    """The comment's HTML with each inline image on the account named by its file."""
    images = [(zendesk.store.content_url(a), a.file_name) for a in comment.attachments]
    return images_named(comment.html_body.replace("{account}", zendesk.url), images)


def test_a_full_migration_matches_the_source_field_by_field(zendesk, target, tmp_path):
    db = tmp_path / "migration.db"
    result = migrate(zendesk, target, db, "--fallback-user", FALLBACK)
    assert result.exit_code == 0, result.output
    live = live_tickets(zendesk)
    assert figure(result.output, "created") == len(live) == 37
    assert figure(result.output, "skipped") == 2  # "deleted in Zendesk", listed first
    assert re.search(r"skipped\s+1\s+\(marked as spam in Zendesk\)", result.output)
    assert "former.agent@acme-support.example.com" in result.output  # listed, sent as admin
    plans = sum(1 for t in live_tickets(zendesk) if t.custom_fields[360002])
    assert f"custom field Plan (not in the target mailbox)  ({plans} records)" in result.output
    users = {u.id: u for u in zendesk.store.users.values()}
    agents_on_target = {"agent2@support.example.org", "agent3@support.example.org"}
    ids = target_ids(db, zendesk)
    attachments_checked = 0
    for ticket in live:
        conv = target.store.get_conversation(ids[ticket.id], embed=("threads", "tags"))
        requester = users[ticket.requester_id]
        assert conv["subject"] == ticket.subject
        assert conv["status"] == STATUS[ticket.status]
        assert conv["type"] == CHANNEL.get(ticket.channel, "email")
        assert conv["createdAt"] == iso(ticket.created_at)
        if conv["status"] == "closed":
            assert conv["closedAt"] == iso(ticket.solved_at)  # the metrics' solved_at
        assert conv["customer"]["email"] == requester.email
        assignee = users[ticket.assignee_id].email if ticket.assignee_id else None
        if assignee and assignee not in agents_on_target:
            assignee = FALLBACK
        assert (conv["assignee"] or {}).get("email") == assignee
        assert sorted(t["name"] for t in conv["_embedded"]["tags"]) == sorted(ticket.tags)
        fields = {f["name"]: f["value"] for f in conv["customFields"] if f["value"]}
        vendor = ticket.custom_fields[360001]
        assert fields == ({"Vendor": vendor} if vendor else {})  # Plan: not on the target
        threads = list(reversed(conv["_embedded"]["threads"]))  # the API lists newest first
        assert len(threads) == len(ticket.comments)
        for thread, comment in zip(threads, ticket.comments, strict=True):
            author = users[comment.author_id]
            kind = "customer" if author.role == "end-user" else "message"
            if kind == "message" and not comment.public:
                kind = "note"
            assert (thread["type"], thread["createdAt"]) == (kind, iso(comment.created_at))
            assert thread["body"] == expected_body(comment, zendesk)
            if kind != "customer":
                writer = author.email if author.email in agents_on_target else FALLBACK
                assert thread["createdBy"]["email"] == writer
            files = thread["_embedded"]["attachments"]
            assert [a["fileName"] for a in files] == [a.file_name for a in comment.attachments]
            for sent, original in zip(files, comment.attachments, strict=True):
                assert sent["fileUrl"].startswith(target.url)  # nothing points at Zendesk
                assert requests.get(sent["fileUrl"], timeout=10).content == original.data
                attachments_checked += 1
    assert attachments_checked >= 20
    assert target.store.imported_creates == 37
    assert target.store.notifications_sent == 0
    assert zendesk.credential_leaks == []  # files were fetched without the token

    again = migrate(zendesk, target, db, "--fallback-user", FALLBACK)
    assert again.exit_code == 0, again.output
    assert figure(again.output, "created") == 0
    assert figure(again.output, "updated") == 0
    assert figure(again.output, "already loaded") == 37
    assert figure(again.output, "tickets read") == 0  # the export's cursor: nothing new
    assert len(target.store.conversation_ids()) == 37


def test_inline_images_are_attached_and_named_in_place_of_the_dead_link(zendesk, target, tmp_path):
    db = tmp_path / "migration.db"
    assert migrate(zendesk, target, db, "--fallback-user", FALLBACK).exit_code == 0
    ids = target_ids(db, zendesk)
    seen = 0
    for ticket in live_tickets(zendesk):
        conv = target.store.get_conversation(ids[ticket.id], embed=("threads",))
        for thread in conv["_embedded"]["threads"]:
            assert zendesk.url not in thread["body"]  # no link to the old account is left
            if "[image: screenshot-" in thread["body"]:
                seen += 1
                (image,) = [
                    a for a in thread["_embedded"]["attachments"] if a["fileName"].endswith(".png")
                ]
                assert requests.get(image["fileUrl"], timeout=10).content == PNG
                assert '<img src="https://cdn.example.org/logo.png">' in thread["body"]
    assert seen >= 8


def test_new_messages_and_statuses_after_cut_over_arrive_once(zendesk, target, tmp_path):
    db = tmp_path / "migration.db"
    assert migrate(zendesk, target, db, "--fallback-user", FALLBACK).exit_code == 0
    ids = target_ids(db, zendesk)
    store = zendesk.store
    live = live_tickets(zendesk)
    open_one = next(t for t in live if t.status == "open")
    solved_one = next(t for t in live if t.status == "solved")
    pending_one = next(t for t in live if t.status == "pending")
    agent = next(u for u in store.users.values() if u.email == "agent2@support.example.org")
    store.add_comment(open_one.id, agent.id, "Fixed on our side.", status="solved")
    store.add_comment(
        solved_one.id,
        solved_one.requester_id,
        "It broke again, see the log.",
        attachments=[("log.txt", "text/plain", b"line 1\nline 2\n")],
    )
    store.set_status(solved_one.id, "open")
    store.set_status(pending_one.id, "solved")
    fresh = store.new_ticket(open_one.requester_id, "A new question", "Hello again")
    store.settle()  # a minute passes: the export holds back the last one

    delta = migrate(zendesk, target, db, "--fallback-user", FALLBACK)
    assert delta.exit_code == 0, delta.output
    assert figure(delta.output, "tickets read") == 4
    assert figure(delta.output, "created") == 1
    assert figure(delta.output, "updated") == 3  # 2 with a new comment, 1 a status alone
    after = target_ids(db, zendesk)
    assert len(target.store.conversation_ids()) == 38
    first = target.store.get_conversation(ids[open_one.id], embed=("threads",))
    assert first["status"] == "closed"
    newest = first["_embedded"]["threads"][0]
    assert (newest["type"], newest["body"]) == ("message", "<p>Fixed on our side.</p>")
    assert newest["createdAt"] == iso(open_one.comments[-1].created_at)
    assert first["threadsCount"] == len(open_one.comments)
    second = target.store.get_conversation(ids[solved_one.id], embed=("threads",))
    assert second["status"] == "active"
    (log,) = second["_embedded"]["threads"][0]["_embedded"]["attachments"]
    assert requests.get(log["fileUrl"], timeout=10).content == b"line 1\nline 2\n"
    assert target.store.get_conversation(ids[pending_one.id])["status"] == "closed"
    assert target.store.get_conversation(after[fresh])["subject"] == "A new question"
    assert target.store.notifications_sent == 0

    again = migrate(zendesk, target, db, "--fallback-user", FALLBACK)
    assert again.exit_code == 0, again.output
    assert (figure(again.output, "created"), figure(again.output, "updated")) == (0, 0)
    assert len(target.store.conversation_ids()) == 38
    conv = target.store.get_conversation(ids[open_one.id])
    assert conv["threadsCount"] == len(open_one.comments)


def test_kill_9_halfway_then_rerun_creates_nothing_twice(tmp_path):
    with (
        ZendeskSandbox(seed=2, tickets=40, page_limit=10, latency=0.01) as zendesk,
        Sandbox(empty=True, latency=0.03) as target,
    ):
        rerun = kill_halfway_then_rerun(zendesk, target, tmp_path, 12, len(live_tickets(zendesk)))
        live = live_tickets(zendesk)
        created = [
            target.store.get_conversation(c)["createdAt"] for c in target.store.conversation_ids()
        ]
        assert len(created) == len(live) == 37
        assert sorted(created) == sorted(iso(t.created_at) for t in live)  # each exactly once
        threads = sum(
            target.store.get_conversation(c)["threadsCount"]
            for c in target.store.conversation_ids()
        )
        assert threads == sum(len(t.comments) for t in live)
        assert zendesk.token not in rerun.stdout + rerun.stderr


def test_429s_are_waited_out_for_their_retry_after(tmp_path, monkeypatch, target):
    from etl.sources import http as source

    waits = []
    monkeypatch.setattr(source.time, "sleep", waits.append)
    with ZendeskSandbox(seed=3, tickets=12, rate_limit_every=4, retry_after=7) as zendesk:
        result = migrate(zendesk, target, tmp_path / "m.db", "--fallback-user", FALLBACK)
        assert result.exit_code == 0, result.output
        rate_limited = zendesk.status_counts.get(429, 0)
    assert rate_limited >= 3
    assert waits.count(7.0) == rate_limited  # each 429 waited its Retry-After, no less
    assert f"{rate_limited} answered 429" in result.output
    assert figure(result.output, "created") == len(target.store.conversation_ids()) > 0


def test_dry_run_reports_what_would_happen_and_sends_nothing(zendesk, target, tmp_path):
    result = migrate(zendesk, target, tmp_path / "m.db", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Checked (dry run, nothing sent)")
    assert target.store.conversation_ids() == []
    assert figure(result.output, "would be sent") == 37
    assert re.search(  # no --fallback-user: the first administrator, said so
        r"unmapped agents \(sent to admin@support.example.org, the first administrator; "
        r"--fallback-user to choose\):\n\s+former.agent@acme-support.example.com",
        result.output,
    )
    rows = Path("zendesk.report.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    outcomes = sorted({row.split(",")[4] for row in rows})
    assert len(rows) == 40
    assert outcomes == ["skipped: deleted in Zendesk", "skipped: marked as spam in Zendesk",
                        "would be sent"]  # fmt: skip

    again = migrate(zendesk, target, tmp_path / "m.db", "--dry-run", "--fallback-user", FALLBACK)
    assert again.exit_code == 0, again.output
    assert figure(again.output, "would be sent") == 37
    assert figure(again.output, "tickets read") == 0  # staged by the first dry run
    assert target.store.conversation_ids() == []


def test_a_mapping_file_changes_statuses_and_maps_custom_fields(zendesk, target, tmp_path):
    shipped = Path(__file__).resolve().parent.parent / "mappings" / "zendesk-api.toml"
    text = (
        shipped.read_text(encoding="utf-8")
        .replace('hold = "pending"', 'hold = "active"')
        .replace('custom_fields = "custom"', 'custom_fields = { "Comments" = "fields.360001" }')
    )
    custom = tmp_path / "mine.toml"
    custom.write_text(text, encoding="utf-8")
    db = tmp_path / "m.db"
    result = migrate(zendesk, target, db, "--fallback-user", FALLBACK, "--mapping", custom)
    assert result.exit_code == 0, result.output
    ids = target_ids(db, zendesk)
    held = [t for t in live_tickets(zendesk) if t.status == "hold"]
    assert held and all(
        target.store.get_conversation(ids[t.id])["status"] == "active" for t in held
    )
    for ticket in live_tickets(zendesk):
        fields = {f["name"]: f["value"] for f in target.store.get_conversation(ids[ticket.id])[
            "customFields"
        ]}  # fmt: skip
        assert fields.get("Comments") == ticket.custom_fields[360001]
        assert not fields.get("Vendor")  # the mapping chose another field


def test_the_token_is_never_printed_or_stored(zendesk, target, tmp_path):
    db = tmp_path / "m.db"
    result = migrate(zendesk, target, db, "--fallback-user", FALLBACK)
    assert result.exit_code == 0
    assert zendesk.token not in result.output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert zendesk.token.encode() not in path.read_bytes(), path


def test_another_account_in_the_same_database_is_refused(zendesk, target, tmp_path):
    db = tmp_path / "m.db"
    assert migrate(zendesk, target, db, "--fallback-user", FALLBACK).exit_code == 0
    with ZendeskSandbox(seed=9, tickets=3) as other:
        result = migrate(other, target, db, "--fallback-user", FALLBACK)
    assert result.exit_code == 2
    assert "pass another --db for another account" in result.output
    assert len(target.store.conversation_ids()) == 37


def test_a_wrong_token_is_one_line_and_exit_4(zendesk, target, tmp_path):
    env = environment(zendesk, target, tmp_path / "m.db") | {"ZENDESK_TOKEN": "wrong"}
    args = ["migrate", "zendesk", "--source-url", zendesk.url, "--mailbox", "1"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 4
    assert result.output.strip().splitlines() == [
        "Error: GET /api/v2/user_fields.json: HTTP 401: Zendesk refused the "
        "email and API token (check --source-email/--source-token)"
    ]


def test_demo_migrate_moves_a_zendesk_sandbox_and_catches_up(tmp_path):
    result = CliRunner().invoke(
        cli, ["demo", "--migrate", "--conversations", "12", "--db", str(tmp_path / "d.db")]
    )
    assert result.exit_code == 0, result.output
    assert figure(result.output, "created") == 9  # 12 tickets: 2 deleted, 1 spam
    rerun = result.output.split("rerun:", 1)[1]
    assert figure(rerun, "updated") == 1  # the comment written after cut-over
    assert figure(rerun, "created") == 0


def test_a_migration_killed_while_reading_the_source_goes_on_from_its_cursor(tmp_path, target):
    with ZendeskSandbox(seed=4, tickets=40, page_limit=5, latency=0.03) as zendesk:
        env = dict(os.environ, **environment(zendesk, target, tmp_path / "m.db"))
        command = [
            sys.executable, "-m", "etl", "migrate", "zendesk", "--source-url", zendesk.url,
            "--mailbox", "1", "--fallback-user", FALLBACK,
        ]  # fmt: skip
        first = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        export = "/api/v2/incremental/tickets/cursor.json"
        deadline = time.monotonic() + 60
        while zendesk.requests_to(export) < 3 and time.monotonic() < deadline:
            if first.poll() is not None:
                pytest.fail(f"the migration ended before the kill: {first.communicate()}")
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert target.store.conversation_ids() == []  # killed while reading
        comments_before = zendesk.requests_to("/api/v2/tickets/")
        log_before = len(zendesk.request_log)

        rerun = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        rerun_log = list(zendesk.request_log)[log_before:]
        first_export = next(q for _, path, q in rerun_log if path == export)
        assert "cursor" in first_export and "start_time" not in first_export  # went on
        comments_after = zendesk.requests_to("/api/v2/tickets/") - comments_before
        assert comments_after < 37  # the pages saved before the kill were not read again
        assert figure(rerun.stdout, "created") == 37 == len(target.store.conversation_ids())


def test_attachments_over_the_request_limit_follow_in_notes_and_appends(tmp_path, zendesk):
    store = zendesk.store
    ticket = next(t for t in live_tickets(zendesk) if t.status == "open")
    files = [(f"scan-{n}.bin", "application/octet-stream", bytes([n]) * 250_000) for n in range(3)]
    store.add_comment(ticket.id, ticket.requester_id, "Three scans attached.", attachments=files)
    last = [("last.bin", "application/octet-stream", b"z" * 300_000)]
    store.add_comment(ticket.id, ticket.requester_id, "And one more.", attachments=last)
    store.settle()
    with Sandbox(empty=True, max_body_mb=1) as small:
        db = tmp_path / "m.db"
        args = ("--fallback-user", FALLBACK, "--max-request-mb", "0.8")
        result = migrate(zendesk, small, db, *args)
        assert result.exit_code == 0, result.output
        assert small.status_counts.get(413, 0) == 0  # nothing was refused as too large
        assert figure(result.output, "split to fit") == 2
        assert "1 note(s) after the thread of" in result.output
        assert "created with" in result.output
        conv = small.store.get_conversation(target_ids(db, zendesk)[ticket.id], embed=("threads",))
        threads = list(reversed(conv["_embedded"]["threads"]))
        sent = {a["fileName"]: a["fileUrl"] for t in threads for a in t["_embedded"]["attachments"]}
        for name, _, data in [*files, *last]:
            assert requests.get(sent[name], timeout=10).content == data  # every byte arrived
        scans = next(
            i for i, t in enumerate(threads) if t["body"] == "<p>Three scans attached.</p>"
        )
        note = threads[scans + 1]  # right after the message it continues
        assert (note["type"], note["createdAt"]) == ("note", threads[scans]["createdAt"])
        assert note["body"].startswith("<p>Attachments of the message above, continued (2 of 2)")
        assert [a["fileName"] for a in note["_embedded"]["attachments"]] == ["scan-2.bin"]
        again = migrate(zendesk, small, db, *args)
        assert (figure(again.output, "created"), figure(again.output, "updated")) == (0, 0)
        assert small.store.get_conversation(target_ids(db, zendesk)[ticket.id])[
            "threadsCount"
        ] == len(threads)
        # Every file sent, in created and appended threads alike, is recorded and verifies.
        env = environment(zendesk, small, db)
        checked = CliRunner().invoke(cli, ["verify", "--files"], env=env)
        assert checked.exit_code == 0, checked.output
        n = len(small.store.attachments)
        assert f"Attachments: {n} compared by name and size and {n} by content" in checked.output
        assert "not compared" not in checked.output


def test_no_or_a_wrong_mailbox_is_one_line_and_exit_2_before_anything_is_sent(
    zendesk, target, tmp_path
):
    env = environment(zendesk, target, tmp_path / "m.db")
    for extra, said in (
        ([], "Error: say which target mailbox to migrate into: --mailbox ID (1 ("),
        (["--mailbox", "99"], "Error: no mailbox 99 on the target; mailboxes: 1 ("),
    ):
        args = ["migrate", "zendesk", "--source-url", zendesk.url, *extra]
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 2, result.output
        assert result.output.startswith(said) and result.output.count("\n") == 1
    assert target.store.conversation_ids() == []
    assert list(zendesk.request_log) == []  # said before the source was read


def test_5xx_at_the_source_are_retried_and_every_ticket_arrives_once(tmp_path, monkeypatch, target):
    from etl.sources import http

    monkeypatch.setattr(http.time, "sleep", lambda seconds: None)
    with ZendeskSandbox(seed=5, tickets=20, error_rate=0.25, fault_seed=3) as zendesk:
        result = migrate(zendesk, target, tmp_path / "m.db", "--fallback-user", FALLBACK)
        failed = zendesk.status_counts.get(503, 0)
        live = live_tickets(zendesk)
    assert result.exit_code == 0, result.output
    assert failed >= 5
    made = [target.store.get_conversation(c)["createdAt"] for c in target.store.conversation_ids()]
    assert sorted(made) == sorted(iso(t.created_at) for t in live)


def test_a_retry_after_beyond_max_wait_fails_at_once_in_one_line(tmp_path, monkeypatch, target):
    from etl.sources import http

    waits = []
    monkeypatch.setattr(http.time, "sleep", waits.append)
    with ZendeskSandbox(seed=6, tickets=5, rate_limit_every=1, retry_after=3600) as zendesk:
        result = migrate(zendesk, target, tmp_path / "m.db", "--max-wait", "60")
    assert result.exit_code == 1, result.output
    assert waits == []  # no hour-long sleep
    assert result.output.strip().splitlines() == [
        "Error: GET /api/v2/user_fields.json: HTTP 429: "
        "the source asks to wait 3600 s, more than --max-wait 60 s"
    ]


def test_the_export_holds_back_the_last_minute_and_the_cursor_stays_exact(
    zendesk, target, tmp_path
):
    """Zendesk's incremental exports leave out what changed within the last minute, say the
    stream ended, and refuse a start_time that recent. A change held back is read by a later
    run, once: the saved cursor never passes it."""
    store, db = zendesk.store, tmp_path / "m.db"
    assert migrate(zendesk, target, db, "--fallback-user", FALLBACK).exit_code == 0
    ids = target_ids(db, zendesk)
    first, second = [t for t in live_tickets(zendesk) if t.status == "open"][:2]
    store.add_comment(first.id, first.requester_id, "Older than a minute by the next run.")
    store.settle()
    store.add_comment(second.id, second.requester_id, "Written just now.")

    auth = (f"{zendesk.email}/token", zendesk.token)
    export = f"{zendesk.url}/api/v2/incremental/tickets/cursor.json"
    too_recent = requests.get(export, params={"start_time": store.now() - 30}, auth=auth)
    assert too_recent.status_code == 400 and "Too recent" in too_recent.text
    body = requests.get(export, params={"start_time": store.now() - 3600}, auth=auth).json()
    assert [t["id"] for t in body["tickets"]] == [first.id] and body["end_of_stream"] is True

    held = migrate(zendesk, target, db, "--fallback-user", FALLBACK)
    assert held.exit_code == 0, held.output
    assert figure(held.output, "tickets read") == 1  # the first; the second held back
    assert figure(held.output, "updated") == 1
    again = migrate(zendesk, target, db, "--fallback-user", FALLBACK)
    assert figure(again.output, "tickets read") == 0  # still held back, and not skipped:
    store.settle()
    late = migrate(zendesk, target, db, "--fallback-user", FALLBACK)
    assert figure(late.output, "tickets read") == 1
    assert figure(late.output, "updated") == 1
    for ticket, text in ((first, "Older than a minute"), (second, "Written just now.")):
        got = target.store.get_conversation(ids[ticket.id], embed=("threads",))
        bodies = [t["body"] for t in got["_embedded"]["threads"]]
        assert sum(text in b for b in bodies) == 1  # exactly once
    assert figure(migrate(zendesk, target, db).output, "tickets read") == 0
