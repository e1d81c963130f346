"""A mailbox with 2,500 custom fields: the sheets, views and exports still work."""

from __future__ import annotations

import csv
import json
import sqlite3

import pyarrow.parquet as pq
import pytest
from helpers_mirror import rows, sync_into
from openpyxl import load_workbook

from etl import export as exporting
from etl import mirror
from etl.sandbox import Sandbox
from etl.sandbox.models import CustomField

FIELDS = 2500


def add_fields(sandbox, mailbox_id: int) -> list[int]:
    """2,500 text fields defined on one mailbox, after the seeded ones; their ids."""
    store = sandbox.store
    with store.lock:
        first = max(store.conv_fields) + 1
        ids = list(range(first, first + FIELDS))
        for n, field_id in enumerate(ids, start=1):
            store.conv_fields[field_id] = CustomField(
                field_id, mailbox_id, f"Field {n:04}", "singleline", None, False, 100 + n
            )
        store.index_definitions()
        store._last_ids["field"] = ids[-1]
    return ids


def sync_and_open(sandbox, path, **options) -> None:
    """Sync, then open the mirror as any etl command does: the views gain the new fields."""
    sync_into(sandbox, path, **options)
    mirror.open_mirror(path).conn.close()


def export(path, fmt, out):
    db = mirror.open_mirror(path)
    try:
        options = exporting.ExportOptions(tables=("conversations", "customers"))
        return exporting.export(db.conn, fmt, out, options)
    finally:
        db.conn.close()


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A mirror whose mailbox has 2,500 custom fields, three of them set on one conversation."""
    path = tmp_path_factory.mktemp("wide") / "smarticks.db"
    with Sandbox(seed=7, conversations=30) as sandbox:
        conversation = min(sandbox.store.conversations.values(), key=lambda c: c.id)
        ids = add_fields(sandbox, conversation.mailbox_id)
        values = {ids[0]: "first", ids[994]: "last column", ids[995]: "=in JSON", ids[-1]: "end"}
        sandbox.store.set_conversation_fields(conversation.id, values)
        sync_and_open(sandbox, path)
    return path, conversation.id, ids


def test_the_sheet_view_has_1000_field_columns_and_the_rest_as_json(wide):
    path, conversation_id, _ = wide
    conn = sqlite3.connect(path)
    try:
        cursor = conn.execute("SELECT * FROM conversations_sheet WHERE id = ?", (conversation_id,))
        names = [d[0] for d in cursor.description]
        row = dict(zip(names, cursor.fetchone(), strict=True))
    finally:
        conn.close()
    # 5 seeded field names (shared by the mailboxes) and the first 995 of the 2,500
    fields = names[names.index("tags") + 1 : names.index(exporting.views.MORE_FIELDS)]
    assert len(fields) == 1000 and fields[5:] == [f"Field {n:04}" for n in range(1, 996)]
    assert row["Field 0001"] == "first" and row["Field 0995"] == "last column"
    assert json.loads(row["more_custom_fields"]) == {"Field 0996": "=in JSON", "Field 2500": "end"}
    other = rows(
        path, "SELECT more_custom_fields FROM conversations_sheet WHERE id <> ?", (conversation_id,)
    )
    assert {value for (value,) in other} == {None}  # no values: empty, not "{}"


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_every_format_exports_the_wide_sheet_and_says_how_many_went_to_json(wide, tmp_path, fmt):
    path, conversation_id, _ = wide
    out = tmp_path / ("x.xlsx" if fmt == "xlsx" else "out")
    summary = export(path, fmt, out)
    assert (
        "conversations: 1,505 custom fields past the first 1,000 are in the column "
        "more_custom_fields (JSON, by field name)"
    ) in summary.warnings
    if fmt == "csv":
        with open(out / "conversations.csv", encoding="utf-8", newline="") as handle:
            header, *body = list(csv.reader(handle))
        records = [dict(zip(header, r, strict=True)) for r in body]
    elif fmt == "xlsx":
        sheet = load_workbook(out)["conversations"]
        header, *body = [list(r) for r in sheet.iter_rows(values_only=True)]
        records = [dict(zip(header, r, strict=True)) for r in body]
    else:
        records = pq.read_table(out / "conversations.parquet").to_pylist()
        header = list(records[0])
    assert len(header) == 15 + 1000 + 1
    record = next(r for r in records if r["id"] in (conversation_id, str(conversation_id)))
    assert record["Field 0995"] == "last column"
    assert json.loads(record["more_custom_fields"])["Field 0996"] == "=in JSON"


def test_a_field_deleted_at_the_source_leaves_the_sheets_and_its_values_stay(wide, tmp_path):
    path, conversation_id, ids = wide
    copy = tmp_path / "copy.db"
    source = sqlite3.connect(path)
    source.execute("VACUUM INTO ?", (str(copy),))
    source.close()
    with Sandbox(seed=7, conversations=30) as sandbox:
        add_fields(sandbox, sandbox.store.conversations[conversation_id].mailbox_id)
        with sandbox.store.lock:  # Field 0001 is deleted at the source
            del sandbox.store.conv_fields[ids[0]]
            sandbox.store.index_definitions()
        sync_and_open(sandbox, copy, resources=("custom_fields",))
    names = [r[1] for r in rows(copy, "PRAGMA table_info(conversations_sheet)")]
    assert "Field 0001" not in names and "Field 0996" in names  # the next one moves in
    assert rows(
        copy,
        "SELECT value FROM conversation_custom_fields WHERE conversation_id = ? AND field_id = ?",
        (conversation_id, ids[0]),
    ) == [("first",)]
    summary = export(copy, "csv", tmp_path / "out")
    assert "conversations: 1,504 custom fields past the first 1,000" in " ".join(summary.warnings)
    with open(tmp_path / "out" / "conversations.csv", encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert "Field 0001" not in header and "Field 0996" in header
