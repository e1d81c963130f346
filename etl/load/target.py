"""The target as a load sees it: its agents, mailboxes and custom fields, and the look-ups
that find what a create may have made before anything is sent again."""

from __future__ import annotations

from dataclasses import dataclass

from etl import mapping as m
from etl.client import Client
from etl.paging import iter_pages
from etl.resources import ALL_STATUSES
from etl.timeutil import parse as parse_timestamp


@dataclass
class Target:
    """What payloads are resolved against: agents, mailboxes, custom field definitions."""

    users: dict[str, int]  # lower-case email (and alternate emails) -> user id
    mailboxes: list[dict]
    fields: dict[int, dict[str, dict]]  # mailbox id -> lower-case field name -> definition
    admin: str | None = None  # the first administrator's email: the default fallback user

    def mailbox_for(self, value: str | None) -> int | None:
        if not value:
            return None
        wanted = value.strip().casefold()
        for box in self.mailboxes:
            if wanted in (
                str(box["id"]),
                str(box.get("name", "")).casefold(),
                str(box.get("email", "")).casefold(),
            ):
                return int(box["id"])
        return None


def fetch_target(client: Client, with_fields: bool = True) -> Target:
    users: dict[str, int] = {}
    admins: list[tuple[int, str]] = []
    for page in iter_pages(client, "api/users", "users"):
        for user in page.items:
            if user.get("role") == "admin" and user.get("email"):
                admins.append((int(user["id"]), str(user["email"])))
            for email in [user.get("email") or "", *(user.get("alternateEmails") or "").split(",")]:
                if email.strip():
                    users.setdefault(email.strip().casefold(), int(user["id"]))
    mailboxes = [b for page in iter_pages(client, "api/mailboxes", "mailboxes") for b in page.items]
    fields: dict[int, dict[str, dict]] = {}
    if with_fields:
        for box in mailboxes:
            path = f"api/mailboxes/{box['id']}/custom_fields"
            definitions = [
                d for page in iter_pages(client, path, "custom_fields") for d in page.items
            ]
            fields[int(box["id"])] = {str(d["name"]).casefold(): d for d in definitions}
    return Target(users, mailboxes, fields, min(admins)[1] if admins else None)


def conversation_candidates(client: Client, expected: dict, embed: str = "") -> list[dict]:
    """Target conversations with the subject, customer and createdAt of `expected`, oldest
    first; usually one request (the list filters narrow it to the second). `embed=threads`
    brings their threads in the same request.

    The customer is matched by email, else by phone (not by the id a customer without an
    email was resolved to: two customers may share a phone or a name, and which one a load
    took can differ between runs). With neither (a customer known by name only) the match is
    subject + createdAt + mailbox alone: weaker, as two conversations with the same subject
    created in the same second in the same mailbox cannot be told apart (claimed ids keep each
    from being taken twice).
    """
    created = expected["createdAt"]
    params = {
        "subject": expected["subject"],
        "createdSince": m.one_second_before(created),
        "status": ALL_STATUSES,
        "sortField": "createdAt",
        "sortOrder": "asc",
    }
    if expected.get("customerEmail"):
        params["customerEmail"] = expected["customerEmail"]
    elif expected.get("customerPhone"):
        params["customerPhone"] = expected["customerPhone"]
    if expected.get("mailboxId"):
        params["mailboxId"] = expected["mailboxId"]
    if embed:
        params["embed"] = embed
    wanted = parse_timestamp(created)
    found: list[dict] = []
    for page in iter_pages(client, "api/conversations", "conversations", params, page_size=50):
        for conv in page.items:
            when = conv.get("createdAt")
            if when and parse_timestamp(when) > wanted:
                return found  # sorted by createdAt: nothing later can match
            if conv.get("subject") == expected["subject"] and when:
                if parse_timestamp(when) == wanted:
                    found.append(conv)
    return found


def mailboxes_with_conversations(client: Client, mailbox_ids: set[int]) -> set[int]:
    """The mailboxes that hold any conversation (one request each): in the others nothing
    can be on the target already, so a load skips looking for each conversation there."""
    held = set()
    for box in sorted(mailbox_ids):
        params = {"mailboxId": box, "status": ALL_STATUSES, "pageSize": 1}
        document = client.get("api/conversations", params) or {}
        if (document.get("page") or {}).get("totalElements") or (
            (document.get("_embedded") or {}).get("conversations")
        ):
            held.add(box)
    return held


def find_customer(client: Client, email: str) -> int | None:
    document = client.get("api/customers", {"email": email, "pageSize": 1}) or {}
    found = (document.get("_embedded") or {}).get("customers") or []
    return int(found[0]["id"]) if found else None
