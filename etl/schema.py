"""The mirror's tables as data, and making a mirror's schema current.

Each `Table` names its columns with their types, its key, foreign keys and indexes. A mirror
made by an older version gains the tables, columns and indexes added since; creating them is
sqlite-utils' job, imported only then (with pandas installed it imports pandas, which an
incremental sync need not load). The search index and the sheet views come last.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from etl import search, views

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
            # The file, once fetched (see etl.files): its sha256, and its path relative to
            # the folder of the database holding the row.
            **_cols("sha256", "path"),
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
    # What the mirror knows of itself: its source (etl.binding), how far a backfill got.
    Table("etl_state", _cols("name", "value", "updated_at"), pk="name"),
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


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create what the schema lacks (with sqlite-utils, imported only then), the search index
    and the sheet views."""
    if not schema_is_current(conn):
        import sqlite_utils  # here: with pandas installed it imports pandas too

        db = sqlite_utils.Database(conn)
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
    search.install(conn)  # thread text lives in the index: before the views
    views.install(conn)
