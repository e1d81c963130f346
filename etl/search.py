"""Full-text search over the mirror: conversation subjects, thread text, customer names and emails.

One FTS5 table, `search_index`, holds a document per conversation (its subject as the title,
the plain text of its threads, oldest first, as the body) and per customer (name and every
email). A document's rowid encodes what it is, `id * 4 + kind`, so a hit leads back to its row
without a lookup table.

One document per conversation rather than one per thread: the index is rebuilt for a whole
conversation whenever any part of it changes anyway, and 50,000 documents index in about 30%
less time than the 256,000 of a conversation and each thread apart. A phrase may now match
across the end of one thread and the start of the next.

The index is brought up to date in bulk, not row by row: the mirror journals the ids of the
conversations and customers each write touches (`etl_changes`, in the same transaction as the
rows), and `refresh` re-indexes just those in one statement per kind. The sync refreshes at
the end of every run, and search and export refresh first, so even after a killed sync the
index never disagrees with the rows. Indexing in bulk costs about a third of what per-row
triggers cost on a first sync. Deletes still go through triggers, which need no function: a
deleted conversation or customer takes its document along, and a deleted thread journals its
conversation for re-indexing.

Thread bodies are HTML; the index takes their readable text from `threads.body_text`, which the
sync computes while transforming pages, so the index needs no SQL function of ours and any
SQLite client can read or write the mirror.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import sqlite_utils

from etl.errors import ConfigError

INDEX = "search_index"
CONVERSATION, CUSTOMER = 1, 3  # 2 was a thread's, when threads had documents of their own


def _drop(kind: int, ref: str) -> str:
    return f"DELETE FROM {INDEX} WHERE rowid = {ref} * 4 + {kind};"


def _trigger(name: str, when: str, body: str) -> tuple[str, str]:
    return name, f"CREATE TRIGGER {name} {when}\nBEGIN\n  {body}\nEND"


TABLE_SQL = (
    f"CREATE VIRTUAL TABLE {INDEX} USING fts5("
    "title, body, tokenize = 'unicode61 remove_diacritics 2')"
)
TRIGGERS = dict(
    (
        _trigger(
            "search_conversation_delete",
            "AFTER DELETE ON conversations",
            _drop(CONVERSATION, "old.id"),
        ),
        _trigger(
            "search_thread_delete",
            "AFTER DELETE ON threads",
            "INSERT OR IGNORE INTO etl_changes (table_name, id) "
            "VALUES ('conversations', old.conversation_id);",
        ),
        _trigger("search_customer_delete", "AFTER DELETE ON customers", _drop(CUSTOMER, "old.id")),
    )
)

# Threads of a conversation come from its index in rowid order, which is the order a sync
# wrote them: oldest first.
_CONVERSATION_DOCS = (
    f"INSERT INTO {INDEX} (rowid, title, body) "
    f"SELECT c.id * 4 + {CONVERSATION}, c.subject, (SELECT group_concat(t.body_text, char(10)) "
    "FROM threads t WHERE t.conversation_id = c.id) FROM conversations c"
)
_CUSTOMER_DOCS = (
    f"INSERT INTO {INDEX} (rowid, title, body) "
    f"SELECT cu.id * 4 + {CUSTOMER}, "
    "trim(coalesce(cu.first_name, '') || ' ' || coalesce(cu.last_name, '')), "
    "trim(coalesce(cu.email, '') || ' ' || coalesce((SELECT group_concat(e.value, ' ') "
    "FROM customer_emails e WHERE e.customer_id = cu.id), '')) FROM customers cu"
)
_PENDING = "(SELECT id FROM etl_changes WHERE table_name = '{}')"
# The old documents of the pending records; an empty index (a first sync) has none to drop.
# Looking for them there cost a sixth of the refresh while threads had documents of their
# own; with one per conversation it is 2% (0.03 of 1.67 s for 50,000 / 20,000).
DROP_PENDING = tuple(
    f"DELETE FROM {INDEX} WHERE rowid IN (SELECT id * 4 + {kind} FROM etl_changes "
    f"WHERE table_name = '{table}')"
    for table, kind in (("conversations", CONVERSATION), ("customers", CUSTOMER))
)
INDEX_PENDING = (
    f"{_CONVERSATION_DOCS} WHERE c.id IN {_PENDING.format('conversations')}",
    f"{_CUSTOMER_DOCS} WHERE cu.id IN {_PENDING.format('customers')}",
    "DELETE FROM etl_changes WHERE table_name IN ('conversations', 'customers')",
)
REBUILD = (f"DELETE FROM {INDEX}", _CONVERSATION_DOCS, _CUSTOMER_DOCS)


def _current(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE (type = 'trigger' AND name LIKE 'search\\_%' "
        "ESCAPE '\\') OR name = ?",
        (INDEX,),
    )
    return dict(rows)


def install(db: sqlite_utils.Database) -> bool:
    """Schema hook: create (and fill) the index if missing or stale.

    Returns True when the index was (re)built. Building reads every thread once, inside one
    transaction, so a mirror that already holds rows is searchable as soon as it opens.
    """
    conn = db.conn
    wanted = {INDEX: TABLE_SQL, **TRIGGERS}
    if _current(conn) == wanted:
        return False
    conn.execute("SAVEPOINT etl_search_install")
    try:
        for name in _current(conn):
            kind = "TABLE" if name == INDEX else "TRIGGER"
            conn.execute(f"DROP {kind} IF EXISTS {name}")
        conn.execute(TABLE_SQL)
        for sql in TRIGGERS.values():
            conn.execute(sql)
        rebuild(conn)
    except BaseException:
        conn.execute("ROLLBACK TO etl_search_install")
        conn.execute("RELEASE etl_search_install")
        raise
    conn.execute("RELEASE etl_search_install")
    return True


def rebuild(conn: sqlite3.Connection) -> None:
    """Refill the index from the mirror's rows (the caller owns the transaction)."""
    for sql in REBUILD:
        conn.execute(sql)
    conn.execute("DELETE FROM etl_changes WHERE table_name IN ('conversations', 'customers')")


def refresh(conn: sqlite3.Connection) -> int:
    """Re-index the conversations and customers written since the last refresh; commits.

    Returns how many records were re-indexed (0 on a mirror opened without the index).
    """
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (INDEX,)).fetchone():
        return 0
    pending = conn.execute(
        "SELECT count(*) FROM etl_changes WHERE table_name IN ('conversations', 'customers')"
    ).fetchone()[0]
    if pending:
        with conn:
            if conn.execute(f"SELECT 1 FROM {INDEX} LIMIT 1").fetchone():
                for sql in DROP_PENDING:
                    conn.execute(sql)
            for sql in INDEX_PENDING:
                conn.execute(sql)
    return pending


# -- queries ----------------------------------------------------------------------------------

_TERM = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w", re.UNICODE)


def fts_terms(query: str) -> list[str]:
    """Each word or "quoted phrase" of a query as an FTS5 phrase; a trailing * matches prefixes.

    Quoting every term means punctuation (emails, `refund-policy`, `C++`) is searched as words
    rather than parsed as FTS5 syntax, so no query can be a syntax error.
    """
    terms = []
    for phrase, word in _TERM.findall(query):
        text = phrase if phrase else word
        prefix = text.endswith("*") and not phrase
        text = text.rstrip("*") if prefix else text
        if not _WORD.search(text):
            continue
        fts = '"' + text.replace('"', '""') + '"'
        terms.append(f"{fts} *" if prefix else fts)
    return terms


def search(
    conn: sqlite3.Connection, query: str, limit: int = 50, include_deleted: bool = False
) -> list[dict[str, Any]]:
    """Conversations where every term appears in the subject, a thread, or the customer.

    Terms may match different documents of the same conversation (its own and its customer's).
    Best matches first (BM25), newest first among equals.
    """
    terms = fts_terms(query)
    if not terms:
        raise ConfigError(f"nothing to search for in {query!r}: give at least one word")
    refresh(conn)
    hits = "\n    UNION ALL\n    ".join(
        f"SELECT {i} AS term, rowid, rank FROM {INDEX} WHERE {INDEX} MATCH ?"
        for i in range(len(terms))
    )
    deleted = "" if include_deleted else "WHERE c.deleted_at IS NULL"
    sql = f"""
WITH hits AS (
    {hits}
),
matched AS (
    SELECT rowid >> 2 AS conversation_id, term, rank FROM hits WHERE rowid % 4 = {CONVERSATION}
    UNION ALL
    SELECT c.id, h.term, h.rank FROM hits h JOIN conversations c ON c.customer_id = h.rowid >> 2
    WHERE h.rowid % 4 = {CUSTOMER}
),
best AS (
    SELECT conversation_id, min(rank) AS rank FROM matched
    GROUP BY conversation_id HAVING count(DISTINCT term) = {len(terms)}
)
SELECT c.id, c.number, c.subject,
    NULLIF(trim(coalesce(cu.first_name, '') || ' ' || coalesce(cu.last_name, '')), '') AS name,
    COALESCE(c.customer_email, cu.email) AS email,
    c.status, c.updated_at, c.deleted_at
FROM best JOIN conversations c ON c.id = best.conversation_id
LEFT JOIN customers cu ON cu.id = c.customer_id
{deleted}
ORDER BY best.rank, c.updated_at DESC, c.id DESC
LIMIT ?"""
    cursor = conn.execute(sql, [*terms, limit])
    names = ["id", "number", "subject", "customer_name", "customer_email", "status"]
    names += ["updated_at", "deleted_at"]
    results = [dict(zip(names, row, strict=True)) for row in cursor]
    if not include_deleted:
        for row in results:
            row.pop("deleted_at")
    return results
