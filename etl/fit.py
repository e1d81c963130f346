"""Fitting a migration into the target's request limit (a bigger body is refused with 413).

Attachments travel inside the JSON as base64, a third larger than the files. Two steps keep
every request under the budget (`--max-request-mb`):

1. `split_attachments` (before planning): a thread whose attachments would not fit in one
   request keeps those that fit, in order; the rest follow in notes right after it (same
   date, written by the fallback user), each note as full as fits. A single file larger than
   the budget cannot travel at all: it is left out and said.
2. `first_request` (after planning): a conversation whose threads together do not fit is
   created with its oldest threads that fit; the rest are appended right after by the load's
   catch-up, one request per thread.

Sizes come from the staged files (`os.stat`); nothing else here does I/O.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from etl import mapping as m
from etl.load import Item
from etl.load.plan import fingerprint

MB = 1_000_000
THREAD_OVERHEAD = 2_000  # JSON around a thread: its type, dates, author, file names


def encoded(size: int) -> int:
    """A file's size once base64-encoded."""
    return 4 * math.ceil(size / 3)


def file_size(attachment: m.Attachment) -> int:
    try:
        return os.path.getsize(attachment.path) if attachment.path else 0
    except OSError:
        return 0


def split_attachments(
    conv: m.SourceConversation, budget: int, size_of: Callable[[m.Attachment], int] = file_size
) -> list[str]:
    """Move the attachments that do not fit into notes after their thread; what was done."""
    said: list[str] = []
    threads: list[m.SourceThread] = []
    for thread in conv.threads:
        room = budget - THREAD_OVERHEAD - len(thread.body.encode("utf-8"))
        groups: list[list[m.Attachment]] = [[]]
        used = 0
        for attachment in thread.attachments:
            size = encoded(size_of(attachment))
            if size > budget - THREAD_OVERHEAD - 500:
                said.append(f"{attachment.file_name} left out: larger than the request limit")
                continue
            if groups[-1] and used + size > room:
                groups.append([])
                used = 0
                room = budget - THREAD_OVERHEAD - 500  # a note's text is short
            groups[-1].append(attachment)
            used += size
        thread.attachments = groups[0]
        threads.append(thread)
        for number, group in enumerate(groups[1:], start=2):
            names = ", ".join(a.file_name for a in group)
            body = (
                f"<p>Attachments of the message above, continued ({number} of {len(groups)}): "
                f"{names}</p>"
            )
            threads.append(
                m.SourceThread(
                    row=thread.row,
                    type="note",
                    body=body,
                    created_at=thread.created_at,
                    author=m.Person(),  # the fallback user writes it
                    attachments=group,
                )
            )
        if len(groups) > 1:
            said.append(
                f"{len(groups) - 1} note(s) after the thread of {thread.created_at} carry the "
                "attachments that did not fit"
            )
    conv.threads = threads
    return said


def payload_size(thread: dict[str, Any]) -> int:
    """A thread's size in a request: its JSON, and its files as base64."""
    files = sum(encoded(_path_size(ref.get("_path"))) for ref in thread.get("attachments", []))
    text = json.dumps({k: v for k, v in thread.items() if k != "attachments"}, ensure_ascii=False)
    return len(text.encode("utf-8")) + files + 200 * len(thread.get("attachments", []))


def first_request(item: Item, budget: int) -> Item | None:
    """The item cut to its oldest threads that fit in one create, or None when all fit."""
    threads = item.payload.get("threads", [])  # newest first
    sizes = [payload_size(t) for t in threads]
    if sum(sizes) + THREAD_OVERHEAD <= budget:
        return None
    kept, used = 0, THREAD_OVERHEAD
    for size in reversed(sizes):  # oldest first
        if kept and used + size > budget:
            break
        kept += 1
        used += size
    payload = dict(item.payload, threads=threads[len(threads) - kept :])
    expected = dict(item.expected, threads=item.expected["threads"][:kept])
    return replace(
        item,
        payload=payload,
        expected=expected,
        fingerprint=fingerprint({"payload": payload, "tags": item.tags}),
        left_out=list(item.left_out),
    )


def _path_size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0
