"""Loading into empty sandboxes: every shipped sample, exactly once, rejects, dry runs, verify.

The round trip (sandbox A -> etl sync -> etl export -> etl load -> sandbox B) lives in
test_migration.py, the kill -9 test in test_load_resume.py.
"""

import csv
import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers_load import GENERIC_HEADER, figure, run

from etl import mirror
from etl.cli import cli
from etl.client import Client
from etl.errors import OutcomeUnknown
from etl.load import LoadOptions, attachments, load
from etl.load import send as load_module
from etl.sandbox import Sandbox
from etl.verify import verify

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FALLBACK = "admin@support.example.org"
PHOTO_URL = "https://files.example.org/uploads/damaged-box.jpg"


@pytest.fixture(autouse=True)
def _fast_recovery(monkeypatch, tmp_path):
    monkeypatch.setattr(load_module, "RETRY_PAUSE", 0.0)
    monkeypatch.setattr(attachments, "DOWNLOAD_ATTEMPTS", 1)  # sample file hosts are offline
    monkeypatch.chdir(tmp_path)  # default rejects files land here


def conversations_by_subject(sandbox) -> dict[str, dict]:
    out = {}
    for cid in sandbox.store.conversation_ids():
        conv = sandbox.store.get_conversation(cid, embed=("threads", "tags"))
        assert conv["subject"] not in out, f"duplicate conversation {conv['subject']!r}"
        out[conv["subject"]] = conv
    return out


SAMPLE_LOADS = [
    ("smarticks", "smarticks/customers.jsonl", "customers", [], 11),
    ("smarticks", "smarticks/conversations.jsonl", "conversations", [], 14),
    (
        "zendesk",
        "zendesk/tickets.json",
        "conversations",
        ["--mailbox", 1, "--fallback-user", FALLBACK],
        13,
    ),
    (
        "freshdesk",
        "freshdesk/tickets.csv",
        "conversations",
        ["--mailbox", 1, "--timezone", "America/New_York", "--fallback-user", FALLBACK],
        13,
    ),
    ("helpscout", "helpscout/conversations.json", "conversations", ["--mailbox", 1], 12),
    (
        "intercom",
        "intercom/messages.csv",
        "conversations",
        ["--mailbox", 1, "--fallback-user", FALLBACK],
        12,
    ),
    ("generic", "generic/customers.csv", "customers", [], 10),
    # Customers from each vendor's user or contact export (agents skipped, one phone-only).
    ("zendesk", "zendesk/users.json", "customers", [], 13),
    ("freshdesk", "freshdesk/contacts.csv", "customers", [], 11),
    ("helpscout", "helpscout/customers.json", "customers", [], 11),
    ("intercom", "intercom/contacts.csv", "customers", [], 11),
    (
        "generic",
        "generic/conversations.csv",
        "conversations",
        ["--mailbox", 2, "--timezone", "Europe/Paris", "--fallback-user", FALLBACK],
        14,
    ),
]


@pytest.mark.parametrize(
    ("mapping", "file", "kind", "extra", "expected"),
    SAMPLE_LOADS,
    ids=[f"{c[0]}-{c[1].split('/')[1].split('.')[0]}" for c in SAMPLE_LOADS],
)
def test_each_shipped_sample_loads_once_with_no_notification(
    empty_sandbox, tmp_path, mapping, file, kind, extra, expected
):
    db = tmp_path / "ledger.db"
    args = ["load", kind, SAMPLES / file, "--mapping", mapping, *extra]
    first = run(empty_sandbox, *args, db=db)
    assert first.exit_code == 0, first.output
    assert figure(first.output, "created") == expected
    assert figure(first.output, "rejected") == 0
    store = empty_sandbox.store
    made = store.customer_ids() if kind == "customers" else store.conversation_ids()
    assert len(made) == expected
    if kind == "conversations":
        assert store.imported_creates == expected  # every create said imported: true
    assert store.notifications_sent == 0

    again = run(empty_sandbox, *args, db=db)
    assert again.exit_code == 0, again.output
    assert figure(again.output, "created") == 0
    assert figure(again.output, "already loaded") == expected
    made = store.customer_ids() if kind == "customers" else store.conversation_ids()
    assert len(made) == expected

    checked = run(empty_sandbox, "verify", "--kind", kind, db=db)
    assert checked.exit_code == 0, checked.output
    assert f"Verified {expected} records" in checked.output
    assert "0 differences" in checked.output


def load_sample(sandbox, tmp_path, mapping, file, **options) -> tuple[dict, object]:
    client = Client(sandbox.url, sandbox.api_key)
    database = mirror.open_mirror(tmp_path / "ledger.db")
    report = load(client, database.conn, SAMPLES / file, LoadOptions(mapping=mapping, **options))
    return conversations_by_subject(sandbox), report


def test_generic_sample_keeps_dates_order_types_attachments_and_fields(empty_sandbox, tmp_path):
    convs, report = load_sample(
        empty_sandbox,
        tmp_path,
        "generic",
        "generic/conversations.csv",
        mailbox_id=2,
        timezone="Europe/Paris",
        fallback_user=FALLBACK,
    )
    refund = convs["Refund for order #48213 — charged twice"]
    assert (refund["createdAt"], refund["closedAt"]) == (
        "2024-02-05T14:21:07Z",
        "2024-02-06T15:23:07Z",
    )
    threads = refund["_embedded"]["threads"]  # newest first, as the API lists them
    assert [t["type"] for t in threads] == ["customer", "message", "customer"]
    assert [t["createdAt"] for t in threads] == [
        "2024-02-06T15:21:07Z",
        "2024-02-05T15:56:07Z",
        "2024-02-05T14:21:07Z",
    ]
    assert threads[2]["body"].startswith("Hello,<br>\n<br>\nmy card was charged twice")
    assert refund["assignee"]["email"] == "agent2@support.example.org"
    assert sorted(t["name"] for t in refund["_embedded"]["tags"]) == ["billing", "refund"]
    assert refund["mailboxId"] == 2
    assert [(f["name"], f["text"]) for f in refund["customFields"]] == [("Priority", "Medium")]
    damaged = convs["Damaged item on arrival"]["_embedded"]["threads"][-1]
    (local_file,) = damaged["_embedded"]["attachments"]
    local = (SAMPLES / "generic" / "files" / "damaged-box.jpg").read_bytes()
    assert local_file["size"] == len(local)  # sent as base64 data, stored by the target
    assert local_file["fileUrl"].startswith(empty_sandbox.url)
    # The URL's host is offline here: the file is left out and listed, never passed on as a
    # fileUrl that dies with its host.
    (note,) = [k for k in report.left_out if k.startswith("attachment damaged-box.jpg")]
    assert "not downloaded" in note and "files.example.org" in note
    upgrade = convs["Upgrade to the annual plan"]
    assert upgrade["assignee"]["email"] == FALLBACK  # former agent -> --fallback-user
    assert report.unmapped_agents["former.agent@support.example.org"] == 2
    phone = convs["Phone call: cancel subscription"]
    assert phone["type"] == "phone"
    assert [t["type"] for t in phone["_embedded"]["threads"]] == ["note", "message"]


def test_zendesk_private_comments_become_notes_and_deleted_tickets_are_skipped(
    empty_sandbox, tmp_path
):
    convs, report = load_sample(
        empty_sandbox,
        tmp_path,
        "zendesk",
        "zendesk/tickets.json",
        mailbox_id=1,
        fallback_user=FALLBACK,
    )
    login = convs["Can't log in after password reset"]
    assert [t["type"] for t in reversed(login["_embedded"]["threads"])] == [
        "customer",
        "note",
        "message",
        "customer",
    ]
    assert login["status"] == "closed"
    parcel = convs["Where is my parcel?"]
    assert parcel["type"] == "chat"
    authors = [t["createdBy"]["email"] for t in reversed(parcel["_embedded"]["threads"])]
    assert authors[2] == "k.asante@example.gh"  # a colleague of the requester, as customer
    assert convs["Facture : TVA incorrecte sur la commande 7741"]["status"] == "pending"  # hold
    assert "You won a prize!!! Claim now" not in convs
    assert report.skipped_records == {"deleted in Zendesk": 1}


def test_helpscout_dropdown_labels_become_option_ids_and_lineitems_are_counted(
    empty_sandbox, tmp_path
):
    convs, report = load_sample(
        empty_sandbox, tmp_path, "helpscout", "helpscout/conversations.json", mailbox_id=1
    )
    field = convs["Refund for order #48213 — charged twice"]["customFields"][0]
    assert (field["name"], field["text"]) == ("Priority", "Medium")
    assert field["value"] != "Medium"  # the option id, not the label
    assert report.skipped_threads == 1
    assert convs["You won a prize!!! Claim now"]["status"] == "spam"
    phone = convs["Phone call: cancel subscription"]["_embedded"]["threads"]
    assert [t["type"] for t in reversed(phone)] == ["message", "note"]


def test_intercom_bot_and_event_parts_are_skipped_and_untitled_chats_get_a_subject(
    empty_sandbox, tmp_path
):
    convs, report = load_sample(
        empty_sandbox,
        tmp_path,
        "intercom",
        "intercom/messages.csv",
        mailbox_id=1,
        fallback_user=FALLBACK,
    )
    # Untitled conversations take the first line of their first message, at most 100
    # characters, as the subject.
    assert "Bonjour," in convs  # "<p>Bonjour,<br>la facture 7741 applique 20 % de TVA..."
    crushed = "The box arrived crushed and the mug inside is broken. Photo attached."
    assert crushed in convs
    refund = convs["Refund for order #48213 — charged twice"]
    assert refund["type"] == "chat"
    assert len(refund["_embedded"]["threads"]) == 3  # bot greeting, assignment, close skipped
    assert report.skipped_threads == 19


# -- bad rows ----------------------------------------------------------------------------------

BAD_ROWS = [
    # conversation_id, subject, customer_email, status, message_type, created, body, attachments
    ("B-1", "", "a@example.org", "active", "customer", "2024-03-01 10:00", "no subject", ""),
    ("B-2", "Bad email", "not-an-email", "active", "customer", "2024-03-01 10:00", "x", ""),
    ("B-3", "Bad date", "a@example.org", "active", "customer", "31/02/2024 25:00", "x", ""),
    ("B-4", "Odd status", "a@example.org", "on fire", "customer", "2024-03-01 10:00", "x", ""),
    ("B-5", "Only events", "a@example.org", "closed", "system", "2024-03-01 10:00", "x", ""),
    ("B-6", "x" * 999, "a@example.org", "active", "customer", "2024-03-01 10:00", "x", ""),
    # Neither an email nor a phone or name (and not a phone conversation): cannot be loaded.
    ("B-8", "No customer", "", "active", "customer", "2024-03-01 10:00", "x", ""),
    (
        "B-7",
        "Escape",
        "a@example.org",
        "active",
        "customer",
        "2024-03-01 10:00",
        "x",
        "../../secret.txt",
    ),
    (
        "G-1",
        "Good one",
        "good@example.org",
        "closed",
        "customer",
        "2024-03-01 10:00",
        "Hello\nthere",
        "",
    ),
    ("G-1", "", "", "", "reply", "2024-03-01 11:00", "Hi!", ""),
    ("G-2", "Good two", "good@example.org", "active", "customer", "2024-03-02 09:30", "Hey", ""),
]
BAD_KINDS = {
    "B-1": "missing_subject",
    "B-2": "invalid_email",
    "B-3": "bad_date",
    "B-4": "unknown_status",
    "B-5": "no_threads",
    "B-6": "too_long",
    "B-7": "attachment_outside_folder",
    "B-8": "missing_customer",
}


def write_generic(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(GENERIC_HEADER)
        for row in rows:
            writer.writerow([*row, FALLBACK if row[4] == "reply" else ""])


def test_bad_rows_go_to_the_rejects_file_with_reasons_while_the_rest_load(empty_sandbox, tmp_path):
    source = tmp_path / "in" / "tickets.csv"
    source.parent.mkdir()
    write_generic(source, BAD_ROWS)
    rejects = tmp_path / "out" / "rejects.csv"
    result = run(
        empty_sandbox,
        "load",
        "conversations",
        source,
        "--mailbox",
        1,
        "--timezone",
        "UTC",
        "--rejects",
        rejects,
        db=tmp_path / "l.db",
    )
    assert result.exit_code == 3, result.output
    assert figure(result.output, "created") == 2
    assert figure(result.output, "rejected") == 8
    assert f"-> {rejects}" in result.output
    with open(rejects, encoding="utf-8-sig", newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert list(lines[0]) == ["file", "row", "id", "field", "kind", "reason"]
    found = {(r["id"], r["kind"]) for r in lines}
    assert found == set(BAD_KINDS.items())
    by_id = {r["id"]: r for r in lines}
    assert by_id["B-3"]["file"] == "tickets.csv"
    assert by_id["B-3"]["row"] == "4"  # the spreadsheet row (header = row 1)
    assert by_id["B-3"]["field"] == "message_created_at"
    assert "'31/02/2024 25:00' is not a date" in by_id["B-3"]["reason"]
    assert by_id["B-7"]["reason"].startswith("../../secret.txt: refused")
    assert (by_id["B-8"]["field"], by_id["B-8"]["reason"]) == (
        "customer.email",
        "no customer: no email, phone, name or id",
    )
    subjects = sorted(conversations_by_subject(empty_sandbox))
    assert subjects == ["Good one", "Good two"]
    assert "problems by kind:" in result.output


def test_retry_rejects_loads_only_the_rows_fixed_since(empty_sandbox, tmp_path):
    source = tmp_path / "tickets.csv"
    write_generic(source, BAD_ROWS)
    db = tmp_path / "l.db"
    base = ["load", "conversations", source, "--mailbox", 1, "--timezone", "UTC"]
    assert run(empty_sandbox, *base, db=db).exit_code == 3
    fixed = [list(r) for r in BAD_ROWS]
    fixed[0][1] = "Now with a subject"
    fixed[2][5] = "2024-02-28 10:00"
    fixed.append(
        [
            "N-1",
            "Never seen before",
            "n@example.org",
            "active",
            "customer",
            "2024-03-03 10:00",
            "new",
            "",
        ]
    )
    write_generic(source, fixed)
    result = run(empty_sandbox, *base, "--retry-rejects", db=db)
    assert figure(result.output, "created") == 2
    assert figure(result.output, "rejected") == 6
    assert (tmp_path / "tickets.rejects.csv").read_text(encoding="utf-8-sig").count("\n") == 7
    subjects = set(conversations_by_subject(empty_sandbox))
    assert {"Now with a subject", "Bad date"} <= subjects
    assert "Never seen before" not in subjects  # not a previous reject


def test_changed_rows_are_listed_and_left_alone(empty_sandbox, tmp_path):
    source = tmp_path / "tickets.csv"
    rows = [r for r in BAD_ROWS if r[0].startswith("G")]
    write_generic(source, rows)
    db = tmp_path / "l.db"
    base = ["load", "conversations", source, "--mailbox", 1, "--timezone", "UTC"]
    assert run(empty_sandbox, *base, db=db).exit_code == 0
    rows[1] = (*rows[1][:6], "Hi! (edited after the load)", "")
    write_generic(source, rows)
    (tmp_path / "tickets.rejects.csv").write_text("file,row,id,field,kind,reason\nold\n")
    result = run(empty_sandbox, *base, db=db)
    assert result.exit_code == 0
    assert not (tmp_path / "tickets.rejects.csv").exists()  # a stale one is removed
    assert figure(result.output, "created") == 0
    assert figure(result.output, "changed since loaded") == 1
    assert "not updated: the API cannot rewrite a subject or an old thread" in result.output
    assert "changed: tickets.csv row 2 (id G-1)" in result.output


# -- dry run, customers, excel -----------------------------------------------------------------


def test_dry_run_sends_nothing_and_reports_what_a_load_would_do(empty_sandbox, tmp_path):
    client = Client(empty_sandbox.url, empty_sandbox.api_key)
    client.create("api/customers", {"firstName": "Mark", "emails": [{"value": "mark@example.org"}]})
    empty_sandbox.request_log.clear()
    result = run(
        empty_sandbox,
        "load",
        "conversations",
        SAMPLES / "zendesk" / "tickets.json",
        "--mapping",
        "zendesk",
        "--mailbox",
        1,
        "--dry-run",
        db=tmp_path / "l.db",
    )
    assert result.exit_code == 0, result.output  # the unmapped agent goes to the first admin
    assert {m for m, _, _ in empty_sandbox.request_log} == {"GET"}
    assert empty_sandbox.store.conversation_ids() == []
    out = result.output
    assert "Checked (dry run, nothing sent)" in out
    assert figure(out, "rows read") == 14
    assert figure(out, "conversations") == 13
    assert figure(out, "threads") == 33
    assert figure(out, "would be sent") == 13
    assert figure(out, "customers existing") == 1  # mark@example.org
    assert figure(out, "customers new") == 9
    assert "unmapped agents (sent to admin@support.example.org, the first administrator" in out
    assert "former.agent@support.example.org  (2 references)" in out
    assert not (tmp_path / "tickets.rejects.csv").exists()


def test_existing_customers_are_reused_never_duplicated(empty_sandbox, tmp_path):
    """Mark is on the target already: he is filled in with what he lacks (his second email,
    phone, last name, company, job title, country), and nothing he has is overwritten."""
    client = Client(empty_sandbox.url, empty_sandbox.api_key)
    mark = client.create(
        "api/customers",
        {"firstName": "M", "emails": [{"value": "MARK@example.org"}], "notes": "VIP since 2019"},
    )

    def load_customers(db):
        sample = SAMPLES / "smarticks" / "customers.jsonl"
        return run(empty_sandbox, "load", "customers", sample, "--mapping", "smarticks", db=db)

    result = load_customers(tmp_path / "l.db")
    assert result.exit_code == 0, result.output
    assert figure(result.output, "created") == 10
    assert figure(result.output, "updated") == 1
    assert len(empty_sandbox.store.customer_ids()) == 11
    got = empty_sandbox.store.get_customer(mark)
    assert (got["firstName"], got["lastName"], got["notes"]) == ("M", "Morrison", "VIP since 2019")
    assert (got["company"], got["jobTitle"]) == ("Example, Inc", "Secretary")
    assert [e["value"] for e in got["_embedded"]["emails"]] == [
        "MARK@example.org",
        "mark.morrison@example.net",
    ]
    assert [p["value"] for p in got["_embedded"]["phones"]] == ["777-777-777"]
    assert got["_embedded"]["address"]["country"] == "US"
    assert got["_embedded"]["address"]["city"] == "Los Angeles"
    again = load_customers(tmp_path / "other.db")
    assert again.exit_code == 0, again.output
    assert figure(again.output, "created") == 0  # a lost ledger: every one found, none changed
    assert figure(again.output, "existing, reused") == 11
    conv = run(
        empty_sandbox,
        "load",
        "conversations",
        SAMPLES / "smarticks" / "conversations.jsonl",
        "--mapping",
        "smarticks",
        db=tmp_path / "l.db",
    )
    assert conv.exit_code == 0, conv.output
    assert len(empty_sandbox.store.customer_ids()) == 11  # conversations found them by email
    mine = [
        c for c in conversations_by_subject(empty_sandbox).values() if c["customer"]["id"] == mark
    ]
    assert len(mine) == 2


def test_excel_cp1252_csv_needs_encoding_and_then_loads_exactly(empty_sandbox, tmp_path):
    text = (
        "conversation_id;subject;customer_email;status;message_type;message_created_at;body\r\n"
        "W-1;Réclamation – facture n° 12;zoe@example.fr;closed;customer;2024-03-01 10:00;"
        '"Bonjour,\r\nle montant est 12,50 € au lieu de 10 €.\r\nMerci ‘d’avance’"\r\n'
    )
    source = tmp_path / "excel.csv"
    source.write_bytes(text.encode("cp1252"))
    db = tmp_path / "l.db"
    failed = run(empty_sandbox, "load", "conversations", source, "--mailbox", 1, db=db)
    assert failed.exit_code == 2
    assert "excel.csv: line 2: byte 0xe9 is not valid utf-8-sig" in failed.output
    assert "--encoding cp1252" in failed.output
    result = run(
        empty_sandbox,
        "load",
        "conversations",
        source,
        "--mailbox",
        1,
        "--encoding",
        "cp1252",
        "--timezone",
        "Europe/Paris",
        db=db,
    )
    assert result.exit_code == 0, result.output
    conv = conversations_by_subject(empty_sandbox)["Réclamation – facture n° 12"]
    body = conv["_embedded"]["threads"][0]["body"]
    assert body == "Bonjour,<br>\nle montant est 12,50 € au lieu de 10 €.<br>\nMerci ‘d’avance’"
    assert conv["createdAt"] == "2024-03-01T09:00:00Z"


def test_the_generic_template_loads_from_xlsx_too(empty_sandbox, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    with open(SAMPLES / "generic" / "conversations.csv", encoding="utf-8-sig", newline="") as f:
        for row in csv.reader(f):
            sheet.append(row)
    path = tmp_path / "files-here" / "conversations.xlsx"
    path.parent.mkdir()
    shutil.copytree(SAMPLES / "generic" / "files", path.parent / "files")
    book.save(path)
    result = run(
        empty_sandbox,
        "load",
        "conversations",
        path,
        "--mailbox",
        1,
        "--timezone",
        "Europe/Paris",
        "--fallback-user",
        FALLBACK,
        db=tmp_path / "l.db",
    )
    assert result.exit_code == 0, result.output
    assert figure(result.output, "created") == 14


# -- failures of the network -------------------------------------------------------------------


def test_a_create_whose_answer_was_lost_is_found_not_repeated(empty_sandbox, tmp_path, monkeypatch):
    real_create = Client.create
    lost = []

    def create(self, path, body):
        made = real_create(self, path, body)
        if path == "api/conversations" and not lost:
            lost.append(made)
            raise OutcomeUnknown("POST", path, "timed out")  # it happened; the answer did not
        return made

    monkeypatch.setattr(Client, "create", create)
    convs, report = load_sample(
        empty_sandbox, tmp_path, "smarticks", "smarticks/conversations.jsonl"
    )
    assert len(convs) == 14  # conversations_by_subject also asserts no duplicate
    assert report.recovered == 1 and report.created == 13


def test_dropped_connections_and_5xx_never_duplicate(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(
        empty=True,
        drop_rate=0.2,
        error_rate=0.1,
        fault_seed=3,
        fault_paths=("/api/conversations",),
    )
    client = Client(sandbox.url, sandbox.api_key)
    client.retry = type(client.retry)(base_delay=0.0)
    database = mirror.open_mirror(tmp_path / "l.db")
    report = load(
        client,
        database.conn,
        SAMPLES / "smarticks" / "conversations.jsonl",
        LoadOptions(mapping="smarticks", workers=4),
    )
    assert sandbox.dropped_connections > 0
    assert len(conversations_by_subject(sandbox)) == 14
    assert report.created + report.recovered == 14


def test_workers_share_429_backoff_and_load_everything_once(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(empty=True, rate_limit_every=25, retry_after=1)
    rows = [
        json.loads(line)
        for line in (SAMPLES / "smarticks" / "conversations.jsonl").read_text().splitlines()
    ][:14]
    source = tmp_path / "many.jsonl"
    with open(source, "w", encoding="utf-8") as handle:
        for copy in range(3):
            for row in rows:
                handle.write(
                    json.dumps(
                        dict(row, id=f"{copy}-{row['id']}", subject=f"{row['subject']} [{copy}]")
                    )
                    + "\n"
                )
    client = Client(sandbox.url, sandbox.api_key)
    database = mirror.open_mirror(tmp_path / "l.db")
    started = time.monotonic()
    report = load(client, database.conn, source, LoadOptions(mapping="smarticks", workers=8))
    assert report.created == 42
    assert len(conversations_by_subject(sandbox)) == 42
    assert sandbox.status_counts[429] >= 2 and client.retries_made >= 2
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was waited for


# -- verify, secrets, help ---------------------------------------------------------------------


def test_verify_lists_every_difference_with_the_target(empty_sandbox, tmp_path):
    db = tmp_path / "l.db"
    args = [
        "load",
        "conversations",
        SAMPLES / "helpscout" / "conversations.json",
        "--mapping",
        "helpscout",
        "--mailbox",
        1,
    ]
    assert run(empty_sandbox, *args, db=db).exit_code == 0
    convs = conversations_by_subject(empty_sandbox)
    client = Client(empty_sandbox.url, empty_sandbox.api_key)
    reopened = convs["GDPR: please delete my data"]["id"]
    client.put(f"api/conversations/{reopened}", {"byUser": 1, "status": "active"})
    client.put(f"api/conversations/{reopened}/tags", {"tags": ["gdpr", "escalated"]})
    client.delete(f"api/conversations/{convs['Where is my parcel?']['id']}")
    result = run(empty_sandbox, "verify", db=db)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("conversation")]
    assert len(lines) == 4, result.output
    assert any("status: expected 'closed', target has 'active'" in line for line in lines)
    assert any(
        "closedAt: expected '2024-04-18T10:18:07Z', target has None" in line for line in lines
    )
    assert any(
        "tags: expected ['gdpr'], target has ['escalated', 'gdpr']" in line for line in lines
    )
    assert any(line.endswith("missing on the target") for line in lines)
    database = mirror.open_mirror(db)
    assert len(verify(client, database.conn, ["conversations"]).differences) == 4


def test_the_api_key_is_never_written_or_printed(tmp_path):
    secret = "sk-live-7f3a9c1e55d0"
    with Sandbox(empty=True, api_key=secret) as sandbox:
        source = tmp_path / "tickets.csv"
        write_generic(source, BAD_ROWS)
        result = run(
            sandbox,
            "load",
            "conversations",
            source,
            "--mailbox",
            1,
            "--timezone",
            "UTC",
            db=tmp_path / "l.db",
        )
        assert result.exit_code == 3
        verified = run(sandbox, "verify", db=tmp_path / "l.db")
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert written and secret.encode() not in written
    assert secret not in result.output + verified.output


def test_commands_have_help_with_an_example():
    for args in (
        ["load"],
        ["load", "conversations"],
        ["load", "customers"],
        ["mapping"],
        ["mapping", "init"],
        ["verify"],
    ):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0
        assert "Example:" in result.output, args


def test_mapping_init_writes_a_draft_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "mine.toml"
    args = ["mapping", "init", str(SAMPLES / "intercom" / "messages.csv"), "-o", str(out)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert 'id = "conversation_id"' in out.read_text()
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 1 and "pass --force" in second.output


def test_a_failure_mid_load_still_ends_with_a_summary_and_resumes(empty_sandbox, tmp_path):
    from etl.sandbox.errors import ApiFailure

    creates = []

    def refuse_after_three(method, path, query):
        if method == "POST" and path == "/api/conversations":
            creates.append(path)
            if len(creates) > 3:
                raise ApiFailure(403, "API access was switched off")

    empty_sandbox.on_request = refuse_after_three
    db = tmp_path / "l.db"
    args = [
        "load",
        "conversations",
        SAMPLES / "smarticks" / "conversations.jsonl",
        "--mapping",
        "smarticks",
    ]
    failed = run(empty_sandbox, *args, db=db)
    assert failed.exit_code == 4, failed.output  # the key was refused
    assert figure(failed.output, "created") == 3
    assert "API access was switched off" in failed.output
    empty_sandbox.on_request = None
    resumed = run(empty_sandbox, *args, db=db)
    assert resumed.exit_code == 0, resumed.output
    assert figure(resumed.output, "already loaded") == 3
    assert figure(resumed.output, "created") == 11
    assert len(conversations_by_subject(empty_sandbox)) == 14


def test_no_mailbox_to_choose_is_a_usage_error_before_anything_is_sent(empty_sandbox, tmp_path):
    result = run(
        empty_sandbox,
        "load",
        "conversations",
        SAMPLES / "helpscout" / "conversations.json",
        "--mapping",
        "helpscout",
        db=tmp_path / "l.db",
    )
    assert result.exit_code == 2
    assert "pass --mailbox ID (1 (Support), 2 (Ventes & Facturation)" in result.output
    unknown = run(
        empty_sandbox,
        "load",
        "conversations",
        SAMPLES / "helpscout" / "conversations.json",
        "--mapping",
        "helpscout",
        "--mailbox",
        99,
        db=tmp_path / "l.db",
    )
    assert unknown.exit_code == 2 and "no mailbox 99 on the target" in unknown.output
    assert empty_sandbox.store.conversation_ids() == []


def test_the_ledger_names_a_target_the_same_however_its_url_is_written():
    from etl.ledger import target_key

    assert target_key("HTTPS://Help.Example.org:443/") == "https://help.example.org"
    assert target_key("http://127.0.0.1:8025") == "http://127.0.0.1:8025"
    assert target_key("https://x.org/helpdesk/") == "https://x.org/helpdesk"
