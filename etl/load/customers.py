"""Customers on the target: found by email, else phone, else first and last name (the customer
list filters), created through `POST /customers` when not found, and remembered in the ledger.

A conversation whose customer has no email (a phone or chat customer) is sent with
`customer: {"id": N}`: the API matches a customer only by id or email, and a ref with a name
alone would make a new customer on every use.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from etl.client import Client
from etl.errors import OutcomeUnknown
from etl.ledger import Ledger

RECOVERY_ATTEMPTS = 8
# Customer field ids are learnt from at most this many pages of 100 customers; a field that
# none of them has is named with --customer-field NAME=ID.
MAX_FIELD_PAGES = 50


def needs_id(ref: dict[str, Any] | None) -> bool:
    """A customer ref the API cannot resolve itself: neither an id nor an email."""
    return isinstance(ref, dict) and "id" not in ref and "email" not in ref


def match_key(ref: dict[str, Any]) -> str:
    """The ledger's key for a customer known by id at the source, else by phone or name."""
    if ref.get("_source"):
        return str(ref["_source"])
    if ref.get("phone"):
        return f"phone:{ref['phone']}"
    return f"name:{ref.get('firstName') or ''} {ref.get('lastName') or ''}".strip().casefold()


def lookups(ref: dict[str, Any]) -> list[dict[str, str]]:
    """The filter a customer is matched by: its email, else its phone, else first and last
    name (a customer with a phone that the target lacks is new, whatever its name)."""
    if ref.get("email"):
        return [{"email": ref["email"]}]
    if ref.get("phone"):
        return [{"phone": ref["phone"]}]
    names = {k: ref[k] for k in ("firstName", "lastName") if ref.get(k)}
    return [names] if names else []


def find_match(client: Client, ref: dict[str, Any], taken: set[int] | None = None) -> int | None:
    """The oldest customer matching `ref` (email, else phone, else name) not in `taken`;
    among customers sharing a phone, one with the same name first."""
    for params in lookups(ref):
        query = {**params, "sortField": "createdAt", "sortOrder": "asc", "pageSize": 50}
        document = client.get("api/customers", query) or {}
        found = [
            c
            for c in (document.get("_embedded") or {}).get("customers") or []
            if not taken or int(c["id"]) not in taken
        ]
        if "phone" in params:
            found.sort(key=lambda c: not _same_name(c, ref))  # stable: oldest first in each
        if found:
            return int(found[0]["id"])
    return None


def _same_name(customer: dict[str, Any], ref: dict[str, Any]) -> bool:
    def name(value: Any) -> str:
        return str(value or "").casefold()

    return (name(customer.get("firstName")), name(customer.get("lastName"))) == (
        name(ref.get("firstName")),
        name(ref.get("lastName")),
    )


# Update Customer's single values that are filled in when the target's customer has none.
FILLED_IN = ("firstName", "lastName", "company", "jobTitle", "notes", "photoUrl")
# Payload lists -> the `_embedded` list a target customer shows them in.
LISTS = (("phones", "phones"), ("socialProfiles", "social_profiles"), ("websites", "websites"))


def _same(key: str, value: str) -> str:
    """How two entries of a list are compared: phones by their digits, the rest by text."""
    if key == "phones" and re.sub(r"\D", "", value):
        return re.sub(r"\D", "", value)
    return value.strip().casefold()


def fill_in(have: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The Update Customer body that adds to a target customer (`have`, as Get Customer shows
    it) what the source's Create Customer `payload` has and it lacks, overwriting nothing:
    emails it lacks (`emails_add`), phones, social profiles and websites it lacks (the lists
    replace, so the target's own entries go first, unchanged), single values and address parts
    it has empty. `{}` when it lacks nothing."""
    body: dict[str, Any] = {}
    for key in FILLED_IN:
        if payload.get(key) and not str(have.get(key) or "").strip():
            body[key] = payload[key]
    embedded = have.get("_embedded") or {}
    known = {str(e.get("value") or "").casefold() for e in embedded.get("emails") or []}
    new = []
    for entry in payload.get("emails") or []:
        if entry["value"].casefold() not in known:
            known.add(entry["value"].casefold())
            new.append(entry["value"])
    if new:
        body["emails_add"] = new
    for key, shown in LISTS:
        current = [
            {k: e[k] for k in ("value", "type") if e.get(k)}
            for e in embedded.get(shown) or []
            if e.get("value")
        ]
        seen = {_same(key, e["value"]) for e in current}
        extra = []
        for entry in payload.get(key) or []:
            if _same(key, entry["value"]) not in seen:
                seen.add(_same(key, entry["value"]))
                extra.append(entry)
        if extra:
            body[key] = current + extra
    address = {k: v for k, v in (embedded.get("address") or {}).items() if v}
    merged = dict(address)
    for key, value in (payload.get("address") or {}).items():
        if value and not merged.get(key):
            merged[key] = value
    if merged != address:
        body["address"] = merged
    return body


def lacking_fields(have: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """The customer field values (by name) whose field the target customer has no value for."""
    set_names = {
        str(e.get("name") or "").casefold()
        for e in have.get("customerFields") or []
        if e.get("value") not in (None, "")
    }
    return {k: v for k, v in values.items() if k.casefold() not in set_names}


def create_body(ref: dict[str, Any]) -> dict[str, Any]:
    """A Create Customer body from a conversation's customer ref (names and phone)."""
    body: dict[str, Any] = {k: ref[k] for k in ("firstName", "lastName") if ref.get(k)}
    if ref.get("phone"):
        body["phones"] = [{"value": ref["phone"], "type": "work"}]
    return body


class CustomerResolver:
    """Customer refs without an email -> target ids; shared by the workers of one load.

    Each key is resolved once per run (a lock per key keeps two workers from creating the same
    customer), and the ledger (kind `customers`) remembers the answer for the next run.
    """

    def __init__(self, client: Client, ledger: Ledger, retry_pause: float = 1.0):
        self.client, self.ledger, self.retry_pause = client, ledger, retry_pause
        self.known: dict[str, int] = {}
        self.locks: dict[str, threading.Lock] = {}
        self.lock = threading.Lock()
        self.created = 0
        self.found = 0

    def resolve(self, ref: dict[str, Any]) -> int:
        key = match_key(ref)
        with self.lock:
            if key in self.known:
                return self.known[key]
            key_lock = self.locks.setdefault(key, threading.Lock())
        with key_lock:
            if key in self.known:
                return self.known[key]
            entry = self.ledger.get(key)
            if entry is not None and entry.state == "done" and entry.target_id:
                found: int | None = entry.target_id
            else:
                found = self._find_or_create(key, ref)
            with self.lock:
                self.known[key] = found
            return found

    def _find_or_create(self, key: str, ref: dict[str, Any]) -> int:
        found = find_match(self.client, ref)
        if found is not None:
            self.ledger.done(key, found, existing=True)
            with self.lock:
                self.found += 1
            return found
        body = create_body(ref)
        for attempt in range(1, RECOVERY_ATTEMPTS + 1):
            try:
                target_id = self.client.create("api/customers", body)
                break
            except OutcomeUnknown:
                if attempt == RECOVERY_ATTEMPTS:
                    raise
                time.sleep(self.retry_pause * attempt)
                found = find_match(self.client, ref)
                if found is not None:
                    target_id = found
                    break
        self.ledger.done(key, target_id)
        with self.lock:
            self.created += 1
        return target_id


def with_ids(payload: dict[str, Any], resolve) -> dict[str, Any]:
    """The payload with every customer ref that needs an id (the conversation's and each
    customer thread's) replaced by `{"id": N}`."""
    out = dict(payload)
    if needs_id(out.get("customer")):
        out["customer"] = {"id": resolve(out["customer"])}
    threads = []
    for thread in out.get("threads", []):
        if needs_id(thread.get("customer")):
            thread = dict(thread, customer={"id": resolve(thread["customer"])})
        threads.append(thread)
    if threads:
        out["threads"] = threads
    return out


# -- customer fields ------------------------------------------------------------------------


class CustomerFields:
    """Customer field definitions by name, as far as the target shows them.

    The API lists no customer field definitions: a customer shows the fields it has values
    for (`customerFields`: id, name, value and, for a dropdown, the option's label as `text`).
    So ids and dropdown options are learnt from the target's customers, reading pages only
    until every name (and label) the file uses is known; `--customer-field NAME=ID` names the
    rest.
    """

    def __init__(self, given: dict[str, int] | None = None):
        self.ids: dict[str, int] = {k.casefold(): v for k, v in (given or {}).items()}
        self.names: dict[str, str] = {k.casefold(): k for k in (given or {})}
        self.options: dict[str, dict[str, str]] = {}  # name -> label (casefolded) -> value

    def learn(self, client: Client, wanted: dict[str, set[str]]) -> None:
        """Read the target's customers until every wanted name and label is known."""
        page = 1
        while not self._knows(wanted):
            params = {"sortField": "createdAt", "sortOrder": "asc", "page": page, "pageSize": 100}
            document = client.get("api/customers", params) or {}
            found = (document.get("_embedded") or {}).get("customers") or []
            for customer in found:
                for entry in customer.get("customerFields") or []:
                    self._add(entry)
            pages = int((document.get("page") or {}).get("totalPages") or 0)
            if not found or page >= min(pages, MAX_FIELD_PAGES):
                return
            page += 1

    def _add(self, entry: dict[str, Any]) -> None:
        name = str(entry.get("name") or "")
        if not name or entry.get("id") is None:
            return
        key = name.casefold()
        self.ids.setdefault(key, int(entry["id"]))
        self.names.setdefault(key, name)
        if entry.get("text"):
            labels = self.options.setdefault(key, {})
            labels.setdefault(str(entry["text"]).casefold(), str(entry.get("value")))

    def _knows(self, wanted: dict[str, set[str]]) -> bool:
        for name, values in wanted.items():
            key = name.casefold()
            if key not in self.ids:
                return False
            labels = self.options.get(key)
            if labels and any(
                v.casefold() not in labels and v not in labels.values() for v in values
            ):
                return False
        return True

    def name_of(self, field_id: int) -> str | None:
        return next((self.names[k] for k, v in self.ids.items() if v == field_id), None)

    def resolve(self, values: dict[str, str], left_out: list[str]) -> list[dict[str, Any]]:
        """`[{id, value}]` for the values the target can hold; the rest noted in `left_out`."""
        out = []
        for name, value in values.items():
            key = name.casefold()
            if key not in self.ids:
                left_out.append(
                    f"customer field {name} (no target customer has it: pass "
                    "--customer-field NAME=ID)"
                )
                continue
            labels = self.options.get(key)
            if labels:
                option = labels.get(value.casefold()) or (
                    value if value in labels.values() else None
                )
                if option is None:
                    left_out.append(
                        f"customer field {name} option {value!r} (not known on the target)"
                    )
                    continue
                value = option
            out.append({"id": self.ids[key], "value": value})
        return out
