"""Every record arrives, once, even when the file, the target or the ledger is untidy.

Each test runs the CLI against sandboxes over real HTTP. The round trip at the end moves a
whole helpdesk (sync, export, load into another instance) and compares them field by field.
"""

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers_load import figure, run

from etl.cli import cli
from etl.client import Client
from etl.load import attachments
from etl.load import send as load_module

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FALLBACK = "admin@support.example.org"
HEADER = [
    "conversation_id",
    "subject",
    "customer_email",
    "customer_first_name",
    "customer_last_name",
    "customer_phone",
    "type",
    "status",
    "message_type",
    "author_email",
    "message_created_at",
    "body",
]


@pytest.fixture(autouse=True)
def _fast_recovery(monkeypatch, tmp_path):
    monkeypatch.setattr(load_module, "RETRY_PAUSE", 0.0)
    monkeypatch.setattr(attachments, "DOWNLOAD_ATTEMPTS", 1)  # sample file hosts are offline
    monkeypatch.chdir(tmp_path)


def write_csv(path: Path, rows: list[dict], header=HEADER) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in header})
    return path


def conversations(sandbox) -> list[dict]:
    store = sandbox.store
    return [store.get_conversation(c, embed=("threads", "tags")) for c in store.conversation_ids()]


CHATS = [
    # A chat customer known by phone, already on the target: found, not duplicated.
    {
        "conversation_id": "C-1",
        "subject": "Chat with a phone",
        "customer_first_name": "Ana",
        "customer_phone": "+1 555-0100",
        "type": "chat",
        "message_created_at": "2024-03-01 10:00:00",
        "body": "Hi, my parcel?",
    },
    # The same customer again, in a phone conversation.
    {
        "conversation_id": "C-2",
        "subject": "Call back",
        "customer_first_name": "Ana",
        "customer_phone": "+1 555-0100",
        "type": "phone",
        "message_created_at": "2024-03-02 10:00:00",
        "body": "Called about the parcel",
    },
    # Known by name only: created once, used by both of its conversations.
    {
        "conversation_id": "C-3",
        "subject": "Chat by name",
        "customer_first_name": "Bo",
        "customer_last_name": "Li",
        "type": "chat",
        "message_created_at": "2024-03-03 10:00:00",
        "body": "Hello",
    },
    {
        "conversation_id": "C-4",
        "subject": "Chat by name again",
        "customer_first_name": "Bo",
        "customer_last_name": "Li",
        "type": "chat",
        "message_created_at": "2024-03-04 10:00:00",
        "body": "Me again",
    },
]


def test_customers_without_email_are_matched_by_phone_then_name_or_created_once(
    empty_sandbox, tmp_path
):
    client = Client(empty_sandbox.url, empty_sandbox.api_key)
    ana = client.create(
        "api/customers", {"firstName": "Ana", "phones": [{"value": "+1 555-0100", "type": "work"}]}
    )
    source = write_csv(tmp_path / "chats.csv", CHATS)
    db = tmp_path / "l.db"
    args = ["load", "conversations", source, "--mailbox", 1, "--timezone", "UTC"]
    dry = run(empty_sandbox, *args, "--dry-run", db=db)
    assert figure(dry.output, "customers existing") == 1  # Ana, by phone
    assert figure(dry.output, "customers new") == 1  # Bo Li
    first = run(empty_sandbox, *args, db=db)
    assert first.exit_code == 0, first.output
    assert figure(first.output, "created") == 4
    assert figure(first.output, "rejected") == 0
    assert figure(first.output, "customers without email") == 2
    assert "(1 created, 1 found by phone or name)" in first.output
    convs = {c["subject"]: c for c in conversations(empty_sandbox)}
    assert convs["Chat with a phone"]["customer"]["id"] == ana
    assert convs["Call back"]["customer"]["id"] == ana
    bo = convs["Chat by name"]["customer"]["id"]
    assert convs["Chat by name again"]["customer"]["id"] == bo != ana
    assert len(empty_sandbox.store.customer_ids()) == 2
    checked = run(empty_sandbox, "verify", "--kind", "conversations", db=db)
    assert checked.exit_code == 0 and "4 records" in checked.output, checked.output
    # Customer threads point at the same customer.
    for conv in convs.values():
        authors = {t["createdBy"]["id"] for t in conv["_embedded"]["threads"]}
        assert authors == {conv["customer"]["id"]}

    # The ledger remembers each match: a rerun asks the target for no customer.
    empty_sandbox.request_log.clear()
    again = run(empty_sandbox, *args, db=db)
    assert figure(again.output, "already loaded") == 4
    assert not [p for _, p, _ in empty_sandbox.request_log if p.startswith("/api/customers")]
    assert len(empty_sandbox.store.customer_ids()) == 2


def test_customers_file_rows_without_email_load_and_match_by_phone_or_name(empty_sandbox, tmp_path):
    header = ["id", "email", "first_name", "last_name", "phone", "company"]
    rows = [
        {"id": 1, "first_name": "Ana", "phone": "+1 555-0100", "company": "ACME"},
        {"id": 2, "first_name": "Bo", "last_name": "Li"},
        {"id": 3, "first_name": "Bo", "last_name": "Li", "company": "Another Bo Li"},
        {"id": 4, "email": "cy@example.org", "first_name": "Cy"},
    ]
    source = write_csv(tmp_path / "people.csv", rows, header)
    first = run(empty_sandbox, "load", "customers", source, db=tmp_path / "a.db")
    assert first.exit_code == 0, first.output
    assert figure(first.output, "created") == 4
    store = empty_sandbox.store
    people = [store.get_customer(i) for i in store.customer_ids()]
    assert sorted(p["firstName"] for p in people) == ["Ana", "Bo", "Bo", "Cy"]
    assert [p["company"] for p in people if p["firstName"] == "Ana"] == ["ACME"]
    checked = run(empty_sandbox, "verify", "--kind", "customers", db=tmp_path / "a.db")
    assert checked.exit_code == 0 and "4 records" in checked.output, checked.output
    ana = next(p["id"] for p in people if p["firstName"] == "Ana")
    store.update_customer(ana, phones=[{"value": "+1 555-0199", "type": "work"}])
    changed = run(empty_sandbox, "verify", "--kind", "customers", db=tmp_path / "a.db")
    assert changed.exit_code == 1
    assert "customer generic:1 -> #" in changed.output and ": phones: expected" in changed.output
    store.update_customer(ana, phones=[{"value": "+1 555-0100", "type": "work"}])

    # A new ledger: each row finds its own customer (two Bo Li stay two), nothing is created.
    again = run(empty_sandbox, "load", "customers", source, db=tmp_path / "b.db")
    assert again.exit_code == 0, again.output
    assert figure(again.output, "created") == 0
    assert figure(again.output, "existing, reused") == 4  # and nothing to fill in
    assert len(store.customer_ids()) == 4


def smarticks_record(cid: str, subject: str, **extra) -> dict:
    """A conversation as `etl export --format jsonl` writes it (the `smarticks` mapping)."""
    record = {
        "id": cid,
        "subject": subject,
        "status": "closed",
        "state": "published",
        "type": "email",
        "createdAt": "2024-03-01T10:00:00Z",
        "closedAt": "2024-03-01T12:00:00Z",
        "mailbox": {"id": 9, "name": "Support"},
        "customer": {"id": 70, "email": "pat@example.org", "firstName": "Pat", "lastName": "Q"},
        "assignee": None,
        "tags": [],
        "customFields": {},
        "threads": [
            {
                "id": 1,
                "type": "customer",
                "body": "First line\nsecond line",
                "createdAt": "2024-03-01T10:00:00Z",
                "author": {"type": "customer", "id": 70, "email": "pat@example.org"},
                "cc": [],
                "bcc": [],
                "attachments": [],
            }
        ],
    }
    record.update(extra)
    return record


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_values_the_target_cannot_hold_are_left_out_and_listed_never_fatal(empty_sandbox, tmp_path):
    long_tag = "t" * 120
    records = [
        smarticks_record(
            "1",
            "Fields the target lacks",
            customFields={"Warranty": "yes", "Priority": "Urgent", "Amount": "lots", "Vendor": "V"},
            tags=["kept", long_tag],
            assignee={"email": "gone@old.example.org"},
        ),
        smarticks_record("2", "Another", customFields={"Warranty": "no", "Priority": "Low"}),
    ]
    source = write_jsonl(tmp_path / "conversations.jsonl", records)
    args = ["load", "conversations", source, "--mapping", "smarticks", "--mailbox", 1]
    dry = run(empty_sandbox, *args, "--dry-run", db=tmp_path / "l.db")
    assert dry.exit_code == 0, dry.output
    listed = [
        "custom field Warranty (not in the target mailbox)  (2 records)",
        "Priority option 'Urgent' (not an option on the target)  (1 record)",
        "Amount value 'lots' (not a number)  (1 record)",
        "tag tttttttttttttttttttttttttttttttttttttttt... (over 100 characters)  (1 record)",
        "gone@old.example.org  (1 reference)",
    ]
    for line in listed:
        assert line in dry.output
    assert empty_sandbox.store.conversation_ids() == []

    result = run(empty_sandbox, *args, db=tmp_path / "l.db")
    assert result.exit_code == 0, result.output
    assert figure(result.output, "created") == 2
    assert figure(result.output, "rejected") == 0
    for line in listed:
        assert line in result.output
    convs = {c["subject"]: c for c in conversations(empty_sandbox)}
    first = convs["Fields the target lacks"]
    assert {f["name"]: f["value"] for f in first["customFields"]} == {"Vendor": "V"}
    assert [t["name"] for t in first["_embedded"]["tags"]] == ["kept"]
    assert first["assignee"]["email"] == FALLBACK
    assert [f["text"] for f in convs["Another"]["customFields"]] == ["Low"]


def test_a_new_ledger_finds_what_the_target_holds_and_creates_nothing(sandbox_factory, tmp_path):
    target = sandbox_factory(empty=True)
    other = sandbox_factory(empty=True)
    source = SAMPLES / "smarticks" / "conversations.jsonl"
    people = SAMPLES / "smarticks" / "customers.jsonl"
    args = ["load", "conversations", source, "--mapping", "smarticks"]
    db = tmp_path / "a.db"
    loaded = run(target, "load", "customers", people, "--mapping", "smarticks", db=db)
    assert loaded.exit_code == 0, loaded.output
    first = run(target, *args, db=tmp_path / "a.db")
    assert first.exit_code == 0, first.output
    made = figure(first.output, "created")
    assert made == 14 and len(target.store.conversation_ids()) == made

    # The ledger is lost (a new --db, another folder): the target is asked, nothing is created.
    target.request_log.clear()
    again = run(target, *args, db=tmp_path / "new.db")
    assert again.exit_code == 0, again.output
    assert figure(again.output, "created") == 0
    assert figure(again.output, "already on the target") == made
    assert len(target.store.conversation_ids()) == made
    lists = [p for m, p, _ in target.request_log if m == "GET" and p == "/api/conversations"]
    assert len(lists) <= made + 3  # at most one look-up per conversation (+ one per mailbox)
    # ... and the new ledger remembers: verify checks them, a rerun asks nothing.
    checked = run(target, "verify", "--kind", "conversations", db=tmp_path / "new.db")
    assert checked.exit_code == 0 and f"Verified {made} records" in checked.output

    # The same ledger against another target takes none of the first target's ids.
    elsewhere = run(other, *args, db=tmp_path / "a.db")
    assert elsewhere.exit_code == 0, elsewhere.output
    assert figure(elsewhere.output, "created") == made
    assert len(other.store.conversation_ids()) == made


def test_whole_file_problems_stop_before_the_first_request_with_one_line(empty_sandbox, tmp_path):
    rows = [dict(CHATS[0], customer_email="ana@example.org")]
    misspelt = [h if h != "subject" else "subjct" for h in HEADER]
    cases = {
        "misspelt.csv": (
            write_csv(
                tmp_path / "misspelt.csv", [{**r, "subjct": r["subject"]} for r in rows], misspelt
            ),
            ["--mailbox", 1, "--timezone", "UTC"],
            "misspelt.csv: no column 'subject', which [conversation] subject of the mapping "
            "reads; the closest header is 'subjct': rename the column or fix the mapping",
        ),
        "no-zone.csv": (
            write_csv(tmp_path / "no-zone.csv", rows),
            ["--mailbox", 1],
            "no-zone.csv: no date has a UTC offset and no time zone is set: pass --timezone "
            "ZONE (e.g. --timezone Europe/Paris) or set [source] timezone in the mapping",
        ),
    }
    alone = tmp_path / "zendesk"
    alone.mkdir()
    (alone / "tickets.json").write_bytes((SAMPLES / "zendesk" / "tickets.json").read_bytes())
    cases["tickets.json"] = (
        alone / "tickets.json",
        ["--mapping", "zendesk", "--mailbox", 1],
        f"tickets.json: the lookup file users.json ([lookups.users] of mapping zendesk) is "
        f"not beside it in {alone}: put it there (the same export has it)",
    )
    for name, (source, extra, message) in cases.items():
        empty_sandbox.request_log.clear()
        result = run(empty_sandbox, "load", "conversations", source, *extra, db=tmp_path / "l.db")
        assert result.exit_code == 2, (name, result.output)
        assert result.output.strip().splitlines() == [f"Error: {message}"], name
        assert not empty_sandbox.request_log, name  # nothing was asked, nothing was sent
        assert not (tmp_path / f"{Path(name).stem}.rejects.csv").exists()


def test_each_load_writes_a_report_row_per_record_and_status_lists_the_runs(
    empty_sandbox, tmp_path
):
    records = [
        smarticks_record("1", "Loads", customFields={"Warranty": "yes"}),
        smarticks_record("2", "", threads=[]),  # no subject and no threads: rejected
        smarticks_record("3", "Deleted", deletedAt="2024-03-05T00:00:00Z"),
    ]
    source = write_jsonl(tmp_path / "moved.jsonl", records)
    db = tmp_path / "l.db"
    args = ["load", "conversations", source, "--mapping", "smarticks", "--mailbox", 1]
    first = run(empty_sandbox, *args, "--rejects", tmp_path / "out" / "r.csv", db=db)
    assert first.exit_code == 3, first.output
    report = tmp_path / "out" / "moved.report.csv"
    assert f"report: {report}" in first.output
    with open(report, encoding="utf-8-sig", newline="") as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    target_id = empty_sandbox.store.conversation_ids()[0]
    assert rows["1"]["outcome"] == "created" and rows["1"]["target_id"] == str(target_id)
    assert rows["1"]["left_out"] == "custom field Warranty (not in the target mailbox)"
    assert rows["2"]["outcome"] == "rejected" and "no subject" in rows["2"]["reason"]
    assert rows["3"]["outcome"] == "skipped: deleted at the source"

    again = run(empty_sandbox, *args, db=db)
    with open(tmp_path / "moved.report.csv", encoding="utf-8-sig", newline="") as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    assert rows["1"]["outcome"] == "already loaded", again.output

    status = CliRunner().invoke(cli, ["status", "--db", str(db)])
    assert status.exit_code == 0, status.output
    lines = [line.strip() for line in status.output.splitlines()]
    runs = lines[lines.index("Load runs:") + 1 :][:2]
    assert runs[0].startswith("#2 conversations from ") and "moved.jsonl" in runs[0]
    assert runs[0].endswith("done: records 2, already loaded 1, rejected 1"), runs[0]
    assert runs[1].startswith("#1 ") and "created 1" in runs[1] and "rejected 1" in runs[1]


# -- the round trip ------------------------------------------------------------------------------


def customer_shape(customer: dict, drop_fields=()) -> dict:
    """What a move must keep of a customer (not its id, createdAt, updatedAt or photo)."""
    embedded = customer["_embedded"]
    return {
        "firstName": customer["firstName"],
        "lastName": customer["lastName"],
        "company": customer["company"],
        "jobTitle": customer["jobTitle"],
        "notes": customer["notes"],
        "emails": [(e["value"], e["type"]) for e in embedded["emails"]],
        "phones": [(p["value"], p["type"]) for p in embedded["phones"]],
        "social_profiles": [(p["value"], p["type"]) for p in embedded["social_profiles"]],
        "websites": [w["value"] for w in embedded["websites"]],
        "address": {k: v for k, v in embedded["address"].items() if v},
        "fields": {
            f["name"]: f["text"] or f["value"]
            for f in customer["customerFields"]
            if f["name"] not in drop_fields
        },
    }


def conversation_shape(sandbox, cid: int, drop_fields=()) -> dict:
    """What a move must keep of a conversation: all but ids, numbers and updatedAt."""
    store = sandbox.store
    conv = store.get_conversation(cid, embed=("threads", "tags"))

    def person(ref: dict) -> tuple:
        if ref["type"] == "user":
            return ("user", ref["email"])
        customer = store.get_customer(ref["id"])
        return ("customer", ref.get("email"), customer["firstName"], customer["lastName"])

    threads = [t for t in reversed(conv["_embedded"]["threads"]) if t["type"] != "lineitem"]
    return {
        "subject": conv["subject"],
        "customer": person(conv["customer"]),
        "status": conv["status"],
        "type": conv["type"],
        "createdAt": conv["createdAt"],
        "closedAt": conv["closedAt"],
        "assignee": (conv["assignee"] or {}).get("email"),
        "tags": sorted(t["name"] for t in conv["_embedded"]["tags"]),
        "fields": {
            f["name"]: f["text"] or f["value"]
            for f in conv["customFields"]
            if f["name"] not in drop_fields
        },
        "threads": [
            (
                t["type"],
                t["createdAt"],
                t["body"],
                person(t["createdBy"]),
                t["cc"],
                t["bcc"],
                [
                    (a["fileName"], a["mimeType"], a["size"], store.attachments[a["id"]].data)
                    for a in t["_embedded"]["attachments"]
                ],
            )
            for t in threads
        ],
    }


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_round_trip_moves_every_customer_and_conversation_field_by_field(
    sandbox_factory, tmp_path, fmt
):
    from urllib.parse import quote

    from etl.htmltext import html_to_text

    source = sandbox_factory(seed=8, conversations=45)
    target = sandbox_factory(empty=True)
    store = source.store
    with store.lock:
        # Attachments with content, served by the source at its own URLs.
        for item in store.attachments.values():
            item.data = f"{item.id}:{item.file_name} ".encode() * 40
            item.size = len(item.data)
            item.file_url = f"{source.url}/storage/attachment/{item.id}/{quote(item.file_name)}"
        # Chat conversations without a subject.
        chats = [c for c in store.conversations.values() if c.type == "chat"]
        untitled = [c.id for c in chats if c.state != "deleted"][:2]
        for cid in untitled:
            store.conversations[cid].subject = ""
        store.reindex()
    # The target lacks a conversation field and a customer field the source has.
    with target.store.lock:
        for definition in list(target.store.conv_fields.values()):
            if definition.name == "Vendor":
                del target.store.conv_fields[definition.id]
        remarks = next(d.id for d in target.store.cust_fields.values() if d.name == "Remarks")
        del target.store.cust_fields[remarks]
        target.store.index_definitions()
    # The target is in use: its customers show the customer fields' ids and options.
    api = Client(target.url, target.api_key)
    in_use = []
    for option in ("1", "2", "3"):
        ident = api.create("api/customers", {"firstName": f"Existing {option}"})
        values = [
            {"id": d.id, "value": option if d.type == "dropdown" else "7"}
            for d in target.store.cust_fields.values()
            if d.type in ("dropdown", "number")
        ]
        api.put(f"api/customers/{ident}/customer_fields", {"customerFields": values})
        in_use.append(ident)
    field_ids = [
        f"{d.name}={d.id}"
        for d in target.store.cust_fields.values()
        if d.type not in ("dropdown", "number")
    ]

    mirror_db, ledger_db = tmp_path / "a.db", tmp_path / "b.db"
    assert run(source, "sync", "--quiet", db=mirror_db).exit_code == 0
    dump = tmp_path / "dump"
    exported = run(source, "export", "--format", fmt, "--out", dump, "--quiet", db=mirror_db)
    assert exported.exit_code == 0, exported.output

    a_people = [store.get_customer(i) for i in store.customer_ids()]
    assert any(not c["_embedded"]["emails"] for c in a_people)
    assert any(len(c["_embedded"]["phones"]) > 1 for c in a_people)
    assert any(c["_embedded"]["social_profiles"] for c in a_people)
    assert any(c["_embedded"]["websites"] for c in a_people)
    assert any(f["name"] == "Remarks" for c in a_people for f in c["customerFields"])
    field_args = [arg for pair in field_ids for arg in ("--customer-field", pair)]
    customers = run(
        target,
        "load",
        "customers",
        dump / f"customers.{fmt}",
        "--mapping",
        "smarticks",
        *field_args,
        db=ledger_db,
    )
    assert customers.exit_code == 0, customers.output
    assert "customer field Remarks (no target customer has it" in customers.output
    conversations = run(
        target,
        "load",
        "conversations",
        dump / f"conversations.{fmt}",
        "--mapping",
        "smarticks",
        "--workers",
        "4",
        db=ledger_db,
    )
    assert conversations.exit_code == 0, conversations.output
    assert "custom field Vendor (not in the target mailbox)" in conversations.output

    # Customers, field by field (the ledger says which target customer each became).
    with sqlite3.connect(ledger_db) as conn:
        became = dict(
            conn.execute(
                "SELECT source_id, target_id FROM etl_load_items WHERE kind = 'customers' "
                "AND system = 'smarticks' AND state = 'done'"
            ).fetchall()
        )
    for a_person in a_people:
        b_person = target.store.get_customer(became[str(a_person["id"])])
        assert customer_shape(b_person) == customer_shape(a_person, ["Remarks"]), a_person["id"]
    assert len(target.store.customer_ids()) == len(a_people) + len(in_use)

    # Conversations, field by field; trashed ones stay behind.
    kept = [c for c in store.conversation_ids() if store.conversations[c].state != "deleted"]
    expected = []
    for cid in kept:
        shape = conversation_shape(source, cid, ["Vendor"])
        if cid in untitled:
            first = html_to_text(shape["threads"][0][2]).splitlines()[0].strip()
            shape["subject"] = first[:100]
        expected.append(shape)
    moved = [conversation_shape(target, cid) for cid in target.store.conversation_ids()]

    def key(conv):
        return json.dumps(conv, sort_keys=True, default=repr)

    assert len(moved) == len(expected)
    for want, have in zip(sorted(expected, key=key), sorted(moved, key=key), strict=True):
        assert have == want
    assert any(t[6] for c in moved for t in c["threads"])  # attachments arrived, as data
    assert all(
        a.file_url.startswith(target.url) for a in target.store.attachments.values()
    )  # stored by the target, no source URL passed on
    assert target.store.notifications_sent == 0
    assert target.store.imported_creates == len(kept)

    again = run(
        target,
        "load",
        "conversations",
        dump / f"conversations.{fmt}",
        "--mapping",
        "smarticks",
        db=ledger_db,
    )
    assert figure(again.output, "created") == 0
    verified = run(target, "verify", db=ledger_db)
    assert verified.exit_code == 0, verified.output


def thread(kind: str, at: str, body: str, author: dict) -> dict:
    return {"type": kind, "body": body, "createdAt": at, "author": author, "attachments": []}


def test_a_newer_export_appends_new_threads_once_with_the_source_status(empty_sandbox, tmp_path):
    pat = {"type": "customer", "id": 70, "email": "pat@example.org"}
    agent = {"type": "user", "email": FALLBACK}
    first = thread("customer", "2024-03-01T10:00:00Z", "Where is my order?", pat)
    reply = thread("message", "2024-03-01T11:00:00Z", "On its way.", agent)
    later = thread("customer", "2024-03-05T09:00:00Z", "Still nothing.", pat)
    answer = thread("message", "2024-03-05T10:00:00Z", "Refunded.", agent)
    last = thread("customer", "2024-03-06T08:00:00Z", "Thanks!", pat)

    def export(name, order_threads, order_status, spam_threads):
        records = [
            smarticks_record("A", "Order", status=order_status, threads=order_threads),
            smarticks_record(
                "B", "Cheap pills", status="spam", closedAt=None, threads=spam_threads
            ),
        ]
        return write_jsonl(tmp_path / f"{name}.jsonl", records)

    db = tmp_path / "l.db"
    v1 = export("v1", [first, reply], "pending", [first])
    args = ["--mapping", "smarticks", "--mailbox", 1]
    loaded = run(empty_sandbox, "load", "conversations", v1, *args, db=db)
    assert loaded.exit_code == 0, loaded.output
    by_subject = {c["subject"]: c for c in conversations(empty_sandbox)}
    assert by_subject["Cheap pills"]["status"] == "spam"  # set by PUT, byUser the fallback
    assert by_subject["Order"]["status"] == "pending"

    # After cut-over the source has two more threads and closed the conversation.
    v2 = export("v2", [first, reply, later, answer], "closed", [first])
    delta = run(empty_sandbox, "load", "conversations", v2, *args, db=db)
    assert delta.exit_code == 0, delta.output
    assert figure(delta.output, "updated") == 1
    assert figure(delta.output, "created") == 0
    assert figure(delta.output, "already loaded") == 1
    order = {c["subject"]: c for c in conversations(empty_sandbox)}["Order"]
    threads = list(reversed(order["_embedded"]["threads"]))
    assert [(t["type"], t["createdAt"], t["body"]) for t in threads] == [
        ("customer", "2024-03-01T10:00:00Z", "Where is my order?"),
        ("message", "2024-03-01T11:00:00Z", "On its way."),
        ("customer", "2024-03-05T09:00:00Z", "Still nothing."),
        ("message", "2024-03-05T10:00:00Z", "Refunded."),
    ]
    assert order["status"] == "closed"  # each appended thread carried the source's status
    assert empty_sandbox.store.notifications_sent == 0  # imported: true
    again = run(empty_sandbox, "load", "conversations", v2, *args, db=db)
    assert figure(again.output, "already loaded") == 2 and "updated" not in again.output

    # The ledger is lost: threads are matched on the target, the one new thread goes once.
    v3 = export("v3", [first, reply, later, answer, last], "closed", [first])
    lost = run(empty_sandbox, "load", "conversations", v3, *args, db=tmp_path / "new.db")
    assert lost.exit_code == 0, lost.output
    assert figure(lost.output, "updated") == 1
    assert figure(lost.output, "already on the target") == 1
    order = {c["subject"]: c for c in conversations(empty_sandbox)}["Order"]
    bodies = [t["body"] for t in reversed(order["_embedded"]["threads"])]
    assert bodies == ["Where is my order?", "On its way.", "Still nothing.", "Refunded.", "Thanks!"]
    assert order["status"] == "closed"
    assert len(empty_sandbox.store.conversation_ids()) == 2
    checked = run(empty_sandbox, "verify", "--kind", "conversations", db=tmp_path / "new.db")
    assert checked.exit_code == 0, checked.output


def test_vendor_customer_exports_keep_phones_profiles_and_phone_only_customers(
    empty_sandbox, tmp_path
):
    loads = {
        "freshdesk": "freshdesk/contacts.csv",
        "zendesk": "zendesk/users.json",
        "helpscout": "helpscout/customers.json",
        "intercom": "intercom/contacts.csv",
    }
    for mapping, file in loads.items():
        result = run(
            empty_sandbox,
            "load",
            "customers",
            SAMPLES / file,
            "--mapping",
            mapping,
            db=tmp_path / f"{mapping}.db",
        )
        assert result.exit_code == 0, (mapping, result.output)
    store = empty_sandbox.store
    people = [store.get_customer(i) for i in store.customer_ids()]
    by_email = {}
    for person in people:
        for email in person["_embedded"]["emails"]:
            by_email.setdefault(email["value"], []).append(person)
    # One customer per person across four loads: each later load found the first one.
    assert all(len(found) == 1 for found in by_email.values())
    phone_only = [p for p in people if not p["_embedded"]["emails"]]
    assert [(p["firstName"], p["lastName"]) for p in phone_only] == [("Chen", "Wei")]
    assert "admin@support.example.org" not in by_email  # the Zendesk agent was skipped
    ana = by_email["ana.lopez@example.com"][0]  # from Freshdesk, the first load
    phones = [p["value"] for p in ana["_embedded"]["phones"]]
    assert phones == ["+34 612 345 678", "+1 555-0100"]  # the work and the mobile phone
    assert ana["company"] == "Café Olé S.L." and ana["_embedded"]["address"]["city"] == "Sevilla"
    assert ana["notes"] == "VIP"


def test_a_file_host_that_does_not_answer_is_asked_once_and_no_url_is_noted(monkeypatch):
    from etl.errors import ApiError
    from etl.load.attachments import downloader, materialize

    calls = []

    def refuse(self, url, out):
        calls.append(url)
        raise ApiError(None, "GET", url, "could not connect to files.example.org")

    monkeypatch.setattr(Client, "download", refuse)
    fetch = downloader(Client("http://127.0.0.1:9", "key"))
    secret = "https://files.example.org/a/{}.pdf?token=s3cr3t"
    payload = {
        "threads": [
            {
                "type": "customer",
                "text": "x",
                "attachments": [
                    {
                        "fileName": f"{n}.pdf",
                        "mimeType": "application/pdf",
                        "_url": secret.format(n),
                    }
                    for n in range(3)
                ],
            }
        ]
    }
    left: list[str] = []
    sent = materialize(payload, fetch, left)
    assert len(calls) == 1  # the host did not answer: its other files are not tried
    assert "attachments" not in sent["threads"][0]  # the thread loads without them
    assert left[0] == (
        "attachment 0.pdf (not downloaded: no answer: could not connect to files.example.org)"
    )
    assert len(left) == 3 and not any("s3cr3t" in note or "/a/" in note for note in left)


def test_a_delta_stopped_before_its_ledger_entry_is_not_appended_twice(
    empty_sandbox, tmp_path, monkeypatch
):
    from etl import mirror
    from etl.ledger import Ledger
    from etl.load import LoadOptions, load

    pat = {"type": "customer", "id": 70, "email": "pat@example.org"}
    first = thread("customer", "2024-03-01T10:00:00Z", "Hello", pat)
    later = thread("customer", "2024-03-02T10:00:00Z", "Hello again", pat)
    client = Client(empty_sandbox.url, empty_sandbox.api_key)
    database = mirror.open_mirror(tmp_path / "l.db")
    options = LoadOptions(mapping="smarticks", mailbox_id=1)
    v1 = write_jsonl(tmp_path / "v1.jsonl", [smarticks_record("A", "S", threads=[first])])
    load(client, database.conn, v1, options)
    v2 = write_jsonl(tmp_path / "v2.jsonl", [smarticks_record("A", "S", threads=[first, later])])

    def stop(*args):
        raise KeyboardInterrupt  # the thread is appended, the ledger not yet told

    refresh = Ledger.refresh
    monkeypatch.setattr(Ledger, "refresh", stop)
    with pytest.raises(KeyboardInterrupt):
        load(client, database.conn, v2, options)
    monkeypatch.setattr(Ledger, "refresh", refresh)
    report = load(client, database.conn, v2, options)
    assert (report.updated, report.already_loaded, report.changed) == (0, 1, [])
    (conv,) = conversations(empty_sandbox)
    assert [t["body"] for t in reversed(conv["_embedded"]["threads"])] == ["Hello", "Hello again"]


def test_the_smarticks_customer_sample_keeps_every_phone_profile_and_website(
    empty_sandbox, tmp_path
):
    people = SAMPLES / "smarticks" / "customers.jsonl"
    result = run(empty_sandbox, "load", "customers", people, "--mapping", "smarticks", db="l.db")
    assert result.exit_code == 0, result.output
    # An empty target shows no customer field yet: the field is left out, and says how to name it.
    assert "customer field Plan (no target customer has it: pass --customer-field" in result.output
    store = empty_sandbox.store
    made = [store.get_customer(i) for i in store.customer_ids()]
    by_email = {c["_embedded"]["emails"][0]["value"]: c for c in made}
    ana = by_email["ana.lopez@example.com"]["_embedded"]
    assert [(p["value"], p["type"]) for p in ana["phones"]] == [
        ("+34 612 345 678", "work"),
        ("+34 955 000 111", "home"),
    ]
    assert ana["social_profiles"][0]["value"] == "@anamlopez"
    assert ana["websites"][0]["value"] == "https://cafeole.example.es"
    mark = by_email["mark@example.org"]["_embedded"]["emails"]
    assert [(e["value"], e["type"]) for e in mark] == [
        ("mark@example.org", "work"),
        ("mark.morrison@example.net", "home"),
    ]


def test_finding_a_conversation_on_the_target_costs_one_request(empty_sandbox, tmp_path):
    source = write_jsonl(
        tmp_path / "c.jsonl", [smarticks_record(str(n), f"Subject {n}") for n in range(5)]
    )
    args = ["load", "conversations", source, "--mapping", "smarticks", "--mailbox", 1]
    assert run(empty_sandbox, *args, db=tmp_path / "a.db").exit_code == 0
    empty_sandbox.request_log.clear()
    again = run(empty_sandbox, *args, db=tmp_path / "b.db")
    assert figure(again.output, "already on the target") == 5
    asked = [p for m, p, _ in empty_sandbox.request_log if p.startswith("/api/conversations")]
    # One request per mailbox to see it holds conversations, then one list request each
    # (threads embedded, for catching up): no GET of each conversation, nothing written.
    assert asked == ["/api/conversations"] * 6
    assert {m for m, _, _ in empty_sandbox.request_log} == {"GET"}


def test_a_customer_first_met_as_another_conversations_author_keeps_its_phone(
    empty_sandbox, tmp_path
):
    pat = {"type": "customer", "id": 70, "email": "pat@example.org"}
    bo = {"type": "customer", "id": 71, "email": None, "firstName": "Bo", "lastName": "Li"}
    records = [
        smarticks_record(
            "1",
            "Pat writes, Bo chimes in",
            threads=[
                thread("customer", "2024-03-01T10:00:00Z", "Hello", pat),
                thread("customer", "2024-03-01T10:05:00Z", "Me too", bo),
            ],
        ),
        smarticks_record(
            "2",
            "Bo's own",
            customer={"id": 71, "email": None, "firstName": "Bo", "lastName": "Li"},
            threads=[thread("customer", "2024-03-02T10:00:00Z", "Hi", bo)],
        ),
    ]
    source = write_jsonl(tmp_path / "conversations.jsonl", records)
    people = [
        {"id": 70, "email": "pat@example.org", "phone": None},
        {"id": 71, "email": None, "phone": "+44 20 7946 0000"},
    ]
    write_jsonl(tmp_path / "customers.jsonl", people)
    args = ["load", "conversations", source, "--mapping", "smarticks", "--mailbox", 1]
    assert run(empty_sandbox, *args, db=tmp_path / "a.db").exit_code == 0
    store = empty_sandbox.store
    (li,) = [c for c in map(store.get_customer, store.customer_ids()) if c["firstName"] == "Bo"]
    assert [p["value"] for p in li["_embedded"]["phones"]] == ["+44 20 7946 0000"]
    chimed = {c["subject"]: c for c in conversations(empty_sandbox)}["Pat writes, Bo chimes in"]
    authors = [t["createdBy"]["id"] for t in reversed(chimed["_embedded"]["threads"])]
    assert authors == [chimed["customer"]["id"], li["id"]]  # Bo's own thread, not Pat's
    again = run(empty_sandbox, *args, db=tmp_path / "b.db")  # found by that phone
    assert figure(again.output, "already on the target") == 2, again.output
    assert len(store.conversation_ids()) == 2


def test_ledgers_of_one_connection_share_one_lock():
    import sqlite3

    from etl.ledger import Ledger

    conn = sqlite3.connect(":memory:", check_same_thread=False)
    ledger = Ledger(conn, "http://x", "s", "conversations")
    customers = ledger.sibling("customers")
    assert customers.lock is ledger.lock and customers.kind == "customers"
    assert Ledger(conn, "http://x", "s", "customers").lock is ledger.lock
