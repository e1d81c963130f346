"""Unit tests: API records become the mirror's rows (snake_case columns, raw JSON kept)."""

import json
import sqlite3
import subprocess
import sys

from etl import mirror, records, schema

CONVERSATION = {
    "id": 1,
    "number": 3,
    "threads": 2,
    "type": "email",
    "folderId": 11,
    "status": "closed",
    "state": "published",
    "subject": "Refund",
    "mailboxId": 15,
    "assignee": {"id": 9, "type": "user", "email": "johndoe@example.org"},
    "createdBy": {"id": 11, "type": "customer", "email": "customer@example.org"},
    "createdAt": "2020-03-15T22:46:22Z",
    "updatedAt": "2020-03-15T22:46:22Z",
    "closedBy": 14,
    "closedAt": "2020-03-16T14:07:23Z",
    "customerWaitingSince": {"time": "2020-07-24T20:18:33Z", "latestReplyFrom": "customer"},
    "cc": ["fox@example.org"],
    "customer": {"id": 91, "email": "rodney@example.org"},
    "customFields": [{"id": 23, "name": "Currency", "value": "1", "text": "USD"}],
    "_embedded": {
        "threads": [
            {
                "id": 18,
                "type": "message",
                "body": "newer",
                "createdAt": "2020-03-16T10:00:00Z",
                "createdBy": {"id": 9, "type": "user", "email": "johndoe@example.org"},
            },
            {
                "id": 17,
                "type": "customer",
                "body": "older",
                "createdAt": "2020-03-15T22:46:22Z",
                "customer": {"id": 91, "email": "rodney@example.org"},
                "_embedded": {"attachments": [{"id": 71, "fileName": "a.pdf", "size": 2331}]},
            },
        ],
        "tags": [{"id": 57, "name": "overdue"}],
    },
}


def test_conversation_rows_flatten_and_keep_the_original():
    rows = records.conversation_rows(CONVERSATION)
    conv = rows["conversations"][0]
    assert conv["assignee_id"] == 9 and conv["customer_email"] == "rodney@example.org"
    assert conv["threads_count"] == 2 and conv["customer_waiting_since"] == "2020-07-24T20:18:33Z"
    assert json.loads(conv["cc"]) == ["fox@example.org"]
    assert json.loads(conv["raw_json"])["subject"] == "Refund"
    assert "threads" not in json.loads(conv["raw_json"])["_embedded"]
    # newest-first threads get positions counted from the oldest
    assert [(t["id"], t["position"]) for t in rows["threads"]] == [(17, 0), (18, 1)]
    assert rows["attachments"][0]["thread_id"] == 17
    assert rows["conversation_tags"] == [{"conversation_id": 1, "tag_id": 57, "name": "overdue"}]
    assert rows["conversation_custom_fields"][0]["text"] == "USD"


def test_dash_timestamps_are_normalised():
    row = records.flat_row({"id": 1, "createdAt": "2018-08-09T10-08-53Z", "firstName": "J"})
    assert row["created_at"] == "2018-08-09T10:08:53Z" and row["first_name"] == "J"


def test_timestamps_that_do_not_parse_are_kept_as_sent_and_counted():
    odd = dict(CONVERSATION, closedAt="=HYPERLINK(1)", createdAt="2020-03-15T22:46:22Z2020")
    rows = records.conversation_rows(odd)
    assert rows["conversations"][0]["closed_at"] == "=HYPERLINK(1)"
    assert records.timestamps_kept_as_text(rows) == 2
    assert records.timestamps_kept_as_text(records.conversation_rows(CONVERSATION)) == 0
    users = {"users": [records.flat_row({"id": 1, "createdAt": "٢٠٢٠-03-15T22:46:22Z"})]}
    assert records.timestamps_kept_as_text(users) == 1  # only ASCII digits make a timestamp


def test_saving_twice_changes_nothing_and_replaces_children():
    db = mirror.open_mirror(":memory:")
    rows = records.conversation_rows(CONVERSATION)
    children = ["threads", "attachments", "conversation_tags", "conversation_custom_fields"]
    with db.conn:
        mirror.save_records(db.conn, "conversations", rows, children)
    first = {t: list(db[t].rows) for t in ["conversations", *children]}
    with db.conn:
        mirror.save_records(db.conn, "conversations", rows, children)
    assert {t: list(db[t].rows) for t in ["conversations", *children]} == first
    untagged = dict(CONVERSATION, _embedded=dict(CONVERSATION["_embedded"], tags=[]))
    with db.conn:
        mirror.save_records(db.conn, "conversations", records.conversation_rows(untagged), children)
    assert db["conversation_tags"].count == 0


def _conversation(cid: int, updated: str) -> dict:
    """CONVERSATION with its own id, thread ids and update time."""
    threads = [dict(t, id=cid * 100 + t["id"]) for t in CONVERSATION["_embedded"]["threads"]]
    embedded = dict(CONVERSATION["_embedded"], threads=threads)
    return dict(CONVERSATION, id=cid, updatedAt=updated, _embedded=embedded)


def test_records_are_stored_in_the_order_they_arrive_and_upserted_by_id():
    db = mirror.open_mirror(":memory:")
    children = ["threads", "attachments", "conversation_tags", "conversation_custom_fields"]

    def save(cid: int, updated: str) -> None:
        rows = records.conversation_rows(_conversation(cid, updated))
        with db.conn:
            mirror.save_records(db.conn, "conversations", rows, children)

    for cid in (5, 1, 3):  # updatedAt order, as a keyset walk reads them
        save(cid, "2024-01-01T00:00:00Z")
    by_rowid = "SELECT id FROM {} ORDER BY rowid"
    assert [r[0] for r in db.execute(by_rowid.format("conversations"))] == [5, 1, 3]
    assert [r[0] for r in db.execute(by_rowid.format("threads"))][::2] == [517, 117, 317]
    save(1, "2024-02-01T00:00:00Z")
    assert db.execute("SELECT count(*) FROM conversations").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM threads").fetchone()[0] == 6
    updated = "SELECT updated_at FROM conversations WHERE id = 1"
    assert db.execute(updated).fetchone()[0] == "2024-02-01T00:00:00Z"


def test_a_mirror_keyed_by_id_by_an_older_version_still_upserts(tmp_path):
    path = tmp_path / "old.db"
    old = mirror.open_mirror(path)
    old.conn.close()
    conn = sqlite3.connect(path)  # rebuild conversations as older versions made it
    conn.execute("DROP TABLE conversations")
    conn.execute("CREATE TABLE conversations (id INTEGER PRIMARY KEY, updated_at TEXT)")
    conn.close()
    db = mirror.open_mirror(path)
    assert db["conversations"].pks == ["id"]
    assert [i.name for i in db["conversations"].indexes if i.columns == ["id"]] == []
    for cid in (5, 1, 5):
        with db.conn:
            mirror.upsert(db.conn, "conversations", [{"id": cid, "updated_at": "2024"}])
    assert [r[0] for r in db.execute("SELECT id FROM conversations")] == [1, 5]


def test_a_new_mirror_has_8_kib_pages_and_an_older_one_keeps_its_own(tmp_path):
    db = mirror.open_mirror(tmp_path / "new.db")
    assert db.execute("PRAGMA page_size").fetchone()[0] == mirror.PAGE_BYTES == 8192
    db.conn.close()
    conn = sqlite3.connect(tmp_path / "old.db")  # as versions before 8 KiB pages made it
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    old = mirror.open_mirror(tmp_path / "old.db")
    assert old.execute("PRAGMA page_size").fetchone()[0] == 4096
    with old.conn:
        mirror.upsert(old.conn, "tags", [{"id": 1, "name": "vip"}])
    assert old.execute("SELECT name FROM tags").fetchall() == [("vip",)]


def test_an_upsert_leaves_rows_that_are_already_as_given_alone():
    db = mirror.open_mirror(":memory:")
    rows = records.conversation_rows(CONVERSATION)["threads"]
    with db.conn:
        mirror.upsert(db.conn, "threads", rows)
    before = db.conn.total_changes
    with db.conn:
        mirror.upsert(db.conn, "threads", rows)  # the same again: nothing written
    assert db.conn.total_changes == before
    edited = [dict(rows[0], body="<p>Edited</p>"), *rows[1:]]
    with db.conn:
        mirror.upsert(db.conn, "threads", edited)  # one changed: one written
    assert db.conn.total_changes == before + 1
    body = db.execute("SELECT body FROM threads WHERE id = ?", (rows[0]["id"],)).fetchone()[0]
    assert body == "<p>Edited</p>"


def test_cursor_never_moves_backwards():
    db = mirror.open_mirror(":memory:")
    mirror.set_cursor(db.conn, "conversations", "2024-01-02T00:00:00Z")
    mirror.set_cursor(db.conn, "conversations", "2024-01-01T00:00:00Z")
    assert mirror.get_cursor(db.conn, "conversations") == "2024-01-02T00:00:00Z"


def test_an_upsert_stores_the_columns_its_rows_carry_and_null_for_keys_a_row_lacks():
    db = mirror.open_mirror(":memory:")
    rows = [{"id": 1, "email": "a@x", "not_a_column": 1}, {"id": 2, "phone": "7"}]
    with db.conn:
        mirror.upsert(db.conn, "users", rows)
    stored = db.execute("SELECT id, email, phone FROM users ORDER BY id").fetchall()
    assert stored == [(1, "a@x", None), (2, None, "7")]


def test_a_file_mirror_journals_through_the_wal_so_readers_read_beside_a_sync(tmp_path):
    path = tmp_path / "m.db"
    conn = mirror.open_mirror(path).conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    mirror.upsert(conn, "tags", [{"id": 1, "name": "first"}])
    conn.commit()
    mirror.upsert(conn, "tags", [{"id": 2, "name": "not yet committed"}])
    reader = sqlite3.connect(path, timeout=0)
    assert reader.execute("SELECT count(*) FROM tags").fetchone() == (1,)
    reader.close()
    conn.commit()
    conn.close()


def test_a_current_mirror_opens_without_sqlite_utils_and_an_old_one_is_brought_up_to_date(
    tmp_path,
):
    path = tmp_path / "m.db"
    mirror.open_mirror(path).conn.close()
    opening = (
        "import sys; from etl import mirror; mirror.open_mirror(sys.argv[1]).conn.close(); "
        "print('sqlite_utils' in sys.modules)"
    )

    def opened_with_sqlite_utils() -> bool:
        run = subprocess.run([sys.executable, "-c", opening, str(path)], capture_output=True)
        assert run.returncode == 0, run.stderr
        return run.stdout.decode().strip() == "True"

    assert not opened_with_sqlite_utils()  # nothing to create: its import is not needed
    conn = sqlite3.connect(path)  # as a version before this column and index made it
    conn.execute("DROP INDEX idx_threads_customer_id")
    for (view,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall():
        conn.execute(f"DROP VIEW {view}")
    conn.execute("ALTER TABLE threads DROP COLUMN body_text")
    assert not schema.schema_is_current(conn)
    conn.close()
    assert opened_with_sqlite_utils()
    conn = sqlite3.connect(path)
    assert schema.schema_is_current(conn)
    assert "body_text" in [row[1] for row in conn.execute("PRAGMA table_info(threads)")]
    conn.close()
