"""`etl migrate helpscout` over real HTTP: the Help Scout emulation -> an empty Smarticks sandbox.

The same checks as Zendesk's: field by field, attachments by their bytes, inline images, a
rerun, a delta after cut-over, a kill -9 and a rerun, 429s; and expiring tokens.
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
    images_named,
    kill_halfway_then_rerun,
    migrate,
    target_ids,
)
from helpers_migrate import empty_target as empty_target  # the fixture `target`
from helpers_migrate import working_in_tmp as working_in_tmp  # `in_tmp`, autouse

from etl.cli import cli
from etl.sandbox import Sandbox
from etl.sandbox.helpscout import HelpScoutSandbox
from etl.sandbox.helpscout.store import FILES, iso
from etl.sandbox.zendesk.store import PNG


@pytest.fixture
def helpscout():
    with HelpScoutSandbox(seed=1, conversations=30, page_limit=10) as server:
        yield server


def live(helpscout):
    return [c for c in helpscout.store.conversations.values() if c.status != "spam"]


def expected_body(thread, helpscout) -> str:
    images = [(helpscout.store.web_url(f), f.name) for f in thread.files]
    return images_named(thread.body.replace(FILES, helpscout.files_url), images)


def test_a_full_migration_matches_the_source_field_by_field(helpscout, target, tmp_path):
    db = tmp_path / "m.db"
    result = migrate(helpscout, target, db, "--fallback-user", FALLBACK)
    assert result.exit_code == 0, result.output
    convs = live(helpscout)
    assert figure(result.output, "created") == len(convs) == 26
    assert re.search(r"skipped\s+4\s+\(spam in Help Scout\)", result.output)
    assert re.search(r"threads\s+\d+\s+\(\d+ system threads skipped\)", result.output)
    plans = sum(1 for c in convs if c.plan)
    assert f"custom field Plan (not in the target mailbox)  ({plans} records)" in result.output
    ids = target_ids(db, helpscout)
    files_checked = 0
    for conv in convs:
        got = target.store.get_conversation(ids[conv.id], embed=("threads", "tags"))
        assert got["subject"] == conv.subject
        assert (got["status"], got["type"]) == (conv.status, conv.type)
        assert got["createdAt"] == iso(conv.created_at)
        if conv.status == "closed":
            assert got["closedAt"] == iso(conv.closed_at)
        assert got["customer"]["email"] == conv.customer.email
        assignee = conv.assignee.email if conv.assignee else None
        if assignee and assignee not in ON_TARGET:
            assignee = FALLBACK
        assert (got["assignee"] or {}).get("email") == assignee
        assert sorted(t["name"] for t in got["_embedded"]["tags"]) == sorted(conv.tags)
        fields = {f["name"]: f["text"] for f in got["customFields"] if f["value"]}
        assert fields == ({"Priority": conv.priority} if conv.priority else {})  # Plan: left out
        threads = list(reversed(got["_embedded"]["threads"]))
        published = [t for t in conv.threads if t.type != "lineitem"]
        assert len(threads) == len(published)
        for sent, original in zip(threads, published, strict=True):
            assert (sent["type"], sent["createdAt"]) == (original.type, iso(original.created_at))
            assert sent["body"] == expected_body(original, helpscout)
            if original.by_user:
                writer = original.author.email
                assert sent["createdBy"]["email"] == (writer if writer in ON_TARGET else FALLBACK)
            attachments = sent["_embedded"]["attachments"]
            assert [a["fileName"] for a in attachments] == [f.name for f in original.files]
            for attachment, item in zip(attachments, original.files, strict=True):
                assert requests.get(attachment["fileUrl"], timeout=10).content == item.data
                files_checked += 1
            if original.files and original.files[0].mime == "image/png":
                assert "[image: diagram-" in sent["body"]
                assert requests.get(attachments[0]["fileUrl"], timeout=10).content == PNG
    assert files_checked >= 15
    assert target.store.imported_creates == 26
    assert target.store.notifications_sent == 0
    assert helpscout.credential_leaks == []

    again = migrate(helpscout, target, db, "--fallback-user", FALLBACK)
    assert again.exit_code == 0, again.output
    assert (figure(again.output, "created"), figure(again.output, "updated")) == (0, 0)
    assert figure(again.output, "conversations read") == 0
    assert len(target.store.conversation_ids()) == 26


def test_new_threads_and_statuses_after_cut_over_arrive_once(helpscout, target, tmp_path):
    db = tmp_path / "m.db"
    assert migrate(helpscout, target, db, "--fallback-user", FALLBACK).exit_code == 0
    ids = target_ids(db, helpscout)
    store = helpscout.store
    active = next(c for c in live(helpscout) if c.status == "active")
    closed = next(c for c in live(helpscout) if c.status == "closed")
    store.add_thread(active.id, "All sorted, thanks!", by_user=False, status="closed",
                     files=[("log.txt", "text/plain", b"done\n")])  # fmt: skip
    store.set_status(closed.id, "pending")

    delta = migrate(helpscout, target, db, "--fallback-user", FALLBACK)
    assert delta.exit_code == 0, delta.output
    assert figure(delta.output, "conversations read") == 2
    assert figure(delta.output, "updated") == 2
    first = target.store.get_conversation(ids[active.id], embed=("threads",))
    assert first["status"] == "closed"
    newest = first["_embedded"]["threads"][0]
    assert (newest["type"], newest["body"]) == ("customer", "<p>All sorted, thanks!</p>")
    (log,) = newest["_embedded"]["attachments"]
    assert requests.get(log["fileUrl"], timeout=10).content == b"done\n"
    assert target.store.get_conversation(ids[closed.id])["status"] == "pending"

    again = migrate(helpscout, target, db, "--fallback-user", FALLBACK)
    assert (figure(again.output, "created"), figure(again.output, "updated")) == (0, 0)
    assert target.store.get_conversation(ids[active.id])["threadsCount"] == len(
        [t for t in active.threads if t.type != "lineitem"]
    )


def test_kill_9_halfway_then_rerun_creates_nothing_twice(tmp_path):
    with (
        HelpScoutSandbox(seed=2, conversations=40, page_limit=10, latency=0.01) as helpscout,
        Sandbox(empty=True, latency=0.03) as target,
    ):
        rerun = kill_halfway_then_rerun(helpscout, target, tmp_path, 10, len(live(helpscout)))
        convs = live(helpscout)
        made = [target.store.get_conversation(c) for c in target.store.conversation_ids()]
        assert sorted(c["createdAt"] for c in made) == sorted(iso(c.created_at) for c in convs)
        threads = sum(c["threadsCount"] for c in made)
        assert threads == sum(1 for c in convs for t in c.threads if t.type != "lineitem")
        assert helpscout.client_secret not in rerun.stdout + rerun.stderr


def test_429s_wait_for_help_scouts_retry_header(tmp_path, monkeypatch, target):
    from etl.sources import http

    waits = []
    monkeypatch.setattr(http.time, "sleep", waits.append)
    with HelpScoutSandbox(seed=3, conversations=12, rate_limit_every=3, retry_after=9) as hs:
        result = migrate(hs, target, tmp_path / "m.db", "--fallback-user", FALLBACK)
        limited = hs.status_counts.get(429, 0)
    assert result.exit_code == 0, result.output
    assert limited >= 3
    assert waits.count(9.0) == limited  # X-RateLimit-Retry-After, each time
    assert f"{limited} answered 429" in result.output


def test_an_expired_token_is_renewed_and_a_wrong_secret_is_one_line(tmp_path, target):
    with HelpScoutSandbox(seed=4, conversations=12, token_uses=3) as helpscout:
        result = migrate(helpscout, target, tmp_path / "m.db", "--fallback-user", FALLBACK)
        assert result.exit_code == 0, result.output
        assert helpscout.requests_to("/v2/oauth2/token") >= 3  # renewed as each expired
        assert figure(result.output, "created") == len(live(helpscout))
        env = environment(helpscout, target, tmp_path / "m.db")
        env["HELPSCOUT_CLIENT_SECRET"] = "wrong"
        args = ["migrate", "helpscout", "--source-url", helpscout.url, "--mailbox", "1"]
        refused = CliRunner().invoke(cli, args, env=env)
    assert refused.exit_code == 4
    assert refused.output.strip().splitlines() == [
        "Error: POST /v2/oauth2/token: HTTP 401: Help Scout refused the app's id and secret "
        "(check --source-client-id/--source-client-secret)"
    ]
    assert "wrong" not in refused.output
