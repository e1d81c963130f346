"""Issue 19: every record arrives, once, even when the file, the target or the ledger is untidy.

Each test runs the CLI against a sandbox over real HTTP.
"""

import csv
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from etl.cli import cli
from etl.client import Client
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
    monkeypatch.chdir(tmp_path)


def run(sandbox, *args, db):
    env = {
        "SMARTICKS_URL": sandbox.url,
        "SMARTICKS_API_KEY": sandbox.api_key,
        "SMARTICKS_DB": str(db),
    }
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def figure(output: str, label: str) -> int:
    found = re.search(rf"^\s+{re.escape(label)}\s+(\d+)", output, re.MULTILINE)
    assert found, f"no {label!r} line in:\n{output}"
    return int(found.group(1))


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

    # A new ledger: each row finds its own customer (two Bo Li stay two), nothing is created.
    again = run(empty_sandbox, "load", "customers", source, db=tmp_path / "b.db")
    assert again.exit_code == 0, again.output
    assert figure(again.output, "created") == 0
    assert figure(again.output, "existing, reused") == 4
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
