"""Run page sources in a few threads and hand what they yield to one consumer, as it arrives.

The consumer (the thread that owns the SQLite connection) does all transforming and writing;
the threads only wait on HTTP. The queue between them is bounded, so memory stays flat however
far the fetchers could run ahead.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_DONE = object()
POLL_SECONDS = 0.2  # how often a waiting consumer looks whether it was asked to stop


def interleave(
    sources: list[Callable[[], Iterable[Any]]],
    workers: int,
    *,
    backlog: int = 2,
    until: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[int, Any]]:
    """Yield (source index, item) as items arrive, and (index, None) when a source is finished.

    `workers` threads each take the next source not yet started, in list order, and read it
    to the end, so at most `workers` sources are read at once and none waits for a slower
    one. An exception in any source is raised here. The iteration ends early, without an
    error, once `until()` is true (Ctrl-C asked to stop); leaving it early in any way tells
    every thread to stop at its next item. The threads are daemons, so a request still in
    flight never holds up the end of the program.
    """
    if not sources:
        return
    workers = max(1, min(workers, len(sources)))
    inbox: queue.Queue = queue.Queue(maxsize=backlog * workers)
    halt = threading.Event()
    taken = itertools.count()
    lock = threading.Lock()

    def take() -> int | None:
        with lock:
            index = next(taken)
        return index if index < len(sources) else None

    def put(entry: tuple) -> bool:
        while not halt.is_set():
            try:
                inbox.put(entry, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            while (index := take()) is not None:
                for item in sources[index]():
                    if not put((index, item, None)):
                        return
                if not put((index, _DONE, None)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put((None, None, exc))

    for number in range(workers):
        threading.Thread(target=run, daemon=True, name=f"fetch-{number}").start()
    finished = 0
    try:
        while finished < len(sources):
            try:
                index, item, error = inbox.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if until():
                    return
                continue
            if error is not None:
                raise error
            if item is _DONE:
                finished += 1
                yield index, None
            else:
                yield index, item
    finally:
        halt.set()
