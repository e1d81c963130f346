"""Typed custom fields and local time in every format, read back with openpyxl, pyarrow, DuckDB."""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers_mirror import rows, sync_into
from openpyxl import load_workbook

from etl import export as exporting
from etl import mirror
from etl.cli import main
from etl.client import Client
from etl.load import LoadOptions, load
from etl.sandbox import Sandbox

# Adelaide leaves daylight saving at 2024-04-07 03:00 local (+10:30 -> +09:30), 16:30 UTC.
BEFORE_DST_END, AT_DST_END = "2024-04-06T16:29:59Z", "2024-04-06T16:30:00Z"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    """A synced mirror; one conversation has an Amount and a Purchase Date that do not parse,
    and another is created and closed either side of Adelaide's DST change."""
    path = tmp_path_factory.mktemp("typed") / "smarticks.db"
    with Sandbox(seed=7, conversations=60) as sandbox:
        store = sandbox.store
        odd = min(store.conversations.values(), key=lambda c: c.id)
        fields = {f.name: f.id for f in store.mailbox_fields(odd.mailbox_id)}
        store.set_conversation_fields(
            odd.id, {fields["Amount"]: "12,50 €", fields["Purchase Date"]: "soon"}
        )
        sync_into(sandbox, path)
    mirror.open_mirror(path).conn.close()  # views gain the fields' columns
    conn = sqlite3.connect(path)
    with conn:
        dst = conn.execute("SELECT max(id) FROM conversations").fetchone()[0]
        conn.execute(
            "UPDATE conversations SET created_at = ?, closed_at = ?, updated_at = ? WHERE id = ?",
            (BEFORE_DST_END, AT_DST_END, AT_DST_END, dst),
        )
    conn.close()
    return path, odd.id, dst


def run_export(path, fmt, out, **options):
    db = mirror.open_mirror(path)
    try:
        options.setdefault("tables", ("conversations",))
        return exporting.export(db.conn, fmt, out, exporting.ExportOptions(**options))
    finally:
        db.conn.close()


def amounts(path) -> dict[int, str]:
    """Each conversation's Amount as the mirror holds it (text)."""
    return dict(
        rows(
            path,
            "SELECT v.conversation_id, v.value FROM conversation_custom_fields v "
            "JOIN custom_fields f ON f.id = v.field_id WHERE f.name = 'Amount'",
        )
    )


def test_views_hold_number_fields_as_numbers_and_keep_what_does_not_parse(typed):
    path, odd, _ = typed
    found = dict(rows(path, 'SELECT id, "Amount" FROM conversations_sheet'))
    expected = amounts(path)
    assert found[odd] == "12,50 €"
    numbers = {k: v for k, v in found.items() if v is not None and k != odd}
    assert len(numbers) >= 5
    assert all(isinstance(v, int | float) and v == float(expected[k]) for k, v in numbers.items())
    ordered = [v for (v,) in rows(path, 'SELECT "Amount" FROM conversations_sheet ORDER BY 1')]
    numeric = [v for v in ordered if isinstance(v, int | float)]
    assert numeric == sorted(numeric)  # sorted as numbers: 9 before 10


def test_xlsx_has_number_and_date_cells_and_local_times(typed, tmp_path):
    path, odd, dst = typed
    out = tmp_path / "t.xlsx"
    summary = run_export(path, "xlsx", out, timezone="Australia/Adelaide")
    warnings = " ".join(summary.warnings)
    assert "1 conversations.Amount: values that are not numbers kept as text" in warnings
    assert "1 conversations.Purchase Date: values that are not dates (YYYY-MM-DD)" in warnings
    sheet = load_workbook(out)["conversations"]
    header = [c.value for c in sheet[1]]
    at = {name: i for i, name in enumerate(header)}
    by_id = {r[0].value: r for r in sheet.iter_rows(min_row=2)}
    expected = amounts(path)
    for cid, row in by_id.items():
        amount, bought = row[at["Amount"]], row[at["Purchase Date"]]
        if cid == odd:
            assert (amount.value, amount.data_type) == ("12,50 €", "s")
            assert (bought.value, bought.data_type) == ("soon", "s")
        elif amount.value is not None:
            assert amount.data_type == "n" and amount.value == float(expected[cid])
        if cid != odd and bought.value is not None:
            assert isinstance(bought.value, datetime) and bought.number_format == "yyyy-mm-dd"
    created, closed = by_id[dst][at["created_at"]], by_id[dst][at["closed_at"]]
    assert created.value == datetime(2024, 4, 7, 2, 59, 59)  # +10:30
    assert closed.value == datetime(
        2024, 4, 7, 2, 0, 0
    )  # +09:30: an hour "earlier", a second later
    zone = ZoneInfo("Australia/Adelaide")
    stored = dict(rows(path, "SELECT id, updated_at FROM conversations"))
    for cid, row in by_id.items():
        local = utc(stored[cid]).astimezone(zone).replace(tzinfo=None)
        assert row[at["updated_at"]].value == local


def test_csv_and_json_write_iso_times_with_the_zone_offset(typed, tmp_path):
    path, _, dst = typed
    run_export(path, "csv", tmp_path / "csv", timezone="Asia/Kolkata")
    with open(tmp_path / "csv" / "conversations.csv", encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    stored = dict(rows(path, "SELECT id, created_at FROM conversations"))
    for record in records:
        local = utc(stored[int(record["id"])]).astimezone(ZoneInfo("Asia/Kolkata"))
        assert record["created_at"] == local.isoformat() and record["created_at"][-6:] == "+05:30"
    run_export(path, "jsonl", tmp_path / "json", timezone="Australia/Adelaide")
    lines = (tmp_path / "json" / "conversations.jsonl").read_text().splitlines()
    record = next(r for r in map(json.loads, lines) if r["id"] == dst)
    assert (record["createdAt"], record["closedAt"]) == (
        "2024-04-07T02:59:59+10:30",
        "2024-04-07T02:00:00+09:30",
    )
    assert all(t["createdAt"][-6:] in ("+10:30", "+09:30") for t in record["threads"])


def test_parquet_is_typed_and_duckdb_sums_and_filters_it(typed, tmp_path):
    path, odd, dst = typed
    summary = run_export(path, "parquet", tmp_path, timezone="Asia/Kolkata")
    assert "1 conversations.Amount: values that are not numbers left empty in Parquet" in " ".join(
        summary.warnings
    )
    table = pq.read_table(tmp_path / "conversations.parquet")
    assert table.schema.field("Amount").type == pa.float64()
    assert table.schema.field("Purchase Date").type == pa.date32()
    assert table.schema.field("created_at").type == pa.timestamp("ms", tz="Asia/Kolkata")
    expected = {k: float(v) for k, v in amounts(path).items() if k != odd}
    file = str(tmp_path / "conversations.parquet")
    con = duckdb.connect()
    kinds = dict(
        con.execute(f"SELECT column_name, column_type FROM (DESCRIBE '{file}')").fetchall()
    )
    assert kinds["Amount"] == "DOUBLE" and kinds["Purchase Date"] == "DATE"
    assert kinds["created_at"] == "TIMESTAMP WITH TIME ZONE"
    total = con.execute(f"SELECT sum(\"Amount\") FROM '{file}'").fetchone()[0]
    assert total == pytest.approx(sum(expected.values()))
    dated = con.execute(
        f"SELECT count(*) FROM '{file}' WHERE \"Purchase Date\" >= DATE '2021-01-01'"
    ).fetchone()[0]
    assert dated == sum(
        1
        for (v,) in rows(path, 'SELECT "Purchase Date" FROM conversations_sheet')
        if v and v != "soon" and date.fromisoformat(v) >= date(2021, 1, 1)
    )
    moment = con.execute(f"SELECT closed_at FROM '{file}' WHERE id = {dst}").fetchone()[0]
    assert moment == utc(AT_DST_END)
    assert table.column("created_at").to_pylist()[0].utcoffset().total_seconds() == 5.5 * 3600


def test_since_is_read_in_the_export_zone(typed, tmp_path, capsys):
    path, _, dst = typed
    adelaide = ZoneInfo("Australia/Adelaide")
    assert exporting.parse_since("2024-04-07T03:00", adelaide) == "2024-04-06T17:30:00Z"
    assert exporting.parse_since("2024-04-07T01:59", adelaide) == "2024-04-06T15:29:00Z"
    assert exporting.parse_since("2024-04-07", ZoneInfo("Asia/Kolkata")) == "2024-04-06T18:30:00Z"
    assert exporting.parse_since("2024-04-07T01:59+00:00", adelaide) == "2024-04-07T01:59:00Z"
    found = {}
    for since in ("2024-04-07T01:59", "2024-04-07T03:00"):
        out = tmp_path / since.replace(":", "")
        with pytest.raises(SystemExit) as exited:
            main(
                ["export", "--db", str(path), "--format", "csv", "--out", str(out),
                 "--tables", "conversations", "--since", since, "--timezone", "Australia/Adelaide"]
            )  # fmt: skip
        assert exited.value.code == 0
        with open(out / "conversations.csv", encoding="utf-8", newline="") as handle:
            found[since] = [int(r["id"]) for r in csv.DictReader(handle)]
    assert dst in found["2024-04-07T01:59"] and dst not in found["2024-04-07T03:00"]
    capsys.readouterr()


def test_json_exported_in_any_zone_loads_back_at_the_same_instants(typed, tmp_path):
    path, _, _ = typed
    run_export(path, "jsonl", tmp_path, timezone="Asia/Kolkata")
    lines = (tmp_path / "conversations.jsonl").read_text().splitlines()[:6]
    source = tmp_path / "six.jsonl"
    source.write_text("\n".join(lines) + "\n")
    expected = sorted(utc(json.loads(line)["createdAt"]) for line in lines)
    with Sandbox(empty=True) as target:
        database = mirror.open_mirror(tmp_path / "load.db")
        report = load(
            Client(target.url, target.api_key),
            database.conn,
            source,
            LoadOptions(mapping="smarticks"),
        )
        database.conn.close()
        assert report.created == 6
        created = sorted(
            datetime.fromtimestamp(c.created_at, UTC) for c in target.store.conversations.values()
        )
    assert created == expected
