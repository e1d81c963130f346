"""Staged Zendesk records -> one self-contained record per ticket, for the mapping (pure).

A ticket record carries what the mapping (`mappings/zendesk-api.toml`, or the user's own)
needs without lookups: the requester, assignee and each comment's author as user objects,
the metric set's `solved_at`, `spam` (Zendesk's "Mark as spam" deletes the ticket and suspends
its requester), custom field values by field id under `fields`, and each comment's
attachments as files in the staging's folder.

Inline images: an `<img>` whose address is on the Zendesk account (or is one of the comment's
attachments) dies with the account. Its file is attached to the comment (it was downloaded
with the attachments) and the tag becomes `[image: NAME]`, so the body names the attached
file instead of the dead link. Images hosted elsewhere are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from etl.sources.inline import file_name, inline_sources, name_inline_images, on_hosts


def attachment_urls(comment: dict, account: str) -> list[tuple[str, str, str | None]]:
    """(url, file name, content type) of every file a comment needs: its attachments, then
    the inline images on the account that are not among them."""
    out: list[tuple[str, str, str | None]] = []
    seen: set[str] = set()
    for item in comment.get("attachments") or []:
        url = item.get("content_url") or item.get("mapped_content_url")
        if url and url not in seen:
            seen.add(url)
            out.append((url, item.get("file_name") or file_name(url), item.get("content_type")))
    known = _known_urls(comment)
    for src in inline_sources(comment.get("html_body") or ""):
        if src in seen or known.get(src) in seen:
            continue
        if on_hosts(src, _hosts(account)):
            seen.add(src)
            out.append((src, file_name(src), None))
    return out


def ticket_record(
    ticket: dict,
    comments: list[dict],
    users: dict[str, dict],
    metric: dict | None,
    account: str,
    local_file: Callable[[str], tuple[str, str] | None],
) -> tuple[dict, list[str]]:
    """The ticket as one record, and the names of attachments the source no longer had.

    `local_file(url)` gives (path inside the staging's folder, content type) of a downloaded
    file, or None when the download found nothing.
    """

    def user(ident) -> dict | None:
        return users.get(str(ident)) if ident is not None else None

    requester = user(ticket.get("requester_id")) or {}
    missing: list[str] = []
    record = dict(ticket)
    record["requester"] = requester
    record["assignee"] = user(ticket.get("assignee_id"))
    record["metric_set"] = metric
    record["solved_at"] = (metric or {}).get("solved_at")
    record["spam"] = ticket.get("status") == "deleted" and bool(requester.get("suspended"))
    record["fields"] = {
        str(f.get("id")): f.get("value") for f in ticket.get("custom_fields") or [] if f
    }
    out_comments = []
    for comment in sorted(comments, key=lambda c: (c.get("created_at") or "", c.get("id") or 0)):
        files = []
        names: dict[str, str] = {}
        for url, name, kind in attachment_urls(comment, account):
            found = local_file(url)
            if found is None:
                missing.append(name)
                continue
            path, stored_kind = found
            files.append({"file_name": name, "content_type": kind or stored_kind, "file": path})
            names[url] = name
        body = comment.get("html_body") or ""
        if body:
            body = name_inline_images(body, names, _known_urls(comment), _hosts(account))
        out_comments.append(
            dict(
                comment,
                html_body=body,
                author=user(comment.get("author_id")) or {"id": comment.get("author_id")},
                attachments=files,
            )
        )
    record["comments"] = out_comments
    return record, missing


def _known_urls(comment: dict) -> dict[str, str]:
    """Every address of each attachment (content_url, mapped_content_url) -> its content_url."""
    out = {}
    for item in comment.get("attachments") or []:
        main = item.get("content_url") or item.get("mapped_content_url")
        for key in ("content_url", "mapped_content_url"):
            if item.get(key):
                out[item[key]] = main
    return out


def _hosts(account: str) -> set[str]:
    """The hosts whose files die with the account: its own."""
    return {urlsplit(account).netloc.lower()}
