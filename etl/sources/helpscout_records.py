"""Staged Help Scout conversations -> one self-contained record each, for the mapping (pure).

The record is the conversation as the Mailbox API 2.0 returns it, with:
  threads      oldest first, each with `author` (its createdBy; a user's email from the users
               list when the thread leaves it out) and `attachments` as staged files;
  spam         true for a conversation in the spam status.
Inline images whose address is one of the thread's attachments (its `web` or `data` link, both
dead once the account is gone) are named in the body in place of the link.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from etl.sources.inline import name_inline_images


def attachment_links(thread: dict) -> list[tuple[str, str, str | None, str | None]]:
    """(data link, file name, mime type, web link) of each of a thread's attachments."""
    out = []
    for item in (thread.get("_embedded") or {}).get("attachments") or []:
        links = item.get("_links") or {}
        data = (links.get("data") or {}).get("href")
        web = (links.get("web") or {}).get("href")
        if data:
            out.append((data, item.get("filename") or "attachment", item.get("mimeType"), web))
    return out


def conversation_record(
    conv: dict,
    users: dict[str, dict],
    local_file: Callable[[str], tuple[str, str] | None],
) -> tuple[dict, list[str]]:
    """The conversation as one record, and the names of attachments the source no longer had."""
    record = {k: v for k, v in conv.items() if k != "_embedded"}
    record["spam"] = conv.get("status") == "spam"
    threads = (conv.get("_embedded") or {}).get("threads") or []
    missing: list[str] = []
    out = []
    for thread in sorted(threads, key=lambda t: (t.get("createdAt") or "", t.get("id") or 0)):
        files, names, aliases, hosts = [], {}, {}, set()
        for data, name, mime, web in attachment_links(thread):
            hosts.update(urlsplit(link).netloc.lower() for link in (data, web) if link)
            found = local_file(data)
            if found is None:
                missing.append(name)
                continue
            path, stored = found
            files.append({"file_name": name, "content_type": mime or stored, "file": path})
            names[data] = name
            if web:
                aliases[web] = data
        body = thread.get("body") or ""
        if body and (names or hosts):
            body = name_inline_images(body, names, aliases, hosts)
        out.append(
            dict(
                {k: v for k, v in thread.items() if k != "_embedded"},
                body=body,
                author=_author(thread.get("createdBy") or {}, users),
                attachments=files,
            )
        )
    record["threads"] = out
    return record, missing


def _author(created_by: dict, users: dict[str, dict]) -> dict:
    """The thread's author; a user known by id alone gets the email from the users list."""
    if created_by.get("type") == "user" and not created_by.get("email"):
        user = users.get(str(created_by.get("id"))) or {}
        return dict(
            created_by,
            email=user.get("email"),
            first=user.get("firstName"),
            last=user.get("lastName"),
        )
    return created_by


def customer_record(customer: dict) -> dict:
    """A customer as one record for the mapping's [customer] section: as List Customers shows
    it, with its address lines joined as `street` and its customer properties by name under
    `custom`."""
    embedded = customer.get("_embedded") or {}
    lines = [str(x).strip() for x in (embedded.get("address") or {}).get("lines") or []]
    custom = {
        str(p.get("name") or p.get("slug")): p["value"]
        for p in embedded.get("properties") or []
        if p.get("value") not in (None, "", [])
    }
    return dict(customer, street=", ".join(x for x in lines if x) or None, custom=custom)
