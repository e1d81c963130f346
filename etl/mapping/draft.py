"""Drafting a mapping from a file's headers or JSON keys, for `etl mapping init`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from etl.mapping.values import get_path, text

GUESSES: dict[str, tuple[str, ...]] = {
    # target key: normalised header names, most specific first
    "id": ("conversationid", "ticketid", "caseid", "threadid", "ticketnumber", "id", "number"),
    "subject": ("subject", "title", "summary", "topic"),
    "status": ("status", "state", "ticketstatus"),
    "type": ("channel", "source", "via", "viachannel", "medium"),
    "createdAt": (
        "createdat",
        "createdtime",
        "created",
        "createddate",
        "conversationcreatedat",
        "dateopened",
        "opened",
        "date",
    ),
    "closedAt": ("closedat", "closedtime", "closed", "resolvedat", "resolvedtime", "solvedat"),
    "customer.email": (
        "customeremail",
        "requesteremail",
        "contactemail",
        "useremail",
        "email",
        "requester",
        "from",
        "fromemail",
    ),
    "customer.name": (
        "customername",
        "requestername",
        "contactname",
        "fullname",
        "name",
        "username",
    ),
    "customer.firstName": ("firstname", "customerfirstname", "givenname"),
    "customer.lastName": ("lastname", "customerlastname", "surname", "familyname"),
    "assignee": ("assigneeemail", "agentemail", "assignee", "agent", "owner", "ownedby"),
    "tags": ("tags", "tag", "labels"),
    "thread.body": (
        "body",
        "htmlbody",
        "message",
        "text",
        "content",
        "description",
        "comment",
        "messagebody",
    ),
    "thread.createdAt": (
        "messagecreatedat",
        "sentat",
        "threadcreatedat",
        "commentcreatedat",
        "partcreatedat",
        "messagedate",
    ),
    "thread.author.email": ("authoremail", "senderemail", "fromemail", "author"),
    "thread.type": ("threadtype", "messagetype", "parttype", "authortype", "sendertype"),
    "threads": ("threads", "comments", "messages", "conversationparts", "parts"),
}
STATUS_GUESSES = {
    "active": ("new", "open", "opened", "active", "reopened", "unassigned", "2"),
    "pending": ("pending", "hold", "onhold", "waiting", "waitingoncustomer", "snoozed", "3"),
    "closed": ("solved", "closed", "resolved", "done", "archived", "4", "5"),
    "spam": ("spam", "junk"),
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.casefold())


def draft_mapping(file_name: str, records: list[dict[str, Any]], kind: str = "conversations"):
    """A commented TOML mapping guessed from sample records, for a person to finish."""
    columns: dict[str, Any] = {}
    for record in records:
        for key, value in record.items() if all("." not in k for k in record) else []:
            columns.setdefault(key, value)
        if any(isinstance(v, dict | list) for v in record.values()):
            from etl.readers import flatten

            for key, value in flatten(record).items():
                columns.setdefault(key, value)
    by_norm: dict[str, list[str]] = {}
    for key in columns:
        for name in {_norm(key), _norm(key.rsplit(".", 1)[-1])}:
            by_norm.setdefault(name, []).append(key)
    used: set[str] = set()

    def guess(target: str) -> str | None:
        for candidate in GUESSES.get(target, ()):
            for found in by_norm.get(candidate, []):
                if found not in used and (kind == "customers" or ".0." not in found):
                    used.add(found)
                    return found
        return None

    lines = [
        f"# Draft mapping for {file_name}, guessed from its headers by `etl mapping init`.",
        "# Check every line, fill in the TODOs, then try: etl load ... --mapping THIS --dry-run",
        "# Format: see the comments in mappings/generic.toml and samples/README.md.",
        "",
        "[source]",
        f"system = {json.dumps(Path(file_name).stem)}   # names this source in the load ledger",
        '# timezone = "Europe/Paris"   # TODO: the zone of dates written without an offset',
        '# date_formats = ["%d/%m/%Y %H:%M"]   # if dates are not ISO 8601',
        "",
    ]
    if kind == "customers":
        lines.append("[customer]")
        for key, target in (
            ("id", "id"),
            ("email", "customer.email"),
            ("firstName", "customer.firstName"),
            ("lastName", "customer.lastName"),
            ("name", "customer.name"),
        ):
            found = guess(target)
            lines.append(f"{key} = {json.dumps(found)}" if found else f'# {key} = ""   # TODO')
        for key, names in (
            ("phone", ("phone", "phonenumber", "workphone", "mobile")),
            ("company", ("company", "companyname", "organization")),
            ("jobTitle", ("jobtitle", "title")),
            ("city", ("city",)),
            ("country", ("country", "countrycode")),
        ):
            found = next(
                (k for n in names for k in by_norm.get(n, []) if k not in used and "." not in k),
                None,
            )
            if found:
                used.add(found)
                lines.append(f"{key} = {json.dumps(found)}")
    else:
        threads = guess("threads")
        lines.append("[conversation]")
        for key, target in (
            ("id", "id"),
            ("subject", "subject"),
            ("createdAt", "createdAt"),
            ("closedAt", "closedAt"),
            ("assignee", "assignee"),
        ):
            found = guess(target)
            lines.append(f"{key} = {json.dumps(found)}" if found else f'# {key} = ""   # TODO')
        status = guess("status")
        lines.append(
            f'status = {{ path = {json.dumps(status)}, map = "status" }}'
            if status
            else '# status = { path = "", map = "status" }   # TODO'
        )
        channel = guess("type")
        lines.append(
            f'type = {{ path = {json.dumps(channel)}, default = "email" }}'
            if channel
            else 'type = { value = "email" }   # email, phone or chat'
        )
        person = {k: guess(f"customer.{k}") for k in ("email", "name", "firstName", "lastName")}
        parts = ", ".join(f"{k} = {json.dumps(v)}" for k, v in person.items() if v)
        lines.append(
            f"customer = {{ {parts} }}" if parts else '# customer = { email = "" }  # TODO'
        )
        tags = guess("tags")
        if tags:
            lines.append(f'tags = {{ path = {json.dumps(tags)}, split = "," }}')
        if threads:
            lines.append(f"threads = {json.dumps(threads)}   # each element is one thread")
        else:
            lines.append(
                "# No list of threads: rows sharing an id form one conversation, one"
                " thread per row."
            )
        lines += ["", "[thread]"]
        prefix = f"{threads}.0." if threads else ""
        body = _guess_in(by_norm, GUESSES["thread.body"], prefix, used)
        when = _guess_in(
            by_norm,
            GUESSES["thread.createdAt"] + GUESSES["createdAt"],
            prefix,
            used if threads else set(),
        )
        author = _guess_in(by_norm, GUESSES["thread.author.email"], prefix, used)
        kind_col = _guess_in(by_norm, GUESSES["thread.type"], prefix, used)
        lines.append(f"body = {json.dumps(body)}" if body else '# body = ""   # TODO')
        lines.append(f"createdAt = {json.dumps(when)}" if when else '# createdAt = ""   # TODO')
        if author:
            lines.append(f"author = {{ email = {json.dumps(author)} }}")
        lines.append(
            f'type = {{ path = {json.dumps(kind_col)}, map = "thread_type" }}'
            if kind_col
            else '# type = ""   # default: from the author (customer or agent)'
        )
        if not threads:
            lines.append("# text_to_html = true   # if bodies are plain text")
        if status:
            lines += ["", "[values.status]   # source value = active | pending | closed | spam"]
            seen = []
            for record in records:
                value = text(get_path(record, status)).strip()
                if value and value not in seen:
                    seen.append(value)
            for value in seen[:30]:
                mapped = next(
                    (k for k, names in STATUS_GUESSES.items() if _norm(value) in names), None
                )
                if mapped:
                    lines.append(f"{json.dumps(value)} = {json.dumps(mapped)}")
                else:
                    lines.append(f'# {json.dumps(value)} = ""   # TODO')
        if kind_col:
            lines += ["", "[values.thread_type]   # = customer | message | note | skip"]
            lines.append('# "agent" = "message"   # TODO')
    inner = f"{threads}." if kind != "customers" and threads else "\0"
    rest = [
        k
        for k in columns
        if k not in used and not isinstance(columns[k], list) and not k.startswith(inner)
    ]
    if rest:
        lines += ["", "# Columns not used above:"]
        lines += [f"#   {k}" for k in rest[:80]]
    return "\n".join(lines) + "\n"


def _guess_in(by_norm: dict[str, list[str]], names: tuple[str, ...], prefix: str, used: set[str]):
    for name in names:
        for key in by_norm.get(name, []):
            inside = key.startswith(prefix) and "." not in key[len(prefix) :]
            if inside and key not in used:
                used.add(key)
                return key[len(prefix) :] if prefix else key
    return None
