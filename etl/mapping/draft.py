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
    "status": ("status", "state", "ticketstatus", "conversationstate", "conversationstatus"),
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
    "closedAt": (
        "closedat",
        "closedtime",
        "closed",
        "resolvedat",
        "resolvedtime",
        "solvedat",
        "lastclosedat",
    ),
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
    "thread.author.email": ("authoremail", "senderemail", "fromemail", "author", "sender"),
    "thread.author.type": (
        "authortype",
        "sendertype",
        "authorrole",
        "fromtype",
        "usertype",
        "role",
        "createdbytype",
    ),
    "thread.id": ("partid", "messageid", "commentid", "threadid", "postid"),
    "thread.attachments": ("attachmenturls", "attachments", "attachment", "files"),
    "thread.author.name": ("authorname", "sendername", "fromname", "createdbyname"),
    "thread.type": ("threadtype", "messagetype", "parttype", "authortype", "sendertype"),
    "threads": ("threads", "comments", "messages", "conversationparts", "parts"),
}
STATUS_GUESSES = {
    "active": ("new", "open", "opened", "active", "reopened", "unassigned", "2"),
    "pending": ("pending", "hold", "onhold", "waiting", "waitingoncustomer", "snoozed", "3"),
    "closed": ("solved", "closed", "resolved", "done", "archived", "4", "5"),
    "spam": ("spam", "junk"),
}


THREAD_TYPE_GUESSES = {
    "note": ("note", "notes", "internalnote", "privatenote", "internal", "private"),
    "message": ("reply", "agentreply", "response", "outbound"),
    "customer": ("customerreply", "inbound", "incoming", "question"),
    "skip": (
        "assignment",
        "assign",
        "open",
        "close",
        "closed",
        "snoozed",
        "event",
        "lineitem",
        "system",
        "statuschange",
    ),
}
AUTHOR_TYPE_GUESSES = {
    # "user" is left to the person: an agent in Smarticks, the customer in Intercom.
    "user": ("admin", "agent", "operator", "staff", "teammate", "bot", "support"),
    "customer": ("customer", "lead", "contact", "enduser", "requester", "visitor", "client"),
}


def _value_lines(
    records: list[dict], column: str, guesses: dict[str, tuple[str, ...]], default: str = ""
) -> list[str]:
    """`"source value" = "target value"` for the values seen, TODO where no guess fits."""
    seen: list[str] = []
    for record in records:
        value = text(get_path(record, column)).strip()
        if value and value not in seen:
            seen.append(value)
    lines = []
    for value in seen[:30]:
        mapped = next((k for k, names in guesses.items() if _norm(value) in names), default)
        if mapped:
            lines.append(f"{json.dumps(value)} = {json.dumps(mapped)}")
        else:
            lines.append(f'# {json.dumps(value)} = ""   # TODO')
    return lines


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
        # In a row-per-message file the conversation's date column may be the message's too.
        when = _guess_in(by_norm, GUESSES["thread.createdAt"], prefix, used) or _guess_in(
            by_norm, GUESSES["createdAt"], prefix, used if threads else set()
        )
        if when and not threads:
            used.add(when)
        author = {
            key: _guess_in(by_norm, GUESSES[f"thread.author.{key}"], prefix, used)
            for key in ("email", "type", "name")
        }
        kind_col = _guess_in(by_norm, GUESSES["thread.type"], prefix, used)
        thread_id = _guess_in(by_norm, GUESSES["thread.id"], prefix, used)
        files = _guess_in(by_norm, GUESSES["thread.attachments"], prefix, used)
        if thread_id:
            lines.append(f"id = {json.dumps(thread_id)}")
        lines.append(f"body = {json.dumps(body)}" if body else '# body = ""   # TODO')
        lines.append(f"createdAt = {json.dumps(when)}" if when else '# createdAt = ""   # TODO')
        parts = []
        for key, column in author.items():
            if column and key == "type":
                parts.append(f'type = {{ path = {json.dumps(column)}, map = "author_type" }}')
            elif column:
                parts.append(f"{key} = {json.dumps(column)}")
        if parts:
            lines.append(f"author = {{ {', '.join(parts)} }}")
        lines.append(
            f'type = {{ path = {json.dumps(kind_col)}, map = "thread_type" }}'
            if kind_col
            else '# type = ""   # default: from the author (customer or agent)'
        )
        if files:
            lines.append(
                f'attachments = {{ path = {json.dumps(files)}, split = ";" }}'
                "   # URLs or files beside the input; check the separator"
            )
        if not threads:
            lines.append("# text_to_html = true   # if bodies are plain text")
        inside = [] if threads else list(records)
        if threads:
            for record in records:
                items = get_path(record, threads)
                inside += (
                    [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
                )
        if status:
            lines += ["", "[values.status]   # source value = active | pending | closed | spam"]
            lines += _value_lines(records, status, STATUS_GUESSES)
        if kind_col:
            column = kind_col
            lines += ["", "[values.thread_type]   # = customer | message | note | skip | auto"]
            lines += _value_lines(inside, column, THREAD_TYPE_GUESSES, default="auto")
        if author["type"]:
            lines += ["", "[values.author_type]   # = customer | user (an agent)"]
            lines += _value_lines(inside, author["type"], AUTHOR_TYPE_GUESSES)
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
