"""Run several page generators in threads and hand their pages to one consumer, in arrival order.

The consumer (the thread that owns the SQLite connection) does all writing; the queue is
bounded, so memory stays flat however far the fetchers could run ahead.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import itertools
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from etl.errors import EtlError

_DONE = object()
CHILD_NICENESS = 5
# In a fetch process one thread transforms a page while another waits on the next response.
# After each socket read the waiting thread needs the GIL back, and Python's default 5 ms
# switch interval made it wait up to that long behind the transform. At 50 ms latency a page
# took 53 ms to a lone client but 58 ms (median) in the sync; with 1 ms, 55 ms.
CHILD_SWITCH_INTERVAL = 0.001


def interleave(
    sources: list[Callable[[], Iterator[Any]]], backlog: int = 2, slots: int | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield (source index, item) as items arrive, and (index, None) when a source is finished.

    `slots` threads (default: one per source) each take the next source not yet started and
    read it to the end, so at most `slots` sources are read at once and none waits for a
    slower one. Even a single source runs in its own thread, so the next page is being
    fetched while the consumer writes this one. An exception in any source is re-raised
    here; leaving the loop early (an error, Ctrl-C) tells every fetcher to stop.
    """
    taken = itertools.count()
    lock = threading.Lock()

    def take() -> int | None:
        with lock:
            index = next(taken)
        return index if index < len(sources) else None

    yield from _pulled(sources, take, backlog, slots or len(sources), len(sources))


def _pulled(
    sources: list[Callable[[], Iterator[Any]]],
    take: Callable[[], int | None],
    backlog: int,
    slots: int,
    expected: int,
) -> Iterator[tuple[int, Any]]:
    """`interleave` with the choice of the next source left to `take` (None: nothing left).

    Ends once `expected` sources are finished or every slot has found nothing left to take.
    """
    slots = max(1, min(slots, len(sources)))
    inbox: queue.Queue = queue.Queue(maxsize=backlog * slots)
    stop = threading.Event()

    def put(entry) -> bool:
        return _offer(inbox, entry, stop)

    def run() -> None:
        try:
            while (index := take()) is not None:
                for item in sources[index]():
                    if not put((index, item, None)):
                        return
                if not put((index, _DONE, None)):
                    return
            put((None, _DONE, None))  # this slot is free for good
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put((None, None, exc))

    threads = [threading.Thread(target=run, daemon=True, name=f"fetch-{i}") for i in range(slots)]
    for thread in threads:
        thread.start()
    finished = idle = 0
    try:
        while finished < expected and idle < slots:
            index, item, error = inbox.get()
            if error is not None:
                raise error
            if index is None:
                idle += 1
            elif item is _DONE:
                finished += 1
                yield index, None
            else:
                yield index, item
    finally:
        stop.set()


def prefetched(source: Iterator[Any], backlog: int = 1) -> Iterator[Any]:
    """The items of `source`, read ahead in a thread while the caller works on the last one.

    A keyset walk can only ask for its next page once it has this one, but it need not wait
    for this one to be transformed: the request for page n+1 is in flight while page n is.
    """
    for _, item in interleave([lambda: source], backlog):
        if item is not None:
            yield item


def _offer(inbox, entry, stop, while_waiting: Callable[[], None] = lambda: None) -> bool:
    """Put `entry` into a bounded queue, giving up (False) once `stop` is set."""
    while not stop.is_set():
        while_waiting()
        try:
            inbox.put(entry, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def interleave_processes(
    work: Callable[[Any], Iterator[Any]],
    specs: list[Any],
    backlog: int = 2,
    processes: int | None = None,
    slots: int | None = None,
    batch: bool = False,
) -> Iterator[tuple[int, Any]]:
    """Like `interleave`, but `work(spec)` runs in forked child processes.

    There are `processes` children (default: one per core, at most one per slot), each with
    its share of the `slots` threads (default: one per spec). Every thread, in whichever
    child, takes the next spec not yet started, so a child whose specs finish early goes on
    with the others' instead of idling. With `batch`, the children are scheduled as batch
    work where the OS has that (see `_schedule_as_batch`): for when they keep the cores busy.

    Children inherit nothing they use but the specs; they ignore Ctrl-C (the parent decides
    when to stop) and leave through os._exit, so nothing inherited, such as an SQLite handle,
    is closed from the child. A child's EtlError is raised again in the parent; any other
    failure arrives as an EtlError naming it.
    """
    context = multiprocessing.get_context("fork")
    slots = max(1, min(slots or len(specs), len(specs)))
    inbox = context.Queue(maxsize=backlog * slots)
    _widen_pipe(inbox._writer.fileno())
    stop = context.Event()
    next_spec = context.Value("i", 0)
    count = max(1, min(slots, processes or os.cpu_count() or 1))
    threads = [slots // count + (i < slots % count) for i in range(count)]
    children = [
        context.Process(
            target=_child,
            args=(work, specs, next_spec, n, inbox, stop, os.getpid(), batch),
            daemon=True,
        )
        for n in threads
    ]
    _release_free_memory()
    for child in children:
        child.start()
    remaining = set(range(len(specs)))
    try:
        while remaining:
            entry = _next_entry(inbox, children)
            if entry is None:
                continue
            index, kind, payload = entry
            if kind == "error":
                raise payload
            if kind == "done":
                remaining.discard(index)
                yield index, None
            else:
                yield index, payload
    finally:
        stop.set()
        for child in children:
            child.join(timeout=2)
            if child.is_alive():
                child.terminate()
                child.join(timeout=2)
        inbox.close()
        inbox.cancel_join_thread()


def _next_entry(inbox, children):
    """The next message from the children, or None after a second without one.

    Raises once a child has died, or all have ended with nothing left in the queue: a child
    that ends normally has sent everything first, so its last messages are read before that
    is concluded.
    """
    try:
        return inbox.get(timeout=1.0)
    except queue.Empty:
        pass
    dead = [c.exitcode for c in children if c.exitcode not in (None, 0)]
    if dead:
        raise EtlError(f"a fetch process died (exit {dead[0]})")
    if all(c.exitcode is not None for c in children):
        try:
            return inbox.get(timeout=1.0)
        except queue.Empty:
            raise EtlError("the fetch processes ended before their segments") from None
    return None


PIPE_BYTES = 1 << 20


def _widen_pipe(fd: int, size: int = PIPE_BYTES) -> None:
    """Let a pipe hold a whole page of rows (Linux only; elsewhere the pipe stays as it is).

    A page of 100 conversations pickles to about 1 MB. Through the default 64 KB pipe the
    parent read each one in 16 pieces, waiting every time for a lower-priority child to be
    scheduled and write the next piece; with room for the whole page it reads it at once.
    """
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    try:
        with open("/proc/sys/fs/pipe-max-size") as limit:
            size = min(size, int(limit.read()))
        fcntl.fcntl(fd, set_size, size)
    except (OSError, ValueError):
        pass


def _glibc():
    """The C library's functions, or None where they cannot be reached."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _release_free_memory() -> None:
    """Hand memory the process has freed back to the system (glibc only).

    A forked child counts every page of its parent's heap in its own resident size, freed or
    not, so the parent trims before it forks.
    """
    trim = getattr(_glibc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


# glibc's mallopt parameters
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
# A child allocates a few blocks of about 1 MB a page (the response, its text, the pickled
# rows) and frees them soon after. glibc mapped each one afresh and unmapped or trimmed it
# on free, so its pages were faulted in and zeroed again for every page of records: 150,000
# minor faults a first sync. Kept in the heap and reused: 31,000.
KEEP_BLOCKS_BELOW = 8 << 20
KEEP_FREE_TOP = 64 << 20


def _tune_malloc(arenas: int = 2) -> None:
    """Let this process's threads share `arenas` glibc heaps, and reuse big blocks (glibc only).

    Pages are decoded in one thread and freed in another; with a heap per thread each kept its
    own high-water mark, and a child reading two segments peaked 18 MB higher.
    """
    mallopt = getattr(_glibc(), "mallopt", None)
    if mallopt is not None:
        mallopt(M_ARENA_MAX, arenas)
        mallopt(M_MMAP_THRESHOLD, KEEP_BLOCKS_BELOW)
        mallopt(M_TRIM_THRESHOLD, KEEP_FREE_TOP)


# Decoded pages are trees, freed by reference counting as soon as their rows are sent; the
# cycle collector found nothing in them but ran every 700 new objects, dozens of times a page.
CHILD_GC_THRESHOLDS = (50_000, 20, 100)


def _collect_garbage_rarely() -> None:
    """Exempt what the parent left behind from collection, and collect new objects rarely.

    `gc.freeze` also keeps the collector from touching (and so copying) the pages of the
    parent's objects that the fork shares. Transforming pages took 8-10% less CPU.
    """
    gc.freeze()
    gc.set_threshold(*CHILD_GC_THRESHOLDS)


def _schedule_as_batch() -> None:
    """Ask Linux to treat this process (and the threads it starts) as batch work.

    A thread that wakes another (handing it a page through a queue) holds the interpreter
    lock while it does; under the usual policy the woken thread could preempt it at once and
    then wait for the lock held by the thread it displaced, until that one was scheduled again.
    Batch threads do not preempt on waking. With 4 fetch processes on 2 busy cores the children
    were switched out involuntarily 4,800-5,100 times a first sync against 10,300-11,700.
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is not None:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, os.sched_param(0))


def _child(
    work, specs: list[Any], next_spec, threads: int, inbox, stop, parent: int, batch: bool
) -> None:
    """Take specs one by one (shared with the other children) and send what they yield."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _tune_malloc()
    _collect_garbage_rarely()
    # The parent's writes are the one serial step; when the cores are busy, it goes first.
    os.nice(CHILD_NICENESS)
    if batch:
        _schedule_as_batch()
    sys.setswitchinterval(CHILD_SWITCH_INTERVAL)
    # Let go of the parent's terminal and pipes: a parent killed with -9 must not leave
    # whoever reads its output waiting on a child.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)

    def exit_if_orphaned() -> None:
        if os.getppid() != parent:
            os._exit(0)  # the parent died without telling us

    def put(entry) -> bool:
        return _offer(inbox, entry, stop, exit_if_orphaned)

    def take() -> int | None:
        with next_spec.get_lock():
            index = next_spec.value
            if index >= len(specs) or stop.is_set():
                return None
            next_spec.value = index + 1
        return index

    sources = [lambda spec=spec: work(spec) for spec in specs]
    try:
        for index, item in _pulled(sources, take, 1, threads, len(specs)):
            if not put((index, "done", None) if item is None else (index, "item", item)):
                return
    except EtlError as exc:  # sent to the parent, which raises it
        put((None, "error", exc))
    except Exception as exc:
        put((None, "error", EtlError(f"{type(exc).__name__}: {exc}")))
    finally:
        inbox.close()
        inbox.join_thread()
