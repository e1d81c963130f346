"""Run several page generators in threads and hand their pages to one consumer, in arrival order.

The consumer (the thread that owns the SQLite connection) does all writing; the queue is
bounded, so memory stays flat however far the fetchers could run ahead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_DONE = object()


def interleave(
    sources: list[Callable[[], Iterator[Any]]], backlog: int = 2
) -> Iterator[tuple[int, Any]]:
    """Yield (source index, item) as items arrive, and (index, None) when a source is finished.

    Even a single source runs in its own thread, so the next page is being fetched while the
    consumer writes this one. An exception in any source is re-raised here; leaving the loop
    early (an error, Ctrl-C) tells every fetcher to stop.
    """
    inbox: queue.Queue = queue.Queue(maxsize=backlog * len(sources))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                inbox.put(entry, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(index: int, source: Callable[[], Iterator[Any]]) -> None:
        try:
            for item in source():
                if not put((index, item, None)):
                    return
            put((index, _DONE, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put((index, None, exc))

    threads = [
        threading.Thread(target=run, args=(i, s), daemon=True, name=f"fetch-{i}")
        for i, s in enumerate(sources)
    ]
    for thread in threads:
        thread.start()
    remaining = len(sources)
    try:
        while remaining:
            index, item, error = inbox.get()
            if error is not None:
                raise error
            if item is _DONE:
                remaining -= 1
                yield index, None
            else:
                yield index, item
    finally:
        stop.set()
