"""Unit tests of the sync's pure pieces: the cursor tracker, segments and the fetch threads."""

import threading
import time

import pytest

from etl.segments import CursorTracker, boundaries, reading_order, segment_counts, segment_starts
from etl.threads import interleave


def test_cursor_stays_at_the_first_unfinished_segment():
    tracker = CursorTracker([None, "2024-01-05T00:00:00Z", "2024-01-09T00:00:00Z"])
    assert tracker.safe_cursor() is None
    tracker.advance(2, "2024-01-10T00:00:00Z")
    tracker.advance(0, "2024-01-02T00:00:00Z")
    assert tracker.safe_cursor() == "2024-01-02T00:00:00Z"
    tracker.finish(0)
    assert tracker.safe_cursor() == "2024-01-05T00:00:00Z"  # segment 1 has not read anything
    tracker.finish(1)
    assert tracker.safe_cursor() == "2024-01-10T00:00:00Z"
    tracker.finish(2)
    assert tracker.safe_cursor() == "2024-01-10T00:00:00Z"


def test_interleave_yields_every_item_and_an_end_marker_per_source():
    sources = [lambda n=n: iter(range(n * 10, n * 10 + 5)) for n in range(3)]
    got = list(interleave(sources, workers=3))
    items = sorted(item for _, item in got if item is not None)
    assert items == sorted(x for n in range(3) for x in range(n * 10, n * 10 + 5))
    assert sorted(i for i, item in got if item is None) == [0, 1, 2]


def test_interleave_reraises_a_fetchers_error_and_stops_the_others():
    stopped = threading.Event()

    def endless():
        try:
            while True:
                yield 1
        finally:
            stopped.set()

    def failing():
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        for _ in interleave([endless, failing], workers=2):
            pass
    assert stopped.wait(5)


def test_a_slot_takes_the_next_source_instead_of_waiting_behind_a_slow_one():
    others_done = threading.Event()

    def slow():
        others_done.wait(20)
        yield "slow"

    sources = [slow, *(lambda n=n: iter([n]) for n in range(5))]
    finished = []
    for index, item in interleave(sources, workers=2):
        if item is None:
            finished.append(index)
            if sorted(finished) == [1, 2, 3, 4, 5]:
                others_done.set()
    assert finished[-1] == 0 and sorted(finished) == list(range(6))


def test_interleave_stops_waiting_when_asked():
    never = threading.Event()

    def hangs():
        never.wait(20)
        yield 1

    asked = time.monotonic() + 0.3
    assert list(interleave([hangs], workers=1, until=lambda: time.monotonic() > asked)) == []
    never.set()


def test_interleave_reads_at_most_workers_sources_at_once():
    running, most = 0, 0
    lock = threading.Lock()

    def source(n):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        yield n
        with lock:
            running -= 1

    got = list(interleave([lambda n=n: source(n) for n in range(7)], workers=3))
    assert sorted(item for _, item in got if item is not None) == list(range(7))
    assert sorted(i for i, item in got if item is None) == list(range(7))
    assert most == 3


def test_lists_get_segments_in_proportion_to_their_pages():
    # 200 and 500 pages with 4 slots: 16 segments shared 5 to 11.
    assert segment_counts([20_000, 50_000], 100, 4) == [5, 11]
    # One slot gains nothing from cutting; a list too short for two pages stays whole.
    assert segment_counts([20_000, 50_000], 100, 1) == [1, 1]
    assert segment_counts([150, 50_000], 100, 4) == [1, 16]
    assert segment_counts([None, 0], 100, 4) == [1, 1]
    # Never a segment of fewer than two pages: 6 pages cut 2 ways are 4 + 2, 3 ways 3 + 2 + 1.
    assert segment_counts([600], 100, 16) == [2]
    assert segment_counts([50_000], 100, 16) == [21]


def test_segments_shrink_toward_the_end_of_a_list():
    starts = segment_starts(4)
    assert starts == [0.0, 0.4, 0.7, 0.9]
    sizes = [b - a for a, b in zip(starts, [*starts[1:], 1.0], strict=True)]
    assert sizes == sorted(sizes, reverse=True)
    assert segment_starts(1) == [0.0]


def test_boundaries_are_strictly_increasing_and_skip_empty_samples():
    samples = ["2024-01-02T00:00:00Z", None, "2024-01-02T00:00:00Z", "2024-01-05T00:00:00Z"]
    assert boundaries(samples) == ["2024-01-02T00:00:00Z", "2024-01-05T00:00:00Z"]
    assert boundaries(["2024-01-05T00:00:00Z", "2024-01-03T00:00:00Z"]) == ["2024-01-05T00:00:00Z"]


def test_reading_order_keeps_each_list_in_order_and_advances_them_together():
    order = reading_order([2, 5])
    assert sorted(order) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
    for li in (0, 1):
        mine = [sj for i, sj in order if i == li]
        assert mine == sorted(mine)
    # The short list's first segment starts before the long list's third.
    assert order.index((0, 0)) < order.index((1, 2))
    assert order.index((0, 1)) < order.index((1, 4))
