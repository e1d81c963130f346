"""The one paging loop for every list endpoint: a keyset pager, and page numbers for small lists.

Lists sorted on a timestamp (`updatedAt`) are walked as a keyset: each request after the first
asks again from page 1 with `updatedSince` set one second before the last record seen, so a
record that changes mid-walk moves to the end of the walk instead of shifting unchanged ones
past a page boundary. Small lists (tags, users, mailboxes...) are read by page number.

A pager only asks for pages; `fetch(path, query)` sends the request (`Client.get`), so the
walk can be tested against a fake endpoint.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from etl import timeutil
from etl.errors import PagingError

Fetch = Callable[[str, dict[str, Any]], Any]

# A pass over a crowded second that keeps finding records it had not seen means the server
# keeps moving records under the walk; past this many passes the walk gives up.
MAX_REREADS = 5
# Full pages that bring nothing new before a walk is declared stuck.
MAX_STALLED = 3
# How far past twice its total a walk may read: records that change while a list is read
# are read again at its end (a test touching 2 records per request read 178 of 120).
SLACK_PAGES = 10


def check_not_repeated(path: str, ids: list, previous: list | None, number: int) -> None:
    """A server answering the same page again would keep a walk going forever."""
    if ids and ids == previous:
        raise PagingError(path, f"the server returned the same page twice (page {number})")


def check_within_total(path: str, read: int, total: Any, page_size: int) -> None:
    """A walk may read records again as they change, but never twice what the list announced.

    A broken or hostile server can invent records forever; a list that announces no total is
    bounded by the other guards alone.
    """
    if isinstance(total, int) and read > 2 * max(total, 0) + SLACK_PAGES * page_size:
        raise PagingError(path, f"the list does not end: {read} records read, it announced {total}")


@dataclass
class Page:
    """One page of a list endpoint: the records not seen before, and the server's total."""

    items: list[dict]
    total: int | None


class KeysetPager:
    """Walk a list sorted ascending on `field`, from `since` (exclusive) to `stop_before`.

    Records sharing one second with more records than a page can only be read by page number
    inside that second, where a change can shift one past a page boundary; such a crowded
    second is read again until a pass finds nothing new. Records already yielded at a
    boundary second are dropped. `stop_before` ends the walk at the first record stamped at
    or after it (the sync cuts one list into segments that way, and passes the whole list's
    total as `announced`).

    Guards, each a PagingError instead of a walk without end: a page identical to the one
    before, full pages of records already seen, more records than twice the total the first
    page announced, or more than `max_requests` requests.
    """

    def __init__(
        self,
        fetch: Fetch,
        path: str,
        key: str,
        params: Mapping[str, Any] | None,
        *,
        field: str,
        since_param: str,
        page_size: int = 100,
        stop_before: str | None = None,
        max_requests: int = 1_000_000,
        announced: int | None = None,
    ) -> None:
        self.fetch = fetch
        self.path = path
        self.key = key
        self.field = field
        self.since_param = since_param
        self.page_size = page_size
        self.stop_before = stop_before
        self.max_requests = max_requests
        self.base = {k: v for k, v in (params or {}).items() if v is not None}
        self.anchor: str | None = self.base.pop(since_param, None)
        self.page_number = 1
        self.seen: dict[tuple[Any, str], None] = {}  # (id, stamp) of records at the boundary
        self.total: int | None = None
        # The list's size as its reader knows it: a segment of a list is held to the whole
        # list's total, not to what its own first page counts after its start.
        self.announced = announced
        self.read = 0  # records yielded
        self.requests = 0
        self.stalled = 0
        self.previous_ids: list | None = None

    def __iter__(self) -> Iterator[Page]:
        crowded: str | None = None  # the second being read by page number, if any
        while True:
            records = self.request(self.anchor, self.page_number)
            ids = [r.get("id") for r in records]
            check_not_repeated(self.path, ids, self.previous_ids, self.page_number)
            self.previous_ids = ids
            fresh, reached_end = self.fresh(records)
            self.read += len(fresh)
            check_within_total(self.path, self.read, self.bound(), self.page_size)
            yield Page(fresh, self.total)
            self.check_progress(fresh)
            last_page = len(records) < self.page_size or reached_end
            last = records[-1][self.field] if records else None
            if crowded is not None and (last_page or last != crowded):
                yield from self.reread(crowded)
                crowded = None
            if last_page:
                return
            self.advance(last)
            if self.page_number > 1:
                crowded = last

    def bound(self) -> int | None:
        """The total a walk is held to: the larger of the whole list's and its first page's."""
        if not isinstance(self.announced, int):
            return self.total
        return max(self.announced, self.total if isinstance(self.total, int) else 0)

    def request(self, since: str | None, number: int) -> list[dict]:
        """One page's records, from page `number` of the records stamped after `since`."""
        self.requests += 1
        if self.requests > self.max_requests:
            raise PagingError(self.path, f"gave up after {self.max_requests} requests")
        query = {**self.base, "page": number, "pageSize": self.page_size}
        if since is not None:
            query[self.since_param] = since
        document = self.fetch(self.path, query) or {}
        if self.requests == 1:  # the total as the walk began
            self.total = (document.get("page") or {}).get("totalElements")
        return ((document.get("_embedded") or {}).get(self.key)) or []

    def fresh(self, records: list[dict]) -> tuple[list[dict], bool]:
        """The records not yielded before, and whether `stop_before` was reached."""
        fresh = []
        for record in records:
            stamp = record[self.field]
            if self.stop_before is not None and stamp >= self.stop_before:
                return fresh, True
            mark = (record.get("id"), stamp)
            if mark not in self.seen:
                self.seen[mark] = None
                fresh.append(record)
        return fresh, False

    def advance(self, last: str) -> None:
        """Ask next from one second before the last record, or the next page inside its second.

        The new window starts at the records of second `last`; whole pages of them already
        read are skipped instead of asked for again.
        """
        anchor = timeutil.one_second_before(last)
        if self.anchor is None or timeutil.parse(anchor) > timeutil.parse(self.anchor):
            self.anchor = anchor
            self.seen = {mark: None for mark in self.seen if mark[1] >= last}
            self.page_number = len(self.seen) // self.page_size + 1
        else:
            self.page_number += 1

    def reread(self, second: str) -> Iterator[Page]:
        """Read one crowded second again, pass after pass, until a pass finds nothing new."""
        for _ in range(MAX_REREADS):
            found = 0
            number = 1
            while True:
                records = self.request(timeutil.one_second_before(second), number)
                inside = [r for r in records if r[self.field] == second]
                fresh, _ = self.fresh(inside)
                found += len(fresh)
                if fresh:
                    yield Page(fresh, self.total)
                if len(inside) < len(records) or len(records) < self.page_size:
                    break
                number += 1
            if not found:
                return

    def check_progress(self, fresh: list[dict]) -> None:
        self.stalled = 0 if fresh else self.stalled + 1
        if self.stalled > MAX_STALLED:
            raise PagingError(
                self.path, "paging stopped advancing: full pages of records already seen"
            )


class NumberPager:
    """Read a small list page by page, up to its last page.

    Guards, each a PagingError: a page identical to the one before or bringing only records
    already read, more than `max_pages` pages (`--max-pages`), or more records than twice the
    total the first page announced.
    """

    def __init__(
        self,
        fetch: Fetch,
        path: str,
        key: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = 100,
        max_pages: int = 1_000_000,
    ) -> None:
        self.fetch = fetch
        self.path = path
        self.key = key
        self.base = {k: v for k, v in (params or {}).items() if v is not None}
        self.page_size = page_size
        self.max_pages = max_pages

    def __iter__(self) -> Iterator[Page]:
        previous_ids: list | None = None
        seen: set = set()
        total = None
        for number in itertools.count(1):
            query = {**self.base, "page": number, "pageSize": self.page_size}
            document = self.fetch(self.path, query) or {}
            info = document.get("page") or {}
            if number == 1:
                total = info.get("totalElements")
            records = ((document.get("_embedded") or {}).get(self.key)) or []
            ids = [r.get("id") for r in records]
            check_not_repeated(self.path, ids, previous_ids, number)
            previous_ids = ids
            fresh = [i for i in ids if i not in seen]
            seen.update(ids)
            check_within_total(self.path, len(seen), total, self.page_size)
            yield Page(records, info.get("totalElements"))
            total_pages = info.get("totalPages")
            if len(records) < self.page_size or (
                isinstance(total_pages, int) and number >= total_pages
            ):
                return
            if not fresh:
                raise PagingError(self.path, f"page {number} brought only records already read")
            if number >= self.max_pages:
                raise PagingError(
                    self.path, f"more than {self.max_pages} pages; --max-pages allows more"
                )


def iter_pages(
    client: Any,
    path: str,
    key: str,
    params: Mapping[str, Any] | None = None,
    *,
    page_size: int = 100,
    keyset: tuple[str, str] | None = None,
    stop_before: str | None = None,
    max_requests: int = 1_000_000,
) -> Iterator[Page]:
    """Every page of a list endpoint, through `client.get`.

    With `keyset=(field, since_param)`, e.g. `("updatedAt", "updatedSince")`, a KeysetPager
    walks it; otherwise a NumberPager reads it by page number.
    """
    if keyset is None:
        pager = NumberPager(
            client.get, path, key, params, page_size=page_size, max_pages=client.max_pages
        )
        return iter(pager)
    field, since_param = keyset
    pager = KeysetPager(
        client.get,
        path,
        key,
        params,
        field=field,
        since_param=since_param,
        page_size=page_size,
        stop_before=stop_before,
        max_requests=max_requests,
    )
    return iter(pager)
