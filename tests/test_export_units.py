"""Unit tests of export's pure parts, on hand-written API records in an in-memory mirror."""

from __future__ import annotations

import json
import sqlite3

import pytest

from etl import export as exporting
from etl import mirror, records, views
from etl.cli import main
from etl.errors import ConfigError


def test_since_accepts_dates_and_times_and_rejects_the_rest():
    assert exporting.parse_since("2024-01-31") == "2024-01-31T00:00:00Z"
    assert exporting.parse_since("2024-01-31T10:00") == "2024-01-31T10:00:00Z"
    assert exporting.parse_since("2024-01-31T10:00:00Z") == "2024-01-31T10:00:00Z"
    assert exporting.parse_since("2024-01-31T12:00:00+02:00") == "2024-01-31T10:00:00Z"
    with pytest.raises(ConfigError, match="is not a date"):
        exporting.parse_since("yesterday")


def test_neutralise_prefixes_exactly_the_owasp_trigger_characters():
    for text in ("=1+1", "+44 20 7946", "-5-5", "@SUM(A1)", "\tx", "\r5", "-", "+", "-1.2.3"):
        assert exporting.neutralise(text) == "'" + text
    for text in ("plain", "", "'quoted", " =spaced", "a=b"):
        assert exporting.neutralise(text) == text


def test_neutralise_leaves_plain_numbers_and_checks_every_type():
    for text in ("-5", "+44", "-0.5", "+.5", "-12.", "42"):
        assert exporting.neutralise(text) == text
    assert exporting.neutralise(-5) == -5 and exporting.neutralise(None) is None
    assert exporting.neutralise(-1e-05) == "'-1e-05"  # its text is not a plain number
    assert exporting.neutralise("-٣") == "'-٣"  # only ASCII digits make a plain number


def test_tables_are_checked_and_comma_lists_accepted():
    assert exporting.check_tables(["threads,customers", "threads"]) == ("threads", "customers")
    assert exporting.check_tables([]) == exporting.DEFAULT_TABLES
    with pytest.raises(ConfigError, match="unknown table 'tickets'"):
        exporting.check_tables(["tickets"])


def test_custom_field_columns_are_named_by_field_and_never_clash():
    db = mirror.open_mirror(":memory:")
    fields = [
        {"id": 1, "name": "Priority", "type": "dropdown", "options": {"1": "Low", "2": "Hïgh"}},
        {"id": 2, "name": "status", "type": "singleline", "options": ""},
        {"id": 3, "name": "Priority", "type": "dropdown", "options": {"7": "Urgent"}},
    ]
    conversation = {
        "id": 10,
        "number": 1,
        "subject": "s",
        "status": "active",
        "customer": {"id": 4, "email": "a@b.org"},
        "customFields": [
            {"id": 1, "name": "Priority", "value": "2", "text": ""},  # label from definition
            {"id": 2, "name": "status", "value": "=cmd", "text": ""},
        ],
    }
    with db.conn:
        mirror.upsert(
            db.conn,
            "custom_fields",
            [records.flat_row(f, mailbox_id=1 if f["id"] < 3 else 2) for f in fields],
        )
        rows = records.conversation_rows(conversation)
        mirror.save_records(db.conn, "conversations", rows, ["conversation_custom_fields"])
    sheet = views.sheets(db.conn)["conversations"]
    names = [c.name for c in sheet.columns]
    assert names[-3:] == ["Priority", "status (field)", "deleted_at"]  # one column per name
    row = dict(zip(names, db.conn.execute(sheet.select()).fetchone(), strict=True))
    assert row["Priority"] == "Hïgh" and row["status (field)"] == "=cmd"
    assert row["status"] == "active"
    views.refresh_views(db.conn)
    assert db.conn.execute('SELECT "Priority" FROM conversations_sheet').fetchone() == ("Hïgh",)


def test_customer_fields_past_the_column_limit_go_to_one_json_column(monkeypatch):
    monkeypatch.setattr(views, "MAX_FIELD_COLUMNS", 2)
    db = mirror.open_mirror(":memory:")
    names = ["Age", "Plan", "more_custom_fields", "Birthday"]
    customer = {
        "id": 4,
        "firstName": "Zoë",
        "customerFields": [
            {"id": i, "name": name, "value": str(i), "text": "x" if i == 3 else ""}
            for i, name in enumerate(names, start=1)
        ],
    }
    with db.conn:
        rows = records.customer_rows(customer)
        mirror.save_records(db.conn, "customers", rows, ["customer_fields"])
        mirror.save_records(db.conn, "customers", records.customer_rows({"id": 5}), [])
    sheet = views.sheets(db.conn)["customers"]
    assert sheet.notes == (
        "2 custom fields past the first 2 are in the column more_custom_fields (JSON, by field "
        "name)",
    )
    found = db.conn.execute(sheet.select()).fetchall()
    names = [c.name for c in sheet.columns]
    assert names[-4:] == ["Age", "Plan", "more_custom_fields", "deleted_at"]
    first, second = (dict(zip(names, row, strict=True)) for row in found)
    assert (first["Age"], first["Plan"]) == ("1", "2")
    assert json.loads(first["more_custom_fields"]) == {"more_custom_fields": "x", "Birthday": "4"}
    assert second["Age"] is None and second["more_custom_fields"] is None


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["export", "--format", "csv", "--out", "out"], "the command did not finish; run it again"),
        (["backup", "--dir", "snapshots", "--no-sync"], "everything committed so far is kept"),
    ],
)
def test_ctrl_c_says_whether_running_again_goes_on_or_starts_over(
    tmp_path, monkeypatch, capsys, command, said
):
    """An export keeps nothing half-done to go on from; a backup, sync or load does."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(exporting, "export", interrupted)
    monkeypatch.setattr("etl.backup.backup", interrupted)
    monkeypatch.chdir(tmp_path)
    mirror.open_mirror(tmp_path / "m.db").conn.close()
    with pytest.raises(SystemExit) as exited:
        main([*command, "--db", str(tmp_path / "m.db")])
    assert exited.value.code == 130
    err = capsys.readouterr().err
    assert f"Interrupted: {said}" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["search", "refund"],
        ["export", "--format", "csv", "--out", "out"],
        ["backup", "--dir", "snapshots", "--no-sync"],
        ["sync", "--url", "http://127.0.0.1:9", "--api-key", "k"],
    ],
)
def test_a_mirror_that_is_not_a_database_is_a_one_line_error_naming_it(
    tmp_path, monkeypatch, capsys, command
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.db").write_text("meeting notes, not a database\n")
    with pytest.raises(SystemExit) as exited:
        main([*command, "--db", "notes.db"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    said = "Error: cannot open the mirror notes.db: it is not a SQLite database"
    assert err == f"{said} (is it the right file?)"


def test_a_stale_view_is_replaced_without_a_moment_where_other_readers_miss_it(tmp_path):
    path = tmp_path / "m.db"
    db = mirror.open_mirror(path)
    db.conn.execute("DROP VIEW conversations_sheet")
    db.conn.execute("CREATE VIEW conversations_sheet AS SELECT 1 AS stale")
    seen_by_reader = []

    def look_from_elsewhere(statement: str) -> None:
        # Runs just before each statement: before the CREATE, the DROP has executed.
        if statement.startswith("CREATE VIEW conversations_sheet"):
            other = sqlite3.connect(path)
            names = {r[0] for r in other.execute("SELECT name FROM sqlite_master")}
            seen_by_reader.append("conversations_sheet" in names)
            other.close()

    db.conn.set_trace_callback(look_from_elsewhere)
    assert views.refresh_views(db.conn) == ["conversations_sheet"]
    db.conn.set_trace_callback(None)
    assert seen_by_reader == [True]
    assert (
        "stale"
        not in db.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'conversations_sheet'"
        ).fetchone()[0]
    )
