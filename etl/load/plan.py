"""Planning: source records -> validated payloads for the create endpoints (pure).

A payload is resolved against the target (agents by email, custom fields by name, dropdown
labels to option ids); what cannot be resolved becomes a problem, and the row a reject.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl import mapping as m
from etl.ledger import thread_digest
from etl.load.target import Target

NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


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
    left_out: list[str] = field(default_factory=list)  # values the target cannot hold
    customer_fields: dict[str, str] = field(default_factory=dict)  # by name, set after create
    status: str | None = None  # the source's status (the payload cannot say spam)
    update_of: int | None = None  # loaded before as this target id: append what is new


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
        # Create Conversation takes active, pending or closed: spam is set afterwards by PUT.
        "status": "active" if conv.status == "spam" else conv.status,
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
    left_out: list[str] = []
    if conv.custom_fields and box is not None:
        payload["customFields"] = _custom_fields(conv, target.fields.get(box, {}), left_out)
    tags = [t for t in conv.tags if len(t) <= m.LIMITS["tag"]]
    left_out += [
        f"tag {t[:40]}... (over {m.LIMITS['tag']} characters)" for t in conv.tags if t not in tags
    ]
    if problems:
        return None, problems
    expected = {
        "subject": conv.subject,
        "customerEmail": conv.customer.email,
        # Only without an email: what conversation_candidates can look the customer up by.
        **({} if conv.customer.email else {"customerPhone": conv.customer.phone}),
        "status": conv.status,
        "type": conv.type,
        "createdAt": conv.created_at,
        "closedAt": conv.closed_at if conv.status == "closed" else None,
        "mailboxId": box,
        "assignTo": payload.get("assignTo"),
        "tags": sorted(t.casefold() for t in tags),
        "threads": [[t["type"], t.get("createdAt"), thread_digest(t["text"])] for t in threads],
    }
    item = Item(
        conv.source_id,
        conv.file,
        row,
        payload,
        expected,
        fingerprint({"payload": payload, "tags": conv.tags}),
        tags,
        conv.customer.email,
        left_out,
        status=conv.status,
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
    customer, so the target resolves both to one customer. With the source's ids for both,
    they decide; else the emails; an author with neither an email nor another name is taken
    to be the customer."""
    if author.source_id and customer.source_id:
        same = author.source_id == customer.source_id
        return _customer_ref(customer if same else author)
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
    """`{email, firstName, lastName, phone}`; without an email, the source's id as `_source`
    (resolved to `{"id": N}` before sending: see customers.py)."""
    ref: dict[str, Any] = {"email": person.email} if person.email else {}
    for key, value in (
        ("firstName", person.first_name),
        ("lastName", person.last_name),
        ("phone", person.phone),
    ):
        if value:
            ref[key] = value
    if not person.email and person.source_id:
        ref["_source"] = person.source_id
    return ref


def _attachment_ref(attachment: m.Attachment) -> dict[str, Any]:
    ref = {"fileName": attachment.file_name, "mimeType": attachment.mime_type}
    if attachment.path is not None:
        # Read at send time; the fingerprint uses the content's hash.
        ref["_path"] = str(attachment.path)
    else:
        # Downloaded at send time and sent as `data`: a URL at the source dies with it.
        ref["_url"] = attachment.url
    return ref


def _custom_fields(
    conv: m.SourceConversation, definitions: dict[str, dict], left_out: list[str]
) -> list[dict[str, Any]]:
    """Custom fields by name, dropdowns by label; a value the target mailbox cannot hold (no
    such field, no such option, not a number or date) is left out and noted, never fatal."""
    out = []
    for name, value in conv.custom_fields.items():
        definition = definitions.get(name.casefold())
        if definition is None:
            left_out.append(f"custom field {name} (not in the target mailbox)")
            continue
        kind = definition.get("type")
        if kind == "dropdown":
            options = definition.get("options") or {}
            by_label = {str(label).casefold(): key for key, label in options.items()}
            option = by_label.get(value.casefold()) or (value if value in options else None)
            if option is None:
                left_out.append(f"{name} option {value!r} (not an option on the target)")
                continue
            out.append({"id": int(definition["id"]), "value": option})
        elif kind == "number" and not NUMBER.match(value):
            left_out.append(f"{name} value {value!r} (not a number)")
        elif kind == "date":
            day = value[:10]
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
                left_out.append(f"{name} value {value!r} (not a YYYY-MM-DD date)")
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


def plan_customer(customer: m.SourceCustomer) -> tuple[Item | None, list[m.Problem]]:
    if customer.problems:
        return None, customer.problems
    payload = dict(customer.payload)
    expected = {
        "email": customer.email,
        "firstName": payload.get("firstName"),
        "lastName": payload.get("lastName"),
        "phones": [p["value"] for p in payload.get("phones", [])],
    }
    item = Item(
        customer.source_id,
        customer.file,
        customer.row,
        payload,
        expected,
        fingerprint(payload if not customer.fields else {"payload": payload, **customer.fields}),
        email=customer.email,
        customer_fields=dict(customer.fields),
    )
    return item, []
