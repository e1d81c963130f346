"""Unit tests of the sync's pure pieces: the cursor tracker and the page interleaver."""

import fcntl
import os
import sys
import threading
import time

import pytest

from etl.errors import EtlError
from etl.parallel import (
    CHILD_SWITCH_INTERVAL,
    PIPE_BYTES,
    _widen_pipe,
    can_fork,
    interleave,
    interleave_processes,
)
from etl.sync import CursorTracker, boundaries, reading_order, segment_counts, segment_starts


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
    got = list(interleave(sources))
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
        for _ in interleave([endless, failing]):
            pass
    assert stopped.wait(5)


def numbers(spec):
    """Module level, so a forked child can run it: the spec's numbers, or an error."""
    start, count = spec
    if count < 0:
        raise EtlError(f"segment {start} failed")
    yield from range(start, start + count)


@pytest.mark.skipif(not can_fork(), reason="needs fork")
@pytest.mark.parametrize("processes", [1, 2, 5])
def test_processes_share_the_specs_and_every_item_comes_back_under_its_spec(processes):
    specs = [(0, 3), (100, 4), (200, 0), (300, 5), (400, 2)]
    got = list(interleave_processes(numbers, specs, processes=processes))
    for index, (start, count) in enumerate(specs):
        mine = [item for i, item in got if i == index and item is not None]
        assert sorted(mine) == list(range(start, start + count))
    assert sorted(i for i, item in got if item is None) == list(range(len(specs)))


@pytest.mark.skipif(not can_fork(), reason="needs fork")
def test_an_error_in_a_child_sharing_specs_reaches_the_parent():
    with pytest.raises(EtlError, match="segment 7 failed"):
        list(interleave_processes(numbers, [(0, 3), (7, -1), (9, 2)], processes=2))


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="Linux pipes only")
def test_the_pipe_from_the_children_holds_a_whole_page():
    read_end, write_end = os.pipe()
    try:
        before = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
        _widen_pipe(write_end)
        after = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
    finally:
        os.close(read_end)
        os.close(write_end)
    with open("/proc/sys/fs/pipe-max-size") as limit:
        assert after == min(PIPE_BYTES, int(limit.read())) > before


def _switch_interval(_spec):
    yield sys.getswitchinterval()


@pytest.mark.skipif(not can_fork(), reason="needs fork")
def test_fetch_processes_hand_the_gil_to_a_waiting_thread_sooner():
    got = [item for _, item in interleave_processes(_switch_interval, [0, 1], processes=2) if item]
    assert got == [CHILD_SWITCH_INTERVAL] * 2
    assert CHILD_SWITCH_INTERVAL < sys.getswitchinterval()  # the parent keeps the default


def _policy(_spec):
    def in_a_thread():
        seen.append(os.sched_getscheduler(0))

    seen: list[int] = []
    thread = threading.Thread(target=in_a_thread)  # threads started later inherit it
    thread.start()
    thread.join()
    yield (os.sched_getscheduler(0), *seen)


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH") or not can_fork(), reason="Linux only")
@pytest.mark.parametrize("batch", [True, False])
def test_busy_fetch_processes_are_scheduled_as_batch_work(batch):
    got = [item for _, item in interleave_processes(_policy, [0, 1], processes=2, batch=batch)]
    policy = os.SCHED_BATCH if batch else os.sched_getscheduler(0)
    assert [item for item in got if item] == [(policy, policy)] * 2


def test_interleave_reads_at_most_slots_sources_at_once():
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

    got = list(interleave([lambda n=n: source(n) for n in range(7)], slots=3))
    assert sorted(item for _, item in got if item is not None) == list(range(7))
    assert sorted(i for i, item in got if item is None) == list(range(7))
    assert most == 3


def waits_for_the_others(spec):
    """Spec 0 waits (up to 20 s) for the marker file the test writes once the rest are done."""
    index, marker = spec
    if index == 0:
        deadline = time.monotonic() + 20
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
    yield index


@pytest.mark.skipif(not can_fork(), reason="needs fork")
def test_a_slot_takes_the_next_spec_instead_of_waiting_behind_a_slow_one(tmp_path):
    marker = str(tmp_path / "others-done")
    specs = [(i, marker) for i in range(6)]
    finished = []
    for index, item in interleave_processes(waits_for_the_others, specs, processes=2, slots=2):
        if item is None:
            finished.append(index)
            if sorted(finished) == [1, 2, 3, 4, 5]:
                open(marker, "w").close()
    # With fixed shares, specs 2 and 4 would have sat behind spec 0 in its child.
    assert finished[-1] == 0
    assert sorted(finished) == list(range(6))


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
