"""Payload validation: each function returns a normalised payload or raises a 400 with
per-field errors (`path`, `message`, optional `rejectedValue`, `source`)."""

import base64
import binascii
import re

from .errors import bad_request, field_error
from .models import STATUSES, THREAD_TYPES, TYPES
from .text import valid_email
from .timefmt import parse_time

MAX_SUBJECT = 998
CUSTOMER_LIMITS = {"firstName": 40, "lastName": 40, "jobTitle": 60, "company": 60, "photoUrl": 200}
PHOTO_TYPES = (
    "unknown",
    "gravatar",
    "twitter",
    "facebook",
    "googleprofile",
    "googleplus",
    "linkedin",
)
WEBHOOK_EVENTS = (
    "convo.assigned",
    "convo.created",
    "convo.deleted",
    "convo.moved",
    "convo.status",
    "convo.customer.reply.created",
    "convo.agent.reply.created",
    "convo.note.created",
    "customer.created",
    "customer.updated",
)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _one_of(allowed) -> str:
    return "Expected one of these: " + ", ".join(f"'{a}'" for a in allowed)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Checker:
    """Collects field errors; `done()` raises them as one 400."""

    def __init__(self):
        self.errors = []

    def add(self, path: str, message: str, rejected=None) -> None:
        self.errors.append(field_error(path, message, rejected))

    def done(self) -> None:
        if self.errors:
            raise bad_request(self.errors)

    def text(self, body: dict, key: str, path: str, required=False, limit=None) -> None:
        value = body.get(key)
        if value is None or value == "":
            if required:
                self.add(path, "may not be empty")
            return
        if not isinstance(value, str):
            self.add(path, "must be a string", value)
        elif limit and len(value) > limit:
            self.add(path, f"size must be between 0 and {limit}", value)

    def time(self, body: dict, key: str, path: str) -> int | None:
        value = body.get(key)
        if value is None:
            return None
        try:
            return parse_time(value)
        except ValueError:
            self.add(path, "must be an ISO 8601 date-time in UTC, e.g. 2020-01-02T23:00:00Z", value)
            return None

    def choice(self, body: dict, key: str, path: str, allowed, required=False) -> None:
        value = body.get(key)
        if value is None:
            if required:
                self.add(path, "may not be empty")
        elif value not in allowed:
            self.add(path, _one_of(allowed), value)

    def ref(self, value, path: str, table: dict, what: str, required=False) -> None:
        if value is None:
            if required:
                self.add(path, "may not be empty")
        elif not _is_int(value):
            self.add(path, "must be an integer", value)
        elif value not in table:
            self.add(path, f"{what} not found", value)

    def emails(self, values, path: str) -> None:
        if values is None:
            return
        if not isinstance(values, list):
            self.add(path, "must be a list", values)
            return
        for i, value in enumerate(values):
            email = value.get("value") if isinstance(value, dict) else value
            if not valid_email(email):
                self.add(f"{path}[{i}]", "must be a well-formed email address", email)


def require_object(body) -> dict:
    """The body must be a JSON object."""
    if not isinstance(body, dict):
        raise bad_request([field_error("", "Expected a JSON object", None)])
    return body


def field_values(check: Checker, definitions: dict, items, path: str) -> dict:
    """Validate `[{"id", "value"}]` against definitions; returns {id: value as string or None}."""
    out = {}
    if not isinstance(items, list):
        check.add(path, "must be a list", items)
        return out
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, dict) or not _is_int(item.get("id")):
            check.add(f"{where}.id", "may not be empty")
            continue
        definition = definitions.get(item["id"])
        if definition is None:
            check.add(f"{where}.id", "Custom field not found", item["id"])
            continue
        value = item.get("value")
        if value is None or value == "":
            out[definition.id] = None
            continue
        text = str(value)
        if isinstance(value, bool) or isinstance(value, dict | list):
            check.add(f"{where}.value", "must be a string or a number", value)
        elif definition.type == "dropdown" and text not in (definition.options or {}):
            check.add(f"{where}.value", _one_of(sorted(definition.options or {})), value)
        elif definition.type == "number" and not NUMBER.match(text):
            check.add(f"{where}.value", "must be a number", value)
        elif definition.type == "date" and not DATE.match(text):
            check.add(f"{where}.value", "must be a date (YYYY-MM-DD)", value)
        else:
            out[definition.id] = text[:10] if definition.type == "date" else text
    return out


def _customer_ref(check: Checker, store, ref, path: str, conv_type: str | None = None) -> None:
    if not isinstance(ref, dict):
        check.add(path, "may not be empty")
        return
    if ref.get("id") is not None:
        check.ref(ref["id"], f"{path}.id", store.customers, "Customer")
        return
    if ref.get("email") is not None:
        if not valid_email(ref["email"]):
            check.add(f"{path}.email", "must be a well-formed email address", ref["email"])
    elif not (conv_type == "phone" and (ref.get("firstName") or ref.get("phone"))):
        check.add(path, "must contain an id or an email")
    for key in ("firstName", "lastName"):
        check.text(ref, key, f"{path}.{key}", limit=CUSTOMER_LIMITS[key])


def _attachments(check: Checker, items, path: str) -> list:
    out = []
    if items is None:
        return out
    if not isinstance(items, list):
        check.add(path, "must be a list", items)
        return out
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            check.add(where, "must be an object")
            continue
        check.text(item, "fileName", f"{where}.fileName", required=True, limit=255)
        spec = {"fileName": item.get("fileName"), "mimeType": item.get("mimeType")}
        if item.get("data"):
            try:
                spec["_bytes"] = base64.b64decode(item["data"], validate=True)
            except (binascii.Error, ValueError, TypeError):
                check.add(f"{where}.data", "must be BASE64 encoded", None)
        elif item.get("fileUrl"):
            spec["fileUrl"] = item["fileUrl"]
        else:
            check.add(f"{where}.data", "either data or fileUrl is required")
        out.append(spec)
    return out


def _thread(check: Checker, store, item, path: str, conv_type=None) -> dict:
    if not isinstance(item, dict):
        check.add(path, "must be an object")
        return {}
    check.choice(item, "type", f"{path}.type", THREAD_TYPES, required=True)
    check.text(item, "text", f"{path}.text", required=True)
    kind = item.get("type")
    if kind in ("message", "note"):
        check.ref(item.get("user"), f"{path}.user", store.users, "User", required=True)
    elif kind == "customer":
        _customer_ref(check, store, item.get("customer"), f"{path}.customer", conv_type)
    for key in ("cc", "bcc"):
        check.emails(item.get(key), f"{path}.{key}")
    spec = dict(item)
    spec["createdAt"] = check.time(item, "createdAt", f"{path}.createdAt")
    spec["attachments"] = _attachments(check, item.get("attachments"), f"{path}.attachments")
    return spec


def conversation_create(store, body) -> dict:
    """Validate POST /conversations; returns the spec Store.create_conversation takes."""
    body = require_object(body)
    check = Checker()
    check.choice(body, "type", "type", TYPES, required=True)
    check.ref(body.get("mailboxId"), "mailboxId", store.mailboxes, "Mailbox", required=True)
    check.text(body, "subject", "subject", required=True, limit=MAX_SUBJECT)
    _customer_ref(check, store, body.get("customer"), "customer", body.get("type"))
    threads = body.get("threads")
    specs = []
    if not isinstance(threads, list) or not threads:
        check.add("threads", "must contain at least one thread")
    else:
        specs = [
            _thread(check, store, t, f"threads[{i}]", body.get("type"))
            for i, t in enumerate(threads)
        ]
    if body.get("imported") is not None and not isinstance(body["imported"], bool):
        check.add("imported", "must be a boolean", body["imported"])
    check.choice(body, "status", "status", STATUSES)
    check.ref(body.get("assignTo"), "assignTo", store.users, "User")
    spec = dict(body, threads=specs)
    spec["createdAt"] = check.time(body, "createdAt", "createdAt")
    spec["closedAt"] = check.time(body, "closedAt", "closedAt")
    fields = body.get("customFields")
    if fields is not None and body.get("mailboxId") in store.mailboxes:
        defs = {d.id: d for d in store.mailbox_fields(body["mailboxId"])}
        spec["customFields"] = field_values(check, defs, fields, "customFields")
    check.done()
    return spec


def conversation_update(store, body) -> dict:
    """Validate PUT /conversations/{id}; returns the changes in request order."""
    body = require_object(body)
    check = Checker()
    changes = {}
    if body.get("byUser") is not None:
        check.ref(body["byUser"], "byUser", store.users, "User")
    for key, value in body.items():
        if key == "status":
            check.choice(body, "status", "status", STATUSES, required=True)
        elif key == "assignTo":
            if value not in (None, 0, -1):
                check.ref(value, "assignTo", store.users, "User")
            value = value if value not in (0, -1) else None
        elif key == "mailboxId":
            check.ref(value, "mailboxId", store.mailboxes, "Mailbox", required=True)
        elif key == "customerId":
            check.ref(value, "customerId", store.customers, "Customer", required=True)
        elif key == "subject":
            if value is None or str(value) == "" or isinstance(value, dict | list | bool):
                check.add("subject", "may not be empty", value)
            elif len(str(value)) > MAX_SUBJECT:
                check.add("subject", f"size must be between 1 and {MAX_SUBJECT}", value)
            value = str(value)
        elif key != "byUser":
            continue
        changes[key] = value
    needs_user = {"status", "assignTo", "mailboxId"} & set(changes)
    if needs_user and body.get("byUser") is None:
        check.add("byUser", "may not be empty when changing " + ", ".join(sorted(needs_user)))
    check.done()
    return changes


def conversation_fields(store, conv, body) -> dict:
    """Validate PUT /conversations/{id}/custom_fields against the conversation's mailbox."""
    body = require_object(body)
    check = Checker()
    if "customFields" not in body:
        check.add("customFields", "may not be empty")
        check.done()
    defs = {d.id: d for d in store.mailbox_fields(conv.mailbox_id)}
    values = field_values(check, defs, body["customFields"], "customFields")
    check.done()
    return values


def customer_fields(store, body) -> dict:
    """Validate PUT /customers/{id}/customer_fields."""
    body = require_object(body)
    check = Checker()
    if "customerFields" not in body:
        check.add("customerFields", "may not be empty")
        check.done()
    values = field_values(check, store.cust_fields, body["customerFields"], "customerFields")
    check.done()
    return values


def tags(body) -> list[str]:
    """Validate PUT /conversations/{id}/tags; returns the tag names."""
    body = require_object(body)
    check = Checker()
    names = body.get("tags")
    if not isinstance(names, list):
        check.add("tags", "must be a list of tag names", names)
        check.done()
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            check.add(f"tags[{i}]", "may not be empty", name)
        elif len(name) > 100:
            check.add(f"tags[{i}]", "size must be between 1 and 100", name)
    check.done()
    return [name.strip() for name in names]


def thread_create(store, conv, body) -> dict:
    """Validate POST /conversations/{id}/threads; returns Store.add_thread keyword arguments."""
    body = require_object(body)
    check = Checker()
    spec = _thread(check, store, body, "", conv.type)
    check.choice(body, "status", "status", STATUSES)
    if body.get("imported") is not None and not isinstance(body["imported"], bool):
        check.add("imported", "must be a boolean", body["imported"])
    check.errors = [dict(e, path=e["path"].lstrip(".")) for e in check.errors]
    check.done()
    return {
        "type": body["type"],
        "text": body["text"],
        "user_id": body.get("user"),
        "customer": body.get("customer"),
        "status": body.get("status"),
        "cc": body.get("cc") or (),
        "bcc": body.get("bcc") or (),
        "attachments": spec["attachments"],
        "created_at": spec["createdAt"],
        "imported": body.get("imported") is True,
    }


def customer(body) -> dict:
    """Validate POST/PUT /customers: lengths, photo type, emails, entry lists (nothing is
    required, as in the reference)."""
    body = require_object(body)
    check = Checker()
    for key, limit in CUSTOMER_LIMITS.items():
        check.text(body, key, key, limit=limit)
    for key in ("notes", "phone"):
        check.text(body, key, key)
    check.choice(body, "photoType", "photoType", PHOTO_TYPES)
    check.emails(body.get("emails"), "emails")
    check.emails(body.get("emails_add"), "emails_add")
    for key in ("phones", "socialProfiles", "websites"):
        if body.get(key) is not None and not isinstance(body[key], list):
            check.add(key, "must be a list", body[key])
    if body.get("address") is not None and not isinstance(body["address"], dict):
        check.add("address", "must be an object", body["address"])
    check.done()
    return body


def user_create(body) -> dict:
    """Validate POST /users."""
    body = require_object(body)
    check = Checker()
    check.text(body, "firstName", "firstName", required=True, limit=100)
    check.text(body, "lastName", "lastName", required=True, limit=100)
    if not valid_email(body.get("email")):
        check.add("email", "must be a well-formed email address", body.get("email"))
    for key in ("password", "alternateEmails", "jobTitle", "phone", "timezone", "photoUrl"):
        check.text(body, key, key)
    check.done()
    return body


def webhook_create(body) -> dict:
    """Validate POST /webhooks."""
    body = require_object(body)
    check = Checker()
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        check.add("url", "must be an http(s) URL", url)
    events = body.get("events")
    if not isinstance(events, list) or not events:
        check.add("events", "must list at least one event", events)
    else:
        for i, event in enumerate(events):
            if event not in WEBHOOK_EVENTS:
                check.add(f"events[{i}]", _one_of(WEBHOOK_EVENTS), event)
    check.done()
    return body
