"""The SQLite mirror: opening it, writing rows, cursors and run records.

Everything a sync knows lives in the one database file: data, cursors and runs are written in
the same transaction, so a cursor can never point past rows that were not committed. The
tables are described in `etl.schema`; the single-writer lock is `etl.lock`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from etl import search, timeutil
from etl.errors import ConfigError, MirrorError
from etl.lock import check_mirror_path
from etl.redact import redact_text
from etl.schema import SCHEMA, TABLES, Table, ensure_schema

CACHE_KIB = 32 * 1024
# A thread row (HTML body, its text and the raw JSON) is often larger than a 4 KiB page and
# spilled into overflow pages; 8 KiB pages spill less, so writes cost less CPU and the file is
# smaller (docs/storage.md). SQLite sets the page size when a database is created: an existing
# mirror keeps its own.
PAGE_BYTES = 8192
BUSY_SECONDS = 30  # how long a connection waits for another's lock before giving up


class Mirror:
    """An open mirror database: the connection everything uses, and `execute` for short."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters)

    def __getitem__(self, table: str) -> Any:
        """sqlite-utils' view of one table (rows, count, ...); imports sqlite-utils."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)[table]


def create_private(path: str | os.PathLike) -> None:
    """Create `path` empty, readable by its owner alone, unless it exists.

    A mirror holds every customer's name, emails and conversations: other users of the
    machine must not read it. SQLite gives the -wal and -shm files the database's mode.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        pass  # it exists, or connecting will name the problem


def open_mirror(path: str | os.PathLike) -> Mirror:
    """Open (creating if needed) a mirror database with its schema.

    A folder, a file that is not a database, or a mirror that cannot be written is a one-line
    error naming the file.
    """
    if str(path) != ":memory:":
        check_mirror_path(path)
        create_private(path)
    conn = None
    try:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_SECONDS)
        return _prepared(conn, path)
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        message = str(exc)
        if message in _USER_ERRORS:  # the setting points at the wrong file or place
            raise ConfigError(f"cannot open the mirror {path}: {_USER_ERRORS[message]}") from None
        raise MirrorError(f"the mirror {path}: {message}") from None


_USER_ERRORS = {
    "file is not a database": "it is not a SQLite database (is it the right file?)",
    "unable to open database file": "SQLite cannot open it (can its folder be written?)",
    "attempt to write a readonly database": "it is read-only here",
}


def _prepared(conn: sqlite3.Connection, path: str | os.PathLike) -> Mirror:
    conn.execute(f"PRAGMA page_size={PAGE_BYTES}")  # before WAL, which fixes it
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")  # readers (exports, datasette) beside a sync
    conn.execute("PRAGMA synchronous=NORMAL")
    # A sync writes about a second's worth of pages per transaction (see `Checkpoints`); a
    # cache that holds them keeps SQLite from spilling them to the WAL before the commit.
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    database = Mirror(conn)
    ensure_schema(conn)
    return database


# -- writes -----------------------------------------------------------------------------------


def _upsert_sql(table: Table, columns: list[str]) -> str:
    pk = (table.pk,) if isinstance(table.pk, str) else table.pk
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    others = [c for c in columns if c not in pk]
    conflict = ", ".join(f'"{c}"' for c in pk)
    insert = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}) ON CONFLICT({conflict})'
    if not others:
        return f"{insert} DO NOTHING"
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in others)
    # A row that is already as given is left alone: an incremental sync re-sends every thread
    # of a changed conversation, and rewriting the unchanged ones dirtied a page each.
    changed = " OR ".join(f'"{c}" IS NOT excluded."{c}"' for c in others)
    return f"{insert} DO UPDATE SET {updates} WHERE {changed}"


Rows = list[dict[str, Any]]


def _columns(table: Table, rows: Rows) -> list[str]:
    """The schema's columns that these rows carry, in schema order (others are not stored)."""
    keys = set().union(*rows)
    return [column for column in table.columns if column in keys]


def upsert(conn: sqlite3.Connection, table_name: str, rows: Rows) -> int:
    """Insert or update rows by primary key; a key a row lacks is stored as NULL."""
    if not rows:
        return 0
    table = SCHEMA[table_name]
    columns = _columns(table, rows)
    if not columns:
        return 0
    try:  # rows made by one function share their keys: pick them out in C
        if len(columns) > 1:
            values = list(map(itemgetter(*columns), rows))
        else:
            values = [(row[columns[0]],) for row in rows]
    except KeyError:  # some row lacks a key another has
        values = [tuple(row.get(column) for column in columns) for row in rows]
    conn.executemany(_upsert_sql(table, columns), values)
    return len(values)


def replace_children(
    conn: sqlite3.Connection, table_name: str, parent_ids: Iterable[int], rows: Rows
) -> None:
    """Make a child table hold exactly `rows` for these parents (tags removed at the source go).

    Children with their own `id` (threads, attachments) are upserted and only the ones gone
    from the source are deleted, so an unchanged thread is not rewritten. `parent_ids` need
    only name the parents that were mirrored before: a new parent has no children to remove.
    """
    table = SCHEMA[table_name]
    ids = list(parent_ids)
    keep = [row["id"] for row in rows] if table.pk == "id" else []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        sql = f'DELETE FROM "{table_name}" WHERE "{table.parent_key}" IN ({marks})'
        if keep:
            sql += " AND id NOT IN (SELECT value FROM json_each(?))"
            conn.execute(sql, [*chunk, json.dumps(keep)])
        else:
            conn.execute(sql, chunk)
    upsert(conn, table_name, rows)


def save_records(
    conn: sqlite3.Connection,
    parent_table: str,
    rows: dict[str, Rows],
    child_tables: Iterable[str],
) -> int:
    """Write one batch of parent rows and replace their children. The caller owns the commit.

    `rows` maps tables to row dicts, as `etl.records` makes them. A row older (by
    `updated_at`) than the one already mirrored is skipped with its children: pages read in
    parallel can arrive out of order, and a record must never go back in time. Returns how
    many parent rows were written.
    """
    parents, mirrored = newer_only(conn, parent_table, rows.get(parent_table, []))
    upsert(conn, parent_table, parents)
    ids = {row["id"] for row in parents}
    # Each record's search document is stored with its rows; those already indexed as they
    # are now need no journaling.
    current = search.save_documents(conn, parent_table, rows, ids, mirrored)
    conn.executemany(
        "INSERT OR IGNORE INTO etl_changes (table_name, id) VALUES (?, ?)",
        [(parent_table, i) for i in ids - current],
    )
    for child in child_tables:
        parent_key = SCHEMA[child].parent_key
        children = [row for row in rows.get(child, []) if row[parent_key] in ids]
        replace_children(conn, child, ids.intersection(mirrored), children)
    return len(ids)


def newer_only(conn: sqlite3.Connection, table_name: str, rows: Rows) -> tuple[Rows, set[int]]:
    """Drop rows whose `updated_at` is older than the mirrored copy's.

    Also returns the ids of these rows the mirror already held.
    """
    if not rows:
        return rows, set()
    ids = [row["id"] for row in rows]
    marks = ", ".join("?" for _ in ids)
    query = f'SELECT id, updated_at FROM "{table_name}" WHERE id IN ({marks})'
    mirrored = dict(conn.execute(query, ids).fetchall())
    newer = [
        row
        for row in rows
        if (row.get("updated_at") or "") >= (mirrored.get(row["id"]) or "")
        or "updated_at" not in row
    ]
    return newer, set(mirrored)


def mark_deleted(
    conn: sqlite3.Connection, table_name: str, present_ids: set[int], when: str, where: str = ""
) -> list[int]:
    """Set `deleted_at` on rows not seen at the source; rows are kept, never dropped."""
    query = f'SELECT id FROM "{table_name}" WHERE deleted_at IS NULL {where}'
    gone = [row[0] for row in conn.execute(query) if row[0] not in present_ids]
    conn.executemany(
        f'UPDATE "{table_name}" SET deleted_at = ? WHERE id = ?', [(when, i) for i in gone]
    )
    return gone


class Checkpoints:
    """Page writes grouped into transactions committed every `INTERVAL` seconds.

    Committing each page costs more than writing it; grouping keeps the guarantee that matters,
    since each page's rows and the cursor they justify still commit together. A write that
    fails rolls back the uncommitted group, cursor included, so the next run reads it again.
    `after_commit` runs after each commit (the sync indexes for search there).
    """

    INTERVAL = 1.0  # seconds

    def __init__(
        self, conn: sqlite3.Connection, after_commit: Callable[[], object] | None = None
    ) -> None:
        self.conn = conn
        self.after_commit = after_commit
        self.last = time.monotonic()

    @contextmanager
    def write(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        if time.monotonic() - self.last >= self.INTERVAL:
            self.commit()

    def commit(self) -> None:
        self.conn.commit()
        self.last = time.monotonic()
        if self.after_commit is not None:
            self.after_commit()


# -- cursors and runs ------------------------------------------------------------------------


def get_cursor(conn: sqlite3.Connection, resource: str) -> str | None:
    row = conn.execute("SELECT value FROM etl_cursors WHERE resource = ?", (resource,)).fetchone()
    return row[0] if row else None


def set_cursor(conn: sqlite3.Connection, resource: str, value: str | None) -> None:
    """Store a cursor, never moving it backwards (timestamps compare as text)."""
    if value is None:
        return
    current = get_cursor(conn, resource)
    if current is not None and current >= value:
        return
    conn.execute(
        "INSERT INTO etl_cursors (resource, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(resource) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        (resource, value, timeutil.now()),
    )


ABANDONED = "the process ended without recording how the run ended (killed, or the machine stopped)"


def start_run(conn: sqlite3.Connection, command: str, full: bool) -> int:
    """Record a new run. Runs still marked running are marked abandoned first.

    Only the holder of the writer lock starts runs, so a run still running belongs to a
    process that died (kill -9, power loss) before it could record its end.
    """
    with conn:
        conn.execute(
            "UPDATE etl_runs SET status = 'abandoned', errors = ? WHERE status = 'running'",
            (json.dumps([ABANDONED]),),
        )
        cursor = conn.execute(
            "INSERT INTO etl_runs (command, started_at, status, full, counts, requests, errors) "
            "VALUES (?, ?, 'running', ?, '{}', 0, '[]')",
            (command, timeutil.now(), int(full)),
        )
    return cursor.lastrowid


def finish_run(
    conn: sqlite3.Connection,
    run_id: int,
    status: str,
    counts: dict[str, int],
    requests: int,
    errors: list[str],
) -> None:
    shown = [redact_text(error) for error in errors]  # `etl status` prints them
    with conn:
        conn.execute(
            "UPDATE etl_runs SET ended_at = ?, status = ?, counts = ?, requests = ?, errors = ? "
            "WHERE id = ?",
            (timeutil.now(), status, json.dumps(counts), requests, json.dumps(shown), run_id),
        )


def reopen_run(conn: sqlite3.Connection, run_id: int) -> None:
    """Mark a recorded run as running again: work for it follows its sync (files, timelogs),
    and a process killed during that work leaves it to be marked abandoned."""
    with conn:
        conn.execute(
            "UPDATE etl_runs SET status = 'running', ended_at = NULL WHERE id = ?", (run_id,)
        )


def extend_run(
    conn: sqlite3.Connection,
    run_id: int,
    status: str,
    counts: dict[str, int],
    requests: int,
    errors: list[str],
) -> None:
    """Record the end of work that followed a run's sync: its counts are added to the run's,
    as are its requests and errors, and its status becomes the run's."""
    had_counts, had_requests, had_errors = conn.execute(
        "SELECT counts, requests, errors FROM etl_runs WHERE id = ?", (run_id,)
    ).fetchone()
    merged = json.loads(had_counts or "{}")
    for name, count in counts.items():
        merged[name] = merged.get(name, 0) + count
    all_errors = json.loads(had_errors or "[]") + errors
    finish_run(conn, run_id, status, merged, (had_requests or 0) + requests, all_errors)


def recent_runs(conn: sqlite3.Connection, limit: int = 10) -> list[dict[str, Any]]:
    cursor = conn.execute("SELECT * FROM etl_runs ORDER BY id DESC LIMIT ?", (limit,))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def row_counts(database: Mirror) -> dict[str, int]:
    names = [t.name for t in TABLES if not t.name.startswith("etl_")]
    return {n: database.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
