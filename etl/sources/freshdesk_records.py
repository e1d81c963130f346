"""Staged Freshdesk tickets -> one self-contained record each, for the mapping (pure).

A Freshdesk ticket's first message is its `description` (from the requester, with the
ticket's attachments); its conversations follow. The record carries:
  requester, responder   the contact and the agent (name, email, phone)
  closed_at              stats.closed_at, else stats.resolved_at (the ticket keeps no date)
  spam, deleted          from the filters that list them
  fields                 the custom fields (`cf_...`) as they are
  threads                oldest first: {kind: customer|message|note, body, created_at,
                         author, attachments as staged files}
Inline images on the account's host (`/inline/attachment?token=...`) are attached to their
thread and named in the body in place of the link.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Callable
from urllib.parse import urlsplit

from etl.sources.inline import file_name, inline_sources, name_inline_images, on_hosts


def attachment_urls(part: dict, account: str) -> list[tuple[str, str, str | None]]:
    """(url, file name, content type) of every file a ticket or conversation needs."""
    out = []
    seen = set()
    for item in part.get("attachments") or []:
        url = item.get("attachment_url")
        if url and url not in seen:
            seen.add(url)
            out.append((url, item.get("name") or file_name(url), item.get("content_type")))
    body = part.get("body") if "body" in part else part.get("description")
    for src in inline_sources(body or ""):
        if src not in seen and on_hosts(src, {urlsplit(account).netloc.lower()}):
            seen.add(src)
            out.append((src, file_name(src), None))
    return out


def ticket_record(
    ticket: dict,
    notes: list[dict],
    agents: dict[str, dict],
    contacts: dict[str, dict],
    account: str,
    local_file: Callable[[str], tuple[str, str] | None],
) -> tuple[dict, list[str]]:
    """The ticket as one record, and the names of files the source no longer had."""
    hosts = {urlsplit(account).netloc.lower()}
    missing: list[str] = []

    def person(ident, is_agent: bool) -> dict:
        if ident is None:
            return {}
        if is_agent:
            return dict((agents.get(str(ident)) or {}).get("contact") or {}, id=ident)
        return contacts.get(str(ident)) or {"id": ident}

    def part(kind: str, body: str, at: str, author: dict, source: dict) -> dict:
        files, names = [], {}
        for url, name, mime in attachment_urls(source, account):
            found = local_file(url)
            if found is None:
                missing.append(name)
                continue
            path, stored = found
            if "." not in name:  # an inline link names no file (its query is a token)
                tag = hashlib.sha1(url.encode("utf-8")).hexdigest()[:8]
                name = f"image-{tag}{mimetypes.guess_extension(mime or stored) or ''}"
            files.append({"file_name": name, "content_type": mime or stored, "file": path})
            names[url] = name
        body = name_inline_images(body, names, {}, hosts) if body else body
        return {"kind": kind, "body": body, "created_at": at, "author": author,
                "attachments": files}  # fmt: skip

    requester = ticket.get("requester") or person(ticket.get("requester_id"), False)
    record = dict(ticket)
    record["requester"] = requester
    record["responder"] = person(ticket.get("responder_id"), True) or None
    stats = ticket.get("stats") or {}
    record["closed_at"] = stats.get("closed_at") or stats.get("resolved_at")
    record["fields"] = dict(ticket.get("custom_fields") or {})
    threads = [
        part(
            "customer", ticket.get("description") or "", ticket.get("created_at"), requester, ticket
        )  # fmt: skip
    ]
    for note in sorted(notes, key=lambda n: (n.get("created_at") or "", n.get("id") or 0)):
        incoming = bool(note.get("incoming"))
        kind = "customer" if incoming else ("note" if note.get("private") else "message")
        author = person(note.get("user_id"), not incoming)
        threads.append(part(kind, note.get("body") or "", note.get("created_at"), author, note))
    record["threads"] = threads
    return record, missing


def customer_record(contact: dict, companies: dict[str, dict], fields: list[dict]) -> dict:
    """A contact as one record for the mapping's [customer] section: the contact with its
    mobile under `phones`, its Twitter and Facebook ids under `socialProfiles`, its company's
    name as `company` and its custom fields by label under `custom`."""
    labels = {str(f.get("name")): f.get("label") for f in fields}
    profiles = [
        {"value": str(contact[key]), "type": kind}
        for key, kind in (("twitter_id", "twitter"), ("facebook_id", "facebook"))
        if contact.get(key)
    ]
    company = companies.get(str(contact.get("company_id"))) or {}
    return dict(
        contact,
        phones=[{"value": contact["mobile"], "type": "mobile"}] if contact.get("mobile") else [],
        socialProfiles=profiles,
        company=company.get("name"),
        custom={
            str(labels.get(name) or name): value
            for name, value in (contact.get("custom_fields") or {}).items()
            if value not in (None, "", [], False)
        },
    )
