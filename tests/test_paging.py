"""Unit tests of the one paging loop, against an in-memory fake of a list endpoint."""

from datetime import UTC, datetime, timedelta

import pytest

from etl.errors import PagingError
from etl.paging import KeysetPager, NumberPager, iter_pages
from etl.timeutil import one_second_before
from etl.timeutil import parse as parse_timestamp

BASE = datetime(2024, 1, 1, tzinfo=UTC)


def ts(seconds: int) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeEndpoint:
    """Sorted by (updatedAt, id) ascending; `updatedSince` strictly after; page-number paging."""

    def __init__(self, records, on_request=None):
        self.records = {r["id"]: dict(r) for r in records}
        self.on_request = on_request
        self.calls = []
        self.max_pages = 100

    def get(self, path, params):
        self.calls.append(dict(params))
        if self.on_request:
            self.on_request(self, len(self.calls))
        rows = sorted(self.records.values(), key=lambda r: (r["updatedAt"], r["id"]))
        since = params.get("updatedSince")
        if since:
            rows = [r for r in rows if parse_timestamp(r["updatedAt"]) > parse_timestamp(since)]
        size, page = params["pageSize"], params["page"]
        chunk = rows[(page - 1) * size : page * size]
        pages = -(-len(rows) // size)
        return {
            "_embedded": {"items": [dict(r) for r in chunk]},
            "page": {"size": size, "totalElements": len(rows), "totalPages": pages, "number": page},
        }


def walk(endpoint, page_size=10, since=None, stop_before=None):
    params = {"updatedSince": since} if since else {}
    pager = KeysetPager(
        endpoint.get,
        "api/x",
        "items",
        params,
        field="updatedAt",
        since_param="updatedSince",
        page_size=page_size,
        stop_before=stop_before,
    )
    return [r for page in pager for r in page.items]


def test_keyset_walk_reads_every_record_once_even_when_a_second_holds_many_pages():
    records = [{"id": i, "updatedAt": ts(0 if i < 35 else i)} for i in range(60)]
    got = walk(FakeEndpoint(records), page_size=10)
    assert sorted(r["id"] for r in got) == list(range(60))
    assert len(got) == 60


def test_records_changing_mid_walk_do_not_make_others_slip():
    # Every request, the oldest unread record is touched and moves to the end. With plain
    # page-number paging this shifts the list and skips records; the keyset walk must not.
    records = [{"id": i, "updatedAt": ts(i)} for i in range(50)]

    def mutate(endpoint, call):
        victim = min(endpoint.records.values(), key=lambda r: (r["updatedAt"], r["id"]))
        victim["updatedAt"] = ts(1000 + call)

    got = walk(FakeEndpoint(records, on_request=mutate), page_size=7)
    assert {r["id"] for r in got} == set(range(50))


def test_page_number_paging_over_a_changing_list_would_skip_records():
    # The control for the test above: the same mutations break naive paging.
    records = [{"id": i, "updatedAt": ts(i)} for i in range(50)]

    def mutate(endpoint, call):
        victim = min(endpoint.records.values(), key=lambda r: (r["updatedAt"], r["id"]))
        victim["updatedAt"] = ts(1000 + call)

    endpoint = FakeEndpoint(records, on_request=mutate)
    pages = iter_pages(endpoint, "api/x", "items", {}, page_size=7)
    ids = {r["id"] for page in pages for r in page.items}
    assert ids != set(range(50))


def test_since_is_strictly_after_so_the_cursor_second_is_reread():
    records = [{"id": i, "updatedAt": ts(5)} for i in range(3)]
    assert walk(FakeEndpoint(records), since=ts(5)) == []
    assert len(walk(FakeEndpoint(records), since=one_second_before(ts(5)))) == 3


def test_a_server_repeating_the_same_page_is_stopped():
    class Stuck:
        max_pages = 100

        def get(self, path, params):
            items = [{"id": i, "updatedAt": ts(0)} for i in range(5)]
            return {"_embedded": {"items": items}, "page": {"totalElements": 99}}

    with pytest.raises(PagingError):
        list(iter_pages(Stuck(), "api/x", "items", {}, page_size=5))
    with pytest.raises(PagingError):
        list(iter_pages(Stuck(), "api/x", "items", {}, page_size=5, keyset=("updatedAt", "u")))


def test_plain_paging_stops_at_the_last_page():
    endpoint = FakeEndpoint([{"id": i, "updatedAt": ts(i)} for i in range(20)])
    pages = list(iter_pages(endpoint, "api/x", "items", {}, page_size=10))
    assert [len(p.items) for p in pages] == [10, 10]
    assert pages[0].total == 20


def test_a_crowded_second_is_reread_until_nothing_slipped():
    # 35 records share one second, more than a page. Each request moves the first of them (one
    # already read) to the end, shifting the rest under the page numbers used inside that second.
    records = [{"id": i, "updatedAt": ts(0 if i < 35 else i)} for i in range(60)]
    touched = set()

    def mutate(endpoint, call):
        if call < 2:
            return
        crowded = sorted(r["id"] for r in endpoint.records.values() if r["updatedAt"] == ts(0))
        if crowded:
            endpoint.records[crowded[0]]["updatedAt"] = ts(1000 + call)
            touched.add(crowded[0])

    got = {r["id"] for r in walk(FakeEndpoint(records, on_request=mutate), page_size=10)}
    assert touched
    assert set(range(60)) - touched <= got


def test_a_walk_asks_only_for_pages_it_uses():
    endpoint = FakeEndpoint([{"id": i, "updatedAt": ts(i)} for i in range(95)])
    got = walk(endpoint, page_size=10)
    assert [r["id"] for r in got] == list(range(95))
    # Each request starts one second before the last record of the one before, so a page
    # brings that record again and nine new ones: 10 + 10 * 9 records in 11 requests.
    assert len(endpoint.calls) == 11
    assert [c.get("updatedSince") for c in endpoint.calls[1:3]] == [ts(8), ts(17)]
    assert all(c["page"] == 1 for c in endpoint.calls)


def test_a_segment_ends_before_its_stop():
    endpoint = FakeEndpoint([{"id": i, "updatedAt": ts(i)} for i in range(50)])
    got = walk(endpoint, page_size=10, since=ts(9), stop_before=ts(25))
    assert [r["id"] for r in got] == list(range(10, 25))


def test_a_small_list_stops_at_its_page_ceiling():
    endpoint = FakeEndpoint([{"id": i, "updatedAt": ts(i)} for i in range(50)])
    pager = NumberPager(endpoint.get, "api/x", "items", page_size=10, max_pages=3)
    with pytest.raises(PagingError, match="more than 3 pages; --max-pages allows more"):
        list(pager)
    assert len(endpoint.calls) == 3
