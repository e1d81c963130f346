"""Unit tests of the sync's pure pieces: the cursor tracker and the page interleaver."""

import fcntl
import os
import threading

import pytest

from etl.errors import EtlError
from etl.parallel import PIPE_BYTES, _widen_pipe, can_fork, interleave, interleave_processes
from etl.sync import CursorTracker


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
