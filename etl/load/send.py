"""Sending: each create preceded by an intent in the ledger, N workers sharing one client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from etl import mapping as m
from etl.client import Client
from etl.errors import Conflict, OutcomeUnknown, ValidationFailed
from etl.ledger import Entry, Ledger
from etl.load.plan import Item, materialize
from etl.load.report import CONVERSATIONS, Report
from etl.load.target import find_conversation, find_customer

RECOVERY_ATTEMPTS = 8
RETRY_PAUSE = 1.0  # seconds before looking up a create whose outcome is unknown (x attempt)


class Stop(Exception):
    """Raised inside workers once another worker failed: finish quietly."""


@dataclass
class Sender:
    """Sends items with the ledger's guarantees; one instance shared by all workers."""

    client: Client
    ledger: Ledger
    report: Report
    run_id: int | None
    retry_pause: float = field(default_factory=lambda: RETRY_PAUSE)
    stop: threading.Event = field(default_factory=threading.Event)
    recovery: threading.Lock = field(default_factory=threading.Lock)
    counts_lock: threading.Lock = field(default_factory=threading.Lock)
    finished: int = 0

    def send(self, kind: str, item: Item, entry: Entry | None) -> None:
        """Send one item (created, found or rejected); raises on failures that stop the run."""
        (self.conversation if kind == CONVERSATIONS else self.customer)(item, entry)
        with self.counts_lock:
            self.finished += 1

    def _count(self, what: str) -> None:
        with self.counts_lock:
            setattr(self.report, what, getattr(self.report, what) + 1)

    def _reject(self, item: Item, exc: ValidationFailed | Conflict) -> None:
        errors = getattr(exc, "errors", None) or [{"path": "", "message": exc.detail}]
        reason = "; ".join(f"{e.get('path')}: {e.get('message')}".strip(": ") for e in errors)
        self.ledger.rejected(
            item.source_id, f"API: {reason}", item.file, item.row, self.run_id, item.fingerprint
        )
        with self.counts_lock:
            for error in errors:
                problem = m.Problem(
                    str(error.get("path") or ""),
                    "api_refused",
                    f"the API refused it: {error.get('message')}",
                    item.row,
                )
                self.report.reject(item.file, item.row, item.source_id, problem)

    def conversation(self, item: Item, entry: Entry | None) -> None:
        if self.stop.is_set():
            raise Stop
        target_id = None
        if entry is not None and entry.state == "created":
            target_id = entry.target_id  # created before a stop; only the tags may be missing
            self._count("recovered")
        elif entry is not None and entry.state == "sending":
            # A previous run recorded the intent and stopped before recording the outcome.
            target_id = self._recover_conversation(item)
            if target_id is not None:
                self._count("recovered")
        if target_id is None:
            self.ledger.intend(
                item.source_id, item.fingerprint, item.expected, item.file, item.row, self.run_id
            )
            try:
                target_id, recovered = self._create_conversation(item)
            except (ValidationFailed, Conflict) as exc:
                self._reject(item, exc)
                return
            self._count("recovered" if recovered else "created")
        if item.tags:
            self.client.put(f"api/conversations/{target_id}/tags", {"tags": item.tags})
        self.ledger.done(item.source_id, target_id)

    def _recover_conversation(self, item: Item) -> int | None:
        with self.recovery:
            found = find_conversation(self.client, item.expected, self.ledger.claimed_target_ids())
            if found is not None:
                self.ledger.created(item.source_id, found)
            return found

    def _create_conversation(self, item: Item) -> tuple[int, bool]:
        body = materialize(item.payload)
        for attempt in range(1, RECOVERY_ATTEMPTS + 1):
            try:
                target_id = self.client.create("api/conversations", body)
            except OutcomeUnknown:
                if attempt == RECOVERY_ATTEMPTS:
                    raise
                # The create may have happened: look before sending it again.
                time.sleep(self.retry_pause * attempt)
                found = self._recover_conversation(item)
                if found is not None:
                    return found, True
                continue
            self.ledger.created(item.source_id, target_id)
            return target_id, False
        raise AssertionError("unreachable")

    def customer(self, item: Item, entry: Entry | None) -> None:
        if self.stop.is_set():
            raise Stop
        if entry is not None and entry.state in ("sending", "created"):
            found = entry.target_id or find_customer(self.client, item.email)
            if found is not None:
                self.ledger.done(item.source_id, found)
                self._count("recovered")
                return
        # The API creates a customer when only some of the emails are known: look first.
        for email in item.payload.get("emails", []):
            found = find_customer(self.client, email["value"])
            if found is not None:
                self.ledger.done(item.source_id, found, existing=True)
                self._count("reused")
                return
        self.ledger.intend(
            item.source_id, item.fingerprint, item.expected, item.file, item.row, self.run_id
        )
        for attempt in range(1, RECOVERY_ATTEMPTS + 1):
            try:
                target_id = self.client.create("api/customers", item.payload)
            except Conflict:
                # Every email of the row belongs to a customer already: reuse it.
                found = find_customer(self.client, item.email)
                if found is None:
                    raise
                self.ledger.done(item.source_id, found, existing=True)
                self._count("reused")
                return
            except ValidationFailed as exc:
                self._reject(item, exc)
                return
            except OutcomeUnknown:
                if attempt == RECOVERY_ATTEMPTS:
                    raise
                time.sleep(self.retry_pause * attempt)
                found = find_customer(self.client, item.email)
                if found is not None:
                    self.ledger.done(item.source_id, found)
                    self._count("recovered")
                    return
                continue
            self.ledger.done(item.source_id, target_id)
            self._count("created")
            return


def run_workers(
    items: list[Item],
    send: Callable[[Item], None],
    workers: int,
    stop: threading.Event,
    progress: Any,
) -> None:
    """Send every item with `workers` threads; the first failure stops the rest and is raised."""
    if workers <= 1:
        for item in items:
            send(item)
            progress.update(1)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load")
    try:
        pending = {pool.submit(send, item) for item in items}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None and not isinstance(error, Stop):
                    stop.set()
                    for other in pending:
                        other.cancel()
                    wait(pending)
                    raise error
                progress.update(1)
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
