"""The staging area of `etl migrate`: a source's records as its API returned them, in `--db`.

Database only, no HTTP. A staging is bound to its source: the first migration records the
source's address, and a database that holds another account's records refuses to mix them
in. Records are upserted by (system, kind, id), so reading a record again replaces it. The
cursor of each stream is written in the same transaction as the records of its page, so a
killed run never leaves a cursor past what it saved and the next run goes on from there.

Attachment files are kept in the database's files folder (`migration.db` ->
`migration-files/`, as `etl.files` keeps the mirror's), one file per content (`ab/abcd…`, its
SHA-256):
files are written before the transaction that records them, so a killed run leaves at most
a file that no record names yet, which the next download of it reuses.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from etl.errors import EtlError
from etl.files import folder_for
from etl.timeutil import now as now_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS etl_staging_sources (
    system TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    created_at TEXT
);
CREATE TABLE IF NOT EXISTS etl_staged (
    system TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    updated_at TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (system, kind, id)
);
CREATE TABLE IF NOT EXISTS etl_staged_files (
    system TEXT NOT NULL,
    url TEXT NOT NULL,
    sha256 TEXT,
    content_type TEXT,
    size INTEGER,
    PRIMARY KEY (system, url)
);
CREATE TABLE IF NOT EXISTS etl_staging_cursors (
    system TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor TEXT,
    updated_at TEXT,
    PRIMARY KEY (system, stream)
);
"""


class StagingMismatch(EtlError):
    """The database stages another account of the same system."""

    exit_code = 2


@dataclass(frozen=True)
class StagedFile:
    sha256: str | None  # None: the source no longer has it
    content_type: str | None
    size: int | None


def source_key(url: str) -> str:
    """A source address as the staging names it: scheme, host and path, no user or password."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme.lower()}://{host}{parts.path.rstrip('/')}"


def files_folder(db_path: str | os.PathLike) -> Path:
    """The database's files folder, which the mirror's stored attachments share: one
    content-addressed folder per database (`migration.db` -> `migration-files/`)."""
    return folder_for(db_path)


class Staging:
    """One source's staged records in a database; `files` is the attachments' folder."""

    def __init__(self, conn: sqlite3.Connection, system: str, url: str, files: Path):
        self.conn, self.system, self.url, self.files = conn, system, source_key(url), files
        with conn:
            conn.executescript(SCHEMA)

    def bind(self) -> None:
        """Record the source on first use; refuse a database that stages another account."""
        row = self.conn.execute(
            "SELECT url FROM etl_staging_sources WHERE system = ?", (self.system,)
        ).fetchone()
        if row is None:
            with self.conn:
                self.conn.execute(
                    "INSERT INTO etl_staging_sources (system, url, created_at) VALUES (?, ?, ?)",
                    (self.system, self.url, now_text()),
                )
        elif row[0] != self.url:
            raise StagingMismatch(
                f"this database stages the {self.system} account {row[0]}, not {self.url}: "
                "pass another --db for another account"
            )

    # -- reading ---------------------------------------------------------------------------

    def cursor(self, stream: str) -> str | None:
        row = self.conn.execute(
            "SELECT cursor FROM etl_staging_cursors WHERE system = ? AND stream = ?",
            (self.system, stream),
        ).fetchone()
        return row[0] if row else None

    def records(self, kind: str) -> dict[str, dict]:
        """Every staged record of a kind, by id."""
        cursor = self.conn.execute(
            "SELECT id, data FROM etl_staged WHERE system = ? AND kind = ?", (self.system, kind)
        )
        return {row[0]: json.loads(row[1]) for row in cursor}

    def updated_at(self, kind: str, ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(ids)
        if not ids:
            return {}
        marks = ",".join("?" for _ in ids)
        cursor = self.conn.execute(
            f"SELECT id, updated_at FROM etl_staged WHERE system = ? AND kind = ? "
            f"AND id IN ({marks})",
            (self.system, kind, *ids),
        )
        return dict(cursor.fetchall())

    def file(self, url: str) -> StagedFile | None:
        row = self.conn.execute(
            "SELECT sha256, content_type, size FROM etl_staged_files WHERE system = ? AND url = ?",
            (self.system, url),
        ).fetchone()
        return StagedFile(*row) if row else None

    def files_by_url(self) -> dict[str, StagedFile]:
        cursor = self.conn.execute(
            "SELECT url, sha256, content_type, size FROM etl_staged_files WHERE system = ?",
            (self.system,),
        )
        return {row[0]: StagedFile(*row[1:]) for row in cursor}

    def file_path(self, sha256: str) -> Path:
        return self.files / sha256[:2] / sha256

    def count(self, kind: str) -> int:
        return self.conn.execute(
            "SELECT count(*) FROM etl_staged WHERE system = ? AND kind = ?", (self.system, kind)
        ).fetchone()[0]

    # -- writing -----------------------------------------------------------------------------

    def keep_file(self, data: bytes) -> str:
        """Write a file's content (once per content) and return its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.file_path(digest)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            # A name of its own: two downloads of one content may finish together.
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as f:
                f.write(data)
            os.replace(f.name, path)
        return digest

    def save_page(
        self,
        records: Iterable[tuple[str, str, str | None, dict | list]],
        files: Iterable[tuple[str, StagedFile]],
        cursor: tuple[str, str] | None,
    ) -> None:
        """Records (kind, id, updated_at, data), files (url, file) and the cursor they justify,
        in one transaction."""
        with self.conn:
            self.conn.executemany(
                "INSERT INTO etl_staged (system, kind, id, updated_at, data) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (system, kind, id) DO UPDATE SET "
                "updated_at = excluded.updated_at, data = excluded.data",
                [
                    (self.system, kind, str(ident), updated, json.dumps(data, ensure_ascii=False))
                    for kind, ident, updated, data in records
                ],
            )
            self.conn.executemany(
                "INSERT INTO etl_staged_files (system, url, sha256, content_type, size) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (system, url) DO UPDATE SET "
                "sha256 = excluded.sha256, content_type = excluded.content_type, "
                "size = excluded.size",
                [(self.system, url, f.sha256, f.content_type, f.size) for url, f in files],
            )
            if cursor is not None:
                self.conn.execute(
                    "INSERT INTO etl_staging_cursors (system, stream, cursor, updated_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (system, stream) DO UPDATE SET "
                    "cursor = excluded.cursor, updated_at = excluded.updated_at",
                    (self.system, cursor[0], cursor[1], now_text()),
                )
