"""Pure functions: one API record in, the mirror's rows out (table name -> list of row dicts).

Column names are the snake_case of the API's field names; nested objects become `<name>_id`
(and an email where a person is named); lists become JSON text; the record itself is kept in
`raw_json`: the decoded record encoded again by `json.dumps` (the same content and key order
as the server sent, not necessarily the same bytes). A conversation's `raw_json` leaves out
its threads, which are rows of their own, each with its own `raw_json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from etl import timeutil
from etl.htmltext import html_to_text

Rows = dict[str, list[dict[str, Any]]]

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
# What `json.dumps` builds on every call with these options, built once (same text, less CPU).
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_JSON = json.JSONEncoder(ensure_ascii=False)


def snake(name: str) -> str:
    """`customerWaitingSince` -> `customer_waiting_since`."""
    return _CAMEL.sub(r"_\1", name).lower()


def raw_json(record: dict) -> str:
    """The record as compact JSON, as APIs send it."""
    return _COMPACT_JSON.encode(record)


def as_json(value: Any) -> str | None:
    if value is None:
        return None
    if value == []:
        return "[]"
    return _JSON.encode(value)


def is_time_column(column: str) -> bool:
    """The columns `timestamp` fills: every `*_at`, and when a customer started waiting."""
    return column.endswith("_at") or column == "customer_waiting_since"


def timestamps_kept_as_text(rows: Rows) -> int:
    """How many time values of these rows are not canonical timestamps: `timeutil.canonical`
    kept them as the server sent them, for the sync to report."""
    kept = 0
    for table_rows in rows.values():
        columns = [c for c in table_rows[0] if is_time_column(c)] if table_rows else []
        for row in table_rows:
            kept += sum(1 for c in columns if row[c] and not timeutil.is_canonical(row[c]))
    return kept


def _id(obj: Any) -> Any:
    return obj.get("id") if isinstance(obj, dict) else obj


def _email(obj: Any) -> Any:
    return obj.get("email") if isinstance(obj, dict) else None


def _embedded(record: dict, key: str) -> Any:
    return (record.get("_embedded") or {}).get(key)


def conversation_rows(record: dict) -> Rows:
    """A conversation (with embedded threads, tags, timelogs) as rows of six tables."""
    cid = record["id"]
    waiting = record.get("customerWaitingSince") or {}
    source = record.get("source") or {}
    threads = _embedded(record, "threads") or []
    kept = dict(record)  # without its threads, which are rows of their own
    if "_embedded" in kept:
        kept["_embedded"] = {k: v for k, v in kept["_embedded"].items() if k != "threads"}
    count = record.get("threadsCount", record.get("threads"))
    rows: Rows = {
        "conversations": [
            {
                "id": cid,
                "number": record.get("number"),
                "threads_count": count if isinstance(count, int) else len(threads),
                "type": record.get("type"),
                "folder_id": record.get("folderId"),
                "status": record.get("status"),
                "state": record.get("state"),
                "subject": record.get("subject"),
                "preview": record.get("preview"),
                "mailbox_id": record.get("mailboxId"),
                "assignee_id": _id(record.get("assignee")),
                "assignee_email": _email(record.get("assignee")),
                "customer_id": _id(record.get("customer")),
                "customer_email": _email(record.get("customer")),
                "created_by_id": _id(record.get("createdBy")),
                "created_by_type": (record.get("createdBy") or {}).get("type"),
                "created_at": timeutil.canonical(record.get("createdAt")),
                "updated_at": timeutil.canonical(record.get("updatedAt")),
                "closed_by": _id(record.get("closedBy")),
                "closed_at": timeutil.canonical(record.get("closedAt")),
                "user_updated_at": timeutil.canonical(record.get("userUpdatedAt")),
                "customer_waiting_since": timeutil.canonical(waiting.get("time")),
                "latest_reply_from": waiting.get("latestReplyFrom"),
                "source_type": source.get("type"),
                "source_via": source.get("via"),
                "cc": as_json(record.get("cc")),
                "bcc": as_json(record.get("bcc")),
                "deleted_at": None,
                "raw_json": raw_json(kept),
            }
        ],
        "threads": [],
        "attachments": [],
        "conversation_tags": [],
        "conversation_custom_fields": [],
        "timelogs": [],
    }
    # Threads come newest first; `position` counts from the oldest so ORDER BY reads naturally.
    for position, thread in enumerate(reversed(threads)):
        rows["threads"].append(thread_row(thread, cid, position))
        for attachment in _embedded(thread, "attachments") or []:
            rows["attachments"].append(
                {
                    "id": attachment.get("id"),
                    "thread_id": thread["id"],
                    "conversation_id": cid,
                    "file_name": attachment.get("fileName"),
                    "file_url": attachment.get("fileUrl"),
                    "mime_type": attachment.get("mimeType"),
                    "size": attachment.get("size"),
                }
            )
    for tag in _embedded(record, "tags") or []:
        rows["conversation_tags"].append(
            {"conversation_id": cid, "tag_id": tag.get("id"), "name": tag.get("name")}
        )
    rows["conversation_custom_fields"] = _field_rows(
        "conversation_id", cid, record.get("customFields")
    )
    for log in _embedded(record, "timelogs") or []:
        rows["timelogs"].append(timelog_row(log, cid))
    return rows


def _field_rows(parent_key: str, parent_id: int, fields: list | None) -> list[dict[str, Any]]:
    """Custom or customer field values: id, name, value and the dropdown option's text."""
    return [
        {
            parent_key: parent_id,
            "field_id": field.get("id"),
            "name": field.get("name"),
            "value": _text(field.get("value")),
            "text": field.get("text"),
        }
        for field in fields or []
    ]


def _text(value: Any) -> Any:
    return as_json(value) if isinstance(value, list | dict) else value


def thread_row(thread: dict, conversation_id: int, position: int) -> dict[str, Any]:
    """A thread's row."""
    action = thread.get("action") or {}
    source = thread.get("source") or {}
    created_by = thread.get("createdBy") or {}
    return {
        "id": thread["id"],
        "conversation_id": conversation_id,
        "position": position,
        "type": thread.get("type"),
        "status": thread.get("status"),
        "state": thread.get("state"),
        "action_type": action.get("type"),
        "action_text": action.get("text"),
        "body": thread.get("body"),
        "body_text": html_to_text(thread.get("body")),
        "source_type": source.get("type"),
        "source_via": source.get("via"),
        "customer_id": _id(thread.get("customer")),
        "customer_email": _email(thread.get("customer")),
        "created_by_id": _id(created_by),
        "created_by_type": created_by.get("type") if isinstance(created_by, dict) else None,
        "created_by_email": _email(created_by),
        "assigned_to_id": _id(thread.get("assignedTo")),
        "to": as_json(thread.get("to")),
        "cc": as_json(thread.get("cc")),
        "bcc": as_json(thread.get("bcc")),
        "created_at": timeutil.canonical(thread.get("createdAt")),
        "opened_at": timeutil.canonical(thread.get("openedAt")),
        "raw_json": raw_json(thread),
    }


def timelog_row(log: dict, conversation_id: int) -> dict[str, Any]:
    return {
        "id": log.get("id"),
        "conversation_id": log.get("conversationId") or conversation_id,
        "conversation_status": log.get("conversationStatus"),
        "user_id": log.get("userId"),
        "time_spent": log.get("timeSpent"),
        "paused": log.get("paused"),
        "finished": log.get("finished"),
        "created_at": timeutil.canonical(log.get("createdAt")),
        "updated_at": timeutil.canonical(log.get("updatedAt")),
        "raw_json": raw_json(log),
    }


def customer_rows(record: dict) -> Rows:
    """A customer with its emails, phones, social profiles, websites, address and fields."""
    cid = record["id"]
    emails = _embedded(record, "emails") or []
    phones = _embedded(record, "phones") or []
    address = _embedded(record, "address") or {}
    rows: Rows = {
        "customers": [
            {
                "id": cid,
                "first_name": record.get("firstName"),
                "last_name": record.get("lastName"),
                "email": emails[0].get("value") if emails else None,
                "phone": phones[0].get("value") if phones else None,
                "company": record.get("company"),
                "job_title": record.get("jobTitle"),
                "photo_type": record.get("photoType"),
                "photo_url": record.get("photoUrl"),
                "notes": record.get("notes"),
                "address": address.get("address"),
                "city": address.get("city"),
                "state": address.get("state"),
                "zip": address.get("zip"),
                "country": address.get("country"),
                "created_at": timeutil.canonical(record.get("createdAt")),
                "updated_at": timeutil.canonical(record.get("updatedAt")),
                "deleted_at": None,
                "raw_json": raw_json(record),
            }
        ],
        "customer_emails": _entries(cid, emails),
        "customer_phones": _entries(cid, phones),
        "customer_social_profiles": _entries(cid, _embedded(record, "social_profiles") or []),
        "customer_websites": _entries(cid, _embedded(record, "websites") or []),
        "customer_fields": _field_rows("customer_id", cid, record.get("customerFields")),
    }
    return rows


def _entries(customer_id: int, entries: Iterable[dict]) -> list[dict[str, Any]]:
    return [
        {
            "customer_id": customer_id,
            "position": position,
            "value": entry.get("value"),
            "type": entry.get("type"),
        }
        for position, entry in enumerate(entries)
    ]


def flat_row(record: dict, **extra: Any) -> dict[str, Any]:
    """Users, mailboxes, folders, custom fields, tags: scalar fields snake_cased, JSON kept."""
    row: dict[str, Any] = {"id": record["id"], **extra}
    for key, value in record.items():
        if key in ("id", "_embedded", "_links"):
            continue
        column = snake(key)
        if key.endswith("At"):
            row[column] = timeutil.canonical(value)
        elif isinstance(value, dict | list):
            row[column] = as_json(value)
        else:
            row[column] = value
    row["deleted_at"] = None
    row["raw_json"] = raw_json(record)
    return row
