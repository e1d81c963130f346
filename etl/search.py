"""Full-text search over the mirror: conversation subjects, thread text, customer names and emails.

One FTS5 table, `search_index`, holds a document per conversation (its subject as the title,
the plain text of its threads, oldest first, as the body) and per customer (name and every
email). A document's rowid encodes what it is, `id * 4 + kind`, so a hit leads back to its row
without a lookup table. A phrase may match across the end of one thread and the start of the
next.

The documents' text is stored once, in `search_docs`, which the index reads as its external
content. The writer makes each record's document from the rows it is about to write (they hold
the threads' text already) and stores it with them, so building the index never reads the
threads table back, nor keeps a copy of their text, which halves a first sync's closing
refresh.

The index is brought up to date in bulk, not row by row: the mirror journals the ids of the
conversations and customers each write touches (`etl_changes`, in the same transaction as the
rows), and `refresh` indexes just those, in one statement per kind. An external-content index
can only drop a document given the text it indexed, so a record written again leaves the
index before its stored document is replaced (`save_documents`); a pending record is never
in the index. The sync refreshes after each group of pages it commits and at its end, and
search and export refresh first, so even after a killed sync the index never disagrees with
the rows. Deletes go through triggers: a deleted conversation or customer takes its document
along, and a thread deleted outside a sync has its conversation's document made again from
the rows left.

Thread bodies are HTML; documents take their readable text from `threads.body_text`, which the
sync computes while transforming pages, so the index needs no SQL function of ours and any
SQLite client can read or write the mirror.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from typing import Any

from etl.errors import ConfigError

INDEX = "search_index"
DOCS = "search_docs"  # the documents' text, which the index reads as its external content
CONVERSATION, CUSTOMER = 1, 3  # 2 was a thread's, when threads had documents of their own
KINDS = {"conversations": CONVERSATION, "customers": CUSTOMER}
# Journal entries naming records whose document must be made again from their rows.
STALE = {"conversations": "conversation_documents", "customers": "customer_documents"}


def doc_id(kind: int, record_id: int) -> int:
    return record_id * 4 + kind


def conversation_document(record_id: int, subject: Any, texts: Iterable[Any]) -> tuple:
    """A conversation's document: its subject, and its threads' text oldest first.

    The same as `_CONVERSATION_ROWS` makes from the mirror (`group_concat` skips NULLs).
    """
    body = [text for text in texts if text is not None]
    return (doc_id(CONVERSATION, record_id), subject, "\n".join(body) if body else None)


def customer_document(
    record_id: int, first: Any, last: Any, email: Any, emails: Iterable[Any]
) -> tuple:
    """A customer's document: the name, then every email. As `_CUSTOMER_ROWS` makes it."""
    listed = " ".join(e for e in emails if e is not None)
    title = f"{first or ''} {last or ''}".strip(" ")
    return (doc_id(CUSTOMER, record_id), title, f"{email or ''} {listed}".strip(" "))


def _grouped(rows: list[dict] | None, key: str, value: str) -> dict[Any, list[Any]] | None:
    """A child table's `value` column by parent, in row order; None if a column is missing."""
    if not rows:
        return {}
    if key not in rows[0] or value not in rows[0]:
        return None
    grouped: dict[Any, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row[key], []).append(row[value])
    return grouped


def _documents(table: str, batch: dict[str, list[dict]], ids: set[int]) -> list[tuple] | None:
    """The documents of a batch's records, from the rows about to be written.

    None when the batch lacks a column a document needs (it is then made from the rows).
    """
    parents = [row for row in batch[table] if row["id"] in ids]
    if table == "conversations":
        texts = _grouped(batch.get("threads"), "conversation_id", "body_text")
        if texts is None or any("subject" not in row for row in parents):
            return None
        return [
            conversation_document(row["id"], row["subject"], texts.get(row["id"], ()))
            for row in parents
        ]
    emails = _grouped(batch.get("customer_emails"), "customer_id", "value")
    names = ("first_name", "last_name", "email")
    if emails is None or any(name not in row for row in parents for name in names):
        return None
    return [
        customer_document(
            row["id"], row["first_name"], row["last_name"], row["email"], emails.get(row["id"], ())
        )
        for row in parents
    ]


def _trigger(name: str, when: str, body: str) -> tuple[str, str]:
    return name, f"CREATE TRIGGER {name} {when}\nBEGIN\n  {body}\nEND"


def _pending(table: str, ref: str) -> str:
    return f"EXISTS (SELECT 1 FROM etl_changes WHERE table_name = '{table}' AND id = {ref})"


def _unindex(where: str) -> str:
    """Take documents out of the index; an external-content index needs their indexed text."""
    return (
        f"INSERT INTO {INDEX} ({INDEX}, rowid, title, body) "
        f"SELECT 'delete', doc_id, title, body FROM {DOCS} WHERE {where}"
    )


# In arrival order, like the mirror's big tables: keyed by `doc_id`, documents arriving in
# `updatedAt` order would each go to a random leaf of the table's B-tree.
DOCS_SQL = f"CREATE TABLE {DOCS} (doc_id INTEGER NOT NULL UNIQUE, title TEXT, body TEXT)"
TABLE_SQL = (
    f"CREATE VIRTUAL TABLE {INDEX} USING fts5(title, body, content='{DOCS}', "
    "content_rowid='doc_id', tokenize = 'unicode61 remove_diacritics 2')"
)


def _deleted_record(table: str, kind: int) -> str:
    where = f"doc_id = old.id * 4 + {kind} AND NOT {_pending(table, 'old.id')}"
    return f"{_unindex(where)};\n  DELETE FROM {DOCS} WHERE doc_id = old.id * 4 + {kind};"


TRIGGERS = dict(
    (
        _trigger(
            "search_conversation_delete",
            "AFTER DELETE ON conversations",
            _deleted_record("conversations", CONVERSATION),
        ),
        # A thread removed outside a sync (a sync rewrites the document with the conversation,
        # which it has journaled by then): the document is made again from the rows left.
        _trigger(
            "search_thread_delete",
            f"AFTER DELETE ON threads WHEN NOT {_pending('conversations', 'old.conversation_id')}",
            _unindex(f"doc_id = old.conversation_id * 4 + {CONVERSATION}") + ";\n"
            "  INSERT OR IGNORE INTO etl_changes (table_name, id) "
            "VALUES ('conversations', old.conversation_id);\n"
            "  INSERT OR IGNORE INTO etl_changes (table_name, id) "
            f"VALUES ('{STALE['conversations']}', old.conversation_id);",
        ),
        _trigger(
            "search_customer_delete",
            "AFTER DELETE ON customers",
            _deleted_record("customers", CUSTOMER),
        ),
    )
)

# Documents made from the mirror's rows, for a rebuild and for records journaled as stale.
# Threads of a conversation come from its index in rowid order, which is the order a sync
# wrote them: oldest first.
_CONVERSATION_ROWS = (
    f"SELECT c.id * 4 + {CONVERSATION}, c.subject, (SELECT group_concat(t.body_text, char(10)) "
    "FROM threads t WHERE t.conversation_id = c.id) FROM conversations c"
)
_CUSTOMER_ROWS = (
    f"SELECT cu.id * 4 + {CUSTOMER}, "
    "trim(coalesce(cu.first_name, '') || ' ' || coalesce(cu.last_name, '')), "
    "trim(coalesce(cu.email, '') || ' ' || coalesce((SELECT group_concat(e.value, ' ') "
    "FROM customer_emails e WHERE e.customer_id = cu.id), '')) FROM customers cu"
)
_ROWS = {"conversations": (_CONVERSATION_ROWS, "c.id"), "customers": (_CUSTOMER_ROWS, "cu.id")}
_JOURNALED = "(SELECT id FROM etl_changes WHERE table_name = '{}')"
# Pending documents in ascending rowid order, one kind after the other, as FTS5 likes them.
INDEX_PENDING = tuple(
    f"INSERT INTO {INDEX} (rowid, title, body) SELECT doc_id, title, body FROM {DOCS} "
    f"WHERE doc_id IN (SELECT id * 4 + {kind} FROM etl_changes WHERE table_name = '{table}') "
    "ORDER BY doc_id"
    for table, kind in KINDS.items()
)
_JOURNAL_NAMES = ", ".join(f"'{name}'" for name in (*KINDS, *STALE.values()))
CLEAR_JOURNAL = f"DELETE FROM etl_changes WHERE table_name IN ({_JOURNAL_NAMES})"


def _current(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE (type = 'trigger' AND name LIKE 'search\\_%' "
        "ESCAPE '\\') OR name IN (?, ?)",
        (INDEX, DOCS),
    )
    return dict(rows)


def install(conn: sqlite3.Connection) -> bool:
    """Create (and fill) the index if missing or stale; the mirror calls it when it opens.

    Returns True when the index was (re)built. Building reads every thread once, inside one
    transaction, so a mirror that already holds rows is searchable as soon as it opens.
    """
    wanted = {DOCS: DOCS_SQL, INDEX: TABLE_SQL, **TRIGGERS}
    if _current(conn) == wanted:
        return False
    conn.execute("SAVEPOINT etl_search_install")
    try:
        current = _current(conn)
        for name in (n for n in current if n not in (INDEX, DOCS)):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute(f"DROP TABLE IF EXISTS {INDEX}")
        conn.execute(f"DROP TABLE IF EXISTS {DOCS}")
        conn.execute(DOCS_SQL)
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
    """Make every document again from the mirror's rows and index them (the caller commits)."""
    conn.execute(f"INSERT INTO {INDEX} ({INDEX}) VALUES ('delete-all')")
    conn.execute(f"DELETE FROM {DOCS}")
    for rows, _ in _ROWS.values():
        conn.execute(f"INSERT INTO {DOCS} (doc_id, title, body) {rows}")
    conn.execute(f"INSERT INTO {INDEX} ({INDEX}) VALUES ('rebuild')")
    conn.execute(CLEAR_JOURNAL)


def _installed(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (INDEX,)).fetchone() is not None
    )


def save_documents(
    conn: sqlite3.Connection, table: str, batch: dict, ids: set[int], mirrored: set[int]
) -> set[int]:
    """Store the documents of a batch's records before they are journaled (`save_records`).

    Every document the index holds is the one stored in `search_docs` (an external-content
    index can only take a document out given its indexed text), so a record mirrored before
    and not yet pending leaves the index first; its new document waits for `refresh`. The
    documents are made here from the batch's rows, which hold the threads' text already.

    Returns the records whose indexed document is already the one they would get, which need
    no journaling: an incremental sync re-reads the second its cursor stopped in, and a
    retagged conversation keeps its text, so after a retagging the closing refresh has
    nothing left to do.
    """
    kind = KINDS.get(table)
    if kind is None or not ids or not _installed(conn):
        return set()
    documents = _documents(table, batch, ids)
    before = sorted(ids & mirrored)
    indexed: dict[int, tuple] = {}
    if before:
        indexed_now = (
            f"doc_id IN (SELECT value * 4 + {kind} FROM json_each(?)) "
            f"AND doc_id / 4 NOT IN {_JOURNALED.format(table)}"
        )
        rows = conn.execute(
            f"SELECT doc_id, title, body FROM {DOCS} WHERE {indexed_now}", (json.dumps(before),)
        )
        indexed = {row[0]: row for row in rows}
    unchanged = {d[0] for d in documents or () if indexed.get(d[0]) == d}
    if len(unchanged) < len(indexed):
        changed = [doc for doc in indexed if doc not in unchanged]
        conn.execute(_unindex("doc_id IN (SELECT value FROM json_each(?))"), (json.dumps(changed),))
    if documents is None:  # journaled to be made from the rows at the next refresh
        conn.executemany(
            "INSERT OR IGNORE INTO etl_changes (table_name, id) VALUES (?, ?)",
            [(STALE[table], i) for i in ids],
        )
        return set()
    conn.executemany(
        f"INSERT OR REPLACE INTO {DOCS} (doc_id, title, body) VALUES (?, ?, ?)",
        [doc for doc in documents if doc[0] not in unchanged],
    )
    return {doc // 4 for doc in unchanged}


def refresh(conn: sqlite3.Connection) -> int:
    """Index the conversations and customers written since the last refresh; commits.

    Returns how many records were indexed (0 on a mirror opened without the index).
    """
    if not _installed(conn):
        return 0
    pending = conn.execute(
        "SELECT count(*) FROM etl_changes WHERE table_name IN ('conversations', 'customers')"
    ).fetchone()[0]
    if pending:
        with conn:
            for table, (rows, key) in _ROWS.items():
                stale = _JOURNALED.format(STALE[table])
                if conn.execute(f"SELECT EXISTS {stale}").fetchone()[0]:
                    conn.execute(
                        f"INSERT OR REPLACE INTO {DOCS} (doc_id, title, body) {rows} "
                        f"WHERE {key} IN {stale}"
                    )
            for sql in INDEX_PENDING:
                conn.execute(sql)
            conn.execute(CLEAR_JOURNAL)
    return pending


# -- queries ----------------------------------------------------------------------------------

_TERM = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w", re.UNICODE)
# Scripts written without spaces between words: kana, CJK ideographs, Hangul syllables.
_CJK = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\uff66-\uff9f]"
)
VOCAB = "search_vocab"  # fts5vocab over the index, in the connection's temp schema
MARK = ("[", "]")  # around each match in a snippet
_OPEN, _CLOSE = "\x02", "\x03"  # snippet markers while the snippet is refined


def fts_terms(query: str) -> list[str]:
    """Each word or "quoted phrase" of a query as an FTS5 phrase; a trailing * matches prefixes.

    Quoting every term means punctuation (emails, `refund-policy`, `C++`) is searched as words
    rather than parsed as FTS5 syntax, so no query can be a syntax error.
    """
    return [fts for fts, _ in _terms(query)]


def _terms(query: str) -> list[tuple[str, str | None]]:
    """(FTS5 phrase, the bare CJK word it stands for, if it is one) for each term of a query."""
    terms = []
    for phrase, word in _TERM.findall(query):
        text = phrase if phrase else word
        prefix = text.endswith("*") and not phrase
        text = text.rstrip("*") if prefix else text
        if not _WORD.search(text):
            continue
        fts = '"' + text.replace('"', '""') + '"'
        cjk = not phrase and not prefix and len(text) >= 2 and _CJK.search(text)
        terms.append((f"{fts} *" if prefix else fts, text.lower() if cjk else None))
    return terms


def _within_tokens(conn: sqlite3.Connection, fts: str, word: str) -> str:
    """A CJK word as every indexed token that holds it.

    The unicode61 tokenizer keeps a run of Chinese or Japanese text, which has no spaces, as
    one token (`返金について`), so a word is matched inside the tokens of the index's own
    vocabulary rather than only as a whole token or a prefix.
    """
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{VOCAB} USING fts5vocab(main, {INDEX}, row)"
    )
    tokens = [
        '"' + token.replace('"', '""') + '"'
        for (token,) in conn.execute(
            f"SELECT term FROM temp.{VOCAB} WHERE instr(term, ?) > 0", (word,)
        )
    ]
    return f"({' OR '.join(dict.fromkeys([fts, *tokens]))})"


def match_terms(conn: sqlite3.Connection, query: str) -> tuple[list[str], list[str]]:
    """The FTS5 expression of each term (CJK words widened to the tokens holding them), and the
    CJK words, which a snippet marks inside their tokens."""
    terms = _terms(query)
    expressions = [_within_tokens(conn, fts, word) if word else fts for fts, word in terms]
    return expressions, [word for _, word in terms if word]


def snippet(
    conn: sqlite3.Connection, result: dict[str, Any], expressions: list[str], words: list[str]
) -> str | None:
    """A few words around the first matches in the conversation (else its customer), each
    match marked: `…asked for a [refund] last week…`."""
    either = " OR ".join(expressions)
    for rowid in (doc_id(CONVERSATION, result["id"]), result.get("customer_doc")):
        if rowid is None:
            continue
        found = conn.execute(
            f"SELECT snippet({INDEX}, -1, ?, ?, '…', 16) FROM {INDEX} "
            f"WHERE {INDEX} MATCH ? AND rowid = ?",
            (_OPEN, _CLOSE, either, rowid),
        ).fetchone()
        if found and found[0]:
            return _marked(" ".join(found[0].split()), words)
    return None


def _marked(text: str, words: list[str]) -> str:
    """Markers as shown; a CJK token's marker narrowed to the words found in it."""
    within = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.I)

    def narrow(match: re.Match) -> str:
        token = match.group(1)
        narrowed = within.sub(lambda m: f"{_OPEN}{m.group(0)}{_CLOSE}", token)
        return (
            narrowed
            if narrowed != f"{_OPEN}{token}{_CLOSE}" and _OPEN in narrowed
            else match.group(0)
        )

    if words:
        text = re.sub(f"{_OPEN}([^{_CLOSE}]*){_CLOSE}", narrow, text)
    return text.replace(_OPEN, MARK[0]).replace(_CLOSE, MARK[1])


def search(
    conn: sqlite3.Connection, query: str, limit: int = 50, include_deleted: bool = False
) -> list[dict[str, Any]]:
    """Conversations where every term appears in the subject, a thread, or the customer.

    Terms may match different documents of the same conversation (its own and its customer's).
    Best matches first (BM25), newest first among equals. Each result has a `snippet` of the
    text around its matches, marked (see `snippet`).
    """
    if not fts_terms(query):
        raise ConfigError(f"nothing to search for in {query!r}: give at least one word")
    refresh(conn)
    terms, words = match_terms(conn, query)
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
    c.status, c.updated_at, c.deleted_at, c.customer_id * 4 + {CUSTOMER}
FROM best JOIN conversations c ON c.id = best.conversation_id
LEFT JOIN customers cu ON cu.id = c.customer_id
{deleted}
ORDER BY best.rank, c.updated_at DESC, c.id DESC
LIMIT ?"""
    cursor = conn.execute(sql, [*terms, limit])
    names = ["id", "number", "subject", "customer_name", "customer_email", "status"]
    names += ["updated_at", "deleted_at", "customer_doc"]
    results = [dict(zip(names, row, strict=True)) for row in cursor]
    for row in results:
        row["snippet"] = snippet(conn, row, terms, words)
        row.pop("customer_doc")
        if not include_deleted:
            row.pop("deleted_at")
    return results
