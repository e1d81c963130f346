"""The load ledger: which source record became which target record, kept in the mirror's file.

One row per (target, source system, kind, source id). States:

- `sending`  the intent is recorded and a create may be on its way: on a rerun the target is
             searched for the record before anything is created again;
- `created`  the target id is known, follow-up calls (tags) may still be missing;
- `done`     loaded (or an existing target record was reused: `existing` = 1);
- `rejected` not loaded, with the reason; `--retry-rejects` picks these up.

The fingerprint is a hash of what was sent, so a rerun can tell which source rows changed since
they were loaded. `expected` holds what the target should show (for `etl verify`); a
conversation's threads are `[type, createdAt, body digest, files]`, oldest first, where `files`
lists each attachment sent as `{fileName, size, sha256}` (the bytes sent, so a file left out is
not there). Ledgers written before files were recorded hold threads of three elements: their
attachments are not compared. The ledger never holds the API key: the target is named by its
URL alone.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from etl.timeutil import now as now_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS etl_load_items (
    target TEXT NOT NULL,
    system TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_id TEXT NOT NULL,
    state TEXT NOT NULL,
    target_id INTEGER,
    existing INTEGER NOT NULL DEFAULT 0,
    fingerprint TEXT,
    expected TEXT,
    file TEXT,
    row INTEGER,
    reason TEXT,
    run_id INTEGER,
    updated_at TEXT,
    PRIMARY KEY (target, system, kind, source_id)
);
CREATE INDEX IF NOT EXISTS etl_load_items_target_id ON etl_load_items (target, kind, target_id);
CREATE TABLE IF NOT EXISTS etl_load_runs (
    id INTEGER PRIMARY KEY,
    target TEXT,
    system TEXT,
    kind TEXT,
    file TEXT,
    mapping TEXT,
    dry_run INTEGER,
    started_at TEXT,
    ended_at TEXT,
    status TEXT,
    counts TEXT
);
"""


@dataclass(frozen=True)
class Entry:
    source_id: str
    state: str
    target_id: int | None
    existing: bool
    fingerprint: str | None
    expected: dict | None
    file: str | None
    row: int | None
    reason: str | None


def thread_digest(body: str | None) -> str:
    """A thread body as `expected` keeps it: what load stored and verify compares."""
    return hashlib.sha1((body or "").encode("utf-8")).hexdigest()[:16]


FILE_HASH = "sha256"  # an attachment's content as `expected` keeps it


def file_digest(content: bytes) -> str:
    """An attachment's content as `expected` keeps it: what load records and verify compares."""
    return hashlib.new(FILE_HASH, content).hexdigest()


def target_key(url: str) -> str:
    """The target as the ledger names it: scheme and host in lower case, no default port or
    trailing slash, so `HTTPS://Help.Example.org:443/` and `https://help.example.org` match."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


def ensure_schema(conn: sqlite3.Connection) -> None:
    with conn:
        conn.executescript(SCHEMA)


# One lock per sqlite3 connection, whichever ledger writes through it: a connection takes one
# transaction at a time. (Connections take no weak references; an id reused by a later
# connection only shares a lock, which is safe.)
_LOCKS: dict[int, threading.RLock] = {}
_LOCKS_LOCK = threading.Lock()


def _connection_lock(conn: sqlite3.Connection) -> threading.RLock:
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(id(conn), threading.RLock())


class Ledger:
    """Ledger rows for one target, source system and kind; safe to share between threads.

    Every change is its own committed transaction: an entry on disk is never behind the call
    that it describes (the intent is committed before the create is sent).
    """

    def __init__(self, conn: sqlite3.Connection, target: str, system: str, kind: str):
        self.conn = conn
        self.target, self.system, self.kind = target_key(target), system, kind
        self.lock = _connection_lock(conn)
        ensure_schema(conn)

    def sibling(self, kind: str) -> Ledger:
        """The ledger of another kind on the same connection, sharing this one's lock (one
        sqlite3 connection takes one transaction at a time, whichever ledger writes)."""
        other = Ledger.__new__(Ledger)
        other.conn, other.lock = self.conn, self.lock
        other.target, other.system, other.kind = self.target, self.system, kind
        return other

    def _key(self, source_id: str) -> tuple[str, str, str, str]:
        return (self.target, self.system, self.kind, source_id)

    def entries(self) -> dict[str, Entry]:
        """Every entry of this target/system/kind, by source id."""
        with self.lock:
            cursor = self.conn.execute(
                "SELECT source_id, state, target_id, existing, fingerprint, expected, file, row, "
                "reason FROM etl_load_items WHERE target = ? AND system = ? AND kind = ?",
                (self.target, self.system, self.kind),
            )
            return {row[0]: _entry(row) for row in cursor.fetchall()}

    def get(self, source_id: str) -> Entry | None:
        with self.lock:
            row = self.conn.execute(
                "SELECT source_id, state, target_id, existing, fingerprint, expected, file, row, "
                "reason FROM etl_load_items WHERE target = ? AND system = ? AND kind = ? "
                "AND source_id = ?",
                self._key(source_id),
            ).fetchone()
        return _entry(row) if row else None

    def claimed_target_ids(self) -> set[int]:
        """Target ids any source record of this target and kind already owns (any system)."""
        with self.lock:
            cursor = self.conn.execute(
                "SELECT target_id FROM etl_load_items WHERE target = ? AND kind = ? "
                "AND target_id IS NOT NULL",
                (self.target, self.kind),
            )
            return {row[0] for row in cursor}

    def _write(self, source_id: str, **values: Any) -> None:
        values["updated_at"] = now_text()
        if "expected" in values and values["expected"] is not None:
            values["expected"] = json.dumps(values["expected"], ensure_ascii=False, sort_keys=True)
        columns = ["target", "system", "kind", "source_id", *values]
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in values)
        sql = (
            f"INSERT INTO etl_load_items ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT(target, system, kind, source_id) DO UPDATE SET {updates}"
        )
        with self.lock, self.conn:
            self.conn.execute(sql, [*self._key(source_id), *values.values()])

    def intend(
        self,
        source_id: str,
        fingerprint: str,
        expected: dict,
        file: str,
        row: int,
        run_id: int | None,
    ) -> None:
        """Record, before sending, that this record is about to be created."""
        self._write(
            source_id,
            state="sending",
            target_id=None,
            existing=0,
            fingerprint=fingerprint,
            expected=expected,
            file=file,
            row=row,
            reason=None,
            run_id=run_id,
        )

    def created(self, source_id: str, target_id: int, existing: bool = False) -> None:
        self._write(source_id, state="created", target_id=target_id, existing=int(existing))

    def done(self, source_id: str, target_id: int, existing: bool = False) -> None:
        self._write(source_id, state="done", target_id=target_id, existing=int(existing))

    def refresh(self, source_id: str, fingerprint: str, expected: dict) -> None:
        """What a loaded record should show now, after an update (its state stays `done`)."""
        with self.lock, self.conn:
            self.conn.execute(
                "UPDATE etl_load_items SET fingerprint = ?, expected = ?, updated_at = ? "
                "WHERE target = ? AND system = ? AND kind = ? AND source_id = ?",
                (
                    fingerprint,
                    json.dumps(expected, ensure_ascii=False, sort_keys=True),
                    now_text(),
                    *self._key(source_id),
                ),
            )

    def rejected(
        self,
        source_id: str,
        reason: str,
        file: str,
        row: int,
        run_id: int | None,
        fingerprint: str | None = None,
    ) -> None:
        self._write(
            source_id,
            state="rejected",
            target_id=None,
            reason=reason,
            file=file,
            row=row,
            run_id=run_id,
            fingerprint=fingerprint,
        )

    # -- runs ----------------------------------------------------------------------------

    def start_run(self, file: str, mapping: str, dry_run: bool) -> int:
        with self.lock, self.conn:
            cursor = self.conn.execute(
                "INSERT INTO etl_load_runs (target, system, kind, file, mapping, dry_run, "
                "started_at, status, counts) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', '{}')",
                (self.target, self.system, self.kind, file, mapping, int(dry_run), now_text()),
            )
        return int(cursor.lastrowid)

    def finish_run(self, run_id: int, status: str, counts: dict[str, int]) -> None:
        with self.lock, self.conn:
            self.conn.execute(
                "UPDATE etl_load_runs SET ended_at = ?, status = ?, counts = ? WHERE id = ?",
                (now_text(), status, json.dumps(counts, sort_keys=True), run_id),
            )


def _entry(row: tuple) -> Entry:
    expected = json.loads(row[5]) if row[5] else None
    return Entry(row[0], row[1], row[2], bool(row[3]), row[4], expected, row[6], row[7], row[8])


def loaded(
    conn: sqlite3.Connection, target: str, kind: str, system: str | None = None
) -> Iterator[tuple[str, Entry]]:
    """(system, entry) for every record loaded into a target (for `etl verify`)."""
    ensure_schema(conn)
    sql = (
        "SELECT system, source_id, state, target_id, existing, fingerprint, expected, file, row, "
        "reason FROM etl_load_items WHERE target = ? AND kind = ? AND state IN ('done', 'created')"
    )
    params: list[Any] = [target_key(target), kind]
    if system:
        sql += " AND system = ?"
        params.append(system)
    for row in conn.execute(sql + " ORDER BY system, row", params).fetchall():
        yield row[0], _entry(row[1:])


def targets(conn: sqlite3.Connection) -> list[str]:
    ensure_schema(conn)
    return [r[0] for r in conn.execute("SELECT DISTINCT target FROM etl_load_items")]


def recent_runs(conn: sqlite3.Connection, limit: int = 10) -> list[dict[str, Any]]:
    """The last load runs, newest first, with their counts (for `etl status`); reads only."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'etl_load_runs'"
    ).fetchone()
    if not exists:
        return []
    cursor = conn.execute(
        "SELECT id, target, system, kind, file, dry_run, started_at, ended_at, status, counts "
        "FROM etl_load_runs ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    names = [c[0] for c in cursor.description]
    runs = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for run in runs:
        run["counts"] = json.loads(run["counts"] or "{}")
    return runs


RUN_COUNTS = (
    ("records", "records"),
    ("created", "created"),
    ("updated", "updated"),
    ("on_target", "already on the target"),
    ("reused", "reused"),
    ("recovered", "created before a stop"),
    ("already_loaded", "already loaded"),
    ("changed", "changed"),
    ("rejected", "rejected"),
)


def run_line(run: dict[str, Any]) -> str:
    """`#3 conversations from FILE (system) into URL START -> END done: records 12, ...`"""
    counts = ", ".join(
        f"{label} {run['counts'][name]}" for name, label in RUN_COUNTS if run["counts"].get(name)
    )
    return (
        f"#{run['id']} {run['kind']} from {run['file']} ({run['system']}) into {run['target']} "
        f"{run['started_at']} -> {run['ended_at'] or '-'} {run['status']}: {counts or 'nothing'}"
    )
