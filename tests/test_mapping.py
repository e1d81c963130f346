"""Mapping files -> pure row transformations: dates, value maps, grouping, problems, drafts."""

import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from etl import mapping as m
from etl.readers import SourceRow, read_rows

ROOT = Path(__file__).resolve().parent.parent


def rows(*records, file="t.csv"):
    return [SourceRow(file, i + 2, r) for i, r in enumerate(records)]


def parse(text: str, **kwargs) -> m.Mapping:
    return m.parse_mapping(tomllib.loads(text), **kwargs)


# -- dates ---------------------------------------------------------------------------------


def test_dates_with_offsets_become_utc_and_naive_ones_need_an_explicit_zone():
    assert m.parse_date("2024-03-01T14:05:00+01:00") == "2024-03-01T13:05:00Z"
    assert m.parse_date("2021-04-21T13-24-01Z") == "2021-04-21T13:24:01Z"
    with pytest.raises(m.DateProblem) as problem:
        m.parse_date("2024-03-01 14:05")
    assert problem.value.kind == "date_without_zone"
    assert m.parse_date("2024-03-01 14:05", timezone="Europe/Paris") == "2024-03-01T13:05:00Z"
    assert m.parse_date("2024-07-01 14:05", timezone="Europe/Paris") == "2024-07-01T12:05:00Z"


def test_custom_formats_unix_times_and_garbage():
    formats = ["%d/%m/%Y %H:%M", "unix"]
    assert m.parse_date("31/12/2023 23:30", formats, "UTC") == "2023-12-31T23:30:00Z"
    assert m.parse_date("1707142867", formats) == "2024-02-05T14:21:07Z"
    assert m.parse_date(1707142867) == "2024-02-05T14:21:07Z"
    with pytest.raises(m.DateProblem) as problem:
        m.parse_date("next tuesday", formats, "UTC")
    assert problem.value.kind == "bad_date"


def test_local_times_made_ambiguous_or_impossible_by_dst_are_refused_not_guessed():
    with pytest.raises(m.DateProblem, match="ambiguous"):
        m.parse_date("2024-10-27 02:30", timezone="Europe/Paris")
    with pytest.raises(m.DateProblem, match="does not exist"):
        m.parse_date("2024-03-31 02:30", timezone="Europe/Paris")


# -- loading mapping files -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["smarticks", "zendesk", "freshdesk", "helpscout", "intercom", "generic"]
)
def test_every_shipped_mapping_parses_and_has_a_sample(name):
    mapping = m.load_mapping(name)
    assert mapping.path == ROOT / "mappings" / f"{name}.toml"
    assert mapping.system == name
    assert mapping.conversation["id"]
    assert (ROOT / "samples" / name).is_dir()


def test_mapping_mistakes_are_named():
    with pytest.raises(m.MappingError, match=r"\[conversation\] has unknown key\(s\): subjet"):
        parse('[conversation]\nid = "id"\nsubjet = "s"')
    with pytest.raises(m.MappingError, match=r"no value map \[values.state\]"):
        parse('[conversation]\nid = "id"\nstatus = { path = "s", map = "state" }')
    with pytest.raises(m.MappingError, match="unknown time zone"):
        parse('[source]\ntimezone = "Mars/Olympus"')
    with pytest.raises(m.MappingError, match="no mapping named 'nope'"):
        m.load_mapping("nope")


def test_timezone_option_overrides_the_file():
    assert m.load_mapping("generic", timezone="Asia/Tokyo").timezone == "Asia/Tokyo"


# -- specs -----------------------------------------------------------------------------------


def test_specs_paths_fallbacks_joins_maps_and_wildcards(tmp_path):
    mapping = parse('[values.s]\nsolved = "closed"\n"*" = "active"\n')
    ev = m.Evaluator(mapping, tmp_path)
    record = {"a": {"b": [{"c": "deep"}]}, "First name": "Zoë", "status": "Solved", "x": ""}
    assert ev.value("a.b.0.c", record) == "deep"
    assert ev.value("First name", record) == "Zoë"  # a column name with a space
    assert ev.value(["x", "missing", "First name"], record) == "Zoë"
    assert ev.value({"join": ["First name", "a.b.0.c"], "sep": "/"}, record) == "Zoë/deep"
    assert ev.value({"path": "status", "map": "s"}, record) == "closed"
    assert ev.value({"value": "new", "map": "s"}, record) == "active"
    assert ev.value({"path": "x", "default": "d"}, record) == "d"
    assert ev.value({"path": "^.id"}, {}, parent={"id": 5}) == 5
    assert ev.value({"value": "<p>Hi&nbsp;<b>there</b></p>", "strip_html": True}, {}) == "Hi there"


def test_lookup_reads_a_file_beside_the_input(tmp_path):
    (tmp_path / "users.jsonl").write_text('{"id": 7, "email": "a@x.org"}\n')
    mapping = parse('[lookups.users]\nfile = "users.jsonl"\nkey = "id"\n')
    ev = m.Evaluator(mapping, tmp_path)
    spec = {"path": "author_id", "lookup": "users", "field": "email"}
    assert ev.value(spec, {"author_id": 7}) == "a@x.org"
    assert ev.value(spec, {"author_id": 8}) is None


# -- conversations -----------------------------------------------------------------------------

GROUPED = """
[source]
timezone = "UTC"
[conversation]
id = "cid"
subject = "subject"
status = { path = "status", map = "status" }
createdAt = "created"
customer = { email = "email", name = "name" }
tags = { path = "tags", split = "," }
skip = { "deleted at the source" = "deleted" }
[thread]
type = { path = "kind", map = "kind" }
body = "body"
createdAt = "at"
author = { email = "author" }
[values.status]
solved = "closed"
[values.kind]
reply = "message"
system = "skip"
"""


def test_rows_sharing_an_id_form_one_conversation_with_threads_in_time_order(tmp_path):
    mapping = parse(GROUPED)
    convs, rejects = m.conversations(
        mapping,
        rows(
            {
                "cid": "A",
                "subject": "Hi",
                "status": "Solved",
                "email": "a@x.org",
                "name": "Ana María López",
                "tags": "vip, refund,VIP",
                "kind": "customer",
                "body": "first",
                "at": "2024-01-01T10:00:00Z",
                "created": "",
            },
            {
                "cid": "B",
                "subject": "Other",
                "status": "active",
                "email": "b@x.org",
                "kind": "customer",
                "body": "b",
                "at": "2024-01-02T10:00:00Z",
            },
            {
                "cid": "A",
                "kind": "reply",
                "author": "agent@x.org",
                "body": "third",
                "at": "2024-01-01T12:00:00Z",
            },
            {"cid": "A", "kind": "system", "body": "", "at": "2024-01-01T11:30:00Z"},
            {"cid": "A", "kind": "customer", "body": "second", "at": "2024-01-01T11:00:00Z"},
        ),
        tmp_path,
    )
    assert rejects == []
    a = next(c for c in convs if c.source_id == "A")
    assert a.rows == [2, 4, 5, 6]
    assert [t.body for t in a.threads] == ["first", "second", "third"]
    assert a.skipped_threads == 1
    assert a.status == "closed"
    assert a.created_at == "2024-01-01T10:00:00Z"  # from the first thread when empty
    assert (a.customer.first_name, a.customer.last_name) == ("Ana", "María López")
    assert a.tags == ["vip", "refund"]  # case-insensitive duplicates dropped
    assert a.problems == []


# One valid row for GROUPED: each test changes what it is about.
GOOD_ROW = {
    "subject": "S",
    "status": "active",
    "email": "a@x.org",
    "kind": "customer",
    "body": "b",
    "at": "2024-01-01T10:00:00Z",
}


def test_every_bad_row_kind_is_a_named_problem(tmp_path):
    mapping = parse(GROUPED)
    base = GOOD_ROW
    cases = {
        "missing_subject": {"subject": ""},
        "missing_customer": {"email": "", "name": ""},
        "invalid_email": {"email": "not-an-email"},
        "unknown_status": {"status": "on fire"},
        "bad_date": {"at": "yesterday"},
        "too_long": {"subject": "x" * 999},
        "no_threads": {"kind": "system"},
        "empty_body": {"body": "  "},
    }
    records = [dict(base, cid=kind, **change) for kind, change in cases.items()]
    records.append({"cid": "", "subject": "no id"})
    convs, rejects = m.conversations(mapping, rows(*records), tmp_path)
    kinds = {c.source_id: {p.kind for p in c.problems} for c in convs}
    for kind in cases:
        assert kind in kinds[kind], (kind, kinds[kind])
    assert [(r.row, r.problem.kind) for r in rejects] == [(len(records) + 1, "missing_id")]
    bad_date = next(c for c in convs if c.source_id == "bad_date").problems[0]
    assert (bad_date.field, bad_date.row) == ("at", 6)


def test_closed_before_created_or_dated_in_the_future_is_a_bad_date(tmp_path):
    mapping = parse(
        GROUPED.replace(
            'createdAt = "created"\n', 'createdAt = "created"\nclosedAt = "closed"\n', 1
        )
    )
    at = "2024-02-05T14:21:00Z"
    base = dict(GOOD_ROW, status="solved", at=at, created=at)
    cases = {
        "fine": {"closed": "2024-02-06T09:00:00Z"},
        "closed_first": {"closed": "2020-01-01T00:00:00Z"},
        "typed_2099": {"created": "2099-02-05T14:21:00Z", "closed": "2099-02-06T09:00:00Z"},
    }
    records = [dict(base, cid=kind, **change) for kind, change in cases.items()]
    convs, _ = m.conversations(mapping, rows(*records), tmp_path)
    found = {c.source_id: [(p.field, p.kind, p.reason, p.row) for p in c.problems] for c in convs}
    assert found["fine"] == []
    assert found["closed_first"] == [
        (
            "closedAt",
            "bad_date",
            "closedAt 2020-01-01T00:00:00Z is before createdAt 2024-02-05T14:21:00Z",
            3,
        )
    ]
    assert ("createdAt", "bad_date", "createdAt: 2099-02-05T14:21:00Z is in the future", 4) in (
        found["typed_2099"]
    )


def test_a_customer_without_email_is_named_by_phone_or_name_in_any_conversation_type(tmp_path):
    mapping = parse(
        GROUPED.replace(
            'customer = { email = "email", name = "name" }',
            'type = "channel"\ncustomer = { email = "email", name = "name", phone = "phone" }',
        )
    )
    base = {"subject": "S", "status": "active", "kind": "customer", "body": "b"}
    base["at"] = "2024-01-01T10:00:00Z"
    cases = {
        "phone-by-phone": ({"channel": "phone", "phone": "+1 555-0142"}, set()),
        "phone-by-name": ({"channel": "phone", "name": "Ana López"}, set()),
        "phone-nothing": ({"channel": "phone"}, {"missing_customer"}),
        "email-with-phone": ({"channel": "email", "phone": "+1 555-0142"}, set()),
        "chat-with-name": ({"channel": "chat", "name": "Ana"}, set()),
        "phone-bad-email": ({"channel": "phone", "email": "nope", "phone": "1"}, {"invalid_email"}),
    }
    records = [dict(base, cid=cid, **change) for cid, (change, _) in cases.items()]
    convs, _ = m.conversations(mapping, rows(*records), tmp_path)
    by_id = {c.source_id: c for c in convs}
    for cid, (_, kinds) in cases.items():
        assert {p.kind for p in by_id[cid].problems} == kinds, cid
    refused = by_id["phone-nothing"].problems[0]
    assert (refused.field, refused.row) == ("customer.email", 4)
    assert "no email, phone, name or id" in refused.reason and "\n" not in refused.reason

    from etl.load import Target, plan_conversation

    target = Target({}, [{"id": 1, "name": "Support"}], {1: {}})
    item, problems = plan_conversation(by_id["phone-by-phone"], target, 1, None, Counter())
    assert problems == []
    assert item.payload["customer"] == {"phone": "+1 555-0142"}
    assert item.payload["threads"][0]["customer"] == {"phone": "+1 555-0142"}
    assert item.expected["customerPhone"] == "+1 555-0142"
    item, _ = plan_conversation(by_id["phone-by-name"], target, 1, None, Counter())
    assert item.payload["customer"] == {"firstName": "Ana", "lastName": "López"}
    assert item.payload["threads"][0]["customer"] == item.payload["customer"]


def test_skip_rules_and_nested_threads_newest_first(tmp_path):
    mapping = parse(
        GROUPED.replace("[thread]", 'threads = "items"\nthreads_order = "newest_first"\n[thread]')
    )
    record = {
        "cid": "1",
        "subject": "S",
        "status": "active",
        "email": "a@x.org",
        "items": [
            {"kind": "reply", "body": "late", "at": "2024-01-01T10:00:00Z"},
            {"kind": "customer", "body": "early", "at": "2024-01-01T10:00:00Z"},
        ],
    }
    convs, _ = m.conversations(
        mapping, rows(record, dict(record, cid="2", deleted="2024-02-01")), tmp_path
    )
    assert [t.body for t in convs[0].threads] == ["early", "late"]  # equal times: source order
    assert convs[0].skip_reason is None
    assert convs[1].skip_reason == "deleted at the source"


def test_attachments_urls_and_files_only_inside_the_input_folder(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.pdf").write_bytes(b"%PDF")
    (tmp_path.parent / "secret.txt").write_text("no")
    mapping = parse(
        GROUPED
        + '\n[thread.attachments]\npath = "att"\nsplit = ";"\n'.replace(
            "[thread.attachments]", ""
        ).replace('path = "att"\nsplit = ";"', "")
    )
    mapping.thread["attachments"] = {"path": "att", "split": ";"}
    base = GOOD_ROW
    convs, _ = m.conversations(
        mapping,
        rows(
            dict(base, cid="ok", att="files/a.pdf; https://x.org/f/b%20c.png?sig=1"),
            dict(base, cid="escape", att="../secret.txt"),
            dict(base, cid="absolute", att=str(tmp_path.parent / "secret.txt")),
            dict(base, cid="missing", att="files/nope.pdf"),
        ),
        tmp_path,
    )
    ok = convs[0].threads[0].attachments
    assert ok[0].path == (tmp_path / "files" / "a.pdf").resolve()
    assert ok[0].mime_type == "application/pdf"
    assert (ok[1].url, ok[1].file_name) == ("https://x.org/f/b%20c.png?sig=1", "b%20c.png")
    kinds = {c.source_id: [p.kind for p in c.problems] for c in convs}
    assert kinds["escape"] == ["attachment_outside_folder"]
    assert kinds["absolute"] == ["attachment_outside_folder"]
    assert kinds["missing"] == ["attachment_missing"]


def test_generic_sample_maps_to_the_expected_conversations():
    path = ROOT / "samples" / "generic" / "conversations.csv"
    mapping = m.load_mapping("generic", timezone="Europe/Paris")
    convs, rejects = m.conversations(mapping, read_rows(path), path.parent)
    assert rejects == [] and all(c.problems == [] for c in convs)
    first = convs[0]
    assert first.source_id == "T-001"
    assert first.created_at == "2024-02-05T14:21:07Z"  # 15:21:07 in Paris
    assert first.threads[0].body.startswith("Hello,<br>\n<br>\nmy card")  # text to HTML
    assert first.custom_fields == {"Priority": "Medium"}


# -- customers ------------------------------------------------------------------------------


def test_customer_rows_become_create_customer_payloads(tmp_path):
    mapping = m.load_mapping("generic")
    records = rows(
        {
            "email": "zoe@x.org",
            "other_emails": "z2@x.org, zoe@x.org",
            "first_name": "Zoë",
            "last_name": "Smith",
            "phone": "+44 20",
            "company": "ACME",
            "city": "London",
            "country": "GB",
            "notes": "line\nbreak",
        },
        {"email": "", "first_name": "No", "last_name": "Email"},
        {"email": "x@y.org", "first_name": "F" * 41, "country": "France"},
        {"email": "", "phone": "+1 555-0100"},
        {"email": "", "company": "Nobody Inc"},
    )
    customers, _ = m.customers(mapping, records, tmp_path)
    zoe = customers[0]
    assert zoe.source_id == "zoe@x.org"
    assert zoe.payload["emails"] == [
        {"value": "zoe@x.org", "type": "work"},
        {"value": "z2@x.org", "type": "work"},
    ]
    assert zoe.payload["address"] == {"city": "London", "country": "GB"}
    assert zoe.payload["notes"] == "line\nbreak"
    # Without an email, a phone or a name is enough (the ledger keys them by it).
    assert customers[1].problems == [] and "emails" not in customers[1].payload
    assert customers[1].source_id == "name:no email"
    assert sorted(p.kind for p in customers[2].problems) == ["bad_value", "too_long"]
    assert customers[3].problems == [] and customers[3].source_id == "phone:+1 555-0100"
    assert [p.kind for p in customers[4].problems] == ["missing_customer"]


# -- drafts ---------------------------------------------------------------------------------


def test_a_draft_from_freshdesk_headers_guesses_the_obvious_and_parses():
    path = ROOT / "samples" / "freshdesk" / "tickets.csv"
    records = [r.data for r in read_rows(path)]
    draft = m.draft_mapping(path.name, records)
    document = tomllib.loads(draft)
    conv = document["conversation"]
    assert conv["id"] == "Ticket ID"
    assert conv["subject"] == "Subject"
    assert conv["createdAt"] == "Created time"
    assert conv["customer"]["email"] == "Email"
    assert document["thread"]["body"] == "Description"
    assert document["values"]["status"]["Closed"] == "closed"
    assert document["values"]["status"]["Open"] == "active"
    assert "#   Work phone" in draft  # unused columns are listed for the person to place
    m.parse_mapping(document)


def test_a_draft_from_nested_json_finds_the_threads_list():
    path = ROOT / "samples" / "smarticks" / "conversations.jsonl"
    records = [r.data for r in read_rows(path)]
    document = tomllib.loads(m.draft_mapping(path.name, records))
    assert document["conversation"]["threads"] == "threads"
    assert document["thread"]["body"] == "body"
    assert document["thread"]["createdAt"] == "createdAt"


def test_a_conversation_without_subject_takes_the_first_line_of_its_first_message(tmp_path):
    option = "[conversation]\nsubject_from_first_message = true"
    mapping = parse(GROUPED.replace("[conversation]", option))
    long_line = "word " * 40
    records = [
        dict(GOOD_ROW, cid="1", subject="", body="<p>  Hello   there,</p><p>second line</p>"),
        dict(GOOD_ROW, cid="2", subject="", body=long_line + "\nnext"),
        dict(GOOD_ROW, cid="3", subject="Kept", body="Body"),
        dict(GOOD_ROW, cid="4", subject="", body=" "),
    ]
    convs, _ = m.conversations(mapping, rows(*records), tmp_path)
    by_id = {c.source_id: c for c in convs}
    assert by_id["1"].subject == "Hello there,"
    assert len(by_id["2"].subject) == 100 and by_id["2"].subject.endswith("…")
    assert by_id["3"].subject == "Kept"
    assert "missing_subject" in {p.kind for p in by_id["4"].problems}  # no text to take
    without = m.conversations(parse(GROUPED), rows(records[0]), tmp_path)[0][0]
    assert "missing_subject" in {p.kind for p in without.problems}


@pytest.mark.parametrize(
    "sample",
    [
        "intercom/messages.csv",
        "freshdesk/tickets.csv",
        "generic/conversations.csv",
        "zendesk/tickets.json",
        "helpscout/conversations.json",
        "smarticks/conversations.jsonl",
    ],
)
def test_a_draft_never_lists_a_column_it_uses_as_unused(sample):
    from etl.readers import sample as read_sample

    path = Path(__file__).resolve().parent.parent / "samples" / sample
    draft = m.draft_mapping(path.name, read_sample(path))
    body, _, unused = draft.partition("# Columns not used above:\n")
    listed = {line.removeprefix("#   ") for line in unused.splitlines()}
    mapped = set()
    for line in body.splitlines():
        if not line.startswith("#") and "=" in line and not line.startswith("system"):
            mapped |= set(re.findall(r'"([^"]+)"', line.split("#")[0]))
    assert not listed & mapped, listed & mapped
    m.parse_mapping(tomllib.loads(draft))  # and it parses


def test_a_draft_maps_thread_type_and_author_with_their_values():
    from etl.readers import sample as read_sample

    path = Path(__file__).resolve().parent.parent / "samples" / "intercom" / "messages.csv"
    draft = m.draft_mapping(path.name, read_sample(path))
    assert 'type = { path = "part_type", map = "thread_type" }' in draft
    author = 'author = { email = "author_email", type = { path = "author_type", map = "author_type"'
    assert author in draft and 'name = "author_name"' in draft
    assert '"note" = "note"' in draft and '"assignment" = "skip"' in draft
    assert '"admin" = "user"' in draft
    assert '# "user" = ""   # TODO' in draft  # an agent in Smarticks, the customer in Intercom
    assert 'createdAt = "part_created_at"' in draft and "#   part_created_at" not in draft


def test_an_attachment_file_beside_the_input_wins_over_its_url(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.pdf").write_bytes(b"%PDF")
    mapping = m.load_mapping("smarticks")
    record = {
        "id": 1,
        "subject": "S",
        "status": "active",
        "type": "email",
        "customer": {"email": "a@x.org"},
        "threads": [
            {
                "type": "customer",
                "body": "b",
                "createdAt": "2024-01-01T10:00:00Z",
                "author": {"type": "customer", "email": "a@x.org"},
                "attachments": [
                    {"fileName": "a.pdf", "file": "files/a.pdf", "fileUrl": "https://old/a.pdf"},
                    {"fileName": "b.pdf", "file": "files/b.pdf", "fileUrl": "https://old/b.pdf"},
                ],
            }
        ],
    }
    convs, _ = m.conversations(mapping, [SourceRow("x.jsonl", 1, record)], tmp_path)
    first, second = convs[0].threads[0].attachments
    assert (first.path, first.url) == ((tmp_path / "files" / "a.pdf").resolve(), None)
    assert (second.path, second.url) == (None, "https://old/b.pdf")  # not beside: downloaded
