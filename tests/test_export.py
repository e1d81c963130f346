"""`etl export` of a mirror synced from the sandbox, in every format, checked by reading back."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers_mirror import rows, run_cli, scalar, sync_into
from openpyxl import load_workbook

from etl import export as exporting
from etl import mirror, views
from etl.sandbox import Sandbox

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def mirror_path(tmp_path_factory):
    """A mirror of the seeded sandbox (unicode, HTML, >40,000-character bodies, =+-@ text)."""
    path = tmp_path_factory.mktemp("mirror") / "smarticks.db"
    with Sandbox(seed=7, conversations=120) as sandbox:
        sync_into(sandbox, path)
    return path


def run_export(path, fmt, out, **options):
    db = mirror.open_mirror(path)
    try:
        return exporting.export(db.conn, fmt, out, exporting.ExportOptions(**options))
    finally:
        db.conn.close()


def sheet_rows(path, table, include_deleted=False):
    """What the sheet query yields, straight from SQLite: the expected content of every format."""
    db = mirror.open_mirror(path)
    try:
        sheet = views.sheets(db.conn)[table]
        where = [] if include_deleted else [f"{sheet.filters['deleted']} IS NULL"]
        cursor = db.conn.execute(sheet.select(where, include_deleted))
        names = [d[0] for d in cursor.description]
        return names, cursor.fetchall()
    finally:
        db.conn.close()


def column_kinds(path, table):
    db = mirror.open_mirror(path)
    try:
        return {c.name: c.kind for c in views.sheets(db.conn)[table].columns}
    finally:
        db.conn.close()


def read_csv(path, encoding="utf-8"):
    with open(path, encoding=encoding, newline="") as handle:
        return list(csv.reader(handle))


def as_csv(value):
    return "" if value is None else str(value)


# -- csv ----------------------------------------------------------------------------------------


def test_csv_row_counts_match_the_mirror_and_plain_csv_is_byte_exact(mirror_path, tmp_path):
    summary = run_export(mirror_path, "csv", tmp_path)
    expected_counts = {
        "conversations": scalar(mirror_path, "SELECT count(*) FROM conversations"),
        "threads": scalar(mirror_path, "SELECT count(*) FROM threads"),
        "customers": scalar(mirror_path, "SELECT count(*) FROM customers"),
        "users": scalar(mirror_path, "SELECT count(*) FROM users"),
        "mailboxes": scalar(mirror_path, "SELECT count(*) FROM mailboxes"),
    }
    assert summary.rows == expected_counts
    assert sorted(p.name for p in summary.files) == sorted(f"{t}.csv" for t in expected_counts)
    for table, count in expected_counts.items():
        names, expected = sheet_rows(mirror_path, table)
        found = read_csv(tmp_path / f"{table}.csv")
        assert found[0] == names
        assert len(found) - 1 == count
        # every cell is the stored text, unchanged: formulas, quotes, newlines, unicode
        assert found[1:] == [[as_csv(v) for v in row] for row in expected]
    raw = (tmp_path / "conversations.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r\n" not in raw
    subjects = {r[2] for r in read_csv(tmp_path / "conversations.csv")[1:]}
    assert "=SUM(A1:A9)" in subjects and "+1 call me back" in subjects


def test_excel_csv_has_bom_and_crlf_and_neutralises_formula_lookalikes(mirror_path, tmp_path):
    run_export(mirror_path, "csv", tmp_path, excel=True)
    neutralised = 0
    for table in exporting.DEFAULT_TABLES:
        raw = (tmp_path / f"{table}.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") and raw.endswith(b"\r\n")
        names, expected = sheet_rows(mirror_path, table)
        found = read_csv(tmp_path / f"{table}.csv", encoding="utf-8-sig")
        assert found[0] == names
        for row, want in zip(found[1:], expected, strict=True):
            for cell, value in zip(row, want, strict=True):
                plain = exporting.PLAIN_NUMBER.fullmatch(as_csv(value))
                if isinstance(value, str) and value[:1] in TRIGGERS and not plain:
                    assert cell == "'" + value
                    neutralised += 1
                else:
                    assert cell == as_csv(value)
                assert not cell.startswith(TRIGGERS) or plain
    assert neutralised >= 5  # the seed has subjects, bodies and fields starting with = + - @


# -- xlsx ---------------------------------------------------------------------------------------


def test_xlsx_sheets_headers_dates_text_and_long_cells(mirror_path, tmp_path):
    out = tmp_path / "helpdesk.xlsx"
    summary = run_export(mirror_path, "xlsx", out)
    long_bodies = scalar(mirror_path, "SELECT count(*) FROM threads WHERE length(body) > 32767")
    assert long_bodies >= 1
    assert f"{long_bodies:,} cells over Excel's 32,767-character limit cut" in " ".join(
        summary.warnings
    )
    book = load_workbook(out)
    assert book.sheetnames == list(exporting.DEFAULT_TABLES)
    for table in exporting.DEFAULT_TABLES:
        sheet = book[table]
        names, expected = sheet_rows(mirror_path, table)
        assert [c.value for c in sheet[1]] == names
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref.startswith("A1:")
        assert sheet.max_row == len(expected) + 1
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (table, cell.coordinate, cell.value)
    conversations = book["conversations"]
    names, expected = sheet_rows(mirror_path, "conversations")
    for name in ("created_at", "updated_at"):
        cell = conversations.cell(row=2, column=names.index(name) + 1)
        assert cell.is_date and cell.value.isoformat() + "Z" == expected[0][names.index(name)]
    assert conversations.cell(row=2, column=1).data_type == "n"
    subjects = [c.value for c in conversations["C"][1:]]
    assert "=SUM(A1:A9)" in subjects  # stored as text, shown as typed
    bodies = [c.value or "" for c in book["threads"]["J"][1:]]
    cut = [b for b in bodies if "[… cut:" in b]
    assert len(cut) == long_bodies and all(len(b) <= 32767 for b in cut)
    assert book["conversations"].column_dimensions["A"].width > 0


def test_xlsx_table_over_the_row_limit_continues_on_another_sheet(
    mirror_path, tmp_path, monkeypatch
):
    monkeypatch.setattr(exporting, "EXCEL_MAX_ROWS", 201)  # 200 rows and a header per sheet
    out = tmp_path / "small.xlsx"
    summary = run_export(mirror_path, "xlsx", out, tables=("threads",))
    total = scalar(mirror_path, "SELECT count(*) FROM threads")
    book = load_workbook(out, read_only=True)
    sheets = book.sheetnames
    assert sheets[0] == "threads" and sheets[1] == "threads (2)"
    assert len(sheets) == -(-total // 200)
    assert sum(len(list(book[s].iter_rows())) - 1 for s in sheets) == total
    assert any("continued on sheet 'threads (2)'" in w for w in summary.warnings)


# -- parquet ------------------------------------------------------------------------------------


def test_parquet_columns_are_typed(mirror_path, tmp_path):
    run_export(mirror_path, "parquet", tmp_path)
    schema = pq.read_schema(tmp_path / "conversations.parquet")
    assert schema.field("id").type == pa.int64()
    assert schema.field("number").type == pa.int64()
    assert schema.field("thread_count").type == pa.int64()
    assert schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("subject").type == pa.string()
    assert pq.read_schema(tmp_path / "threads.parquet").field("conversation_id").type == pa.int64()
    frame = pq.read_table(tmp_path / "threads.parquet").to_pandas()
    names, expected = sheet_rows(mirror_path, "threads")
    assert len(frame) == len(expected)
    first = dict(zip(names, expected[0], strict=True))
    assert frame.loc[0, "created_at"].isoformat() == first["created_at"].replace("Z", "+00:00")
    assert frame.loc[0, "body"] == first["body"]
    assert max(len(b or "") for b in frame["body"]) > 40_000  # nothing cut outside Excel


# -- json / jsonl -------------------------------------------------------------------------------

CONVERSATION_KEYS = {
    "id", "number", "subject", "status", "state", "type", "mailbox", "customer", "assignee",
    "createdAt", "updatedAt", "closedAt", "cc", "bcc", "tags", "customFields", "threads",
    "deletedAt",
}  # fmt: skip
THREAD_KEYS = {
    "id", "type", "body", "createdAt", "author", "to", "cc", "bcc", "status", "attachments",
}  # fmt: skip


AUTHORS = "SELECT id, author_type, author_email FROM threads_sheet"
CUSTOMERS = (
    "SELECT c.id, c.customer_id, COALESCE(c.customer_email, cu.email), c.assignee_id, "
    "COALESCE(c.assignee_email, u.email) FROM conversations c "
    "LEFT JOIN customers cu ON cu.id = c.customer_id LEFT JOIN users u ON u.id = c.assignee_id"
)


def test_a_reply_from_another_customer_names_its_writer_as_the_author(mirror_path, tmp_path):
    """A thread's `customer` is the conversation's customer; `createdBy` is who wrote it."""
    written_by_other = {}
    for thread_id, raw in rows(mirror_path, "SELECT id, raw_json FROM threads"):
        thread = json.loads(raw)
        writer = thread.get("createdBy") or {}
        if writer.get("type") == "customer" and writer["id"] != thread["customer"]["id"]:
            written_by_other[thread_id] = writer
    assert written_by_other  # the seeded sandbox has replies from people cc'd
    sheet = {
        r[0]: r[1:]
        for r in rows(
            mirror_path, "SELECT id, author_type, author_name, author_email FROM threads_sheet"
        )
    }
    run_export(mirror_path, "json", tmp_path)
    records = json.loads((tmp_path / "conversations.json").read_text(encoding="utf-8"))
    exported = {t["id"]: t["author"] for r in records for t in r["threads"]}
    for thread_id, writer in written_by_other.items():
        name = f"{writer.get('firstName') or ''} {writer.get('lastName') or ''}".strip() or None
        assert sheet[thread_id] == ("customer", name, writer.get("email"))
        author = exported[thread_id]
        assert (author["id"], author["email"]) == (writer["id"], writer.get("email"))


INTERRUPTED_EXPORT = """
import sys
from etl import export as exporting, mirror

def interrupted(chunks, bar):  # Ctrl-C after the first chunk of rows
    for chunk in chunks:
        yield chunk
        raise KeyboardInterrupt

exporting._counted = interrupted
conn = mirror.open_mirror(sys.argv[1]).conn
try:
    exporting.export(conn, "xlsx", sys.argv[2])
except KeyboardInterrupt:
    print("interrupted")
"""


def test_ctrl_c_in_an_xlsx_export_leaves_no_file_and_prints_no_traceback(mirror_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_EXPORT, str(mirror_path), str(out / "x.xlsx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "interrupted"
    assert done.stderr == ""  # openpyxl's sheet writers used to print tracebacks at exit
    assert list(out.iterdir()) == []


def test_json_conversations_are_self_contained_records_with_nested_threads(mirror_path, tmp_path):
    run_export(mirror_path, "json", tmp_path)
    records = json.loads((tmp_path / "conversations.json").read_text(encoding="utf-8"))
    assert len(records) == scalar(mirror_path, "SELECT count(*) FROM conversations")
    bodies = dict(rows(mirror_path, "SELECT id, body FROM threads"))
    authors = {r[0]: r[1:] for r in rows(mirror_path, AUTHORS)}
    customers = {r[0]: r[1:] for r in rows(mirror_path, CUSTOMERS)}
    threads_seen = 0
    for record in records:
        assert set(record) == CONVERSATION_KEYS
        customer = record["customer"]
        assert (customer["id"], customer["email"]) == customers[record["id"]][:2]
        assignee = record["assignee"]
        if customers[record["id"]][2] is None:
            assert assignee is None
        else:
            assert (assignee["id"], assignee["email"]) == customers[record["id"]][2:]
        times = [t["createdAt"] for t in record["threads"]]
        assert times == sorted(times)  # oldest first
        for thread in record["threads"]:
            assert set(thread) == THREAD_KEYS
            assert thread["body"] == bodies[thread["id"]]  # the original HTML
            author = thread["author"]
            assert (author["type"], author["email"]) == authors[thread["id"]]
            threads_seen += 1
    assert threads_seen == len(bodies)
    one = next(r for r in records if r["id"] == 1)
    assert one["customFields"]["Priority"] == "Hïgh ⚠"  # a dropdown shown as its label
    assert one["tags"] == ["billing", "feature-request", "vip"]
    assert one["mailbox"] == {"id": 3, "name": "日本サポート", "email": "jp@support.example.org"}
    assert any(a["fileName"] for r in records for t in r["threads"] for a in t["attachments"])
    assert sum(r["customer"]["email"] is not None for r in records) > 100
    assert {t["author"]["type"] for r in records for t in r["threads"]} == {"user", "customer"}
    customers = json.loads((tmp_path / "customers.json").read_text(encoding="utf-8"))
    names, expected = sheet_rows(mirror_path, "customers")
    # The sheet's columns, with every email, phone, profile and website as lists and the
    # customer fields by name (what a load into another instance needs).
    lists = ("emails", "phones", "socialProfiles", "websites", "customerFields")
    sheet = [dict(zip(names, row, strict=True)) for row in expected]
    assert [{k: v for k, v in c.items() if k not in lists} for c in customers] == [
        {k: v for k, v in row.items() if k != "emails"} for row in sheet
    ]
    for record, row in zip(customers, sheet, strict=True):
        assert ", ".join(e["value"] for e in record["emails"]) == (row["emails"] or "")
        first_phone = [p["value"] for p in record["phones"]][:1]
        assert first_phone == ([row["phone"]] if row["phone"] else [])
    assert any(len(c["phones"]) > 1 for c in customers)
    assert any(c["socialProfiles"] for c in customers) and any(c["websites"] for c in customers)
    assert any(c["customerFields"].get("Gender") in ("Male", "Female", "Other") for c in customers)


def test_jsonl_holds_the_same_records_one_per_line(mirror_path, tmp_path):
    run_export(mirror_path, "json", tmp_path / "json")
    run_export(mirror_path, "jsonl", tmp_path / "jsonl")
    for table in exporting.DEFAULT_TABLES:
        array = json.loads((tmp_path / "json" / f"{table}.json").read_text(encoding="utf-8"))
        lines = (tmp_path / "jsonl" / f"{table}.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == array


# -- filters, deleted rows ----------------------------------------------------------------------


def test_since_mailbox_and_status_filters_select_the_matching_rows(mirror_path, tmp_path):
    summary = run_export(
        mirror_path,
        "jsonl",
        tmp_path,
        since="2023-06-01T00:00:00Z",
        mailboxes=(2,),
        statuses=("closed", "pending"),
        tables=("conversations", "threads"),
    )
    expected = rows(
        mirror_path,
        "SELECT id FROM conversations WHERE updated_at >= '2023-06-01T00:00:00Z' "
        "AND mailbox_id = 2 AND status IN ('closed', 'pending') ORDER BY id",
    )
    assert 0 < len(expected) < scalar(mirror_path, "SELECT count(*) FROM conversations")
    lines = (tmp_path / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [r[0] for r in expected]
    threads = [json.loads(x) for x in (tmp_path / "threads.jsonl").read_text().splitlines()]
    assert {t["conversation_id"] for t in threads} == {r[0] for r in expected}
    assert summary.rows["threads"] == len(threads)
    assert not (tmp_path / "customers.jsonl").exists()


def test_deleted_conversations_are_left_out_unless_asked_for(tmp_path):
    path = tmp_path / "m.db"
    with Sandbox(seed=3, conversations=20) as sandbox:
        sync_into(sandbox, path)
        sandbox.store.delete_conversation(5)
        sync_into(sandbox, path, full=True)
    assert scalar(path, "SELECT deleted_at IS NOT NULL FROM conversations WHERE id = 5") == 1
    run_export(path, "csv", tmp_path / "default", tables=("conversations", "threads"))
    found = read_csv(tmp_path / "default" / "conversations.csv")
    assert "deleted_at" not in found[0] and len(found) - 1 == 19
    assert "5" not in {r[0] for r in found[1:]}
    assert "5" not in {r[1] for r in read_csv(tmp_path / "default" / "threads.csv")[1:]}
    run_export(path, "csv", tmp_path / "all", tables=("conversations",), include_deleted=True)
    found = read_csv(tmp_path / "all" / "conversations.csv")
    header = found[0]
    assert header[-1] == "deleted_at" and len(found) - 1 == 20
    deleted = [r for r in found[1:] if r[header.index("deleted_at")]]
    assert [r[0] for r in deleted] == ["5"]


# -- memory, CLI ----------------------------------------------------------------------------------


def synthetic_mirror(path, conversations: int, threads_each: int = 8, body_chars: int = 8000):
    """A mirror of uniform rows, written with SQL: big enough that holding it would show."""
    db = mirror.open_mirror(path)
    with db.conn:
        db.conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO conversations (id, number, subject, status, updated_at) "
            "SELECT i, i, 'subject ' || i, 'active', '2024-01-01T00:00:00Z' FROM n",
            (conversations,),
        )
        db.conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO threads (id, conversation_id, position, type, body, created_at) "
            "SELECT i, (i - 1) / ? + 1, i, 'customer', printf('%.*c', ?, 'x') || i, "
            "'2024-01-01T00:00:00Z' FROM n",
            (conversations * threads_each, threads_each, body_chars),
        )
    db.conn.close()
    return path


def peak_memory(path, fmt, out) -> int:
    db = mirror.open_mirror(path)
    tracemalloc.start()
    try:
        options = exporting.ExportOptions(tables=("conversations", "threads"), chunk_size=10)
        exporting.export(db.conn, fmt, out, options)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        db.conn.close()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "xlsx"])
def test_memory_stays_flat_as_the_mirror_grows(tmp_path, fmt):
    small = synthetic_mirror(tmp_path / "small.db", 30)
    large = synthetic_mirror(tmp_path / "large.db", 240)  # 8 times the rows, ~15 MB of bodies
    out = {name: tmp_path / name / ("x.xlsx" if fmt == "xlsx" else "") for name in "wsl"}
    peak_memory(small, fmt, out["w"])  # warm up: imports and caches are not the export's
    small_peak = peak_memory(small, fmt, out["s"])
    large_peak = peak_memory(large, fmt, out["l"])
    # tracemalloc counts every thread: 64 KB for what other threads (a progress bar's monitor,
    # left from earlier tests) allocate while a slower export runs on a busy machine.
    assert large_peak < 1.5 * small_peak + 64_000, (small_peak, large_peak)
    assert large_peak < 8_000_000  # far below the 15 MB of bodies


def test_cli_exports_and_summarises(mirror_path, tmp_path, capsys):
    out = tmp_path / "x"
    code, stdout, stderr = run_cli(
        capsys, "export", "--db", str(mirror_path), "--format", "csv", "--out", str(out)
    )
    assert code == 0
    assert "conversations" in stdout and "120 rows" in stdout
    assert f"wrote {out / 'threads.csv'}" in stdout
    code, stdout, stderr = run_cli(
        capsys, "export", "--db", str(mirror_path), "--format", "xlsx", "--out", str(out), "-q"
    )
    assert code == 0 and stdout == ""
    assert "warning: 2 cells over Excel's 32,767-character limit cut" in stderr
    assert "in sheet 'threads', column body" in stderr  # where to look, even with -q
    assert (out / "smarticks.xlsx").is_file()  # --out an existing directory


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tables", "tickets"], "unknown table 'tickets'"),
        (["--since", "last tuesday"], "'last tuesday' is not a date"),
        (["--status", "open"], "'open' is not one of active, pending, closed, spam"),
        (["--excel", "--format", "json"], "--excel applies to --format csv only"),
        (["--timezone", "Mars/Base"], "'Mars/Base' is not a time zone: use an IANA name"),
    ],
)
def test_cli_bad_input_is_one_line_and_a_usage_exit(mirror_path, tmp_path, capsys, args, message):
    base = ["export", "--db", str(mirror_path), "--out", str(tmp_path / "o")]
    if "--format" not in args:
        base += ["--format", "csv"]
    code, _, stderr = run_cli(capsys, *base, *args)
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr


def test_cli_unwritable_out_and_missing_mirror_are_one_line(mirror_path, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = run_cli(
        capsys, "export", "--db", str(mirror_path), "--format", "csv", "--out", str(blocker)
    )
    assert code == 2
    assert stderr.strip() == f"Error: --out {blocker} is a file: csv export writes a directory"
    code, _, stderr = run_cli(
        capsys, "export", "--db", str(blocker / "sub"), "--format", "csv", "--out", str(tmp_path)
    )
    assert code == 1 and "no mirror at" in stderr and len(stderr.strip().splitlines()) == 1
