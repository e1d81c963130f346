"""Extract: API pages -> mirror rows, one transaction per page, cursor written with the rows.

Incremental resources (customers, conversations) are walked in `updatedAt` order with a keyset
on `updatedSince` (see `client.iter_pages`), starting one second before the stored cursor so
records sharing the cursor's second are read again rather than missed; upserts make the
re-read harmless. Small resources are read whole on every run.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from etl import mirror, search, timeutil
from etl.client import Client, RateGate, iter_pages
from etl.errors import EtlError
from etl.fetch import Segment, fetch_segment, merge, page_decoder, rows_for
from etl.interrupt import StopFlag, deferred_interrupt
from etl.parallel import can_fork, interleave, interleave_processes
from etl.progress import Progress, silent
from etl.resources import ALL, Resource, with_timelogs
from etl.timeutil import one_second_before

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
    with mirror.bulk_journal(conn):
        return _sync(client, conn, options or SyncOptions(), progress, command)


def _sync(
    client: Client, conn: sqlite3.Connection, options: SyncOptions, progress: Progress, command: str
) -> SyncResult:
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
            # Planning the lists is round trips and little else, so it goes out while the
            # small resources are read: with 50 ms latency that was 0.2 s of idle cores.
            with shared_slots(client, options.workers), ThreadPoolExecutor(1) as planner:
                planned = planner.submit(plan_lists, client, reads, options) if reads else None
                # Per-mailbox lists need the mailboxes mirrored first; the rest go out together.
                for group in (
                    [r for r in small if not r.per_mailbox],
                    [r for r in small if r.per_mailbox],
                ):
                    if group:
                        _sync_whole(client, conn, group, options, progress, result)
                        stop.check()
                if planned:
                    planned.result()
            if reads:
                _sync_lists(client, conn, reads, options, progress, result, stop)
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
        # Resources were read in groups; report them in their usual order.
        order = [r.name for r in ALL]
        result.counts = dict(sorted(result.counts.items(), key=lambda kv: order.index(kv[0])))
        counts = dict(result.counts)
        counts.update({f"{k}_deleted": v for k, v in result.deleted.items()})
        mirror.finish_run(conn, result.run_id, result.status, counts, result.requests, errors)
    return result


@contextmanager
def shared_slots(client: Client, workers: int) -> Iterator[None]:
    """While it lasts, this client's requests from every thread share `workers` slots."""
    if client.in_flight is not None:
        yield
        return
    client.in_flight = threading.BoundedSemaphore(workers)
    try:
        yield
    finally:
        client.in_flight = None


def _sync_whole(
    client, conn, resources: list[Resource], options, progress, result: SyncResult
) -> None:
    """Read small resources completely, their requests all in flight at once.

    Rows missing at the source get `deleted_at`.
    """
    synced_at = timeutil.now()
    mailboxes = [row[0] for row in conn.execute("SELECT id FROM mailboxes ORDER BY id")]
    jobs = [
        (resource, mailbox_id)
        for resource in resources
        for mailbox_id in (mailboxes if resource.per_mailbox else [None])
    ]

    def fetch(job: tuple[Resource, int | None]) -> list:
        resource, mailbox_id = job
        pages = iter_pages(
            client,
            resource.path_for(mailbox_id),
            resource.key,
            resource.params,
            page_size=options.page_size,
            decode=page_decoder(resource),
        )
        found = []
        for page in pages:
            found.extend(rows_for(resource, r, mailbox_id) for r in page.items)
            bars[resource.name].update(len(page.items))
        return found

    bars = {resource.name: progress(resource.name, None) for resource in resources}
    try:
        with ThreadPoolExecutor(max(1, min(options.workers, len(jobs)))) as pool:
            fetched = list(pool.map(fetch, jobs))
    finally:
        for bar in bars.values():
            bar.close()
    for resource in resources:
        batches = [
            b for (r, _), found in zip(jobs, fetched, strict=True) if r is resource for b in found
        ]
        rows = merge(batches).get(resource.name, [])
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


# Segments per request in flight when lists are cut up: a slot that finishes its segment early
# takes another, so no request slot idles while one long segment is still being read.
SEGMENTS_PER_SLOT = 4
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


def segment_counts(totals: list[int | None], page_size: int, slots: int) -> list[int]:
    """How many segments to cut each list into, given the requests that may be in flight.

    With one slot nothing is gained by cutting. Otherwise lists get segments in proportion to
    their pages, SEGMENTS_PER_SLOT per slot in all, at least one each, and never so many that
    the shortest segment (see `segment_starts`) would hold fewer than two pages.
    """
    pages = [-(-(total or 0) // page_size) for total in totals]
    if slots <= 1 or not sum(pages):
        return [1] * len(totals)
    budget = SEGMENTS_PER_SLOT * slots
    # The most segments with shares 1..c of a list of p pages such that c * (c + 1) <= p.
    most = [(math.isqrt(4 * p + 1) - 1) // 2 for p in pages]
    return [
        max(1, min(round(budget * p / sum(pages)), m)) for p, m in zip(pages, most, strict=True)
    ]


def segment_starts(count: int) -> list[float]:
    """Where each of `count` segments starts, as a share of its list.

    Sizes shrink in steps (count, count - 1, ... 1 parts): the segments read last, when
    slots start running out of work, are the shortest, so no slot is left reading a long
    one alone at the end.
    """
    parts = count * (count + 1) // 2
    starts, at = [], 0
    for j in range(count):
        starts.append(at / parts)
        at += count - j
    return starts


def boundaries(samples: list[str | None]) -> list[str]:
    """Sampled `updatedAt` values as strictly increasing segment boundaries."""
    bounds: list[str] = []
    for value in samples:
        if value and (not bounds or value > bounds[-1]):
            bounds.append(value)
    return bounds


def reading_order(counts: list[int]) -> list[tuple[int, int]]:
    """(list, segment) pairs ordered so that every list advances at the same relative pace."""
    middles = []
    for count in counts:
        starts = [*segment_starts(count), 1.0]
        middles.append([(a + b) / 2 for a, b in itertools.pairwise(starts)])
    pairs = [(i, j) for i, count in enumerate(counts) for j in range(count)]
    return sorted(pairs, key=lambda p: (middles[p[0]][p[1]], p[0]))


def plan_lists(client: Client, reads: list[ListRead], options: SyncOptions) -> None:
    """Ask each list's total, then sample `updatedAt` boundaries to cut it into segments.

    Boundaries only need to be ordered, not exact: each segment is its own keyset walk, so
    records moving mid-sync cannot fall between segments. The probes go out in parallel.
    """

    def get_all(queries: list[tuple[ListRead, dict]]) -> list[dict]:
        if len(queries) <= 1 or options.workers <= 1:
            return [client.get(r.resource.path, q) or {} for r, q in queries]
        with ThreadPoolExecutor(min(options.workers, len(queries))) as pool:
            return list(pool.map(lambda rq: client.get(rq[0].resource.path, rq[1]) or {}, queries))

    firsts = get_all([(read, read.probe({"page": 1})) for read in reads])
    for read, first in zip(reads, firsts, strict=True):
        read.total = (first.get("page") or {}).get("totalElements")
    counts = segment_counts([r.total for r in reads], options.page_size, options.workers)
    queries = [
        (read, read.probe({"page": int(start * read.total) + 1}))
        for read, count in zip(reads, counts, strict=True)
        for start in segment_starts(count)[1:]
    ]
    samples = iter(get_all(queries))
    for read, count in zip(reads, counts, strict=True):
        values = []
        for _ in range(1, count):
            items = ((next(samples).get("_embedded") or {}).get(read.resource.key)) or []
            values.append(items[0][read.resource.cursor_field] if items else None)
        bounds = boundaries(values)
        starts = [read.since, *(one_second_before(b) for b in bounds)]
        read.segments = list(zip(starts, [*bounds, None], strict=True))
        # A segment's first record is at or after its boundary, so the tracker starts each
        # segment (after the first) at the boundary itself.
        read.tracker = CursorTracker(
            [read.cursor if read.since else None, *(stop for _, stop in read.segments[:-1])]
        )


def list_reads(conn: sqlite3.Connection, lists: list[Resource], options) -> list[ListRead]:
    """Each incremental list's read, from its stored cursor (none for a full scan)."""
    reads = []
    for resource in lists:
        cursor = None if options.full else mirror.get_cursor(conn, resource.name)
        since = one_second_before(cursor) if cursor else None
        reads.append(ListRead(resource, cursor, since, timeutil.now()))
    return reads


def _sync_lists(
    client, conn, reads: list[ListRead], options, progress, result: SyncResult, stop: StopFlag
) -> None:
    """Keyset-walk the planned incremental lists together, each from its cursor.

    All segments of all lists share the `workers` request slots; each page's rows commit
    with its list's cursor.
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


def reader_count(workers: int, cores: int) -> int:
    """How many segments the fetch processes read at once, for `workers` requests in flight.

    A reader decodes each page before its keyset can ask for the next, and meanwhile its
    request slot would sit idle. So while the cores have time to spare (no more slots than
    cores), two segments are read per slot and a shared semaphore still holds the requests
    in flight to `workers`: another reader's request takes the slot. With more slots than
    cores the cores are already the limit, and more readers only compete for them.
    """
    return 2 * workers if workers <= cores else workers


def process_count(readers: int, cores: int) -> int:
    """How many fetch processes share `readers` segments read at once: one each, up to 2 per core.

    Readers in one process take turns on its interpreter lock: a response that has arrived waits
    while another reader decodes or transforms a page. With a process each, at 50 ms latency
    and 4 workers on 2 cores, a first sync took 14.6 s against 14.9 s with one per core. Past
    two per core more processes only cost memory.
    """
    return max(1, min(readers, 2 * cores))


def _read_segments(
    client, conn, reads: list[ListRead], options, result: SyncResult, stop: StopFlag
) -> None:
    order = reading_order([len(read.segments) for read in reads])
    forked = len(order) > 1 and options.processes and can_fork()
    cores = os.cpu_count() or 1
    readers = reader_count(options.workers, cores) if forked else options.workers
    in_flight = None
    if readers > options.workers:
        in_flight = multiprocessing.get_context("fork").BoundedSemaphore(options.workers)
    # Each segment read in a fetch process has its own client; after a 429 all must wait.
    gate = RateGate(shared=True) if forked else None
    specs = []
    for li, sj in order:
        read = reads[li]
        since, stop_before = read.segments[sj]
        specs.append(
            Segment(
                client.url,
                client.api_key,
                client.timeout,
                client.retry,
                read.resource,
                dict(read.resource.params),
                options.page_size,
                since,
                stop_before,
                in_flight,
                gate,
            )
        )
    if forked:
        # Free the page cache earlier lists filled, or the forked children count it as theirs.
        conn.execute("PRAGMA shrink_memory")
        processes = process_count(readers, cores)
        # With more requests in flight than cores, the fetch processes keep the cores busy.
        batch = options.workers > cores
        stream = interleave_processes(
            fetch_segment, specs, slots=readers, processes=processes, batch=batch
        )
    else:
        sources = [lambda spec=spec: fetch_segment(spec, client) for spec in specs]
        stream = interleave(sources, slots=options.workers)

    def save_cursors() -> None:
        for read in reads:
            mirror.set_cursor(conn, read.resource.name, read.tracker.safe_cursor())

    indexed_at = time.monotonic()

    def index_what_is_committed() -> None:
        """Index for search what was written since the last step, at most once a second.

        Left to the end of the run, indexing ran on one core while the other idled: 0.65 s
        for a first sync of 50,000 conversations and 20,000 customers. In steps it costs
        a third more CPU (FTS5 merges the small segments), spread over the reading.
        """
        nonlocal indexed_at
        now = time.monotonic()
        if now - indexed_at >= INDEX_EVERY and not stop.requested:
            indexed_at = now
            search.refresh(conn)

    checkpoints = mirror.Checkpoints(conn, after_commit=index_what_is_committed)
    copier = mirror.BackgroundCheckpoints(conn)
    try:
        for index, page in stream:
            copier.start()  # the fetch processes are forked by now
            li, segment = order[index]
            read = reads[li]
            name = read.resource.name
            if page is None:
                read.tracker.finish(segment)
            elif page.ids:
                result.requests_elsewhere += page.requests
                parents = page.rows[name]
                at = parents.index("updated_at")
                read.tracker.advance(segment, max(v[at] or "" for v in parents.values))
                with checkpoints.write():
                    mirror.save_records(conn, name, page.rows, read.children)
                    mirror.set_cursor(conn, name, read.tracker.safe_cursor())
                read.seen.update(page.ids)
                read.written += len(page.ids)
                read.bar.update(len(page.ids))
            if page is None or stop.requested:
                with checkpoints.write():
                    save_cursors()
                checkpoints.commit()
                stop.check()
    finally:
        conn.commit()  # what was written; the closing refresh indexes it unless interrupted
        copier.stop()
