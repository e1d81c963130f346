"""Timelogs for the conversations that syncs without `--timelogs` left without them.

A sync reads timelogs embedded in the conversations it reads, which are only those changed
since its cursor. So when `--timelogs` is first given on a mirror synced without it, or again
after syncs without it, the conversations those syncs read have no (or stale) timelogs, and
an incremental sync never reads them again. `etl_state` keeps `timelogs_through`, the
conversations cursor up to which timelogs are known to be current; the conversations mirrored
between it and the cursor a sync starts from are read once each from
`api/conversations/{id}/timelogs` (one request per conversation), in id order, the progress
committed with the rows so an interrupted backfill goes on where it stopped.
"""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from etl import mirror, records
from etl.client import Client
from etl.errors import NotFound
from etl.interrupt import deferred_interrupt
from etl.paging import iter_pages
from etl.progress import Progress, silent
from etl.state import get_state, set_state

THROUGH = "timelogs_through"
PROGRESS = "timelogs_backfill"
CHUNK = 50  # conversations per transaction


@dataclass(frozen=True)
class Gap:
    """Conversations whose timelogs no sync read: `updated_at` from `after` up to `until`."""

    after: str | None  # None: since the beginning
    until: str


@dataclass
class Backfilled:
    conversations: int = 0
    timelogs: int = 0
    requests: int = 0


def timelogs_gap(conn: sqlite3.Connection) -> Gap | None:
    """What a sync with timelogs must backfill, read before it moves the cursor.

    None for a mirror with no conversations cursor: its first sync reads every conversation,
    timelogs embedded.
    """
    cursor = mirror.get_cursor(conn, "conversations")
    if cursor is None:
        return None
    through = get_state(conn, THROUGH)
    if through is not None and through >= cursor:
        return None
    return Gap(through, cursor)


def backfill_timelogs(
    client: Client,
    conn: sqlite3.Connection,
    gap: Gap | None,
    workers: int = 4,
    progress: Progress = silent,
    done: Backfilled | None = None,
) -> Backfilled:
    """Read the timelogs of the conversations in `gap`, then record timelogs as current.

    Call it after a sync with timelogs has completed: every conversation it read came with its
    timelogs, so once the gap is filled they are current up to the conversations cursor.
    `done`, when given, is filled as chunks commit, so a caller still knows what was done
    when this stops early.
    """
    done = done if done is not None else Backfilled()
    if gap is not None:
        _fill(client, conn, gap, workers, progress, done)
    with conn:
        set_state(conn, THROUGH, mirror.get_cursor(conn, "conversations"))
    return done


def _fill(client, conn, gap: Gap, workers: int, progress: Progress, done: Backfilled) -> None:
    ids = _pending(conn, gap)
    bar = progress("timelogs", len(ids))
    first_request = client.requests_made
    try:
        with deferred_interrupt() as stop, ThreadPoolExecutor(max(1, workers)) as pool:
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                found = pool.map(lambda cid: _timelogs_of(client, cid), chunk)
                rows = [
                    records.timelog_row(log, cid)
                    for cid, logs in zip(chunk, found, strict=True)
                    for log in logs
                ]
                with conn:
                    mirror.replace_children(conn, "timelogs", chunk, rows)
                    progress_made = {"after": gap.after, "after_id": chunk[-1]}
                    set_state(conn, PROGRESS, json.dumps(progress_made))
                done.conversations += len(chunk)
                done.timelogs += len(rows)
                bar.update(len(chunk))
                stop.check()
    finally:
        bar.close()
        done.requests = client.requests_made - first_request
    with conn:
        set_state(conn, PROGRESS, None)


def _pending(conn: sqlite3.Connection, gap: Gap) -> list[int]:
    """The gap's conversations in id order, after those an interrupted backfill did."""
    saved = json.loads(get_state(conn, PROGRESS) or "{}")
    after_id = saved.get("after_id", 0) if saved.get("after") == gap.after else 0
    where = "deleted_at IS NULL AND updated_at <= ? AND id > ?"
    params: list = [gap.until, after_id]
    if gap.after is not None:
        where += " AND updated_at >= ?"
        params.append(gap.after)
    query = f"SELECT id FROM conversations WHERE {where} ORDER BY id"
    return [row[0] for row in conn.execute(query, params)]


def _timelogs_of(client: Client, conversation_id: int) -> list[dict]:
    """Every timelog of one conversation; none for a conversation the source no longer has."""
    path = f"api/conversations/{conversation_id}/timelogs"
    try:
        return [log for page in iter_pages(client, path, "timelogs") for log in page.items]
    except NotFound:
        return []
