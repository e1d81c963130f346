"""Spreadsheet-shaped tables: one row per thing a person thinks in, as SQL.

The same `Sheet` definitions become views in the mirror (`conversations_sheet`, ...) for
datasette and sqlite-utils, and the queries `etl export` streams, so the two cannot drift.
Custom-field columns depend on the fields defined in the helpdesk, so the SQL is generated;
the views are refreshed whenever the mirror is opened and its field definitions changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from etl import datasette_meta

INT, TEXT, TIME = "int", "text", "time"
NUMBER, DATE = "number", "date"  # custom fields of those types; a value may still be text
# Custom field types whose columns are typed (a name shared by fields of mixed types is text).
FIELD_KINDS = {"number": NUMBER, "date": DATE}
SHEET_NAMES = ("conversations", "threads", "customers", "users", "mailboxes")  # the default
MORE_SHEETS = (
    "timelogs",
    "attachments",
    "tags",
    "customer_emails",
    "customer_phones",
    "customer_social_profiles",
    "customer_websites",
)
# SQLite refuses a result of more than 2,000 columns; custom fields past this many go to one
# JSON column, so a helpdesk with thousands of fields still exports.
MAX_FIELD_COLUMNS = 1000
MORE_FIELDS = "more_custom_fields"


@dataclass(frozen=True)
class Column:
    name: str
    sql: str
    kind: str = TEXT  # int | text | time | number | date: how typed formats store it


@dataclass(frozen=True)
class Sheet:
    """A spreadsheet-shaped query: columns over a base table, plus the columns filters use."""

    name: str
    columns: tuple[Column, ...]
    base: str  # FROM clause holding every column a filter names (used for counts too)
    joins: str  # further LEFT JOINs the display columns need
    order_by: str
    filters: dict[str, str] = field(default_factory=dict)  # since|mailbox|status|deleted -> SQL
    group_by: str = ""  # set when columns aggregate joined rows (custom fields)
    notes: tuple[str, ...] = ()  # what an export of this sheet should warn about

    @property
    def view_name(self) -> str:
        return f"{self.name}_sheet"

    def visible(self, include_deleted: bool) -> tuple[Column, ...]:
        if include_deleted:
            return self.columns
        return tuple(c for c in self.columns if c.name != "deleted_at")

    def select(
        self,
        where: Sequence[str] = (),
        include_deleted: bool = True,
        columns: Sequence[Column] | None = None,
    ) -> str:
        chosen = self.visible(include_deleted) if columns is None else columns
        cols = ",\n  ".join(f"{c.sql} AS {quote(c.name)}" for c in chosen)
        clause = f"\nWHERE {' AND '.join(where)}" if where else ""
        group = f"\nGROUP BY {self.group_by}" if self.group_by else ""
        return (
            f"SELECT\n  {cols}\nFROM {self.base}\n{self.joins}{clause}{group}\n"
            f"ORDER BY {self.order_by}"
        )

    def count(self, where: Sequence[str] = ()) -> str:
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return f"SELECT count(*) FROM {self.base}{clause}"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _name(first: str, last: str) -> str:
    return f"NULLIF(trim(coalesce({first}, '') || ' ' || coalesce({last}, '')), '')"


def _joined(json_text: str) -> str:
    """A JSON list column (`["a@x", "b@x"]`) as `a@x, b@x`."""
    return (
        f"CASE WHEN json_valid({json_text}) AND json_type({json_text}) = 'array' THEN "
        f"(SELECT group_concat(j.value, ', ') FROM json_each({json_text}) j) "
        f"ELSE {json_text} END"
    )


def field_label(value_alias: str, field_alias: str) -> str:
    """A custom field's value as a person reads it: a dropdown's option label, else the value."""
    v, f = value_alias, field_alias
    return (
        f"COALESCE(NULLIF({v}.text, ''), CASE WHEN {f}.type = 'dropdown' "
        f"AND json_valid({f}.options) AND json_type({f}.options) = 'object' THEN "
        f"(SELECT o.value FROM json_each({f}.options) o WHERE o.key = {v}.value) END, {v}.value)"
    )


@dataclass(frozen=True)
class Pivot:
    """The fields shown as one column: same name (several mailboxes may share one)."""

    column: str
    ids: list[int]
    kind: str = TEXT


def _pivot_names(pairs: Sequence[tuple], taken: set[str]) -> list[Pivot]:
    """Group field ids by name and give each a free column; `pairs` are (name, id[, type])."""
    by_name: dict[str, list[int]] = {}
    kinds: dict[str, set[str]] = {}
    for name, field_id, *kind in pairs:
        key = name or f"field {field_id}"
        by_name.setdefault(key, []).append(field_id)
        kinds.setdefault(key, set()).add(FIELD_KINDS.get(kind[0] if kind else None, TEXT))
    out = []
    used = {t.lower() for t in taken}
    for name, ids in by_name.items():
        column = name
        while column.lower() in used:
            column = f"{column} (field)"
        used.add(column.lower())
        kind = kinds[name].pop() if len(kinds[name]) == 1 else TEXT
        out.append(Pivot(column, ids, kind))
    return out


def as_number(text: str) -> str:
    """SQL: a JSON number in `text` as an SQLite number; anything else stays as it is."""
    return (
        f"CASE WHEN json_valid({text}) AND json_type({text}) IN ('integer', 'real') "
        f"THEN json_extract({text}, '$') ELSE {text} END"
    )


@dataclass(frozen=True)
class FieldColumns:
    """A sheet's custom-field columns: one per field name, the rest in one JSON column.

    The values are pivoted by one join and a GROUP BY on the record's id, each column an
    aggregate over the record's values: a correlated subquery per column costs SQLite time
    that grows with the number of columns, for every row.
    """

    columns: list[Column] = field(default_factory=list)
    joins: str = ""  # the join that brings each record's values, as `v` (and `f`)
    overflow: int = 0  # how many field names went to the JSON column
    limit: int = 0

    @property
    def note(self) -> tuple[str, ...]:
        if not self.overflow:
            return ()
        return (
            f"{self.overflow:,} custom fields past the first {self.limit:,} are in the "
            f"column {MORE_FIELDS} (JSON, by field name)",
        )


def _field_columns(names: list[Pivot], label: str, key: str, joins: str) -> FieldColumns:
    """Columns for the first `MAX_FIELD_COLUMNS` names; the rest gathered as JSON `{key: label}`.

    Number fields hold numbers, so that sorting and sums work in every tool reading the views;
    a value that is not a number stays text. Dates stay ISO text, SQLite's own date form.
    """
    limit = MAX_FIELD_COLUMNS
    if not names:
        return FieldColumns()
    plain = "COALESCE(NULLIF(v.text, ''), v.value)"
    columns = [
        Column(
            p.column,
            f"max(CASE WHEN v.field_id IN ({_ids(p.ids)}) "
            f"THEN {as_number(plain) if p.kind == NUMBER else label} END)",
            p.kind,
        )
        for p in names[:limit]
    ]
    rest = [i for p in names[limit:] for i in p.ids]
    if rest:
        gathered = f"json_group_object({key}, {label}) FILTER (WHERE v.field_id IN ({_ids(rest)}))"
        columns.append(Column(MORE_FIELDS, f"NULLIF({gathered}, '{{}}')"))
    return FieldColumns(columns, joins, max(0, len(names) - limit), limit)


def _ids(ids: list[int]) -> str:
    return ", ".join(str(int(i)) for i in ids)


def conversation_field_columns(conn: sqlite3.Connection, taken: set[str]) -> FieldColumns:
    """One column per custom field defined now: a field deleted at the source leaves the sheet
    (its values stay in `conversation_custom_fields`)."""
    pairs = conn.execute(
        "SELECT name, id, type FROM custom_fields WHERE deleted_at IS NULL "
        "ORDER BY sort_order, mailbox_id, id"
    ).fetchall()
    return _field_columns(
        _pivot_names(pairs, taken | {MORE_FIELDS}),
        field_label("v", "f"),
        "COALESCE(f.name, v.name)",
        "LEFT JOIN conversation_custom_fields v ON v.conversation_id = c.id\n"
        "LEFT JOIN custom_fields f ON f.id = v.field_id",
    )


def customer_field_columns(conn: sqlite3.Connection, taken: set[str]) -> FieldColumns:
    # Customer fields have no definitions endpoint: their names come from the values seen,
    # found with one index seek per distinct field rather than a scan of every value.
    pairs = []
    last = None
    while True:
        row = conn.execute(
            "SELECT name, field_id FROM customer_fields WHERE field_id > ? "
            "ORDER BY field_id LIMIT 1",
            (-(2**63) if last is None else last,),
        ).fetchone()
        if row is None:
            break
        pairs.append(row)
        last = row[1]
    return _field_columns(
        _pivot_names(pairs, taken | {MORE_FIELDS}),
        "COALESCE(NULLIF(v.text, ''), v.value)",
        "v.name",
        "LEFT JOIN customer_fields v ON v.customer_id = cu.id",
    )


def _conversations(conn: sqlite3.Connection) -> Sheet:
    fixed = [
        Column("id", "c.id", INT),
        Column("number", "c.number", INT),
        Column("subject", "c.subject"),
        Column("status", "c.status"),
        Column("type", "c.type"),
        Column("mailbox", "m.name"),
        Column(
            "customer_name",
            _name(
                "COALESCE(cu.first_name, json_extract(c.raw_json, '$.customer.firstName'))",
                "COALESCE(cu.last_name, json_extract(c.raw_json, '$.customer.lastName'))",
            ),
        ),
        Column("customer_email", "COALESCE(c.customer_email, cu.email)"),
        Column("assignee_name", _name("u.first_name", "u.last_name")),
        Column("assignee_email", "COALESCE(c.assignee_email, u.email)"),
        Column("created_at", "c.created_at", TIME),
        Column("updated_at", "c.updated_at", TIME),
        Column("closed_at", "c.closed_at", TIME),
        Column("thread_count", "c.threads_count", INT),
        Column(
            "tags",
            "(SELECT group_concat(name, ', ') FROM (SELECT ct.name FROM conversation_tags ct "
            "WHERE ct.conversation_id = c.id ORDER BY ct.name))",
        ),
    ]
    taken = {c.name for c in fixed} | {"deleted_at"}
    fields = conversation_field_columns(conn, taken)
    columns = [*fixed, *fields.columns, Column("deleted_at", "c.deleted_at", TIME)]
    return Sheet(
        "conversations",
        tuple(columns),
        base="conversations c",
        joins=(
            "LEFT JOIN mailboxes m ON m.id = c.mailbox_id\n"
            "LEFT JOIN customers cu ON cu.id = c.customer_id\n"
            "LEFT JOIN users u ON u.id = c.assignee_id\n"
            f"{fields.joins}"
        ).strip(),
        order_by="c.id",
        filters=CONVERSATION_FILTERS,
        group_by="c.id" if fields.joins else "",
        notes=fields.note,
    )


CONVERSATION_FILTERS = {
    "since": "c.updated_at",
    "mailbox": "c.mailbox_id",
    "status": "c.status",
    "deleted": "c.deleted_at",
}

# A thread's author: the user who wrote it, or for customer threads the customer.
IS_USER_AUTHOR = (
    "COALESCE(t.created_by_type, CASE WHEN t.type = 'customer' THEN 'customer' ELSE 'user' END)"
    " = 'user'"
)

# A customer thread's author is the customer who created it: a reply from someone else (a
# colleague cc'd) still names the conversation's customer as the thread's `customer`. Only a
# thread without a customer `createdBy` falls back to that `customer`.
_CREATED_BY_CUSTOMER = "t.created_by_type = 'customer' AND t.created_by_id IS NOT NULL"
CUSTOMER_AUTHOR_ID = f"CASE WHEN {_CREATED_BY_CUSTOMER} THEN t.created_by_id ELSE t.customer_id END"
CUSTOMER_AUTHOR_EMAIL = (
    f"CASE WHEN {_CREATED_BY_CUSTOMER} THEN COALESCE(t.created_by_email, ac.email) "
    "ELSE COALESCE(t.customer_email, ac.email, t.created_by_email) END"
)

THREAD_AUTHOR_JOINS = (
    f"LEFT JOIN users au ON {IS_USER_AUTHOR} AND au.id = t.created_by_id\n"
    f"LEFT JOIN customers ac ON NOT ({IS_USER_AUTHOR}) AND ac.id = {CUSTOMER_AUTHOR_ID}"
)


def _threads() -> Sheet:
    columns = (
        Column("id", "t.id", INT),
        Column("conversation_id", "t.conversation_id", INT),
        Column("conversation_number", "c.number", INT),
        Column("conversation_subject", "c.subject"),
        Column("type", "t.type"),
        Column("author_type", f"CASE WHEN {IS_USER_AUTHOR} THEN 'user' ELSE 'customer' END"),
        Column(
            "author_name",
            f"CASE WHEN {IS_USER_AUTHOR} THEN {_name('au.first_name', 'au.last_name')} "
            f"ELSE {_name('ac.first_name', 'ac.last_name')} END",
        ),
        Column(
            "author_email",
            f"CASE WHEN {IS_USER_AUTHOR} THEN COALESCE(au.email, t.created_by_email) "
            f"ELSE {CUSTOMER_AUTHOR_EMAIL} END",
        ),
        Column("created_at", "t.created_at", TIME),
        Column("body", "COALESCE(NULLIF(t.body_text, ''), t.action_text)"),
        Column("to", _joined('t."to"')),
        Column("cc", _joined("t.cc")),
        Column("bcc", _joined("t.bcc")),
        Column(
            "attachments",
            "(SELECT group_concat(a.file_name, ', ') FROM attachments a WHERE a.thread_id = t.id)",
        ),
        Column("deleted_at", "c.deleted_at", TIME),
    )
    return Sheet(
        "threads",
        columns,
        base="threads t JOIN conversations c ON c.id = t.conversation_id",
        joins=THREAD_AUTHOR_JOINS,
        order_by="t.conversation_id, t.position, t.id",
        filters=CONVERSATION_FILTERS,
    )


def _customers(conn: sqlite3.Connection) -> Sheet:
    fixed = [
        Column("id", "cu.id", INT),
        Column("name", _name("cu.first_name", "cu.last_name")),
        # The parts too: a name split again at its first space breaks "Mary, Jr. Kowalczyk",
        # and `--mapping smarticks` loads them as they are.
        Column("first_name", "cu.first_name"),
        Column("last_name", "cu.last_name"),
        Column("email", "cu.email"),
        Column("phone", "cu.phone"),
        Column(
            "emails",
            "(SELECT group_concat(value, ', ') FROM (SELECT e.value FROM customer_emails e "
            "WHERE e.customer_id = cu.id ORDER BY e.position))",
        ),
        Column("company", "cu.company"),
        Column("job_title", "cu.job_title"),
        Column("address", "cu.address"),
        Column("city", "cu.city"),
        Column("state", "cu.state"),
        Column("zip", "cu.zip"),
        Column("country", "cu.country"),
        Column("notes", "cu.notes"),
        Column("created_at", "cu.created_at", TIME),
        Column("updated_at", "cu.updated_at", TIME),
    ]
    taken = {c.name for c in fixed} | {"deleted_at"}
    fields = customer_field_columns(conn, taken)
    columns = [*fixed, *fields.columns, Column("deleted_at", "cu.deleted_at", TIME)]
    return Sheet(
        "customers",
        tuple(columns),
        base="customers cu",
        joins=fields.joins,
        order_by="cu.id",
        filters={"since": "cu.updated_at", "deleted": "cu.deleted_at"},
        group_by="cu.id" if fields.joins else "",
        notes=fields.note,
    )


def _users() -> Sheet:
    columns = (
        Column("id", "u.id", INT),
        Column("name", _name("u.first_name", "u.last_name")),
        Column("email", "u.email"),
        Column("role", "u.role"),
        Column("job_title", "u.job_title"),
        Column("phone", "u.phone"),
        Column("alternate_emails", "u.alternate_emails"),
        Column("timezone", "u.timezone"),
        Column("created_at", "u.created_at", TIME),
        Column("updated_at", "u.updated_at", TIME),
        Column("deleted_at", "u.deleted_at", TIME),
    )
    return Sheet(
        "users",
        columns,
        base="users u",
        joins="",
        order_by="u.id",
        filters={"since": "u.updated_at", "deleted": "u.deleted_at"},
    )


def _mailboxes() -> Sheet:
    columns = (
        Column("id", "m.id", INT),
        Column("name", "m.name"),
        Column("email", "m.email"),
        Column("created_at", "m.created_at", TIME),
        Column("updated_at", "m.updated_at", TIME),
        Column("deleted_at", "m.deleted_at", TIME),
    )
    return Sheet(
        "mailboxes",
        columns,
        base="mailboxes m",
        joins="",
        order_by="m.id",
        filters={"mailbox": "m.id", "deleted": "m.deleted_at"},
    )


def _timelogs() -> Sheet:
    columns = (
        Column("id", "tl.id", INT),
        Column("conversation_id", "tl.conversation_id", INT),
        Column("conversation_number", "c.number", INT),
        Column("conversation_subject", "c.subject"),
        Column("conversation_status", "tl.conversation_status"),
        Column("user_id", "tl.user_id", INT),
        Column("user_name", _name("u.first_name", "u.last_name")),
        Column("user_email", "u.email"),
        Column("time_spent", "tl.time_spent", INT),  # seconds, as the API counts them
        Column("paused", "tl.paused", INT),
        Column("finished", "tl.finished", INT),
        Column("created_at", "tl.created_at", TIME),
        Column("updated_at", "tl.updated_at", TIME),
        Column("deleted_at", "c.deleted_at", TIME),
    )
    return Sheet(
        "timelogs",
        columns,
        base="timelogs tl JOIN conversations c ON c.id = tl.conversation_id",
        joins="LEFT JOIN users u ON u.id = tl.user_id",
        order_by="tl.conversation_id, tl.id",
        filters={**CONVERSATION_FILTERS, "since": "tl.updated_at"},
    )


def _attachments() -> Sheet:
    columns = (
        Column("id", "a.id", INT),
        Column("conversation_id", "a.conversation_id", INT),
        Column("conversation_number", "c.number", INT),
        Column("thread_id", "a.thread_id", INT),
        Column("file_name", "a.file_name"),
        Column("mime_type", "a.mime_type"),
        Column("size", "a.size", INT),
        Column("file_url", "a.file_url"),
        Column("created_at", "t.created_at", TIME),
        Column("deleted_at", "c.deleted_at", TIME),
    )
    return Sheet(
        "attachments",
        columns,
        base="attachments a JOIN conversations c ON c.id = a.conversation_id",
        joins="LEFT JOIN threads t ON t.id = a.thread_id",
        order_by="a.conversation_id, a.thread_id, a.id",
        filters=CONVERSATION_FILTERS,
    )


def _tags() -> Sheet:
    columns = (
        Column("id", "tg.id", INT),
        Column("name", "tg.name"),
        Column("color", "tg.color"),
        Column("conversations", "tg.counter", INT),
        Column("deleted_at", "tg.deleted_at", TIME),
    )
    return Sheet("tags", columns, "tags tg", "", "tg.id", filters={"deleted": "tg.deleted_at"})


def _customer_entries(table: str) -> Sheet:
    """A customer's emails, phones, social profiles or websites: one row each, in order."""
    columns = (
        Column("customer_id", "e.customer_id", INT),
        Column("customer_name", _name("cu.first_name", "cu.last_name")),
        Column("position", "e.position", INT),
        Column("type", "e.type"),
        Column("value", "e.value"),
        Column("deleted_at", "cu.deleted_at", TIME),
    )
    return Sheet(
        table,
        columns,
        base=f"{table} e JOIN customers cu ON cu.id = e.customer_id",
        joins="",
        order_by="e.customer_id, e.position",
        filters={"since": "cu.updated_at", "deleted": "cu.deleted_at"},
    )


def sheets(conn: sqlite3.Connection) -> dict[str, Sheet]:
    """Every spreadsheet shape, with custom-field columns for the fields defined now."""
    return {
        "conversations": _conversations(conn),
        "threads": _threads(),
        "customers": _customers(conn),
        "users": _users(),
        "mailboxes": _mailboxes(),
        "timelogs": _timelogs(),
        "attachments": _attachments(),
        "tags": _tags(),
        **{name: _customer_entries(name) for name in MORE_SHEETS if name.startswith("customer_")},
    }


def view_sql(sheet: Sheet) -> str:
    return f"CREATE VIEW {sheet.view_name} AS\n{sheet.select()}"


def refresh_views(conn: sqlite3.Connection) -> list[str]:
    """(Re)create the `<table>_sheet` views whose SQL changed; returns the names rewritten."""
    return replace_views(conn, {s.view_name: view_sql(s) for s in sheets(conn).values()})


def replace_views(conn: sqlite3.Connection, wanted: dict[str, str]) -> list[str]:
    """Give each named view its `CREATE VIEW` SQL where it differs; returns the names rewritten.

    The drops and creates are one transaction, so that no other process (a reader, a
    backup's VACUUM INTO) ever sees a view missing between its drop and its create.
    """
    current = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
    changed = [name for name, sql in wanted.items() if current.get(name) != sql]
    if not changed:
        return []
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        for name in changed:
            conn.execute(f"DROP VIEW IF EXISTS {name}")
            conn.execute(wanted[name])
    except BaseException:
        if own:
            conn.rollback()
        raise
    if own:
        conn.commit()
    return changed


def install(conn: sqlite3.Connection) -> None:
    """The sheet views, the index they need, and what Datasette needs to search them (see
    `datasette_meta`); the schema calls it when a mirror opens, after the search index."""
    conn.execute(
        "CREATE INDEX IF NOT EXISTS sheet_customer_fields_field ON customer_fields (field_id)"
    )
    refresh_views(conn)
    replace_views(conn, datasette_meta.fts_views(conn))
    datasette_meta.write_metadata(conn)
