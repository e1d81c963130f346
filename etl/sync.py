"""Extract: API pages -> mirror rows, one transaction per page, cursor written with the rows.

Incremental resources (customers, conversations) are walked in `updatedAt` order with a keyset
on `updatedSince` (see `client.iter_pages`), starting one second before the stored cursor so
records sharing the cursor's second are read again rather than missed; upserts make the
re-read harmless. Small resources are read whole on every run.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from etl import mirror, search
from etl.client import Client, iter_pages, one_second_before
from etl.errors import EtlError
from etl.fetch import Segment, fetch_segment, merge, rows_for
from etl.interrupt import StopFlag, deferred_interrupt
from etl.parallel import can_fork, interleave, interleave_processes
from etl.progress import Progress, silent
from etl.resources import ALL, Resource, with_timelogs

CHILDREN = {
    "conversations": [
        "threads",
        "attachments",
        "conversation_tags",
        "conversation_custom_fields",
    ],
    "customers": [
        "customer_emails",
        "customer_phones",
        "customer_social_profiles",
        "customer_websites",
        "customer_fields",
    ],
}


@dataclass
class SyncOptions:
    full: bool = False
    timelogs: bool = False
    page_size: int = 100
    workers: int = 4
    processes: bool = True  # read big lists in child processes where the OS can fork
    resources: tuple[str, ...] = ()  # empty: all


@dataclass
class SyncResult:
    run_id: int
    counts: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    requests_elsewhere: int = 0  # made by child processes, which have their own clients
    status: str = "running"


def sync(
    client: Client,
    conn: sqlite3.Connection,
    options: SyncOptions | None = None,
    progress: Progress = silent,
    command: str = "sync",
) -> SyncResult:
    """Mirror every resource. Records the run; re-raises failures after recording them."""
    options = options or SyncOptions()
    selected = [r for r in ALL if not options.resources or r.name in options.resources]
    result = SyncResult(run_id=mirror.start_run(conn, command, options.full))
    first_request = client.requests_made
    errors: list[str] = []
    try:
        with deferred_interrupt() as stop:
            search.refresh(conn)  # whatever a killed run left un-indexed
            for resource in selected:
                if resource.name == "conversations" and options.timelogs:
                    resource = with_timelogs(resource)
                sync_one = _sync_incremental if resource.incremental else _sync_whole
                sync_one(client, conn, resource, options, progress, result, stop)
                stop.check()
        result.status = "completed"
    except KeyboardInterrupt:
        result.status = "interrupted"
        errors.append("interrupted")
        raise
    except EtlError as exc:
        result.status = "failed"
        errors.append(str(exc))
        raise
    except Exception as exc:
        result.status = "failed"
        errors.append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if result.status != "interrupted":
            search.refresh(conn)
        result.requests = client.requests_made - first_request + result.requests_elsewhere
        counts = dict(result.counts)
        counts.update({f"{k}_deleted": v for k, v in result.deleted.items()})
        mirror.finish_run(conn, result.run_id, result.status, counts, result.requests, errors)
    return result


def _sync_whole(
    client, conn, resource: Resource, options, progress, result: SyncResult, stop: StopFlag
) -> None:
    """Read a small resource completely; rows missing at the source get `deleted_at`."""
    synced_at = mirror.now_text()
    if resource.per_mailbox:
        scopes = [row[0] for row in conn.execute("SELECT id FROM mailboxes ORDER BY id")]
    else:
        scopes = [None]
    bar = progress(resource.name, None)
    batches = []
    try:
        for mailbox_id in scopes:
            pages = iter_pages(
                client,
                resource.path_for(mailbox_id),
                resource.key,
                resource.params,
                page_size=options.page_size,
            )
            for page in pages:
                batches.extend(rows_for(resource, r, mailbox_id) for r in page.items)
                bar.update(len(page.items))
                stop.check()
    finally:
        bar.close()
    rows = merge(batches).get(resource.name, [])
    with conn:
        mirror.upsert(conn, resource.name, rows)
        where = ""
        if resource.per_mailbox and scopes:
            where = f"AND mailbox_id IN ({', '.join(str(int(m)) for m in scopes)})"
        gone = mirror.mark_deleted(conn, resource.name, {r["id"] for r in rows}, synced_at, where)
    result.counts[resource.name] = len(rows)
    if gone:
        result.deleted[resource.name] = len(gone)


class CursorTracker:
    """The newest cursor that is safe to store while segments of one list are read in parallel.

    Segment j covers records stamped from `starts[j]` up to `starts[j + 1]`. Everything before
    the first unfinished segment is mirrored, and inside it everything before its progress.
    """

    def __init__(self, starts: list[str | None]):
        self.starts = starts
        self.progress: list[str | None] = [None] * len(starts)
        self.done = [False] * len(starts)

    def advance(self, segment: int, newest: str | None) -> None:
        if newest and (self.progress[segment] or "") < newest:
            self.progress[segment] = newest

    def finish(self, segment: int) -> None:
        self.done[segment] = True

    def safe_cursor(self) -> str | None:
        for start, progress, done in zip(self.starts, self.progress, self.done, strict=True):
            if not done:
                return progress or start
        return max((p for p in self.progress if p), default=None)


def plan_segments(
    client: Client, resource: Resource, params: dict, since: str | None, options: SyncOptions
) -> tuple[list[tuple[str | None, str | None]], int | None]:
    """Split the list into up to `workers` segments at sampled `updatedAt` boundaries.

    Returns [(since, stop_before), ...] and the server's total. Boundaries only need to be
    ordered, not exact: each segment is its own keyset walk, so records moving mid-sync cannot
    fall between segments.
    """
    query = {**params, "page": 1, "pageSize": 1}
    if since:
        query[resource.since_param] = since
    probe = client.get(resource.path, query) or {}
    total = (probe.get("page") or {}).get("totalElements")
    if options.workers <= 1 or not total or total < options.page_size * options.workers * 2:
        return [(since, None)], total
    bounds: list[str] = []
    for j in range(1, options.workers):
        sample = client.get(resource.path, {**query, "page": j * total // options.workers + 1})
        items = ((sample or {}).get("_embedded") or {}).get(resource.key) or []
        if items and (not bounds or items[0][resource.cursor_field] > bounds[-1]):
            bounds.append(items[0][resource.cursor_field])
    starts = [since, *(one_second_before(b) for b in bounds)]
    return list(zip(starts, [*bounds, None], strict=True)), total


def _sync_incremental(
    client, conn, resource: Resource, options, progress, result: SyncResult, stop: StopFlag
) -> None:
    """Keyset-walk a resource from its cursor; each page's rows commit with the cursor."""
    started_at = mirror.now_text()
    cursor = None if options.full else mirror.get_cursor(conn, resource.name)
    since = one_second_before(cursor) if cursor else None
    params = dict(resource.params)
    children = list(CHILDREN.get(resource.name, []))
    if "timelogs" in params.get("embed", ""):
        children.append("timelogs")
    bar = progress(resource.name, None)
    segments, total = plan_segments(client, resource, params, since, options)
    bar.set_total(total)
    # A segment's first record is at or after its boundary, so the tracker starts each segment
    # (after the first) at the boundary itself.
    tracker = CursorTracker([cursor if since else None, *(stop for _, stop in segments[:-1])])

    specs = [
        Segment(
            client.url,
            client.api_key,
            client.timeout,
            client.retry,
            resource,
            params,
            options.page_size,
            segment_since,
            stop_before,
        )
        for segment_since, stop_before in segments
    ]
    if len(specs) > 1 and options.processes and can_fork():
        # Free the page cache earlier lists filled, or the forked children count it as theirs.
        conn.execute("PRAGMA shrink_memory")
        stream = interleave_processes(fetch_segment, specs)
    else:
        stream = interleave([lambda spec=spec: fetch_segment(spec, client) for spec in specs])

    seen: set[int] = set()
    written = 0
    checkpoints = mirror.Checkpoints(conn)
    try:
        for segment, page in stream:
            if page is None:
                tracker.finish(segment)
            elif page.ids:
                result.requests_elsewhere += page.requests
                parents = page.rows[resource.name]
                at = parents.index("updated_at")
                tracker.advance(segment, max(v[at] or "" for v in parents.values))
                with checkpoints.write():
                    mirror.save_records(conn, resource.name, page.rows, children)
                    mirror.set_cursor(conn, resource.name, tracker.safe_cursor())
                seen.update(page.ids)
                written += len(page.ids)
                bar.update(len(page.ids))
            if page is None or stop.requested:
                with checkpoints.write():
                    mirror.set_cursor(conn, resource.name, tracker.safe_cursor())
                checkpoints.commit()
                stop.check()
    finally:
        checkpoints.commit()
        bar.close()
    result.counts[resource.name] = written
    if options.full:
        # A completed full scan saw every record that exists; the rest were deleted at the
        # source. Keep them, marked, because a backup keeps what the source lost.
        with conn:
            gone = mirror.mark_deleted(conn, resource.name, seen, started_at)
        if gone:
            result.deleted[resource.name] = len(gone)
