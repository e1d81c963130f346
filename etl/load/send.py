"""Sending: each create preceded by an intent in the ledger, N workers sharing one client."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from etl import mapping as m
from etl.client import Client
from etl.errors import Conflict, OutcomeUnknown, ValidationFailed
from etl.ledger import Entry, Ledger, thread_digest
from etl.load.attachments import materialize, sent_files, with_files_of, with_sent_files
from etl.load.customers import (
    CustomerFields,
    CustomerResolver,
    fill_in,
    find_match,
    lacking_fields,
    needs_id,
    with_ids,
)
from etl.load.plan import Item
from etl.load.report import CONVERSATIONS, Report
from etl.load.target import conversation_candidates, find_customer
from etl.timeutil import format as format_timestamp
from etl.timeutil import parse as parse_timestamp

RECOVERY_ATTEMPTS = 8
UPDATED, SAME, DIFFERS = "updated", "same", "differs"  # what catching up found
OUTCOMES = {
    "created": "created",
    "recovered": "created",  # before a stop, found on a rerun
    "reused": "already on the target",
    "on_target": "already on the target",
    "updated": "updated",
    "already_loaded": "already loaded",
}
RETRY_PAUSE = 1.0  # seconds before looking up a create whose outcome is unknown (x attempt)


def _stamp(value: str | None) -> str | None:
    return format_timestamp(parse_timestamp(value)) if value else None


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
    customers: CustomerResolver | None = None
    # Mailboxes that held conversations before the run (None: look in every one).
    look_in: set[int] | None = None
    claimed: set[int] | None = None  # target ids the ledger owns, read on first need
    taken: set[int] = field(default_factory=set)  # customers this run matched or created
    seen: dict[int, dict] = field(default_factory=dict)  # found conversations, with threads
    customer_fields: CustomerFields | None = None
    fetch: Callable[[str], bytes] | None = None  # downloads attachments (attachments.py)
    by_user: int | None = None  # the fallback user: byUser of status changes

    def send(self, kind: str, item: Item, entry: Entry | None) -> None:
        """Send one item (created, found or rejected); raises on failures that stop the run."""
        if item.update_of is not None and kind == CONVERSATIONS:
            self.update(item, entry)
        elif item.update_of is not None:  # a customer changed at the source since
            if self.stop.is_set():
                raise Stop
            self._reuse(item, item.update_of, existing=bool(entry and entry.existing))
        else:
            (self.conversation if kind == CONVERSATIONS else self.customer)(item, entry)
        with self.counts_lock:
            self.finished += 1

    def _count(self, what: str, item: Item | None = None, target_id: int | None = None) -> None:
        """Count an outcome, and note it for the item's row of the report."""
        with self.counts_lock:
            setattr(self.report, what, getattr(self.report, what) + 1)
            if item is not None:
                self.report.outcome(item, OUTCOMES[what], target_id)

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
            self._count("recovered", item, target_id)
            body = None
        else:
            try:
                body = self._with_customer_ids(item)
            except (ValidationFailed, Conflict) as exc:
                self._reject(item, exc)
                return
        if entry is not None and entry.state == "sending":
            # A previous run recorded the intent and stopped before recording the outcome.
            target_id = self._claim_conversation(item)
            if target_id is not None:
                self._count("recovered", item, target_id)
        elif target_id is None and self._may_be_on_target(item):
            # No ledger entry: the target may hold it from a load with another (or a lost) ledger.
            found = self._claim_conversation(item, existing=True)
            if found is not None:
                # Loaded before with another ledger: what is new since is appended.
                updated = self._catch_up(item, body, found) == UPDATED
                if updated:
                    self.ledger.refresh(item.source_id, item.fingerprint, item.expected)
                self._count("updated" if updated else "on_target", item, found)
                return
        if target_id is None:
            body = self._materialize(item, body)
            item.expected = with_sent_files(item.expected, body)  # the files as sent
            self.ledger.intend(
                item.source_id, item.fingerprint, item.expected, item.file, item.row, self.run_id
            )
            try:
                target_id, recovered = self._create_conversation(item, body)
            except (ValidationFailed, Conflict) as exc:
                self._reject(item, exc)
                return
            self._count("recovered" if recovered else "created", item, target_id)
        if item.tags:
            self.client.put(f"api/conversations/{target_id}/tags", {"tags": item.tags})
        if item.status == "spam":
            self._set_status(target_id, "spam")
        self.ledger.done(item.source_id, target_id)

    def _set_status(self, target_id: int, status: str) -> None:
        """PUT a status (spam cannot be given on create or with a thread); byUser is needed."""
        if self.by_user is not None:
            body = {"byUser": self.by_user, "status": status}
            self.client.put(f"api/conversations/{target_id}", body)

    # -- delta after cut-over ------------------------------------------------------------

    def update(self, item: Item, entry: Entry | None) -> None:
        """A conversation loaded before: append the threads that are new at the source."""
        if self.stop.is_set():
            raise Stop
        target_id = item.update_of
        try:
            body = self._with_customer_ids(item)
        except (ValidationFailed, Conflict) as exc:
            self._reject(item, exc)
            return
        # Threads on the target already are not sent again: their files as recorded then.
        item.expected = with_files_of(item.expected, entry.expected if entry else None)
        outcome = self._catch_up(item, body, target_id)
        if outcome != DIFFERS:  # updated now, or by a run that stopped before the ledger
            self.ledger.refresh(item.source_id, item.fingerprint, item.expected)
            self._count("updated" if outcome == UPDATED else "already_loaded", item, target_id)
        else:  # something else changed (a subject, an old thread's text): not rewritten
            with self.counts_lock:
                self.report.changed.append((item.source_id, item.file, item.row))
                self.report.outcome(item, "changed, not updated", target_id)

    def _catch_up(self, item: Item, body: dict, target_id: int) -> str:
        """Append the item's threads the target lacks (matched by type, date and text), each
        with the source's status, then set spam. UPDATED when that changed anything, SAME when
        the target shows the source already, DIFFERS when it differs in what the API cannot
        change (the subject, an old thread's text)."""
        with self.recovery:
            conv = self.seen.pop(target_id, None)
        if conv is None or "threads" not in (conv.get("_embedded") or {}):
            conv = self.client.get(f"api/conversations/{target_id}", {"embed": "threads"}) or {}
        threads = [
            t for t in (conv.get("_embedded") or {}).get("threads") or [] if t["type"] != "lineitem"
        ]
        have = Counter((t["type"], _stamp(t.get("createdAt"))) for t in threads)
        exact = {
            (t["type"], _stamp(t.get("createdAt")), thread_digest(t.get("body"))) for t in threads
        }
        seen: Counter = Counter()
        new = []
        edited = conv.get("subject") != body.get("subject")
        # The payload lists threads newest first, `expected` oldest first.
        for position, thread in enumerate(reversed(body.get("threads", []))):
            key = (thread["type"], thread.get("createdAt"))
            seen[key] += 1
            if (*key, thread_digest(thread["text"])) in exact:
                continue  # on the target already
            if seen[key] <= have[key]:
                edited = True  # an old thread edited at the source: not rewritten
                continue
            new.append((position, thread))
        status = item.status or body.get("status")
        threads = list(item.expected["threads"])
        for position, thread in new:
            sent = self._materialize(item, {"threads": [thread]})["threads"][0]
            threads[position] = [*threads[position][:3], sent_files(sent)]
            item.expected = dict(item.expected, threads=threads)
            sent = dict(sent, imported=True)
            if status in ("active", "pending", "closed"):
                sent["status"] = status  # without it, the API reopens the conversation
            self.client.create(f"api/conversations/{target_id}/threads", sent)
        changed = bool(new)
        if status == "spam" and (new or conv.get("status") != "spam"):
            self._set_status(target_id, "spam")
            changed = True
        elif not new and status and conv.get("status") != status:
            self._set_status(target_id, status)
            changed = True
        if changed:
            # The API dates a close by the request that made it: the source's closedAt is lost.
            item.expected["closedAt"] = None
            return UPDATED
        return DIFFERS if edited else SAME

    def _with_customer_ids(self, item: Item) -> dict:
        """The payload with customers that have no email given by id (found or created)."""
        if self.customers is None:
            return item.payload
        body = with_ids(item.payload, self.customers.resolve)
        if needs_id(item.payload.get("customer")):
            item.expected["customerId"] = body["customer"]["id"]
        return body

    def _may_be_on_target(self, item: Item) -> bool:
        return self.look_in is None or item.payload.get("mailboxId") in self.look_in

    def _claim_conversation(self, item: Item, existing: bool = False) -> int | None:
        """Find the item's conversation on the target and record it, unless another source
        record owns it already. Found with another ledger (`existing`), its threads come in
        the same request, for catching it up (kept in `self.seen`)."""
        embed = "threads" if existing else ""
        candidates = conversation_candidates(self.client, item.expected, embed)
        with self.recovery:
            if self.claimed is None:
                self.claimed = self.ledger.claimed_target_ids()
            doc = next((c for c in candidates if int(c["id"]) not in self.claimed), None)
            found = int(doc["id"]) if doc is not None else None
            if found is not None:
                self.claimed.add(found)
                if existing:  # kept with what it should show, for verify and reruns
                    self.seen[found] = doc
                    self.ledger.intend(
                        item.source_id,
                        item.fingerprint,
                        item.expected,
                        item.file,
                        item.row,
                        self.run_id,
                    )
                    self.ledger.done(item.source_id, found, existing=True)
                else:
                    self.ledger.created(item.source_id, found)
            return found

    def _materialize(self, item: Item, body: dict) -> dict:
        """The payload with its files' content; the files that cannot be had are noted."""
        left: list[str] = []
        body = materialize(body, self.fetch, left)
        if left:
            item.left_out.extend(left)
            with self.counts_lock:
                self.report.left_out.update(left)
        return body

    def _create_conversation(self, item: Item, body: dict) -> tuple[int, bool]:
        """Create the (materialized) payload; an unknown outcome is looked up before a retry."""
        for attempt in range(1, RECOVERY_ATTEMPTS + 1):
            try:
                target_id = self.client.create("api/conversations", body)
            except OutcomeUnknown:
                if attempt == RECOVERY_ATTEMPTS:
                    raise
                # The create may have happened: look before sending it again.
                time.sleep(self.retry_pause * attempt)
                found = self._claim_conversation(item)
                if found is not None:
                    return found, True
                continue
            with self.recovery:
                if self.claimed is not None:
                    self.claimed.add(target_id)
            self.ledger.created(item.source_id, target_id)
            return target_id, False
        raise AssertionError("unreachable")

    def customer(self, item: Item, entry: Entry | None) -> None:
        if self.stop.is_set():
            raise Stop
        ref = customer_ref(item.payload)
        if entry is not None and entry.state in ("sending", "created"):
            found = entry.target_id or self._match_customer(ref)
            if found is not None:
                self.ledger.done(item.source_id, found)
                self._count("recovered", item, found)
                return
        # The API creates a customer when only some of the emails are known: look first.
        # Without an email: by phone, else by first and last name.
        emails = item.payload.get("emails", [])
        for other in [{"email": e["value"]} for e in emails] or [ref]:
            found = self._match_customer(other)
            if found is not None:
                self._reuse(item, found)
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
                self._reuse(item, found)
                return
            except ValidationFailed as exc:
                self._reject(item, exc)
                return
            except OutcomeUnknown:
                if attempt == RECOVERY_ATTEMPTS:
                    raise
                time.sleep(self.retry_pause * attempt)
                found = self._match_customer(ref)
                if found is not None:
                    self.ledger.done(item.source_id, found)
                    self._count("recovered", item, found)
                    return
                continue
            with self.recovery:
                self.taken.add(target_id)
            if item.customer_fields and self.customer_fields is not None:
                self._set_customer_fields(target_id, item)
            self.ledger.done(item.source_id, target_id)
            self._count("created", item, target_id)
            return

    def _reuse(self, item: Item, target_id: int, existing: bool = True) -> None:
        """A customer found on the target: fill in what it lacks (emails, phones, profiles,
        websites, empty values and address parts, unset customer fields), overwrite nothing.
        Counted "updated" when that changed it, else "already on the target"."""
        have = self.client.get(f"api/customers/{target_id}") or {}
        body = fill_in(have, item.payload)
        left: list[str] = []
        taken = [e for e in body.get("emails_add", []) if find_customer(self.client, e)]
        if taken:  # another target customer has it: the API would refuse the whole update
            body["emails_add"] = [e for e in body["emails_add"] if e not in taken]
            if not body["emails_add"]:
                del body["emails_add"]
            left += [f"email {e} (another target customer has it)" for e in taken]
        changed = False
        if body:
            try:
                self.client.put(f"api/customers/{target_id}", body)
                changed = True
            except (ValidationFailed, Conflict) as exc:  # the customer stays as it was
                left.append(f"what the target customer lacked (refused: {exc.detail})")
        if left:
            item.left_out.extend(left)
            with self.counts_lock:
                self.report.left_out.update(left)
        lacking = lacking_fields(have, item.customer_fields)
        if lacking and self.customer_fields is not None:
            changed = self._set_customer_fields(target_id, item, lacking) or changed
        self.ledger.done(item.source_id, target_id, existing=existing)
        self.ledger.refresh(item.source_id, item.fingerprint, item.expected)  # seen as it is
        self._count("updated" if changed else "reused", item, target_id)

    def _set_customer_fields(
        self, target_id: int, item: Item, values: dict[str, str] | None = None
    ) -> bool:
        """PUT the customer fields the target holds; one it refuses is left out, not fatal.
        True when a value was set."""
        left: list[str] = []
        values = self.customer_fields.resolve(
            item.customer_fields if values is None else values, left
        )
        path = f"api/customers/{target_id}/customer_fields"
        if values:
            try:
                self.client.put(path, {"customerFields": values})
            except ValidationFailed:
                for value in values:  # find the ones refused, keep the others
                    try:
                        self.client.put(path, {"customerFields": [value]})
                    except ValidationFailed:
                        name = self.customer_fields.name_of(value["id"])
                        left.append(f"customer field {name} value {value['value']!r} (refused)")
        if left:
            item.left_out.extend(left)
            with self.counts_lock:
                self.report.left_out.update(left)
        return len(values) > len([x for x in left if x.endswith("(refused)")])

    def _match_customer(self, ref: dict) -> int | None:
        """A target customer for `ref` that this run has not given to another record: by
        email, by phone or by name, two people of the same name stay two."""
        if ref.get("email"):
            return find_customer(self.client, ref["email"])
        with self.recovery:
            taken = set(self.taken)
        found = find_match(self.client, ref, taken)
        if found is not None:
            with self.recovery:
                if found in self.taken:
                    return None
                self.taken.add(found)
        return found


def customer_ref(payload: dict) -> dict:
    """What a Create Customer payload can be found by: primary email, first phone, names."""
    ref = {k: payload[k] for k in ("firstName", "lastName") if payload.get(k)}
    if payload.get("emails"):
        ref["email"] = payload["emails"][0]["value"]
    if payload.get("phones"):
        ref["phone"] = payload["phones"][0]["value"]
    return ref


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
