"""The SQLite mirror: schema, batched upserts, cursors, run records and the single-writer lock.

Everything a sync knows lives in the one database file: data, cursors and runs are written in
the same transaction, so a cursor can never point past rows that were not committed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from etl import search, timeutil, views
from etl.errors import ConfigError, LockedError, MirrorError

T, INT = str, int


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, type]
    pk: str | tuple[str, ...] = "id"
    foreign_keys: tuple[tuple[str, str], ...] = ()  # (column, other table); other column is id
    indexes: tuple[tuple[str, ...], ...] = ()
    parent_key: str | None = None  # column naming the parent record, for child tables
    # Records of the keyset-walked lists arrive in `updatedAt` order, nowhere near id order.
    # Keyed by rowid, each went to a random leaf of a table far larger than the cache, and a
    # first sync wrote every page to the WAL about seven times. These tables store rows in
    # arrival order, with `id` a unique column, so inserts append.
    arrival_order: bool = False


def _cols(*names: str, **typed: type) -> dict[str, type]:
    return {**dict.fromkeys(names, T), **typed}


TABLES = (
    Table(
        "mailboxes",
        {"id": INT, **_cols("name", "email", "created_at", "updated_at", "deleted_at", "raw_json")},
    ),
    Table(
        "folders",
        {
            "id": INT,
            "mailbox_id": INT,
            "name": T,
            "type": INT,
            "user_id": INT,
            "total_count": INT,
            "active_count": INT,
            **_cols("meta", "deleted_at", "raw_json"),
        },
        foreign_keys=(("mailbox_id", "mailboxes"),),
        indexes=(("mailbox_id",),),
    ),
    Table(
        "custom_fields",
        {
            "id": INT,
            "mailbox_id": INT,
            "name": T,
            "type": T,
            "options": T,
            "required": INT,
            "sort_order": INT,
            **_cols("deleted_at", "raw_json"),
        },
        foreign_keys=(("mailbox_id", "mailboxes"),),
        indexes=(("mailbox_id",),),
    ),
    Table(
        "users",
        {
            "id": INT,
            **_cols(
                "first_name",
                "last_name",
                "email",
                "role",
                "alternate_emails",
                "job_title",
                "phone",
                "timezone",
                "photo_url",
                "language",
                "created_at",
                "updated_at",
                "deleted_at",
                "raw_json",
            ),
        },
        indexes=(("email",),),
    ),
    Table(
        "tags",
        {"id": INT, "name": T, "counter": INT, "color": INT, **_cols("deleted_at", "raw_json")},
        indexes=(("name",),),
    ),
    Table(
        "customers",
        {
            "id": INT,
            **_cols(
                "first_name",
                "last_name",
                "email",
                "phone",
                "company",
                "job_title",
                "photo_type",
                "photo_url",
                "notes",
                "address",
                "city",
                "state",
                "zip",
                "country",
                "created_at",
                "updated_at",
                "deleted_at",
                "raw_json",
            ),
        },
        indexes=(("email",), ("updated_at",)),
        arrival_order=True,
    ),
    *(
        Table(
            name,
            {"customer_id": INT, "position": INT, "value": T, "type": T},
            pk=("customer_id", "position"),
            foreign_keys=(("customer_id", "customers"),),
            indexes=(("value",),) if name == "customer_emails" else (),
            parent_key="customer_id",
        )
        for name in (
            "customer_emails",
            "customer_phones",
            "customer_social_profiles",
            "customer_websites",
        )
    ),
    Table(
        "customer_fields",
        {"customer_id": INT, "field_id": INT, "name": T, "value": T, "text": T},
        pk=("customer_id", "field_id"),
        foreign_keys=(("customer_id", "customers"),),
        parent_key="customer_id",
    ),
    Table(
        "conversations",
        {
            "id": INT,
            "number": INT,
            "threads_count": INT,
            "type": T,
            "folder_id": INT,
            "status": T,
            "state": T,
            "subject": T,
            "preview": T,
            "mailbox_id": INT,
            "assignee_id": INT,
            "assignee_email": T,
            "customer_id": INT,
            "customer_email": T,
            "created_by_id": INT,
            "created_by_type": T,
            "created_at": T,
            "updated_at": T,
            "closed_by": INT,
            **_cols(
                "closed_at",
                "user_updated_at",
                "customer_waiting_since",
                "latest_reply_from",
                "source_type",
                "source_via",
                "cc",
                "bcc",
                "deleted_at",
                "raw_json",
            ),
        },
        foreign_keys=(
            ("mailbox_id", "mailboxes"),
            ("folder_id", "folders"),
            ("assignee_id", "users"),
            ("customer_id", "customers"),
        ),
        indexes=(
            ("mailbox_id",),
            ("folder_id",),
            ("assignee_id",),
            ("customer_id",),
            ("updated_at",),
            ("number",),
        ),
        arrival_order=True,
    ),
    Table(
        "threads",
        {
            "id": INT,
            "conversation_id": INT,
            "position": INT,
            **_cols("type", "status", "state", "action_type", "action_text", "body"),
            "body_text": T,  # the body as readable text, for search and spreadsheets
            "source_type": T,
            "source_via": T,
            "customer_id": INT,
            "customer_email": T,
            "created_by_id": INT,
            "created_by_type": T,
            "created_by_email": T,
            "assigned_to_id": INT,
            **_cols("to", "cc", "bcc", "created_at", "opened_at", "raw_json"),
        },
        foreign_keys=(("conversation_id", "conversations"), ("customer_id", "customers")),
        indexes=(("conversation_id",), ("customer_id",)),
        parent_key="conversation_id",
        arrival_order=True,
    ),
    Table(
        "attachments",
        {
            "id": INT,
            "thread_id": INT,
            "conversation_id": INT,
            **_cols("file_name", "file_url", "mime_type"),
            "size": INT,
        },
        foreign_keys=(("thread_id", "threads"), ("conversation_id", "conversations")),
        indexes=(("thread_id",), ("conversation_id",)),
        parent_key="conversation_id",
        arrival_order=True,
    ),
    Table(
        "conversation_tags",
        {"conversation_id": INT, "tag_id": INT, "name": T},
        pk=("conversation_id", "tag_id"),
        foreign_keys=(("conversation_id", "conversations"), ("tag_id", "tags")),
        indexes=(("tag_id",),),
        parent_key="conversation_id",
    ),
    Table(
        "conversation_custom_fields",
        {"conversation_id": INT, "field_id": INT, "name": T, "value": T, "text": T},
        pk=("conversation_id", "field_id"),
        foreign_keys=(("conversation_id", "conversations"), ("field_id", "custom_fields")),
        indexes=(("field_id",),),
        parent_key="conversation_id",
    ),
    Table(
        "timelogs",
        {
            "id": INT,
            "conversation_id": INT,
            "conversation_status": T,
            "user_id": INT,
            "time_spent": INT,
            "paused": INT,
            "finished": INT,
            **_cols("created_at", "updated_at", "raw_json"),
        },
        foreign_keys=(("conversation_id", "conversations"), ("user_id", "users")),
        indexes=(("conversation_id",),),
        parent_key="conversation_id",
        arrival_order=True,
    ),
    Table("etl_cursors", _cols("resource", "value", "updated_at"), pk="resource"),
    # Records written since the search index last caught up (see etl.search.refresh).
    Table("etl_changes", {"table_name": T, "id": INT}, pk=("table_name", "id")),
    Table(
        "etl_runs",
        {
            "id": INT,
            **_cols("command", "started_at", "ended_at", "status"),
            "full": INT,
            "counts": T,
            "requests": INT,
            "errors": T,
        },
    ),
)
SCHEMA = {t.name: t for t in TABLES}


CACHE_KIB = 32 * 1024
# A thread row (HTML body, its text and the raw JSON) is often larger than a 4 KiB page and
# spilled into overflow pages. With 8 KiB pages a first sync's writes took a fifth less CPU
# (replaying its pages: 5.4-5.8 s against 6.9-7.3 s) and the file is 7% smaller. SQLite sets
# the page size when a database is created: an existing mirror keeps its own.
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


def open_mirror(path: str | os.PathLike) -> Mirror:
    """Open (creating if needed) a mirror database with its schema.

    A folder, a file that is not a database, or a mirror that cannot be written is a one-line
    error naming the file.
    """
    if str(path) != ":memory:":
        check_mirror_path(path)
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
    ensure_schema(database)
    return database


def _index_name(table: str, columns: tuple[str, ...]) -> str:
    return f"idx_{table}_{'_'.join(columns)}"  # as sqlite-utils names them


def schema_is_current(conn: sqlite3.Connection) -> bool:
    """True when every table, column and index of the schema is there already."""
    indexes = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    for table in TABLES:
        info = conn.execute(f'PRAGMA table_info("{table.name}")').fetchall()
        if not {row[1] for row in info}.issuperset(table.columns):
            return False
        keyed_by_id = [row[1] for row in info if row[5]] == ["id"]
        if (
            table.arrival_order
            and not keyed_by_id
            and _index_name(table.name, ("id",)) not in indexes
        ):
            return False
        if any(_index_name(table.name, columns) not in indexes for columns in table.indexes):
            return False
    return True


def ensure_schema(database: Mirror) -> None:
    """Create what the schema lacks (with sqlite-utils, imported only then), the search index
    and the sheet views."""
    if not schema_is_current(database.conn):
        import sqlite_utils  # here: with pandas installed it imports pandas, 0.4 s

        db = sqlite_utils.Database(database.conn)
        existing = set(db.table_names())
        for table in TABLES:
            if table.name not in existing:
                db[table.name].create(
                    table.columns,
                    pk=None if table.arrival_order else table.pk,
                    not_null={"id"} if table.arrival_order else None,
                    foreign_keys=[(col, other, "id") for col, other in table.foreign_keys],
                )
            else:  # a mirror made by an older version gains the columns added since
                have = db[table.name].columns_dict
                for column, kind in table.columns.items():
                    if column not in have:
                        db[table.name].add_column(column, kind)
            if table.arrival_order and db[table.name].pks != ["id"]:  # older mirrors key by id
                db[table.name].create_index(["id"], unique=True, if_not_exists=True)
            for columns in table.indexes:
                db[table.name].create_index(columns, if_not_exists=True)
    search.install(database.conn)  # thread text lives in the index: before the views
    views.install(database.conn)


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


@dataclass
class Packed:
    """Rows of one table as tuples in schema column order: cheap to pickle and to insert."""

    columns: tuple[str, ...]
    values: list[tuple]

    def index(self, column: str) -> int:
        return self.columns.index(column)

    def select(self, keep: list[bool]) -> Packed:
        return Packed(self.columns, [v for v, k in zip(self.values, keep, strict=True) if k])


Batch = dict[str, Packed]


def pack(rows: dict[str, list[dict[str, Any]]]) -> Batch:
    """Row dicts (as `records` makes them) -> tuples; columns outside the schema are dropped."""
    batch = {}
    for table_name, items in rows.items():
        columns = tuple(c for c in SCHEMA[table_name].columns if items and c in items[0])
        try:  # rows made by one function share their keys: pick them out in C
            values = list(map(itemgetter(*columns), items)) if len(columns) > 1 else None
        except KeyError:
            values = None
        if values is None:
            values = [tuple(r.get(c) for c in columns) for r in items]
        batch[table_name] = Packed(columns, values)
    return batch


def upsert(conn: sqlite3.Connection, table_name: str, rows: Packed | list[dict[str, Any]]) -> int:
    """Insert or update rows by primary key."""
    if not isinstance(rows, Packed):
        rows = pack({table_name: rows})[table_name]
    if not rows.values:
        return 0
    conn.executemany(_upsert_sql(SCHEMA[table_name], list(rows.columns)), rows.values)
    return len(rows.values)


def replace_children(
    conn: sqlite3.Connection, table_name: str, parent_ids: Iterable[int], rows: Packed
) -> None:
    """Make a child table hold exactly `rows` for these parents (tags removed at the source go).

    Children with their own `id` (threads, attachments) are upserted and only the ones gone
    from the source are deleted, so an unchanged thread is not rewritten. `parent_ids` need
    only name the parents that were mirrored before: a new parent has no children to remove.
    """
    table = SCHEMA[table_name]
    ids = list(parent_ids)
    keep = []
    if table.pk == "id" and rows.values:
        at = rows.index("id")
        keep = [v[at] for v in rows.values]
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
    rows: Batch | dict[str, list[dict]],
    child_tables: Iterable[str],
) -> int:
    """Write one batch of parent rows and replace their children. The caller owns the commit.

    A row older (by `updated_at`) than the one already mirrored is skipped with its children:
    pages read in parallel can arrive out of order, and a record must never go back in time.
    Returns how many parent rows were written.
    """
    batch = {t: r if isinstance(r, Packed) else pack({t: r})[t] for t, r in rows.items()}
    parents, mirrored = newer_only(conn, parent_table, batch.get(parent_table, Packed((), [])))
    upsert(conn, parent_table, parents)
    ids = {v[parents.index("id")] for v in parents.values}
    # Each record's search document is stored with its rows; those already indexed as they
    # are now need no journaling.
    current = search.save_documents(conn, parent_table, batch, ids, mirrored)
    conn.executemany(
        "INSERT OR IGNORE INTO etl_changes (table_name, id) VALUES (?, ?)",
        [(parent_table, i) for i in ids - current],
    )
    for child in child_tables:
        children = batch.get(child)
        if children and children.values:
            parent_at = children.index(SCHEMA[child].parent_key)
            children = children.select([v[parent_at] in ids for v in children.values])
        else:
            children = Packed((), [])
        replace_children(conn, child, ids.intersection(mirrored), children)
    return len(ids)


def newer_only(conn: sqlite3.Connection, table_name: str, rows: Packed) -> tuple[Packed, set[int]]:
    """Drop rows whose `updated_at` is older than the mirrored copy's.

    Also returns the ids of these rows the mirror already held.
    """
    if not rows.values:
        return rows, set()
    at_id = rows.index("id")
    ids = [v[at_id] for v in rows.values]
    marks = ", ".join("?" for _ in ids)
    query = f'SELECT id, updated_at FROM "{table_name}" WHERE id IN ({marks})'
    mirrored = dict(conn.execute(query, ids).fetchall())
    if "updated_at" not in rows.columns:
        return rows, set(mirrored)
    at_updated = rows.index("updated_at")
    newer = [(v[at_updated] or "") >= (mirrored.get(v[at_id]) or "") for v in rows.values]
    return rows.select(newer), set(mirrored)


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
    with conn:
        conn.execute(
            "UPDATE etl_runs SET ended_at = ?, status = ?, counts = ?, requests = ?, errors = ? "
            "WHERE id = ?",
            (timeutil.now(), status, json.dumps(counts), requests, json.dumps(errors), run_id),
        )


def recent_runs(conn: sqlite3.Connection, limit: int = 10) -> list[dict[str, Any]]:
    cursor = conn.execute("SELECT * FROM etl_runs ORDER BY id DESC LIMIT ?", (limit,))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def row_counts(database: Mirror) -> dict[str, int]:
    names = [t.name for t in TABLES if not t.name.startswith("etl_")]
    return {n: database.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


# -- the single-writer lock ------------------------------------------------------------------


def check_mirror_path(db_path: str | os.PathLike) -> None:
    """Fail with one clear line when the mirror cannot be created where `db_path` says."""
    path = Path(db_path)
    if path.is_dir():
        raise ConfigError(
            f"the mirror {db_path} is a folder: name a file, e.g. {path / 'helpdesk.db'}"
        )
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot create the mirror {db_path}: the folder {folder} does not exist")


def _holder(handle) -> str:
    """The pid the lock's holder wrote, if this OS lets a locked file be read."""
    try:
        handle.seek(0)
        return handle.read().strip()
    except OSError:
        return ""


@contextmanager
def writer_lock(db_path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock beside the database; a second writer fails at once.

    An OS lock (flock on POSIX, LockFileEx or msvcrt on Windows, through portalocker) is
    released by the kernel when the process dies, even on kill -9, so a crashed sync never
    leaves a stale lock behind. The holder writes its pid into the file for the message.
    """
    import portalocker  # imported here: it needs fcntl or msvcrt, which not every OS has

    if str(db_path) == ":memory:":
        yield
        return
    check_mirror_path(db_path)
    lock_path = Path(f"{db_path}.lock")
    try:
        handle = open(lock_path, "a+")  # noqa: SIM115 - held for the lifetime of the lock
    except OSError as exc:
        raise ConfigError(f"cannot write beside the mirror {db_path}: {exc.strerror}") from None
    try:
        try:
            portalocker.lock(handle, portalocker.LOCK_EX | portalocker.LOCK_NB)
        except portalocker.exceptions.LockException:
            holder = _holder(handle)
            who = f" (pid {holder})" if holder else ""
            raise LockedError(
                f"another etl process is writing {db_path}{who}; wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
