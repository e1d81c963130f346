"""`--timelogs` enabled on a mirror synced without it fetches what the earlier syncs skipped."""

from __future__ import annotations

import json
import sqlite3

import pytest

from etl import backfill, mirror
from etl.cli import main
from etl.client import Client, RetryPolicy
from etl.errors import ApiError
from etl.sync import SyncOptions, sync


def cli_sync(sandbox, db, capsys, *flags):
    with pytest.raises(SystemExit) as exited:
        main(["sync", "--db", str(db), "--url", sandbox.url, "--api-key", sandbox.api_key, *flags])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    return out


def timelog_requests(sandbox) -> int:
    return sum(1 for _, path, _ in sandbox.request_log if path.endswith("/timelogs"))


def count(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_timelogs_enabled_later_are_backfilled_without_full_and_only_once(
    sandbox, tmp_path, capsys
):
    db = tmp_path / "m.db"
    cli_sync(sandbox, db, capsys)
    assert count(db, "SELECT count(*) FROM timelogs") == 0
    sandbox.store.update_conversation(1, subject="changed between the syncs")

    out = cli_sync(sandbox, db, capsys, "--timelogs")
    assert len(sandbox.store.timelogs) > 0
    assert count(db, "SELECT count(*) FROM timelogs") == len(sandbox.store.timelogs)
    assert timelog_requests(sandbox) == 119  # one per conversation mirrored before
    assert f"{'timelogs':<16}{len(sandbox.store.timelogs):>9}" in out
    # The run's record counts them too, and the backfill's requests.
    conn = sqlite3.connect(db)
    try:
        counts, requests, status = conn.execute(
            "SELECT counts, requests, status FROM etl_runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    assert json.loads(counts)["timelogs"] == len(sandbox.store.timelogs)
    assert requests > timelog_requests(sandbox) and status == "completed"

    sandbox.request_log.clear()
    cli_sync(sandbox, db, capsys, "--timelogs")  # nothing left to backfill
    assert timelog_requests(sandbox) == 0


def test_an_interrupted_backfill_goes_on_where_it_stopped(sandbox, tmp_path):
    db = mirror.open_mirror(tmp_path / "m.db")
    client = Client(sandbox.url, sandbox.api_key, retry=RetryPolicy(attempts=1))
    sync(client, db.conn, SyncOptions())
    gap = backfill.timelogs_gap(db.conn)
    served = []

    def fail_after_60(method, path, query):
        if path.endswith("/timelogs"):
            served.append(path)
            if len(served) > 60:
                raise RuntimeError("the network went away")

    sandbox.on_request = fail_after_60
    with pytest.raises(ApiError):
        backfill.backfill_timelogs(client, db.conn, gap, workers=1)
    assert backfill.get_state(db.conn, backfill.THROUGH) is None
    sandbox.on_request = None
    sandbox.request_log.clear()
    done = backfill.backfill_timelogs(client, db.conn, backfill.timelogs_gap(db.conn), workers=4)
    assert timelog_requests(sandbox) == done.conversations == 120 - backfill.CHUNK
    conn = db.conn
    assert conn.execute("SELECT count(*) FROM timelogs").fetchone()[0] == len(
        sandbox.store.timelogs
    )
    db.conn.close()
