"""`etl migrate freshdesk` over real HTTP: the Freshdesk emulation -> an empty Smarticks sandbox.

The same checks as Zendesk's and Help Scout's: field by field, attachments by their bytes,
inline images, spam and deleted tickets, a rerun, a delta after cut-over, kill -9, 429s.
"""

import re

import pytest
import requests
from click.testing import CliRunner
from helpers_migrate import (
    FALLBACK,
    ON_TARGET,
    environment,
    figure,
    kill_halfway_then_rerun,
    migrate,
    target_ids,
)
from helpers_migrate import empty_target as empty_target  # the fixture `target`
from helpers_migrate import working_in_tmp as working_in_tmp  # `in_tmp`, autouse

from etl.cli import cli
from etl.sandbox import Sandbox
from etl.sandbox.freshdesk import FreshdeskSandbox
from etl.sandbox.freshdesk.store import ACCOUNT, iso
from etl.sandbox.zendesk.store import PNG

STATUS = {2: "active", 3: "pending", 4: "closed", 5: "closed"}
TYPE = {3: "phone", 7: "chat"}


@pytest.fixture
def freshdesk():
    with FreshdeskSandbox(seed=1, tickets=30, page_limit=10) as server:
        yield server


def live(freshdesk):
    return [t for t in freshdesk.store.tickets.values() if not (t.spam or t.deleted)]


def parts(ticket):
    """The ticket's messages as the target should hold them: (type, at, body, author, files)."""
    out = [("customer", ticket.created_at, ticket.description, ticket.requester_id, ticket.files)]
    for note in ticket.notes:
        kind = "customer" if note.incoming else ("note" if note.private else "message")
        out.append((kind, note.created_at, note.body, note.user_id, note.files))
    return out


def test_a_full_migration_matches_the_source_field_by_field(freshdesk, target, tmp_path):
    db = tmp_path / "m.db"
    result = migrate(freshdesk, target, db, "--fallback-user", FALLBACK)
    assert result.exit_code == 0, result.output
    tickets = live(freshdesk)
    assert figure(result.output, "created") == len(tickets) == 28
    assert re.search(r"skipped\s+1\s+\(spam in Freshdesk\)", result.output)
    assert re.search(r"skipped\s+1\s+\(deleted in Freshdesk\)", result.output)
    assert "attachments gone" not in result.output
    store, ids, checked = freshdesk.store, target_ids(db, freshdesk), 0
    for ticket in tickets:
        got = target.store.get_conversation(ids[ticket.id], embed=("threads", "tags"))
        assert got["subject"] == ticket.subject
        assert got["status"] == STATUS[ticket.status]
        assert got["type"] == TYPE.get(ticket.source, "email")
        assert got["createdAt"] == iso(ticket.created_at)
        if got["status"] == "closed":
            assert got["closedAt"] == iso(ticket.closed_at or ticket.resolved_at)
        assert got["customer"]["email"] == store.contacts[ticket.requester_id].email
        assignee = store.agents[ticket.responder_id].email if ticket.responder_id else None
        if assignee and assignee not in ON_TARGET:
            assignee = FALLBACK
        assert (got["assignee"] or {}).get("email") == assignee
        assert sorted(t["name"] for t in got["_embedded"]["tags"]) == sorted(ticket.tags)
        threads = list(reversed(got["_embedded"]["threads"]))
        expected = parts(ticket)
        assert len(threads) == len(expected)
        for sent, (kind, at, body, author, files) in zip(threads, expected, strict=True):
            assert (sent["type"], sent["createdAt"]) == (kind, iso(at))
            body = body.replace(ACCOUNT, freshdesk.url)
            inline = re.findall(r'<img src="([^"]+/inline/attachment\?token=[^"]+)">', body)
            pattern = re.escape(body)
            for url in inline:  # an inline image: attached, and named in place of its link
                pattern = pattern.replace(
                    re.escape(f'<img src="{url}">'), r"\[image:\ (image-[0-9a-f]{8}\.png)\]"
                )
            found = re.fullmatch(pattern, sent["body"])
            assert found, (sent["body"], body)
            names = [f.name for f in files] + list(found.groups())
            data = [f.data for f in files] + [PNG] * len(inline)
            if kind != "customer":
                writer = store.agents[author].email
                assert sent["createdBy"]["email"] == (writer if writer in ON_TARGET else FALLBACK)
            attachments = sent["_embedded"]["attachments"]
            assert [a["fileName"] for a in attachments] == names
            for attachment, content in zip(attachments, data, strict=True):
                assert requests.get(attachment["fileUrl"], timeout=10).content == content
                checked += 1
    assert checked >= 14
    assert target.store.imported_creates == 28
    assert target.store.notifications_sent == 0
    assert freshdesk.credential_leaks == []  # signed links were fetched without the key

    again = migrate(freshdesk, target, db, "--fallback-user", FALLBACK)
    assert (figure(again.output, "created"), figure(again.output, "updated")) == (0, 0)
    assert figure(again.output, "tickets read") == 0
    assert len(target.store.conversation_ids()) == 28


def test_new_replies_and_statuses_after_cut_over_arrive_once(freshdesk, target, tmp_path):
    db = tmp_path / "m.db"
    assert migrate(freshdesk, target, db, "--fallback-user", FALLBACK).exit_code == 0
    ids = target_ids(db, freshdesk)
    store = freshdesk.store
    opened = next(t for t in live(freshdesk) if t.status == 2)
    pending = next(t for t in live(freshdesk) if t.status == 3)
    store.reply(opened.id, "Here is the invoice.", incoming=True, status=4,
                files=[("invoice.pdf", "application/pdf", b"%PDF invoice")])  # fmt: skip
    store.set_status(pending.id, 2)

    delta = migrate(freshdesk, target, db, "--fallback-user", FALLBACK)
    assert delta.exit_code == 0, delta.output
    assert figure(delta.output, "tickets read") == 2
    assert figure(delta.output, "updated") == 2
    first = target.store.get_conversation(ids[opened.id], embed=("threads",))
    assert first["status"] == "closed"
    newest = first["_embedded"]["threads"][0]
    assert (newest["type"], newest["body"]) == ("customer", "<div>Here is the invoice.</div>")
    (invoice,) = newest["_embedded"]["attachments"]
    assert requests.get(invoice["fileUrl"], timeout=10).content == b"%PDF invoice"
    assert target.store.get_conversation(ids[pending.id])["status"] == "active"

    again = migrate(freshdesk, target, db, "--fallback-user", FALLBACK)
    assert (figure(again.output, "created"), figure(again.output, "updated")) == (0, 0)
    assert target.store.get_conversation(ids[opened.id])["threadsCount"] == len(parts(opened))


def test_kill_9_halfway_then_rerun_creates_nothing_twice(tmp_path):
    with (
        FreshdeskSandbox(seed=2, tickets=40, page_limit=10, latency=0.01) as freshdesk,
        Sandbox(empty=True, latency=0.03) as target,
    ):
        rerun = kill_halfway_then_rerun(freshdesk, target, tmp_path, 10, len(live(freshdesk)))
        tickets = live(freshdesk)
        made = [target.store.get_conversation(c) for c in target.store.conversation_ids()]
        assert sorted(c["createdAt"] for c in made) == sorted(iso(t.created_at) for t in tickets)
        assert sum(c["threadsCount"] for c in made) == sum(len(parts(t)) for t in tickets)
        assert freshdesk.api_key not in rerun.stdout + rerun.stderr


def test_429s_wait_for_retry_after_and_a_wrong_key_is_one_line(tmp_path, monkeypatch, target):
    from etl.sources import http

    waits = []
    monkeypatch.setattr(http.time, "sleep", waits.append)
    with FreshdeskSandbox(seed=3, tickets=12, rate_limit_every=4, retry_after=6) as freshdesk:
        result = migrate(freshdesk, target, tmp_path / "m.db", "--fallback-user", FALLBACK)
        limited = freshdesk.status_counts.get(429, 0)
        waited = list(waits)
        env = environment(freshdesk, target, tmp_path / "m.db") | {"FRESHDESK_API_KEY": "wrong"}
        args = ["migrate", "freshdesk", "--source-url", freshdesk.url, "--mailbox", "1"]
        refused = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert limited >= 3
    assert waited.count(6.0) == limited  # each 429 waited its Retry-After, no less
    assert f"{limited} answered 429" in result.output
    assert refused.exit_code == 4
    assert refused.output.strip().splitlines() == [
        "Error: GET /api/v2/companies: HTTP 401: Freshdesk refused the API key "
        "(check --source-api-key)"
    ]


def test_the_ticket_walk_reads_a_crowded_second_and_tickets_changed_meanwhile(freshdesk):
    from etl.sources.freshdesk import FreshdeskReader

    tickets = live(freshdesk)
    for ticket in tickets[5:12]:  # seven tickets changed in one second, pages of three
        ticket.updated_at = tickets[5].updated_at
    freshdesk.page_limit = 3
    reader = FreshdeskReader(freshdesk.url, freshdesk.api_key)
    seen: list[int] = []
    changed = False
    for page in reader.ticket_pages(None):
        seen += [t["id"] for t in page.tickets]
        if not changed:  # an early ticket changes while the walk is under way
            freshdesk.store.set_status(tickets[0].id, 3)
            changed = True
    assert set(seen) == {t.id for t in tickets}  # none skipped
    assert seen.count(tickets[0].id) == 2  # read again at the end, with its change
    pages = [q for _, path, q in freshdesk.request_log if path == "/api/v2/tickets"]
    assert any(q.get("page") == "2" and q["updated_since"] != "1970-01-01T00:00:00Z"
               for q in pages)  # fmt: skip  # the crowded second stepped a page
