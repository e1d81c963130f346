"""Fetch one keyset segment of a list and turn its pages into mirror rows.

This is the part of a sync that needs no database, so it can run in a thread or in a child
process: a first sync is CPU-bound in one Python process, and parsing and transforming pages
in child processes leaves the parent only the SQLite writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from etl import mirror, rawjson, records
from etl.client import Client, RateGate, RetryPolicy, iter_pages
from etl.parallel import prefetched
from etl.resources import Resource


@dataclass(frozen=True)
class Segment:
    """Everything needed to read one segment; a forked child inherits it, shared limits too."""

    url: str
    api_key: str = field(repr=False)
    timeout: tuple[float, float]
    retry: RetryPolicy
    resource: Resource
    params: dict[str, Any]
    page_size: int
    since: str | None = None
    stop_before: str | None = None
    # Shared by all segments of a sync, in whichever process: see Client.in_flight, RateGate.
    in_flight: Any = field(default=None, repr=False, compare=False)
    gate: RateGate | None = field(default=None, repr=False, compare=False)
    # The whole list's totalElements: what bounds the walk of any one segment (iter_pages).
    list_total: int | None = None


@dataclass
class PageRows:
    """One page as mirror rows, with the ids it held and the requests it took to get it."""

    rows: mirror.Batch
    ids: list[int]
    requests: int = 0


def rows_for(resource: Resource, record: dict, mailbox_id: int | None = None):
    """The mirror rows of one API record of this resource."""
    if resource.name == "conversations":
        return records.conversation_rows(record)
    if resource.name == "customers":
        return records.customer_rows(record)
    extra = {"mailbox_id": mailbox_id} if resource.per_mailbox else {}
    return {resource.name: [records.flat_row(record, **extra)]}


def page_decoder(resource: Resource):
    """A decoder for this resource's pages that keeps each record's text for `raw_json`."""
    return rawjson.page_reader(resource.key, records.DETACHED.get(resource.name))


def merge(batches: Iterable[dict[str, list[dict]]]) -> dict[str, list[dict]]:
    merged: dict[str, list[dict]] = {}
    for batch in batches:
        for table, rows in batch.items():
            merged.setdefault(table, []).extend(rows)
    return merged


def fetch_segment(segment: Segment, client: Client | None = None) -> Iterator[PageRows]:
    """Walk one segment; with no client given, make one and count its requests per page."""
    own = client is None
    client = client or Client(
        segment.url,
        segment.api_key,
        timeout=segment.timeout,
        retry=segment.retry,
        in_flight=segment.in_flight,
        gate=segment.gate,
    )
    resource = segment.resource
    query = dict(segment.params)
    if segment.since:
        query[resource.since_param] = segment.since
    counted = client.requests_made
    try:
        pages = iter_pages(
            client,
            resource.path,
            resource.key,
            query,
            page_size=segment.page_size,
            keyset=(resource.cursor_field, resource.since_param),
            stop_before=segment.stop_before,
            announced=segment.list_total,
            decode=page_decoder(resource),
        )
        for page in prefetched(pages):
            rows = mirror.pack(merge(rows_for(resource, r) for r in page.items))
            requests = client.requests_made - counted if own else 0
            counted = client.requests_made
            yield PageRows(rows, [r["id"] for r in page.items], requests)
    finally:
        if own:
            client.close()
