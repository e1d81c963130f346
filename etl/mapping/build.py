"""Building source records: rows -> normalised, checked conversations and customers.

Nothing here talks to the API: the output is data (timestamps in UTC, statuses mapped, emails
and limits checked), with every problem named by file, row and field so that the row can go to
the rejects file.
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from etl.htmltext import html_to_text
from etl.mapping.dates import DateProblem, _utc, parse_date
from etl.mapping.definition import PERSON_KEYS, Mapping, MappingError
from etl.mapping.values import (
    Evaluator,
    as_bool,
    as_list,
    get_path,
    is_empty,
    split_name,
    text,
    valid_email,
)
from etl.readers import SourceRow
from etl.redact import redact_url

STATUSES = ("active", "pending", "closed", "spam")
TYPES = ("email", "phone", "chat")
THREAD_TYPES = ("customer", "message", "note")
SKIPPED_THREAD_TYPES = ("lineitem", "skip")
AUTHOR_TYPES = ("customer", "user")

# The API's documented limits (Create Customer) and the sandbox's for subjects and tags.
LIMITS = {
    "subject": 998,
    "firstName": 40,
    "lastName": 40,
    "jobTitle": 60,
    "company": 60,
    "photoUrl": 200,
    "tag": 100,
    "fileName": 255,
}


@dataclass
class Problem:
    """Why a row cannot be loaded: the field it concerns, a kind for counting, a sentence."""

    field: str
    kind: str
    reason: str
    row: int | None = None


@dataclass
class Person:
    email: str | None = None
    source_id: str | None = None  # the person's id at the source, when the mapping names it
    first_name: str | None = None
    last_name: str | None = None
    type: str | None = None  # customer | user, when the source says
    phone: str | None = None


@dataclass
class Attachment:
    file_name: str
    mime_type: str
    url: str | None = None
    path: Path | None = None


@dataclass
class SourceThread:
    row: int
    type: str  # customer | message | note | auto
    body: str
    created_at: str
    author: Person
    public: bool | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class SourceConversation:
    source_id: str
    file: str
    rows: list[int]
    subject: str = ""
    status: str = ""
    type: str = "email"
    created_at: str | None = None
    closed_at: str | None = None
    customer: Person = field(default_factory=Person)
    assignee_email: str | None = None
    mailbox: str | None = None
    tags: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    custom_fields: dict[str, str] = field(default_factory=dict)
    threads: list[SourceThread] = field(default_factory=list)  # oldest first
    skipped_threads: int = 0
    skip_reason: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def row(self) -> int:
        return self.rows[0] if self.rows else 0


@dataclass
class SourceCustomer:
    source_id: str
    file: str
    row: int
    payload: dict[str, Any] = field(default_factory=dict)
    email: str | None = None
    problems: list[Problem] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # customer fields: name -> value
    skip_reason: str | None = None  # an agent in a users export, say


@dataclass
class RowReject:
    """A row that could not become a record at all (unreadable, or no id to group it by)."""

    file: str
    row: int
    problem: Problem


# -- conversations -------------------------------------------------------------------------


def conversations(
    mapping: Mapping, rows: Iterable[SourceRow], base_dir: Path
) -> tuple[list[SourceConversation], list[RowReject]]:
    """Rows -> source conversations (each with its problems, if any) and unusable rows."""
    if not mapping.conversation:
        raise MappingError(f"{mapping.path}: no [conversation] section; it maps customers only")
    ev = Evaluator(mapping, base_dir)
    spec = mapping.conversation
    nested = spec.get("threads")
    out: dict[str, SourceConversation] = {}
    grouped_rows: dict[str, list[tuple[int, dict]]] = {}
    rejects: list[RowReject] = []
    for row in rows:
        if row.data is None:
            rejects.append(RowReject(row.file, row.number, Problem("", "unreadable", row.error)))
            continue
        source_id = text(ev.value(spec["id"], row.data)).strip()
        if not source_id:
            rejects.append(
                RowReject(row.file, row.number, Problem(_name(spec["id"]), "missing_id", "no id"))
            )
            continue
        if nested:
            if source_id in out:
                first = out[source_id].row
                conv = SourceConversation(source_id, row.file, [row.number])
                conv.problems.append(
                    Problem("id", "duplicate_id", f"id {source_id} already at row {first}")
                )
                rejects.append(RowReject(row.file, row.number, conv.problems[0]))
                continue
            out[source_id] = _nested_conversation(ev, mapping, row, source_id)
        else:
            grouped_rows.setdefault(source_id, []).append((row.number, row.data))
            if source_id not in out:
                out[source_id] = SourceConversation(source_id, row.file, [])
    for source_id, members in grouped_rows.items():
        _grouped_conversation(ev, mapping, out[source_id], members)
    for conv in out.values():
        if mapping.conversation.get("subject_from_first_message"):
            subject_from_first_message(conv)
        _check_conversation(conv)
    return list(out.values()), rejects


SUBJECT_FROM_MESSAGE = 100  # characters at most


def subject_from_first_message(conv: SourceConversation) -> None:
    """No subject (a chat): the first line of text of the first message, at most 100 characters."""
    if conv.subject.strip():
        return
    for thread in conv.threads:
        text_lines = (html_to_text(thread.body) or "").splitlines()
        line = next((" ".join(x.split()) for x in text_lines if x.strip()), "")
        if line:
            if len(line) > SUBJECT_FROM_MESSAGE:
                line = line[: SUBJECT_FROM_MESSAGE - 1].rstrip() + "…"
            conv.subject = line
            return


def _name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and isinstance(spec.get("path"), str):
        return spec["path"]
    if isinstance(spec, list) and spec:
        return _name(spec[0])
    return ""


def _nested_conversation(ev: Evaluator, mapping: Mapping, row: SourceRow, source_id: str):
    conv = SourceConversation(source_id, row.file, [row.number])
    _conversation_fields(ev, mapping, conv, [row.data], row.number)
    items = ev.value(mapping.conversation["threads"], row.data) or []
    if not isinstance(items, list):
        conv.problems.append(
            Problem(
                _name(mapping.conversation["threads"]),
                "bad_value",
                "threads is not a list",
                row.number,
            )
        )
        items = []
    if mapping.conversation.get("threads_order") == "newest_first":
        items = list(reversed(items))
    for item in items:
        if isinstance(item, dict):
            _add_thread(ev, mapping, conv, item, row.data, row.number)
    _sort_threads(conv)
    return conv


def _grouped_conversation(ev, mapping, conv: SourceConversation, members) -> None:
    conv.rows = [number for number, _ in members]
    _conversation_fields(ev, mapping, conv, [data for _, data in members], conv.rows[0])
    for number, data in members:
        _add_thread(ev, mapping, conv, data, None, number)
    _sort_threads(conv)


def _sort_threads(conv: SourceConversation) -> None:
    # Stable: equal timestamps keep the source's order.
    conv.threads.sort(key=lambda t: t.created_at or "")
    if not conv.created_at and conv.threads and conv.threads[0].created_at:
        conv.created_at = conv.threads[0].created_at


def _first_value(ev: Evaluator, spec: Any, records: list[dict]) -> Any:
    for record in records:
        value = ev.value(spec, record)
        if not is_empty(value):
            return value
    return None


def _conversation_fields(ev, mapping, conv: SourceConversation, records, row: int) -> None:
    spec = mapping.conversation
    fmt = mapping.source.get("date_formats", [])
    zone = mapping.timezone

    def get(key: str) -> Any:
        return _first_value(ev, spec.get(key), records) if key in spec else None

    def problem(key: str, kind: str, reason: str) -> None:
        conv.problems.append(Problem(_field_label(spec.get(key), key), kind, reason, row))

    for reason, rule in (spec.get("skip") or {}).items():
        value = _first_value(ev, rule, records)
        if not is_empty(value) and as_bool(value) is not False:
            conv.skip_reason = reason
            break
    conv.subject = text(get("subject"))
    status = text(get("status")).strip().lower()
    conv.status = status
    conv.type = text(get("type")).strip().lower() or "email"
    for key in ("createdAt", "closedAt"):
        raw = get(key)
        if is_empty(raw):
            continue
        try:
            stamp = parse_date(raw, fmt, zone)
        except DateProblem as exc:
            problem(key, exc.kind, f"{key}: {exc}")
            continue
        if key == "createdAt":
            conv.created_at = stamp
        else:
            conv.closed_at = stamp
    conv.customer = _person(ev, spec.get("customer"), records)
    assignee = get("assignee")
    conv.assignee_email = text(assignee).strip() or None
    conv.mailbox = text(get("mailbox")).strip() or None
    tag_spec = spec.get("tags")
    sep = tag_spec.get("split", ",") if isinstance(tag_spec, dict) else ","
    conv.tags = _unique_ci(as_list(get("tags"), sep))
    conv.cc = as_list(get("cc"))
    conv.bcc = as_list(get("bcc"))
    fields = spec.get("custom_fields")
    if isinstance(fields, dict):
        for name, field_spec in fields.items():
            value = _first_value(ev, field_spec, records)
            if not is_empty(value):
                conv.custom_fields[name] = text(value).strip()
    elif fields is not None:
        # A path to an object of name -> value (this tool's own export).
        value = _first_value(ev, fields, records)
        if isinstance(value, dict):
            conv.custom_fields = {k: text(v) for k, v in value.items() if not is_empty(v)}
        elif isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict) and not is_empty(entry.get("value")):
                    label = entry.get("text") or entry.get("value")
                    conv.custom_fields[text(entry.get("name"))] = text(label)


def _field_label(spec: Any, key: str) -> str:
    name = _name(spec)
    return name or key


def _unique_ci(items: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return list(seen.values())


def _person(ev: Evaluator, spec: Any, records: list[dict], parent: Any = None) -> Person:
    if spec is None:
        return Person()
    if not isinstance(spec, dict) or not (set(spec) & PERSON_KEYS) or "path" in spec:
        value = _first_value_parent(ev, spec, records, parent)
        return Person(email=text(value).strip() or None)

    def get(key: str) -> Any:
        return _first_value_parent(ev, spec[key], records, parent) if key in spec else None

    person = Person(
        email=text(get("email")).strip() or None,
        first_name=text(get("firstName")).strip() or None,
        last_name=text(get("lastName")).strip() or None,
        type=text(get("type")).strip().lower() or None,
        phone=text(get("phone")).strip() or None,
        source_id=text(get("id")).strip() or None,
    )
    full = text(get("name")).strip()
    if full and not person.first_name and not person.last_name:
        person.first_name, last = split_name(full)
        person.last_name = last or None
    return person


def _first_value_parent(ev, spec, records, parent):
    for record in records:
        value = ev.value(spec, record, parent)
        if not is_empty(value):
            return value
    return None


def _add_thread(ev, mapping, conv: SourceConversation, item: dict, parent, row: int) -> None:
    spec = mapping.thread
    fmt = mapping.source.get("date_formats", [])

    def get(key: str) -> Any:
        return ev.value(spec.get(key), item, parent) if key in spec else None

    kind = text(get("type")).strip().lower() or "auto"
    if kind in SKIPPED_THREAD_TYPES:
        conv.skipped_threads += 1
        return
    body = get("body")
    body = "" if is_empty(body) else text(body)
    if spec.get("text_to_html") and body:
        body = html.escape(body, quote=False).replace("\r\n", "\n").replace("\n", "<br>\n")
    created = None
    raw = get("createdAt")
    try:
        created = parse_date(raw, fmt, mapping.timezone)
    except DateProblem as exc:
        label = _field_label(spec.get("createdAt"), "createdAt")
        conv.problems.append(Problem(label, exc.kind, f"thread createdAt: {exc}", row))
    thread = SourceThread(
        row=row,
        type=kind,
        body=body,
        created_at=created or "",
        author=_person(ev, spec.get("author"), [item], parent),
        public=as_bool(get("public")),
        cc=as_list(get("cc")),
        bcc=as_list(get("bcc")),
    )
    thread.attachments = _attachments(ev, spec.get("attachments"), item, parent, conv, row)
    if not body.strip() and not thread.attachments:
        conv.problems.append(
            Problem(
                _field_label(spec.get("body"), "body"), "empty_body", "a thread with no text", row
            )
        )
    conv.threads.append(thread)


def _attachments(ev, spec, item, parent, conv: SourceConversation, row: int) -> list[Attachment]:
    if spec is None:
        return []
    if isinstance(spec, dict):
        raw = get_path(item, spec["path"], parent) if spec.get("path") else None
    else:
        raw = ev.value(spec, item, parent)
    if is_empty(raw):
        return []
    if isinstance(raw, str):
        sep = spec.get("split", ";") if isinstance(spec, dict) else ";"
        raw = [p.strip() for p in raw.split(sep) if p.strip()]
    if not isinstance(raw, list):
        raw = [raw]
    out = []
    for entry in raw:
        if isinstance(entry, dict) and isinstance(spec, dict):
            name = text(ev.value(spec.get("fileName"), entry)).strip()
            url = text(ev.value(spec.get("url"), entry)).strip()
            local = text(ev.value(spec.get("file"), entry)).strip()
            mime = text(ev.value(spec.get("mimeType"), entry)).strip()
            # A file beside the input first (it outlives the source), else the URL.
            beside = local and (ev.base_dir / local).is_file()
            where = local if beside or not url else url
        else:
            where, name, mime = text(entry).strip(), "", ""
        if not where:
            continue
        attachment = _attachment(ev.base_dir, where, name, mime, conv, row)
        if attachment and len(attachment.file_name) > LIMITS["fileName"]:
            conv.problems.append(
                Problem(
                    "attachments",
                    "too_long",
                    f"attachment name over {LIMITS['fileName']} characters",
                    row,
                )
            )
        elif attachment:
            out.append(attachment)
    return out


def _attachment(base: Path, where: str, name: str, mime: str, conv, row) -> Attachment | None:
    if re.match(r"^https?://", where, re.IGNORECASE):
        name = name or where.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "attachment"
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Attachment(name, mime, url=where)
    if re.match(r"^[a-z][a-z0-9+.-]*://", where, re.IGNORECASE):
        conv.problems.append(
            Problem(
                "attachments",
                "bad_attachment",
                f"{redact_url(where)}: only http(s) URLs or files",
                row,
            )
        )
        return None
    folder = base.resolve()
    path = (folder / where).resolve()
    if not path.is_relative_to(folder):
        conv.problems.append(
            Problem(
                "attachments",
                "attachment_outside_folder",
                f"{where}: refused, attachments must be inside the input file's folder",
                row,
            )
        )
        return None
    if not path.is_file():
        conv.problems.append(
            Problem("attachments", "attachment_missing", f"{where}: no such file", row)
        )
        return None
    name = name or path.name
    mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Attachment(name, mime, path=path)


def _check_dates(conv: SourceConversation) -> None:
    """A conversation closed before it was created, or dated in the future, is a problem.

    The API stores such dates as given; a mistyped year would file the conversation years
    away, where no one looks.
    """
    latest = _utc(datetime.now(UTC) + FUTURE_SLACK)
    for key, stamp in (("createdAt", conv.created_at), ("closedAt", conv.closed_at)):
        if stamp and stamp > latest:
            conv.problems.append(
                Problem(key, "bad_date", f"{key}: {stamp} is in the future", conv.row)
            )
    if conv.created_at and conv.closed_at and conv.closed_at < conv.created_at:
        conv.problems.append(
            Problem(
                "closedAt",
                "bad_date",
                f"closedAt {conv.closed_at} is before createdAt {conv.created_at}",
                conv.row,
            )
        )


def identifiable(person: Person) -> bool:
    """A customer the target can be given: by email, or (created or found through the
    customer list filters) by phone, name or, at least, the source's id for it."""
    return bool(
        person.email or person.phone or person.first_name or person.last_name or person.source_id
    )


# A clock a little ahead at the source, or a time zone written one way too far, is not an error.
FUTURE_SLACK = timedelta(days=1)


def _check_conversation(conv: SourceConversation) -> None:
    """Checks that need no target: required fields, enums, emails, limits, dates."""
    add = conv.problems.append
    _check_dates(conv)
    if not conv.subject.strip():
        add(Problem("subject", "missing_subject", "no subject", conv.row))
    elif len(conv.subject) > LIMITS["subject"]:
        add(
            Problem("subject", "too_long", f"subject over {LIMITS['subject']} characters", conv.row)
        )
    if not conv.status:
        add(
            Problem(
                "status", "missing_status", "no status (set a default in the mapping)", conv.row
            )
        )
    elif conv.status not in STATUSES:
        add(
            Problem(
                "status",
                "unknown_status",
                f"unknown status {conv.status!r} (map it in [values.status] to one of "
                f"{', '.join(STATUSES)})",
                conv.row,
            )
        )
    if conv.type not in TYPES:
        add(
            Problem(
                "type",
                "unknown_type",
                f"unknown type {conv.type!r} (map it to email, phone or chat)",
                conv.row,
            )
        )
    email = conv.customer.email
    if not identifiable(conv.customer):
        reason = "no customer: no email, phone, name or id"
        add(Problem("customer.email", "missing_customer", reason, conv.row))
    elif email and not valid_email(email):
        add(
            Problem(
                "customer.email", "invalid_email", f"{email!r} is not an email address", conv.row
            )
        )
    for key, value in (
        ("firstName", conv.customer.first_name),
        ("lastName", conv.customer.last_name),
    ):
        if value and len(value) > LIMITS[key]:
            add(
                Problem(
                    f"customer.{key}",
                    "too_long",
                    f"customer {key} over {LIMITS[key]} characters",
                    conv.row,
                )
            )
    if conv.assignee_email and not valid_email(conv.assignee_email):
        add(
            Problem(
                "assignee",
                "invalid_email",
                f"assignee {conv.assignee_email!r} is not an email address",
                conv.row,
            )
        )
    for address in conv.cc + conv.bcc:
        if not valid_email(address):
            add(
                Problem(
                    "cc", "invalid_email", f"cc/bcc {address!r} is not an email address", conv.row
                )
            )
    if not conv.threads:
        skipped = (
            f" ({conv.skipped_threads} system threads skipped)" if conv.skipped_threads else ""
        )
        add(Problem("threads", "no_threads", f"a conversation with no threads{skipped}", conv.row))
    for thread in conv.threads:
        if thread.type not in THREAD_TYPES and thread.type != "auto":
            add(
                Problem(
                    "thread.type",
                    "unknown_thread_type",
                    f"unknown thread type {thread.type!r} (map it to customer, message, "
                    "note or skip)",
                    thread.row,
                )
            )
        if thread.author.email and not valid_email(thread.author.email):
            add(
                Problem(
                    "thread.author",
                    "invalid_email",
                    f"thread author {thread.author.email!r} is not an email address",
                    thread.row,
                )
            )
        for address in thread.cc + thread.bcc:
            if not valid_email(address):
                add(
                    Problem(
                        "thread.cc",
                        "invalid_email",
                        f"cc/bcc {address!r} is not an email address",
                        thread.row,
                    )
                )


# -- customers -------------------------------------------------------------------------------


def customers(
    mapping: Mapping, rows: Iterable[SourceRow], base_dir: Path
) -> tuple[list[SourceCustomer], list[RowReject]]:
    """Rows -> Create Customer payloads with their problems, and unreadable rows."""
    if not mapping.customer:
        raise MappingError(f"{mapping.path}: no [customer] section; it maps conversations only")
    ev = Evaluator(mapping, base_dir)
    spec = mapping.customer
    out: list[SourceCustomer] = []
    rejects: list[RowReject] = []
    seen: dict[str, int] = {}
    for row in rows:
        if row.data is None:
            rejects.append(RowReject(row.file, row.number, Problem("", "unreadable", row.error)))
            continue
        customer = _customer(ev, spec, row)
        if customer.source_id in seen and customer.source_id:
            customer.problems.append(
                Problem(
                    "id",
                    "duplicate_id",
                    f"id {customer.source_id} already at row {seen[customer.source_id]}",
                    row.number,
                )
            )
        elif customer.source_id:
            seen[customer.source_id] = row.number
        out.append(customer)
    return out, rejects


def _customer(ev: Evaluator, spec: dict, row: SourceRow) -> SourceCustomer:
    data = row.data

    def get(key: str) -> Any:
        return ev.value(spec[key], data) if key in spec else None

    def label(key: str) -> str:
        return _field_label(spec.get(key), key)

    problems: list[Problem] = []
    emails = _entries(ev, spec.get("emails"), data) if "emails" in spec else []
    single = text(get("email")).strip()
    if single:  # the email column is the primary address
        emails = [e for e in emails if e["value"].casefold() != single.casefold()]
        emails.insert(0, {"value": single, "type": "work"})
    phones = _entries(ev, spec.get("phones"), data) if "phones" in spec else []
    phone = text(get("phone")).strip()
    if phone and phone not in {p["value"] for p in phones}:
        phones.insert(0, {"value": phone, "type": "work"})
    payload: dict[str, Any] = {}
    first, last = text(get("firstName")).strip(), text(get("lastName")).strip()
    full = text(get("name")).strip()
    if full and not first and not last:
        first, last = split_name(full)
    for key, value in (("firstName", first), ("lastName", last)):
        if value:
            payload[key] = value
    for key in ("company", "jobTitle", "photoUrl", "notes"):
        value = text(get(key)).strip()
        if value:
            payload[key] = value
    for key, value in payload.items():
        if key in LIMITS and len(value) > LIMITS[key]:
            problems.append(
                Problem(label(key), "too_long", f"{key} over {LIMITS[key]} characters", row.number)
            )
    if phones:
        payload["phones"] = phones
    address = {}
    for key in ("address", "city", "state", "zip", "country"):
        value = get(key)
        if isinstance(value, dict):  # an address object
            address.update({k: text(v) for k, v in value.items() if not is_empty(v)})
        elif not is_empty(value):
            address[key] = text(value).strip()
    if address.get("country") and not re.fullmatch(r"[A-Za-z]{2}", address["country"]):
        problems.append(
            Problem(
                label("country"),
                "bad_value",
                f"country {address['country']!r} is not a two-letter code",
                row.number,
            )
        )
    if address:
        payload["address"] = address
    websites = as_list(get("websites"))
    if websites:
        payload["websites"] = [{"value": w} for w in websites]
    profiles = _entries(ev, spec.get("socialProfiles"), data) if "socialProfiles" in spec else []
    if profiles:
        payload["socialProfiles"] = profiles
    fields = _customer_fields(ev, spec.get("customer_fields"), data)
    if not emails and not phones and not first and not last:
        problems.append(
            Problem(label("email"), "missing_customer", "no email, phone or name", row.number)
        )
    for entry in emails:
        if not valid_email(entry["value"]):
            problems.append(
                Problem(
                    label("email"),
                    "invalid_email",
                    f"{entry['value']!r} is not an email address",
                    row.number,
                )
            )
    if emails:
        payload["emails"] = emails
    primary = emails[0]["value"] if emails else None
    source_id = text(get("id")).strip() or _natural_key(primary, phones, first, last)
    customer = SourceCustomer(source_id, row.file, row.number, payload, primary, problems, fields)
    for reason, rule in (spec.get("skip") or {}).items():
        value = ev.value(rule, data)
        if not is_empty(value) and as_bool(value) is not False:
            customer.skip_reason = reason
            break
    return customer


def _customer_fields(ev: Evaluator, spec: Any, data: Any) -> dict[str, str]:
    """Customer fields by name: a table of name = spec, or a path to an object of them."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        values = {name: ev.value(s, data) for name, s in spec.items()}
    else:
        found = ev.value(spec, data)
        values = found if isinstance(found, dict) else {}
    return {str(k): text(v).strip() for k, v in values.items() if not is_empty(v)}


def _natural_key(email: str | None, phones: list[dict], first: str, last: str) -> str:
    """The ledger's key for a customer row without an id: its email, else phone, else name."""
    if email:
        return email.lower()
    if phones:
        return f"phone:{phones[0]['value']}"
    if first or last:
        return f"name:{first} {last}".strip().casefold()
    return ""


def _entries(ev: Evaluator, spec: Any, data: Any) -> list[dict[str, str]]:
    """`emails`/`phones`: a list of {value, type} objects, a list of strings or delimited text."""
    raw = (
        ev.value(spec, data)
        if not isinstance(spec, dict) or "path" not in spec
        else (get_path(data, spec["path"]))
    )
    if is_empty(raw):
        return []
    value_key = spec.get("value", "value") if isinstance(spec, dict) else "value"
    type_key = spec.get("type", "type") if isinstance(spec, dict) else "type"
    if isinstance(raw, str) and raw.strip().startswith("["):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            pass
    if isinstance(raw, str):
        sep = spec.get("split", ",") if isinstance(spec, dict) else ","
        raw = [p.strip() for p in raw.split(sep) if p.strip()]
    out = []
    for entry in raw if isinstance(raw, list) else [raw]:
        if isinstance(entry, dict):
            value = text(entry.get(value_key)).strip()
            kind = text(entry.get(type_key)).strip() or "work"
        else:
            value, kind = text(entry).strip(), "work"
        if value:
            out.append({"value": value, "type": kind})
    return out
