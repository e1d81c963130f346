"""`etl_state`: what a mirror knows of itself (its source, how far a backfill got), by name."""

from __future__ import annotations

import sqlite3

from etl.timeutil import now as now_text


def get_state(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM etl_state WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def set_state(conn: sqlite3.Connection, name: str, value: str | None) -> None:
    """Set (or with None, remove) one value; the caller owns the commit."""
    if value is None:
        conn.execute("DELETE FROM etl_state WHERE name = ?", (name,))
        return
    conn.execute(
        "INSERT INTO etl_state (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) "
        "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (name, value, now_text()),
    )
