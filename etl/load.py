"""Load: input rows -> validated payloads -> the API's create endpoints, exactly once.

The run has three phases, and nothing is created before the second one ends:

1. read and map every row (`readers`, `mapping`: pure);
2. resolve against the target (agents by email, custom fields by name, dropdown labels to
   option ids, the mailbox) and build every payload; rows that cannot load become rejects;
3. send, with N workers sharing one `Client` (so a 429 holds everyone back), each create
   preceded by an intent in the ledger (`ledger.py`).

Exactly once: a record whose ledger entry is `done` is never sent again. An entry left in
`sending` by a crash, and a create whose outcome is unknown (timeout, 5xx), are looked up on
the target (subject + customer email + createdAt for conversations, the customer's phone
instead of a missing email, or subject + createdAt + mailbox alone for a customer known by name
only; the email for customers) before anything is sent again. Every create carries
`imported: true`, so no customer is emailed and no notification is raised.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl import mapping as m
from etl.client import Client
from etl.errors import Conflict, EtlError, OutcomeUnknown, ValidationFailed
from etl.ledger import Entry, Ledger
from etl.paging import iter_pages
from etl.progress import Progress, silent
from etl.readers import read_rows
from etl.resources import ALL_STATUSES
from etl.timeutil import parse as parse_timestamp

CONVERSATIONS = "conversations"
CUSTOMERS = "customers"
RECOVERY_ATTEMPTS = 8
RETRY_PAUSE = 1.0  # seconds before looking up a create whose outcome is unknown (x attempt)
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class LoadFailed(EtlError):
    """Sending stopped on an error; `report` says what was done before it."""

    def __init__(self, cause: EtlError, report: Report):
        super().__init__(str(cause))
        self.exit_code = cause.exit_code
        self.report = report


class UsageError(EtlError):
    """The command cannot run as asked (no mailbox to load into, an unknown fallback user)."""

    exit_code = 2


@dataclass
class LoadOptions:
    kind: str = CONVERSATIONS
    mapping: str = "generic"
    mailbox_id: int | None = None
    dry_run: bool = False
    rejects_path: Path | None = None
    limit: int | None = None
    workers: int = 1
    fallback_user: str | None = None
    retry_rejects: bool = False
    encoding: str | None = None
    timezone: str | None = None
    sheet: str | None = None


@dataclass
class Reject:
    file: str
    row: int | None
    source_id: str
    field: str
    kind: str
    reason: str


@dataclass
class Report:
    """What a load saw and did; `lines()` is the summary that ends every run."""

    kind: str
    file: str
    mapping: str
    target: str
    dry_run: bool = False
    mailbox_id: int | None = None
    rows: int = 0
    records: int = 0
    threads: int = 0
    skipped_threads: int = 0
    skipped_records: Counter = field(default_factory=Counter)
    to_send: int = 0
    customers_new: int | None = None
    customers_existing: int | None = None
    unmapped_agents: Counter = field(default_factory=Counter)
    fallback_user: str | None = None
    problems: Counter = field(default_factory=Counter)
    already_loaded: int = 0
    changed: list[tuple[str, str, int | None]] = field(default_factory=list)
    created: int = 0
    reused: int = 0
    recovered: int = 0
    rejects: list[Reject] = field(default_factory=list)
    rejects_path: Path | None = None
    requests: int = 0
    seconds: float = 0.0
    not_attempted: int = 0

    @property
    def rejected(self) -> int:
        return len({(r.file, r.source_id or f"row {r.row}") for r in self.rejects})

    def reject(self, file: str, row: int | None, source_id: str, problem: m.Problem) -> None:
        self.rejects.append(
            Reject(file, problem.row or row, source_id, problem.field, problem.kind, problem.reason)
        )
        self.problems[problem.kind] += 1

    def lines(self) -> list[str]:
        noun = "conversations" if self.kind == CONVERSATIONS else "customers"
        verb = "Checked (dry run, nothing sent)" if self.dry_run else "Loaded"
        into = f" mailbox {self.mailbox_id}" if self.mailbox_id else ""
        out = [f"{verb} {noun} from {self.file} (mapping {self.mapping}) for {self.target}{into}"]

        def line(label: str, value: Any, note: str = "") -> None:
            out.append(f"  {label:<26}{value:>7}" + (f"   {note}" if note else ""))

        line("rows read", self.rows)
        line(noun, self.records)
        if self.kind == CONVERSATIONS:
            note = (
                f"({self.skipped_threads} system threads skipped)" if self.skipped_threads else ""
            )
            line("threads", self.threads, note)
        for reason, count in sorted(self.skipped_records.items()):
            line("skipped", count, f"({reason})")
        if self.customers_new is not None:
            line("customers new", self.customers_new)
            line("customers existing", self.customers_existing)
        line("already loaded", self.already_loaded)
        if self.dry_run:
            line("would be sent", self.to_send)
        else:
            line("created", self.created)
            if self.reused:
                line("existing, reused", self.reused)
            if self.recovered:
                line(
                    "created before a stop",
                    self.recovered,
                    "(found on the target or in the ledger)",
                )
            if self.not_attempted:
                line("not attempted", self.not_attempted, "(--limit or a stop)")
        if self.changed:
            line(
                "changed since loaded",
                len(self.changed),
                "(not updated: the API cannot rewrite threads)",
            )
        target = f"-> {self.rejects_path}" if self.rejects_path and self.rejects else ""
        line("rejected", self.rejected, target)
        if self.problems:
            out.append("  problems by kind:")
            for kind, count in self.problems.most_common():
                out.append(f"    {kind:<24}{count:>7}")
        if self.unmapped_agents:
            where = f"sent to {self.fallback_user}" if self.fallback_user else "rows rejected"
            out.append(f"  unmapped agents ({where}):")
            for email, count in self.unmapped_agents.most_common():
                out.append(f"    {email}  ({count} reference{'s' if count != 1 else ''})")
        for source_id, file, row in self.changed[:20]:
            out.append(f"  changed: {file} row {row} (id {source_id})")
        if len(self.changed) > 20:
            out.append(f"  ... and {len(self.changed) - 20} more changed")
        rate = ""
        if self.seconds and not self.dry_run and self.created + self.recovered:
            rate = f" ({(self.created + self.recovered) / self.seconds:.1f} {noun}/s)"
        out.append(f"  {self.requests} requests in {self.seconds:.1f} s{rate}")
        return out

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "records": self.records,
            "threads": self.threads,
            "created": self.created,
            "reused": self.reused,
            "recovered": self.recovered,
            "already_loaded": self.already_loaded,
            "changed": len(self.changed),
            "rejected": self.rejected,
        }


# -- the target ------------------------------------------------------------------------------


@dataclass
class Target:
    """What payloads are resolved against: agents, mailboxes, custom field definitions."""

    users: dict[str, int]  # lower-case email (and alternate emails) -> user id
    mailboxes: list[dict]
    fields: dict[int, dict[str, dict]]  # mailbox id -> lower-case field name -> definition

    def mailbox_for(self, value: str | None) -> int | None:
        if not value:
            return None
        wanted = value.strip().casefold()
        for box in self.mailboxes:
            if wanted in (
                str(box["id"]),
                str(box.get("name", "")).casefold(),
                str(box.get("email", "")).casefold(),
            ):
                return int(box["id"])
        return None


def fetch_target(client: Client, with_fields: bool = True) -> Target:
    users: dict[str, int] = {}
    for page in iter_pages(client, "api/users", "users"):
        for user in page.items:
            for email in [user.get("email") or "", *(user.get("alternateEmails") or "").split(",")]:
                if email.strip():
                    users.setdefault(email.strip().casefold(), int(user["id"]))
    mailboxes = [b for page in iter_pages(client, "api/mailboxes", "mailboxes") for b in page.items]
    fields: dict[int, dict[str, dict]] = {}
    if with_fields:
        for box in mailboxes:
            path = f"api/mailboxes/{box['id']}/custom_fields"
            definitions = [
                d for page in iter_pages(client, path, "custom_fields") for d in page.items
            ]
            fields[int(box["id"])] = {str(d["name"]).casefold(): d for d in definitions}
    return Target(users, mailboxes, fields)


# -- planning: source records -> payloads (pure) ---------------------------------------------


@dataclass
class Item:
    """One record ready to send."""

    source_id: str
    file: str
    row: int
    payload: dict[str, Any]
    expected: dict[str, Any]
    fingerprint: str
    tags: list[str] = field(default_factory=list)
    email: str | None = None


@dataclass
class Plan:
    items: list[Item]
    problems: dict[str, tuple[str, int, list[m.Problem]]]  # source id -> (file, row, problems)
    unmapped_agents: Counter


def plan_conversation(
    conv: m.SourceConversation,
    target: Target,
    mailbox_id: int | None,
    fallback_user_id: int | None,
    unmapped: Counter,
) -> tuple[Item | None, list[m.Problem]]:
    """A conversation's Create Conversation payload, or the problems that prevent it."""
    problems = list(conv.problems)
    row = conv.row

    def agent(email: str | None, what: str, at: int) -> int | None:
        if email:
            found = target.users.get(email.casefold())
            if found is not None:
                return found
            unmapped[email.casefold()] += 1
            if fallback_user_id is None:
                problems.append(
                    m.Problem(
                        what,
                        "unmapped_agent",
                        f"{email} is not a user on the target (pass "
                        "--fallback-user EMAIL to load it as someone else)",
                        at,
                    )
                )
            return fallback_user_id
        return fallback_user_id

    box = mailbox_id or target.mailbox_for(conv.mailbox)
    if box is None:
        if conv.mailbox:
            problems.append(
                m.Problem(
                    "mailbox",
                    "unknown_mailbox",
                    f"mailbox {conv.mailbox!r} is not on the target (pass --mailbox ID)",
                    row,
                )
            )
        elif len(target.mailboxes) == 1:
            box = int(target.mailboxes[0]["id"])
        else:
            problems.append(
                m.Problem("mailbox", "no_mailbox", "no target mailbox: pass --mailbox", row)
            )
    payload: dict[str, Any] = {
        "type": conv.type,
        "mailboxId": box,
        "subject": conv.subject,
        "customer": _customer_ref(conv.customer),
        "imported": True,
        "status": conv.status,
        "createdAt": conv.created_at,
    }
    if conv.closed_at:
        payload["closedAt"] = conv.closed_at
    if conv.assignee_email:
        assignee = agent(conv.assignee_email, "assignee", row)
        if assignee is not None:
            payload["assignTo"] = assignee
    customer_email = (conv.customer.email or "").casefold()
    threads = []
    for position, thread in enumerate(conv.threads):
        kind = thread_kind(thread, customer_email, target)
        item: dict[str, Any] = {"type": kind, "text": thread.body, "imported": True}
        if thread.created_at:
            item["createdAt"] = thread.created_at
        if kind == "customer":
            item["customer"] = _thread_customer_ref(thread.author, conv.customer)
        else:
            user = agent(thread.author.email, "thread.author", thread.row)
            if user is None and not thread.author.email:
                problems.append(
                    m.Problem(
                        "thread.author",
                        "no_author",
                        f"a {kind} thread needs an agent: the row names none "
                        "(pass --fallback-user EMAIL)",
                        thread.row,
                    )
                )
            item["user"] = user
        cc = thread.cc or (conv.cc if position == 0 else [])
        bcc = thread.bcc or (conv.bcc if position == 0 else [])
        if cc:
            item["cc"] = cc
        if bcc:
            item["bcc"] = bcc
        if thread.attachments:
            item["attachments"] = [_attachment_ref(a) for a in thread.attachments]
        threads.append(item)
    payload["threads"] = list(reversed(threads))  # the API wants newest first
    if conv.custom_fields and box is not None:
        payload["customFields"] = _custom_fields(conv, target.fields.get(box, {}), problems)
    if problems:
        return None, problems
    expected = {
        "subject": conv.subject,
        "customerEmail": conv.customer.email,
        # Only without an email: what find_conversation can look the customer up by.
        **({} if conv.customer.email else {"customerPhone": conv.customer.phone}),
        "status": conv.status,
        "type": conv.type,
        "createdAt": conv.created_at,
        "closedAt": conv.closed_at if conv.status == "closed" else None,
        "mailboxId": box,
        "assignTo": payload.get("assignTo"),
        "tags": sorted(t.casefold() for t in conv.tags),
        "threads": [[t["type"], t.get("createdAt"), _digest(t["text"])] for t in threads],
    }
    item = Item(
        conv.source_id,
        conv.file,
        row,
        payload,
        expected,
        fingerprint({"payload": payload, "tags": conv.tags}),
        conv.tags,
        conv.customer.email,
    )
    return item, []


def thread_kind(thread: m.SourceThread, customer_email: str, target: Target) -> str:
    """customer, message or note: the mapping's type, else the author's type, else by email."""
    kind = thread.type
    if kind == "auto":
        author = thread.author
        email = (author.email or "").casefold()
        if author.type in m.AUTHOR_TYPES:
            kind = "customer" if author.type == "customer" else "message"
        elif not email or email == customer_email:
            kind = "customer"
        elif email in target.users:
            kind = "message"
        else:
            kind = "customer"
    if kind == "message" and thread.public is False:
        kind = "note"
    return kind


def _thread_customer_ref(author: m.Person, customer: m.Person) -> dict[str, Any]:
    """A customer thread's `customer`: the conversation's own ref when the author is its
    customer, so the target resolves both to one customer. Without emails (a phone
    conversation) an author with no email, or with the customer's name, is taken to be the
    customer: the target finds the customer again by the same phone (a ref with a first name
    only makes a new customer on each use, which the API offers no way to avoid)."""
    email = author.email or customer.email
    if email:
        if customer.email and email.casefold() == customer.email.casefold():
            return _customer_ref(customer)
        ref: dict[str, Any] = {"email": email}
        if author.first_name:
            ref.update(_customer_ref(author))
        return ref
    named = (author.first_name, author.last_name)
    if not any(named) or named == (customer.first_name, customer.last_name):
        return _customer_ref(customer)
    return _customer_ref(author)


def _customer_ref(person: m.Person) -> dict[str, Any]:
    ref: dict[str, Any] = {"email": person.email} if person.email else {}
    for key, value in (
        ("firstName", person.first_name),
        ("lastName", person.last_name),
        ("phone", person.phone),
    ):
        if value:
            ref[key] = value
    return ref


def _attachment_ref(attachment: m.Attachment) -> dict[str, Any]:
    ref = {"fileName": attachment.file_name, "mimeType": attachment.mime_type}
    if attachment.url:
        ref["fileUrl"] = attachment.url
    else:
        # Read at send time; the fingerprint uses the content's hash.
        ref["_path"] = str(attachment.path)
    return ref


def _custom_fields(
    conv: m.SourceConversation, definitions: dict[str, dict], problems: list[m.Problem]
) -> list[dict[str, Any]]:
    out = []
    for name, value in conv.custom_fields.items():
        definition = definitions.get(name.casefold())
        where = f"custom_fields.{name}"
        if definition is None:
            problems.append(
                m.Problem(
                    where,
                    "unknown_custom_field",
                    f"custom field {name!r} is not defined in the target mailbox",
                    conv.row,
                )
            )
            continue
        kind = definition.get("type")
        if kind == "dropdown":
            options = definition.get("options") or {}
            by_label = {str(label).casefold(): key for key, label in options.items()}
            option = by_label.get(value.casefold()) or (value if value in options else None)
            if option is None:
                labels = ", ".join(repr(v) for v in options.values())
                problems.append(
                    m.Problem(
                        where,
                        "unknown_option",
                        f"{value!r} is not an option of {name} ({labels})",
                        conv.row,
                    )
                )
                continue
            out.append({"id": int(definition["id"]), "value": option})
        elif kind == "number" and not NUMBER.match(value):
            problems.append(
                m.Problem(where, "bad_value", f"{name}: {value!r} is not a number", conv.row)
            )
        elif kind == "date":
            day = value[:10]
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
                problems.append(
                    m.Problem(
                        where, "bad_date", f"{name}: {value!r} is not a YYYY-MM-DD date", conv.row
                    )
                )
                continue
            out.append({"id": int(definition["id"]), "value": day})
        else:
            out.append({"id": int(definition["id"]), "value": value})
    return out


def fingerprint(document: Any) -> str:
    """A hash of what is sent; attachment files count by content."""
    return hashlib.sha256(
        json.dumps(_hashable(document), sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        if "_path" in value:
            value = dict(value, _path=_file_digest(value["_path"]))
        return {k: _hashable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hashable(v) for v in value]
    return value


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _digest(body: str) -> str:
    return hashlib.sha1(body.encode("utf-8")).hexdigest()[:16]


def plan_customer(customer: m.SourceCustomer) -> tuple[Item | None, list[m.Problem]]:
    if customer.problems:
        return None, customer.problems
    payload = dict(customer.payload)
    expected = {
        "email": customer.email,
        "firstName": payload.get("firstName"),
        "lastName": payload.get("lastName"),
    }
    item = Item(
        customer.source_id,
        customer.file,
        customer.row,
        payload,
        expected,
        fingerprint(payload),
        email=customer.email,
    )
    return item, []


def materialize(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload to send: local attachment files read and base64-encoded."""
    if not any("attachments" in t for t in payload.get("threads", [])):
        return payload
    threads = []
    for thread in payload["threads"]:
        attachments = []
        for ref in thread.get("attachments", []):
            if "_path" in ref:
                data = base64.b64encode(Path(ref["_path"]).read_bytes()).decode("ascii")
                ref = {k: v for k, v in ref.items() if k != "_path"} | {"data": data}
            attachments.append(ref)
        threads.append(dict(thread, attachments=attachments) if attachments else thread)
    return dict(payload, threads=threads)


# -- finding what a create may have made --------------------------------------------------------


def find_conversation(client: Client, expected: dict, claimed: set[int]) -> int | None:
    """The target conversation matching subject + customer + createdAt, not yet claimed.

    The customer is matched by email; a phone conversation's customer without one by phone.
    With neither (a customer known by name only) the match is subject + createdAt + mailbox
    alone: weaker, as two conversations with the same subject created in the same second in
    the same mailbox cannot be told apart (the claimed ids keep each from being taken twice).
    """
    created = expected["createdAt"]
    params = {
        "subject": expected["subject"],
        "createdSince": m.one_second_before(created),
        "status": ALL_STATUSES,
        "sortField": "createdAt",
        "sortOrder": "asc",
    }
    if expected.get("customerEmail"):
        params["customerEmail"] = expected["customerEmail"]
    elif expected.get("customerPhone"):
        params["customerPhone"] = expected["customerPhone"]
    if expected.get("mailboxId"):
        params["mailboxId"] = expected["mailboxId"]
    wanted = parse_timestamp(created)
    for page in iter_pages(client, "api/conversations", "conversations", params, page_size=50):
        for conv in page.items:
            when = conv.get("createdAt")
            if when and parse_timestamp(when) > wanted:
                return None  # sorted by createdAt: nothing later can match
            if (
                conv.get("subject") == expected["subject"]
                and when
                and parse_timestamp(when) == wanted
                and int(conv["id"]) not in claimed
            ):
                return int(conv["id"])
    return None


def find_customer(client: Client, email: str) -> int | None:
    document = client.get("api/customers", {"email": email, "pageSize": 1}) or {}
    found = (document.get("_embedded") or {}).get("customers") or []
    return int(found[0]["id"]) if found else None


# -- sending ------------------------------------------------------------------------------------


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


# -- the whole load -----------------------------------------------------------------------------


def load(
    client: Client,
    conn,
    path: str | Path,
    options: LoadOptions,
    progress: Progress = silent,
) -> Report:
    """Load one file into the target; returns the report (rejects are in it and in the file)."""
    started = time.monotonic()
    path = Path(path)
    mapping = m.load_mapping(options.mapping, timezone=options.timezone)
    requests_before = client.requests_made
    report = Report(
        options.kind,
        str(path),
        mapping.name,
        client.url,
        options.dry_run,
        fallback_user=options.fallback_user,
    )
    report.rejects_path = options.rejects_path or default_rejects_path(path)
    rows = list(
        read_rows(
            path,
            fmt=mapping.source.get("format"),
            encoding=options.encoding or mapping.source.get("encoding"),
            records=mapping.source.get("records"),
            sheet=options.sheet or mapping.source.get("sheet"),
        )
    )
    report.rows = len(rows)
    ledger = Ledger(conn, client.url, mapping.system, options.kind)
    entries = ledger.entries()
    if options.kind == CONVERSATIONS:
        target = fetch_target(client)
        if options.mailbox_id is not None and not any(
            int(b["id"]) == options.mailbox_id for b in target.mailboxes
        ):
            names = ", ".join(f"{b['id']} ({b.get('name')})" for b in target.mailboxes)
            raise UsageError(f"no mailbox {options.mailbox_id} on the target; mailboxes: {names}")
        report.mailbox_id = options.mailbox_id
        fallback_id = _fallback_id(target, options.fallback_user)
        items, problems = _plan_conversations(
            mapping, rows, path, target, options, fallback_id, report, entries
        )
    else:
        items, problems = _plan_customers(mapping, rows, path, report, entries, options)
    run_id = (
        None if options.dry_run else ledger.start_run(str(path), str(mapping.path), options.dry_run)
    )
    # Validation is over: record rejects, then decide what to send.
    for source_id, (file, row, found) in problems.items():
        entry = entries.get(source_id)
        if entry is not None and entry.state == "done":
            report.changed.append((source_id, file, row))
            continue
        for problem in found:
            report.reject(file, row, source_id, problem)
        in_flight = entry is not None and entry.state in ("sending", "created")
        if not options.dry_run and source_id and not source_id.startswith("\0") and not in_flight:
            # An entry in flight keeps its state: its conversation may exist on the target.
            reason = "; ".join(f"{p.field}: {p.reason}" for p in found)
            ledger.rejected(source_id, reason, file, row, run_id)
    to_send: list[tuple[Item, Entry | None]] = []
    for item in items:
        entry = entries.get(item.source_id)
        if entry is not None and entry.state == "done":
            report.already_loaded += 1
            if entry.fingerprint and entry.fingerprint != item.fingerprint:
                report.changed.append((item.source_id, item.file, item.row))
            continue
        to_send.append((item, entry))
    if options.limit is not None:
        report.not_attempted = max(0, len(to_send) - options.limit)
        to_send = to_send[: options.limit]
    report.to_send = len(to_send)
    if options.dry_run:
        _count_customers(client, [i for i, _ in to_send], report, options.workers)
    else:
        sender = Sender(client, ledger, report, run_id)
        entry_of = {item.source_id: entry for item, entry in to_send}
        bar = progress(options.kind, len(to_send))
        status = "failed"
        try:
            run_workers(
                [item for item, _ in to_send],
                lambda item: sender.send(options.kind, item, entry_of[item.source_id]),
                options.workers,
                sender.stop,
                bar,
            )
            status = "done"
        except EtlError as exc:
            raise LoadFailed(exc, report) from exc
        finally:
            bar.close()
            report.requests = client.requests_made - requests_before
            report.seconds = time.monotonic() - started
            report.not_attempted += len(to_send) - sender.finished
            ledger.finish_run(run_id, status, report.counts())
            write_rejects(report)
    report.requests = client.requests_made - requests_before
    report.seconds = time.monotonic() - started
    if options.dry_run:
        write_rejects(report)
    return report


def _fallback_id(target: Target, email: str | None) -> int | None:
    if not email:
        return None
    found = target.users.get(email.strip().casefold())
    if found is None:
        raise UsageError(f"--fallback-user {email} is not a user on the target")
    return found


def _plan_conversations(mapping, rows, path, target, options, fallback_id, report, entries):
    convs, row_rejects = m.conversations(mapping, rows, path.parent)
    if (
        options.mailbox_id is None
        and len(target.mailboxes) > 1
        and not any(c.mailbox for c in convs)
    ):
        names = ", ".join(f"{b['id']} ({b.get('name')})" for b in target.mailboxes)
        raise UsageError(
            f"the file names no mailbox and the target has several: pass --mailbox ID ({names})"
        )
    for reject in row_rejects:
        report.reject(reject.file, reject.row, "", reject.problem)
    if options.retry_rejects:
        convs = [c for c in convs if _was_rejected(entries.get(c.source_id))]
    items: list[Item] = []
    problems: dict[str, tuple[str, int, list[m.Problem]]] = {}
    for conv in convs:
        if conv.skip_reason:
            report.skipped_records[conv.skip_reason] += 1
            continue
        report.records += 1
        report.threads += len(conv.threads)
        report.skipped_threads += conv.skipped_threads
        item, found = plan_conversation(
            conv, target, options.mailbox_id, fallback_id, report.unmapped_agents
        )
        if item is None:
            problems[conv.source_id] = (conv.file, conv.row, found)
        else:
            items.append(item)
    return items, problems


def _plan_customers(mapping, rows, path, report, entries, options):
    customers, row_rejects = m.customers(mapping, rows, path.parent)
    for reject in row_rejects:
        report.reject(reject.file, reject.row, "", reject.problem)
    if options.retry_rejects:
        customers = [c for c in customers if _was_rejected(entries.get(c.source_id))]
    items: list[Item] = []
    problems: dict[str, tuple[str, int, list[m.Problem]]] = {}
    for position, customer in enumerate(customers):
        report.records += 1
        item, found = plan_customer(customer)
        if item is None:
            key = customer.source_id or f"\0row {position}"
            problems[key] = (customer.file, customer.row, found)
        else:
            items.append(item)
    return items, problems


def _was_rejected(entry: Entry | None) -> bool:
    return entry is not None and entry.state == "rejected"


def _count_customers(client: Client, items: list[Item], report: Report, workers: int) -> None:
    """Dry run: how many of the customers exist on the target already (GETs only)."""
    emails = sorted({i.email.casefold() for i in items if i.email})
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        found = list(pool.map(lambda e: find_customer(client, e), emails))
    report.customers_existing = sum(1 for f in found if f is not None)
    report.customers_new = len(emails) - report.customers_existing


def default_rejects_path(path: Path) -> Path:
    """`tickets.csv` -> `tickets.rejects.csv` in the working directory."""
    return Path(f"{path.stem}.rejects.csv")


REJECT_COLUMNS = ("file", "row", "id", "field", "kind", "reason")


def write_rejects(report: Report) -> None:
    """Write the rejects file (UTF-8 with BOM so Excel opens it) when anything was rejected."""
    target = report.rejects_path
    if target is None:
        return
    if not report.rejects:
        # A rejects file left by an earlier run would describe rows that are fine now.
        if target.is_file() and _is_rejects_file(target):
            target.unlink()
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REJECT_COLUMNS)
        for r in sorted(report.rejects, key=lambda r: (r.file, r.row or 0)):
            writer.writerow([r.file, r.row, r.source_id.lstrip("\0"), r.field, r.kind, r.reason])


def _is_rejects_file(path: Path) -> bool:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return handle.readline().strip() == ",".join(REJECT_COLUMNS)


def read_rejects(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def summarize_sources(convs: Iterable[m.SourceConversation]) -> dict[str, int]:
    """Counts for tests and reports: conversations and threads."""
    convs = list(convs)
    return {"conversations": len(convs), "threads": sum(len(c.threads) for c in convs)}
