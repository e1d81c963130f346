"""Extract: API pages -> mirror rows, each page written in the same transaction as its cursor.

One process: `--workers` threads send the requests (see `etl.threads`), and the main thread
turns each page into rows and writes them. Small resources (mailboxes, users, tags, folders,
custom fields) are read whole on every run. Customers and conversations are walked as keysets
in `updatedAt` order from one second before their stored cursor (see `etl.paging`), each cut
into segments at sampled `updatedAt` boundaries so that the workers can read one list
together; the cursor only moves over what is written (`CursorTracker`). docs/sync.md tells
the whole story.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from etl import mirror, records, search, timeutil, views
from etl.client import Client
from etl.errors import EtlError
from etl.interrupt import StopFlag, deferred_interrupt
from etl.paging import KeysetPager, iter_pages
from etl.progress import Progress, silent
from etl.resources import ALL, Resource, with_timelogs
from etl.segments import CursorTracker, boundaries, reading_order, segment_counts, segment_starts
from etl.threads import interleave

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
    resources: tuple[str, ...] = ()  # empty: all


@dataclass
class SyncResult:
    run_id: int
    counts: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    timestamps_kept_as_text: int = 0  # sent by the server in a form that did not parse
    status: str = "running"
    files: Any = None  # attachment files fetched after the sync (etl.files.Fetched), if asked


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
    small = [r for r in selected if not r.incremental]
    lists = [
        with_timelogs(r) if r.name == "conversations" and options.timelogs else r
        for r in selected
        if r.incremental
    ]
    reads = list_reads(conn, lists, options)
    # A run with no cursor to start from reads everything, as `--full` does: say so.
    full = options.full or all(read.cursor is None for read in reads)
    result = SyncResult(run_id=mirror.start_run(conn, command, full))
    first_request = client.requests_made
    errors: list[str] = []
    try:
        with deferred_interrupt() as stop:
            search.refresh(conn)  # whatever a killed run left un-indexed
            _read_small_and_plan(client, conn, small, reads, options, progress, result, stop)
            if reads:
                _sync_lists(client, conn, reads, options, progress, result, stop)
            # Custom fields met in this sync become sheet columns now, not at the next open.
            views.refresh_views(conn)
        result.status = "completed"
    except BaseException as exc:
        result.status, error = outcome(exc)
        errors.append(error)
        raise
    finally:
        if result.status != "interrupted":
            search.refresh(conn)
        result.requests = client.requests_made - first_request
        # Resources were read in groups; report them in their usual order.
        order = [r.name for r in ALL]
        result.counts = dict(sorted(result.counts.items(), key=lambda kv: order.index(kv[0])))
        counts = dict(result.counts)
        counts.update({f"{k}_deleted": v for k, v in result.deleted.items()})
        mirror.finish_run(conn, result.run_id, result.status, counts, result.requests, errors)
    return result


def outcome(exc: BaseException) -> tuple[str, str]:
    """A run's status and the error it records, for the exception that ended it."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", "interrupted"
    if isinstance(exc, EtlError):
        return "failed", str(exc)
    return "failed", f"{type(exc).__name__}: {exc}"


@contextmanager
def continued(
    conn: sqlite3.Connection,
    result: SyncResult,
    counts: Callable[[], dict[str, int]],
    requests: Callable[[], int],
) -> Iterator[None]:
    """Work for a run after its sync (timelogs backfill, attachment files), recorded with it.

    The run is marked running again while it lasts (a kill -9 leaves it to be marked
    abandoned); at its end, however it ends, `counts()` and `requests()` are added to the
    run's, and its status and error become the run's.
    """
    mirror.reopen_run(conn, result.run_id)
    status, errors = "completed", []
    try:
        yield
    except BaseException as exc:
        status, error = outcome(exc)
        errors.append(error)
        raise
    finally:
        result.status = status
        mirror.extend_run(conn, result.run_id, status, counts(), requests(), errors)


def rows_for(resource: Resource, record: dict, mailbox_id: int | None = None) -> records.Rows:
    """The mirror rows of one API record of this resource."""
    if resource.name == "conversations":
        return records.conversation_rows(record)
    if resource.name == "customers":
        return records.customer_rows(record)
    extra = {"mailbox_id": mailbox_id} if resource.per_mailbox else {}
    return {resource.name: [records.flat_row(record, **extra)]}


def merge(batches: Iterable[records.Rows]) -> records.Rows:
    """Rows of several records as one batch, table by table."""
    merged: records.Rows = {}
    for batch in batches:
        for table, rows in batch.items():
            merged.setdefault(table, []).extend(rows)
    return merged


def in_threads(calls: list[Callable[[], Any]], workers: int, stop: StopFlag) -> list[Any]:
    """Each call's result, in order, `workers` at a time; Ctrl-C stops waiting for them."""
    results: list[Any] = [None] * len(calls)
    sources = [lambda call=call: [(call(),)] for call in calls]  # a 1-tuple is never None
    for index, item in interleave(sources, workers, until=lambda: stop.requested):
        if item is not None:
            results[index] = item[0]
    stop.check()
    return results


def _read_small_and_plan(
    client, conn, small: list[Resource], reads, options, progress, result, stop
) -> None:
    """Mirror the small resources whole, and plan the big lists' segments meanwhile.

    Two rounds of requests, each sharing the `--workers` threads: the lists' totals with the
    small resources that need nothing first, then the probes for segment boundaries (which
    need the totals) with the per-mailbox resources (which need the mailboxes mirrored).
    Planning is round trips and little else, so it goes out beside the small reads.
    """
    first = [r for r in small if not r.per_mailbox]
    later = [r for r in small if r.per_mailbox]
    bars = {resource.name: progress(resource.name, None) for resource in small}
    try:
        jobs = [(resource, None) for resource in first]
        totals = [(read.resource.path, read.probe({"page": 1})) for read in reads]
        documents, fetched = _round(client, totals, jobs, options, bars, stop)
        for read, document in zip(reads, documents, strict=True):
            read.total = ((document or {}).get("page") or {}).get("totalElements")
        _save_whole(conn, first, jobs, fetched, result)

        counts = segment_counts([r.total for r in reads], options.page_size, options.workers)
        probes = [
            (read.resource.path, read.probe({"page": int(start * read.total) + 1}))
            for read, count in zip(reads, counts, strict=True)
            for start in segment_starts(count)[1:]
        ]
        mailboxes = [row[0] for row in conn.execute("SELECT id FROM mailboxes ORDER BY id")]
        jobs = [(resource, mailbox) for resource in later for mailbox in mailboxes]
        documents, fetched = _round(client, probes, jobs, options, bars, stop)
        samples = iter(documents)
        for read, count in zip(reads, counts, strict=True):
            read.plan([next(samples) for _ in range(1, count)])
        _save_whole(conn, later, jobs, fetched, result, mailboxes)
    finally:
        for bar in bars.values():
            bar.close()


def _round(client, probes, jobs, options, bars, stop) -> tuple[list, list]:
    """Probe GETs (path, query) and small lists read whole (resource, mailbox), together in
    the `--workers` threads: the probes' documents and each list's records."""
    calls = [lambda path=path, query=query: client.get(path, query) for path, query in probes]
    calls += [_whole_reader(client, resource, mailbox, options, bars) for resource, mailbox in jobs]
    found = in_threads(calls, options.workers, stop)
    return found[: len(probes)], found[len(probes) :]


def _whole_reader(client, resource: Resource, mailbox_id, options, bars) -> Callable[[], list]:
    """A call that reads one small list to its end, for `in_threads`."""

    def read() -> list[dict]:
        found = []
        path = resource.path_for(mailbox_id)
        for page in iter_pages(
            client, path, resource.key, resource.params, page_size=options.page_size
        ):
            found.extend(page.items)
            bars[resource.name].update(len(page.items))
        return found

    return read


def _save_whole(conn, resources, jobs, found, result: SyncResult, mailboxes=None) -> None:
    """Write small resources read whole; rows missing at the source get `deleted_at`."""
    synced_at = timeutil.now()
    for resource in resources:
        rows = merge(
            rows_for(resource, record, mailbox_id)
            for (r, mailbox_id), records_read in zip(jobs, found, strict=True)
            if r is resource
            for record in records_read
        ).get(resource.name, [])
        result.timestamps_kept_as_text += records.timestamps_kept_as_text({resource.name: rows})
        with conn:
            mirror.upsert(conn, resource.name, rows)
            where = ""
            if resource.per_mailbox and mailboxes:
                where = f"AND mailbox_id IN ({', '.join(str(int(m)) for m in mailboxes)})"
            present = {r["id"] for r in rows}
            gone = mirror.mark_deleted(conn, resource.name, present, synced_at, where)
        result.counts[resource.name] = len(rows)
        if gone:
            result.deleted[resource.name] = len(gone)


INDEX_EVERY = 1.0  # seconds between search index steps while lists are read


@dataclass
class ListRead:
    """One incremental list in a sync: where it starts, its segments and what it wrote."""

    resource: Resource
    cursor: str | None
    since: str | None
    started_at: str
    total: int | None = None
    segments: list[tuple[str | None, str | None]] = field(default_factory=list)
    tracker: CursorTracker | None = None
    bar: Any = None
    seen: set[int] = field(default_factory=set)
    written: int = 0

    @cached_property
    def children(self) -> list[str]:
        """The child tables its pages replace rows of (read once, used for every page)."""
        names = list(CHILDREN.get(self.resource.name, []))
        if "timelogs" in self.resource.params.get("embed", ""):
            names.append("timelogs")
        return names

    def probe(self, query: dict) -> dict:
        """The list's query for one record at page `query['page']`, from this run's start."""
        params = {**self.resource.params, "pageSize": 1, **query}
        if self.since:
            params[self.resource.since_param] = self.since
        return params

    def plan(self, samples: list[Any]) -> None:
        """Cut the list into segments at the `updatedAt` of the sampled records.

        Boundaries only need to be ordered, not exact: each segment is its own keyset walk,
        so records moving mid-sync cannot fall between segments.
        """
        key, field_name = self.resource.key, self.resource.cursor_field
        values = []
        for sample in samples:
            items = (((sample or {}).get("_embedded") or {}).get(key)) or []
            values.append(items[0][field_name] if items else None)
        bounds = boundaries(values)
        starts = [self.since, *(timeutil.one_second_before(b) for b in bounds)]
        self.segments = list(zip(starts, [*bounds, None], strict=True))
        # A segment's first record is at or after its boundary, so the tracker starts each
        # segment (after the first) at the boundary itself.
        self.tracker = CursorTracker(
            [self.cursor if self.since else None, *(stop for _, stop in self.segments[:-1])]
        )

    def walk(self, segment: int, client: Client, page_size: int) -> Iterator[list[dict]]:
        """The records of one segment, page by page (run in a fetch thread)."""
        since, stop_before = self.segments[segment]
        resource = self.resource
        params = dict(resource.params)
        if since:
            params[resource.since_param] = since
        pager = KeysetPager(
            client.get,
            resource.path,
            resource.key,
            params,
            field=resource.cursor_field,
            since_param=resource.since_param,
            page_size=page_size,
            stop_before=stop_before,
            announced=self.total,
        )
        for page in pager:
            yield page.items


def list_reads(conn: sqlite3.Connection, lists: list[Resource], options) -> list[ListRead]:
    """Each incremental list's read, from its stored cursor (none for a full scan)."""
    reads = []
    for resource in lists:
        cursor = None if options.full else mirror.get_cursor(conn, resource.name)
        since = timeutil.one_second_before(cursor) if cursor else None
        reads.append(ListRead(resource, cursor, since, timeutil.now()))
    return reads


def _sync_lists(
    client, conn, reads: list[ListRead], options, progress, result: SyncResult, stop: StopFlag
) -> None:
    """Keyset-walk the planned incremental lists together, each from its cursor.

    All segments of all lists share the `--workers` threads; each page's rows commit with
    its list's cursor.
    """
    for read in reads:
        read.bar = progress(read.resource.name, read.total)
    try:
        _read_segments(client, conn, reads, options, result, stop)
    finally:
        for read in reads:
            read.bar.close()
            result.counts[read.resource.name] = read.written  # so far, if interrupted
    if options.full:
        # A completed full scan saw every record that exists; the rest were deleted at the
        # source. Keep them, marked, because a backup keeps what the source lost.
        with conn:
            for read in reads:
                gone = mirror.mark_deleted(conn, read.resource.name, read.seen, read.started_at)
                if gone:
                    result.deleted[read.resource.name] = len(gone)


def _read_segments(
    client, conn, reads: list[ListRead], options, result: SyncResult, stop: StopFlag
) -> None:
    """Write the segments' pages as the fetch threads bring them, each with its cursor."""
    order = reading_order([len(read.segments) for read in reads])
    sources = [
        lambda li=li, sj=sj: reads[li].walk(sj, client, options.page_size) for li, sj in order
    ]
    indexed_at = time.monotonic()

    def index_what_is_committed() -> None:
        """Index for search what was written since the last step, at most once a second.

        Indexing spread over the reading keeps the closing refresh short.
        """
        nonlocal indexed_at
        now = time.monotonic()
        if now - indexed_at >= INDEX_EVERY and not stop.requested:
            indexed_at = now
            search.refresh(conn)

    def save_cursors() -> None:
        for read in reads:
            mirror.set_cursor(conn, read.resource.name, read.tracker.safe_cursor())

    checkpoints = mirror.Checkpoints(conn, after_commit=index_what_is_committed)
    try:
        for index, items in interleave(sources, options.workers, until=lambda: stop.requested):
            li, segment = order[index]
            read = reads[li]
            if items is None:
                read.tracker.finish(segment)
            elif items:
                rows = merge(rows_for(read.resource, record) for record in items)
                result.timestamps_kept_as_text += records.timestamps_kept_as_text(rows)
                _save_page(conn, read, segment, rows, checkpoints)
            if items is None or stop.requested:
                with checkpoints.write():
                    save_cursors()
                checkpoints.commit()
                stop.check()
        stop.check()
    finally:
        conn.commit()  # what was written; the closing refresh indexes it unless interrupted


def _save_page(conn, read: ListRead, segment: int, rows: records.Rows, checkpoints) -> None:
    """One page's rows and the cursor they justify, in the same transaction."""
    name = read.resource.name
    read.tracker.advance(segment, max(row["updated_at"] or "" for row in rows[name]))
    with checkpoints.write():
        mirror.save_records(conn, name, rows, read.children)
        mirror.set_cursor(conn, name, read.tracker.safe_cursor())
    ids = [row["id"] for row in rows[name]]
    read.seen.update(ids)
    read.written += len(ids)
    read.bar.update(len(ids))
