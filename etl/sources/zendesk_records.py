"""Staged Zendesk records -> one self-contained record per ticket, for the mapping (pure).

A ticket record carries what the mapping (`mappings/zendesk-api.toml`, or the user's own)
needs without lookups: the requester, assignee and each comment's author as user objects,
the metric set's `solved_at`, `spam` (Zendesk's "Mark as spam" deletes the ticket and suspends
its requester), custom field values by field id under `fields` and by title under `custom`
(a dropdown's by its option's name), and each comment's attachments as files in the staging's
folder.

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
    ticket_fields: dict[str, dict],
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
    record["custom"] = _by_title(record["fields"], ticket_fields)
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


def _by_title(values: dict[str, object], ticket_fields: dict[str, dict]) -> dict[str, str]:
    """Custom field values by the field's title, a dropdown's by its option's name."""
    out = {}
    for ident, value in values.items():
        field = ticket_fields.get(ident)
        if field is None or value in (None, "", [], False):
            continue
        options = {o.get("value"): o.get("name") for o in field.get("custom_field_options") or []}
        if isinstance(value, list):  # a multi-select
            value = ", ".join(str(options.get(v, v)) for v in value)
        out[str(field.get("title") or ident)] = str(options.get(value, value))
    return out


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


# Identity types -> the target's social profile types (emails and phones have their own lists).
SOCIAL = {"twitter": "twitter", "facebook": "facebook", "google": "googleprofile"}


def customer_record(
    user: dict,
    identities: list[dict],
    organizations: dict[str, dict],
    user_fields: dict[str, dict],
) -> dict:
    """An end user as one record for the mapping's [customer] section: the user, with
    `emails`, `phones` and `socialProfiles` from its identities (primary ones first), its
    organization's name as `company`, its notes and details as `notes`, and its user fields by
    title under `custom`."""
    ordered = sorted(identities, key=lambda i: (not i.get("primary"), i.get("id") or 0))

    def values(kind: str, first: str | None) -> list[str]:
        found = [first] if first else []
        for identity in ordered:
            value = str(identity.get("value") or "").strip()
            if identity.get("type") == kind and value and value not in found:
                found.append(value)
        return found

    phones = values("phone_number", user.get("phone"))
    organization = organizations.get(str(user.get("organization_id"))) or {}
    titles = {str(f.get("key")): f.get("title") for f in user_fields.values()}
    return dict(
        user,
        emails=[{"value": e, "type": "work"} for e in values("email", user.get("email"))],
        phones=[{"value": p, "type": "work"} for p in phones],
        socialProfiles=[
            {"value": str(i["value"]), "type": SOCIAL[i["type"]]}
            for i in ordered
            if i.get("type") in SOCIAL and i.get("value")
        ],
        company=organization.get("name"),
        notes="\n\n".join(p for p in (user.get("notes"), user.get("details")) if p) or None,
        custom={
            str(titles.get(key) or key): value
            for key, value in (user.get("user_fields") or {}).items()
            if value not in (None, "", [], False)
        },
    )
