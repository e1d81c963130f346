"""Mirrors for export, search and backup tests: synced from the sandbox over loopback HTTP."""

from __future__ import annotations

import sqlite3

from etl import mirror
from etl.client import Client
from etl.sync import SyncOptions, sync


def sync_into(sandbox, path, **options) -> None:
    """Sync the sandbox into the mirror at `path` (created if needed) and close it."""
    db = mirror.open_mirror(path)
    try:
        sync(Client(sandbox.url, sandbox.api_key), db.conn, SyncOptions(**options))
    finally:
        db.conn.close()


def rows(path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def scalar(path, sql: str, params=()):
    return rows(path, sql, params)[0][0]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """Run `etl ARGS` in this process: its exit code, stdout and stderr."""
    import pytest

    from etl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
