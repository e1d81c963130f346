"""Full-text search in Datasette: views over the search index by record id, and a metadata
file beside the mirror that names them for the tables and sheets.

Datasette searches a table through an FTS table whose rowids are the table's keys
(`id IN (SELECT rowid FROM fts WHERE fts MATCH ...)`). The mirror's one index numbers its
documents `id * 4 + kind`, so `conversations_fts` and `customers_fts` are views giving each
kind's documents their record's id as rowid; MATCH goes through a view to the index. The
index itself (`search_index`) Datasette finds by itself. `datasette smarticks.db --metadata
smarticks.datasette.json` then shows a search box on conversations, customers and their sheets.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import Any

from etl.search import CONVERSATION, CUSTOMER, INDEX

FTS_VIEWS = {"conversations_fts": CONVERSATION, "customers_fts": CUSTOMER}
SEARCHABLE = {
    "conversations": "conversations_fts",
    "conversations_sheet": "conversations_fts",
    "customers": "customers_fts",
    "customers_sheet": "customers_fts",
}


def fts_view_sql(name: str, kind: int) -> str:
    return (
        f"CREATE VIEW {name} AS SELECT rowid >> 2 AS rowid, {INDEX} AS {name}, title, body "
        f"FROM {INDEX} WHERE rowid % 4 = {kind}"
    )


def fts_views(conn: sqlite3.Connection) -> dict[str, str]:
    """The views over the index, by name, with their SQL (none before the index exists)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (INDEX,)).fetchone() is None:
        return {}
    return {name: fts_view_sql(name, kind) for name, kind in FTS_VIEWS.items()}


def metadata_path(mirror_path: str | os.PathLike) -> Path:
    """`smarticks.db` -> `smarticks.datasette.json`, beside it."""
    path = Path(mirror_path)
    return path.with_name(f"{path.stem}.datasette.json")


def metadata(database: str) -> dict[str, Any]:
    """Datasette metadata: which FTS view searches each table, by its `id`."""
    tables: dict[str, Any] = {
        table: {"fts_table": fts, "fts_pk": "id"} for table, fts in SEARCHABLE.items()
    }
    tables["search_docs"] = {"fts_table": INDEX, "fts_pk": "doc_id", "hidden": True}
    for view in FTS_VIEWS:
        tables[view] = {"hidden": True}
    return {
        "title": "Smarticks mirror",
        "description": "Written by smarticks-etl: full-text search on conversations, "
        "customers and their sheets.",
        "databases": {database: {"tables": tables}},
    }


def write_metadata(conn: sqlite3.Connection) -> Path | None:
    """Write the metadata file beside the mirror's file, if it is missing or different.

    A mirror in a folder we cannot write to is still opened: the file is left out.
    """
    row = conn.execute("PRAGMA database_list").fetchone()
    if not row or not row[2]:
        return None  # in memory
    path = metadata_path(row[2])
    text = json.dumps(metadata(Path(row[2]).stem), indent=2) + "\n"
    with suppress(OSError):
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return path
        part = path.with_name(path.name + ".part")
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
        return path
    return None
