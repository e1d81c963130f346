"""Cutting a list into segments that several threads read at once, and the cursor that is
safe to store meanwhile. Pure functions and one small class: no HTTP, no database.

A list's records are ordered by `updatedAt`; the sync samples a few of them and cuts the list
at their stamps (`boundaries`). Each segment is its own keyset walk, so the boundaries only
need to be ordered, not exact.
"""

from __future__ import annotations

import itertools
import math

# Segments per worker when lists are cut up: a worker that finishes its segment early takes
# another, so no worker idles while one long segment is still being read.
SEGMENTS_PER_WORKER = 4


def segment_counts(totals: list[int | None], page_size: int, slots: int) -> list[int]:
    """How many segments to cut each list into, given the requests that may be in flight.

    With one worker nothing is gained by cutting. Otherwise lists get segments in proportion to
    their pages, SEGMENTS_PER_WORKER per worker in all, at least one each, and never so many that
    the shortest segment (see `segment_starts`) would hold fewer than two pages.
    """
    pages = [-(-(total or 0) // page_size) for total in totals]
    if slots <= 1 or not sum(pages):
        return [1] * len(totals)
    budget = SEGMENTS_PER_WORKER * slots
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
