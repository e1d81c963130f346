"""The Zendesk emulation's data: seeded users, tickets, comments, attachments and metrics.

Every record is rendered in the shape Zendesk's API reference documents for it; each renderer
names the page it follows. Changes made while the sandbox runs (a new comment, a status change,
a ticket marked as spam) move the ticket to the end of the incremental export, as Zendesk does.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from etl.sandbox import corpus
from etl.sandbox.timefmt import fmt_time as iso  # the vendors' APIs write UTC times so too

BASE = int(datetime(2025, 3, 3, 9, 0, tzinfo=UTC).timestamp())
HOUR = 3600
ACCOUNT = "{account}"  # stands for the account's URL in stored bodies, until it is served
DAY = 24 * HOUR
# The incremental exports leave out what changed within the minute before the request
# ("Using the Incremental Export API": "any items that were created or changed within the
# minute prior to your request are excluded").
HOLD_BACK = 60
# Agents: the first two are users of the seeded Smarticks sandbox, the third is not (a former
# agent), so a migration into it needs --fallback-user for that one's replies.
AGENTS = (
    ("Ingrid Halvorsen", "agent2@support.example.org", "admin"),
    ("Tomás Ortega", "agent3@support.example.org", "agent"),
    ("Former Agent", "former.agent@acme-support.example.com", "agent"),
)
CHANNELS = ("email", "email", "email", "web", "api", "voice", "chat", "native_messaging")
STATUSES = ("new", "open", "open", "pending", "hold", "solved", "solved", "closed", "closed")
PRIORITIES = ("low", "normal", "normal", "high", "urgent", None)
ORDER_FIELD = 360001  # a custom ticket field: text "Vendor" (a field the target has too)
PLAN_FIELD = 360002  # a custom ticket field: dropdown "Plan" (values are tags; not on the target)
TICKET_FIELDS = (
    (ORDER_FIELD, "text", "Vendor", ()),
    (PLAN_FIELD, "tagger", "Plan", (("Basic", "plan_basic"), ("Pro", "plan_pro"))),
)
# Custom user fields (key, id, title): "Plan" is a customer field on the Smarticks sandbox too.
USER_FIELDS = (("plan", 360101, "Plan"), ("account_manager", 360102, "Account manager"))
ORGANIZATIONS = ("Nordlys Hotels", "Vega Logistics", "Kestrel Analytics")
# A 1x1 PNG: what an inline screenshot looks like to a migration.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


@dataclass
class User:
    id: int
    name: str
    email: str | None
    role: str  # end-user | agent | admin
    created_at: int
    phone: str | None = None
    suspended: bool = False
    organization_id: int | None = None
    notes: str = ""
    details: str = ""  # "Any details you want to store about the user, such as an address"
    user_fields: dict[str, str | None] = field(default_factory=dict)  # by the field's key
    identities: list[tuple[str, str]] = field(default_factory=list)  # more: (type, value)
    updated_at: int = 0
    seq: int = 0  # position in the incremental user export: a change moves it to the end


@dataclass
class Attachment:
    id: int
    file_name: str
    content_type: str
    data: bytes
    token: str
    inline: bool = False


@dataclass
class Comment:
    id: int
    author_id: int
    html_body: str
    plain_body: str
    public: bool
    created_at: int
    channel: str
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class Ticket:
    id: int
    subject: str
    status: str  # new open pending hold solved closed deleted
    channel: str
    requester_id: int
    assignee_id: int | None
    created_at: int
    updated_at: int
    priority: str | None
    tags: list[str]
    custom_fields: dict[int, str | None]
    comments: list[Comment] = field(default_factory=list)
    solved_at: int | None = None
    seq: int = 0  # position in the incremental export: a change moves the ticket to the end


class ZendeskStore:
    """The account's data, shared by the handler threads (every access under `lock`)."""

    def __init__(self, seed: int = 1, tickets: int = 40, end_users: int = 24):
        self.lock = threading.RLock()
        self.users: dict[int, User] = {}
        self.tickets: dict[int, Ticket] = {}
        self.attachments: dict[str, Attachment] = {}  # by token
        self.organizations: dict[int, str] = {}  # id -> name
        self._user_seq = 0
        self.offset = 0  # seconds the account's clock is ahead of the machine's (settle())
        self.base_url = "https://acme.zendesk.com"  # the account's host, set when serving
        self.files_url = "https://p1.zdusercontent.com"  # where attachment files live
        self._seq = 0
        self._ids = 1000
        _populate(self, random.Random(seed), tickets, end_users)
        _profiles(self, random.Random(seed + 7919))  # its own draws: the tickets stay as seeded

    # -- the account's clock ---------------------------------------------------------------

    def now(self) -> int:
        """The account's time: the machine's, moved on by `settle()`."""
        return int(time.time()) + self.offset

    def settle(self) -> None:
        """Let time pass at the account until every change so far is over a minute old, so
        the incremental exports (which hold back the last minute) show all of them."""
        with self.lock:
            newest = max(
                [t.updated_at for t in self.tickets.values()]
                + [u.updated_at for u in self.users.values()]
            )
            self.offset += max(0, newest + HOLD_BACK + 1 - self.now())

    # -- ids and changes --------------------------------------------------------------------

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def touch(self, ticket: Ticket, when: int | None = None) -> None:
        """Record a change: the ticket's updated_at moves, and so does its export position."""
        self._seq += 1
        ticket.seq = self._seq
        ticket.updated_at = max(ticket.updated_at, when or self.now())

    def touch_user(self, user: User, when: int | None = None) -> None:
        """Record a change to a user: its updated_at and its place in the user export move."""
        self._user_seq += 1
        user.seq = self._user_seq
        user.updated_at = max(user.updated_at, user.created_at, when or self.now())

    def update_user(self, user_id: int, **changes) -> None:
        """Change a user while the sandbox runs (a test's or the demo's edit at the source)."""
        with self.lock:
            user = self.users[user_id]
            for key, value in changes.items():
                setattr(user, key, value)
            self.touch_user(user)

    def attachment(self, name: str, content_type: str, data: bytes, inline=False) -> Attachment:
        token = hashlib.sha1(f"{self._ids}:{name}".encode()).hexdigest()[:24]
        item = Attachment(self.next_id(), name, content_type, data, token, inline)
        self.attachments[token] = item
        return item

    def content_url(self, item: Attachment, account: str | None = None) -> str:
        # Documented form: https://{subdomain}.zendesk.com/attachments/token/{token}/?name={name}
        base = self.base_url if account is None else account
        return f"{base}/attachments/token/{item.token}/?name={item.file_name}"

    # -- what tests and the demo change while the sandbox runs ------------------------------

    def add_comment(
        self,
        ticket_id: int,
        author_id: int,
        text: str,
        public: bool = True,
        status: str | None = None,
        attachments: list[tuple[str, str, bytes]] = (),
    ) -> int:
        """A new comment (as an agent's reply or the requester's answer); returns its id."""
        with self.lock:
            ticket = self.tickets[ticket_id]
            last = max([c.created_at for c in ticket.comments] + [ticket.updated_at])
            now = max(self.now(), last + 60)
            comment = Comment(self.next_id(), author_id, f"<p>{text}</p>", text, public, now, "web")
            comment.attachments = [self.attachment(*spec) for spec in attachments]
            ticket.comments.append(comment)
            if status:
                self._set_status(ticket, status, now)
            self.touch(ticket, now)
            return comment.id

    def set_status(self, ticket_id: int, status: str) -> None:
        with self.lock:
            ticket = self.tickets[ticket_id]
            now = max(self.now(), ticket.updated_at + 60)
            self._set_status(ticket, status, now)
            self.touch(ticket, now)

    def mark_as_spam(self, ticket_id: int) -> None:
        """Zendesk's "Mark as spam": the ticket is deleted and its requester suspended."""
        with self.lock:
            ticket = self.tickets[ticket_id]
            self.users[ticket.requester_id].suspended = True
            ticket.status = "deleted"
            self.touch(ticket, max(self.now(), ticket.updated_at + 60))

    def new_ticket(self, requester_id: int, subject: str, text: str) -> int:
        with self.lock:
            now = self.now()
            ticket = Ticket(
                self.next_id(), subject, "new", "email", requester_id, None, now, now,
                "normal", [], {ORDER_FIELD: None, PLAN_FIELD: None},
            )  # fmt: skip
            ticket.comments.append(
                Comment(self.next_id(), requester_id, f"<p>{text}</p>", text, True, now, "email")
            )
            self.tickets[ticket.id] = ticket
            self.touch(ticket, now)
            return ticket.id

    def _set_status(self, ticket: Ticket, status: str, when: int) -> None:
        ticket.status = status
        if status in ("solved", "closed") and ticket.solved_at is None:
            ticket.solved_at = when
        elif status not in ("solved", "closed"):
            ticket.solved_at = None

    # -- rendering (the documented JSON shapes) ----------------------------------------------

    def render_user(self, user: User) -> dict:
        # https://developer.zendesk.com/api-reference/ticketing/users/users/#json-format
        return {
            "id": user.id,
            "url": f"{self.base_url}/api/v2/users/{user.id}.json",
            "name": user.name,
            "email": user.email,
            "created_at": iso(user.created_at),
            "updated_at": iso(max(user.updated_at, user.created_at)),
            "time_zone": "Copenhagen",
            "iana_time_zone": "Europe/Copenhagen",
            "phone": user.phone,
            "shared_phone_number": None,
            "photo": None,
            "locale_id": 1,
            "locale": "en-US",
            "organization_id": user.organization_id,
            "role": user.role,
            "verified": True,
            "external_id": None,
            "tags": [],
            "alias": "",
            "active": True,
            "shared": False,
            "shared_agent": False,
            "last_login_at": None,
            "two_factor_auth_enabled": None,
            "signature": None,
            "details": user.details,
            "notes": user.notes,
            "role_type": None,
            "custom_role_id": None,
            "moderator": user.role != "end-user",
            "ticket_restriction": "requested" if user.role == "end-user" else None,
            "only_private_comments": False,
            "restricted_agent": user.role == "end-user",
            "suspended": user.suspended,
            "default_group_id": None,
            "report_csv": False,
            "user_fields": {key: user.user_fields.get(key) for key, _, _ in USER_FIELDS},
        }

    def render_identities(self, user: User) -> list[dict]:
        # https://developer.zendesk.com/api-reference/ticketing/users/user_identities/#json-format
        # The primary email and phone are identities too, listed first.
        kinds = []
        if user.email:
            kinds.append(("email", user.email))
        if user.phone:
            kinds.append(("phone_number", user.phone))
        out = []
        for number, (kind, value) in enumerate(kinds + user.identities):
            ident = user.id * 100 + number
            primary = (kind, value) in kinds
            out.append({
                "url": f"{self.base_url}/api/v2/users/{user.id}/identities/{ident}.json",
                "id": ident, "user_id": user.id, "type": kind, "value": value,
                "verified": True, "primary": primary,
                "created_at": iso(user.created_at), "updated_at": iso(user.created_at),
                "undeliverable_count": 0,
                "deliverable_state": "deliverable" if kind == "email" else None,
            })  # fmt: skip
        return out

    def render_organization(self, ident: int) -> dict:
        # https://developer.zendesk.com/api-reference/ticketing/organizations/organizations/#json-format
        name = self.organizations[ident]
        made = iso(BASE - 600 * DAY)
        return {
            "url": f"{self.base_url}/api/v2/organizations/{ident}.json", "id": ident,
            "name": name, "shared_tickets": False, "shared_comments": False,
            "external_id": None, "created_at": made, "updated_at": made,
            "domain_names": [], "details": "", "notes": "", "group_id": None, "tags": [],
            "organization_fields": {},
        }  # fmt: skip

    def render_user_fields(self) -> list[dict]:
        # https://developer.zendesk.com/api-reference/ticketing/users/user_fields/#json-format
        made = iso(BASE - 500 * DAY)
        return [
            {"id": ident, "url": f"{self.base_url}/api/v2/user_fields/{ident}.json",
             "key": key, "type": "text", "title": title, "raw_title": title,
             "description": "", "raw_description": "", "position": position, "active": True,
             "system": False, "regexp_for_validation": None, "created_at": made,
             "updated_at": made}
            for position, (key, ident, title) in enumerate(USER_FIELDS, start=1)
        ]  # fmt: skip

    def render_ticket(self, ticket: Ticket) -> dict:
        # https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/#json-format
        first = ticket.comments[0] if ticket.comments else None
        requester = self.users[ticket.requester_id]
        return {
            "id": ticket.id,
            "url": f"{self.base_url}/api/v2/tickets/{ticket.id}.json",
            "external_id": None,
            "via": {
                "channel": ticket.channel,
                "source": {
                    "from": {"address": requester.email, "name": requester.name}
                    if ticket.channel == "email"
                    else {},
                    "to": {"address": "support@acme.zendesk.com", "name": "Acme"}
                    if ticket.channel == "email"
                    else {},
                    "rel": None,
                },
            },
            "created_at": iso(ticket.created_at),
            "updated_at": iso(ticket.updated_at),
            "generated_timestamp": ticket.updated_at,
            "type": "question",
            "subject": ticket.subject,
            "raw_subject": ticket.subject,
            "description": first.plain_body if first else "",
            "priority": ticket.priority,
            "status": ticket.status,
            "recipient": "support@acme.zendesk.com" if ticket.channel == "email" else None,
            "requester_id": ticket.requester_id,
            "submitter_id": ticket.requester_id,
            "assignee_id": ticket.assignee_id,
            "organization_id": None,
            "group_id": 360000100 if ticket.assignee_id else None,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "forum_topic_id": None,
            "problem_id": None,
            "has_incidents": False,
            "is_public": any(c.public for c in ticket.comments),
            "due_at": None,
            "tags": list(ticket.tags),
            "custom_fields": [{"id": k, "value": v} for k, v in ticket.custom_fields.items()],
            "satisfaction_rating": None,
            "sharing_agreement_ids": [],
            "custom_status_id": 1,
            "fields": [{"id": k, "value": v} for k, v in ticket.custom_fields.items()],
            "followup_ids": [],
            "ticket_form_id": 360000001,
            "brand_id": 360000002,
            "allow_channelback": False,
            "allow_attachments": True,
            "from_messaging_channel": ticket.channel == "native_messaging",
        }

    def render_comment(self, comment: Comment) -> dict:
        # https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_comments/#json-format
        return {
            "id": comment.id,
            "type": "VoiceComment" if comment.channel == "voice" else "Comment",
            "author_id": comment.author_id,
            "body": comment.plain_body,
            "html_body": comment.html_body.replace(ACCOUNT, self.base_url),
            "plain_body": comment.plain_body,
            "public": comment.public,
            "attachments": [self.render_attachment(a) for a in comment.attachments],
            "audit_id": comment.id + 1,
            "via": {"channel": comment.channel, "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": iso(comment.created_at),
            "metadata": {"system": {"client": "Mozilla/5.0", "ip_address": "192.0.2.10"}},
        }

    def render_attachment(self, item: Attachment) -> dict:
        # https://developer.zendesk.com/api-reference/ticketing/tickets/ticket-attachments/#json-format
        url = self.content_url(item)
        image = item.content_type.startswith("image/")
        return {
            "id": item.id,
            "url": f"{self.base_url}/api/v2/attachments/{item.id}.json",
            "file_name": item.file_name,
            "content_url": url,
            "mapped_content_url": url,
            "content_type": item.content_type,
            "size": len(item.data),
            "width": 1 if image else None,
            "height": 1 if image else None,
            "inline": item.inline,
            "deleted": False,
            "malware_access_override": False,
            "malware_scan_result": "malware_not_found",
            "thumbnails": [],
        }

    def render_ticket_fields(self) -> list[dict]:
        # https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_fields/#json-format
        out = []
        for position, (ident, kind, title, options) in enumerate(TICKET_FIELDS, start=1):
            out.append({
                "id": ident,
                "url": f"{self.base_url}/api/v2/ticket_fields/{ident}.json",
                "type": kind,
                "title": title,
                "raw_title": title,
                "description": "",
                "position": position,
                "active": True,
                "required": False,
                "visible_in_portal": False,
                "editable_in_portal": False,
                "custom_field_options": [
                    {"id": ident * 10 + n, "name": name, "raw_name": name, "value": value,
                     "default": False}
                    for n, (name, value) in enumerate(options)
                ],
                "created_at": iso(BASE - 500 * DAY),
                "updated_at": iso(BASE - 500 * DAY),
            })  # fmt: skip
        return out

    def render_metric_set(self, ticket: Ticket) -> dict:
        # https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_metrics/#json-format
        replies = sum(1 for c in ticket.comments if c.author_id != ticket.requester_id and c.public)
        minutes = {"calendar": None, "business": None}
        return {
            "id": ticket.id + 500000,
            "url": f"{self.base_url}/api/v2/ticket_metrics/{ticket.id + 500000}.json",
            "ticket_id": ticket.id,
            "created_at": iso(ticket.created_at),
            "updated_at": iso(ticket.updated_at),
            "group_stations": 1,
            "assignee_stations": 1 if ticket.assignee_id else 0,
            "reopens": 0,
            "replies": replies,
            "assignee_updated_at": None,
            "requester_updated_at": iso(ticket.created_at),
            "status_updated_at": iso(ticket.updated_at),
            "initially_assigned_at": iso(ticket.created_at + HOUR) if ticket.assignee_id else None,
            "assigned_at": iso(ticket.created_at + HOUR) if ticket.assignee_id else None,
            "solved_at": iso(ticket.solved_at) if ticket.solved_at else None,
            "latest_comment_added_at": iso(ticket.comments[-1].created_at),
            "reply_time_in_minutes": minutes,
            "first_resolution_time_in_minutes": minutes,
            "full_resolution_time_in_minutes": minutes,
            "agent_wait_time_in_minutes": minutes,
            "requester_wait_time_in_minutes": minutes,
            "on_hold_time_in_minutes": minutes,
        }


def _populate(store: ZendeskStore, rng: random.Random, count: int, end_users: int) -> None:
    agents = []
    for name, email, role in AGENTS:
        user = User(store.next_id(), name, email, role, BASE - 400 * DAY)
        store.users[user.id] = user
        agents.append(user)
    customers = []
    for number in range(end_users):
        first = corpus.FIRST_NAMES[number % len(corpus.FIRST_NAMES)].lstrip("=+@-")
        last = corpus.LAST_NAMES[(number * 7) % len(corpus.LAST_NAMES)]
        email = f"customer{number + 1}@{corpus.DOMAINS[number % 3]}"
        phone = f"+4520{rng.randrange(10**5, 10**6)}"
        user = User(store.next_id(), f"{first} {last}", email, "end-user", BASE - 300 * DAY, phone)
        store.users[user.id] = user
        customers.append(user)
    created = BASE
    for number in range(count):
        created += rng.randrange(2 * HOUR, 30 * HOUR)
        requester = customers[number % len(customers)]
        status = STATUSES[number % len(STATUSES)]
        channel = CHANNELS[(number * 5) % len(CHANNELS)]
        assignee = None if status == "new" else agents[number % len(agents)]
        plan = rng.choice(("plan_basic", "plan_pro", None))
        ticket = Ticket(
            store.next_id(),
            corpus.SUBJECTS[number % len(corpus.SUBJECTS)],
            status,
            channel,
            requester.id,
            assignee.id if assignee else None,
            created,
            created,
            PRIORITIES[number % len(PRIORITIES)],
            sorted({rng.choice(("billing", "bug", "vip", "refund", "how-to")) for _ in range(2)}),
            {ORDER_FIELD: f"A-{10000 + number}" if number % 3 else None, PLAN_FIELD: plan},
        )
        if plan:
            ticket.tags.append(plan)
        _comments(store, rng, ticket, requester, assignee, agents, number)
        if status in ("solved", "closed"):
            ticket.solved_at = ticket.comments[-1].created_at + rng.randrange(60, 2 * HOUR)
        last = ticket.solved_at or ticket.comments[-1].created_at
        # A closed ticket was updated days after it was solved (closing is an update).
        ticket.updated_at = last + (4 * DAY if status == "closed" else rng.randrange(60, HOUR))
        store.tickets[ticket.id] = ticket
    # Every ticket once, in order of its last change, as a fresh account's export has them.
    for ticket in sorted(store.tickets.values(), key=lambda t: (t.updated_at, t.id)):
        store._seq += 1
        ticket.seq = store._seq
    ordered = list(store.tickets.values())
    if len(ordered) < 8:
        return
    # Two deleted tickets and one marked as spam (deleted, requester suspended).
    for ticket in ordered[4:6]:
        ticket.status = "deleted"
    spam = ordered[7]
    spam.status = "deleted"
    spammer = User(store.next_id(), "Cheap Pills", "pills@spam.example.net", "end-user", BASE)
    spammer.suspended = True
    store.users[spammer.id] = spammer
    spam.requester_id = spammer.id
    spam.comments[0].author_id = spammer.id


def _comments(store, rng, ticket: Ticket, requester, assignee, agents, number: int) -> None:
    at = ticket.created_at
    first = corpus.SENTENCES[number % len(corpus.SENTENCES)]
    opening = Comment(
        store.next_id(), requester.id, f"<p>{first}</p>", first, True, at, ticket.channel
    )
    if number % 4 == 1:
        opening.attachments.append(
            store.attachment(
                f"invoice-{number}.pdf", "application/pdf", f"%PDF-1.4 invoice {number}".encode()
            )
        )
    ticket.comments.append(opening)
    replies = 1 + number % 4
    for position in range(replies):
        at += rng.randrange(20 * 60, 20 * HOUR)
        agent = assignee or agents[position % len(agents)]
        if position % 2 == 0:
            text = corpus.SENTENCES[(number + position + 3) % len(corpus.SENTENCES)]
            private = position == 2 or (number % 5 == 0 and position == 0)
            comment = Comment(
                store.next_id(), agent.id, f"<p>{text}</p>", text, not private, at, "web"
            )
            if number % 3 == 0 and position == 0:
                # A pasted screenshot: an inline attachment whose URL sits in the HTML body.
                image = store.attachment(f"screenshot-{number}.png", "image/png", PNG, True)
                comment.attachments.append(image)
                comment.html_body = (
                    f'<p>{text}</p><p><img src="{store.content_url(image, ACCOUNT)}" '
                    f'alt="screenshot"></p><p><img src="https://cdn.example.org/logo.png"></p>'
                )
        else:
            text = f"Thanks, {agent.name.split()[0]}. " + corpus.SENTENCES[position]
            comment = Comment(
                store.next_id(), requester.id, f"<p>{text}</p>", text, True, at, ticket.channel
            )
        ticket.comments.append(comment)


def _profiles(store: ZendeskStore, rng: random.Random) -> None:
    """What end users carry beyond their tickets: organizations, more identities (a second
    email, a second phone, a Twitter handle), notes, details and user fields; and end users
    who never wrote a ticket, two of them known by phone only. Then the user export's order."""
    for number, name in enumerate(ORGANIZATIONS):
        store.organizations[361000 + number] = name
    people = [u for u in store.users.values() if u.role == "end-user" and not u.suspended]
    for number, user in enumerate(people):
        if number % 3 == 0:
            user.organization_id = 361000 + number % len(ORGANIZATIONS)
        if number % 4 == 1:
            user.identities.append(("email", f"{user.email.split('@')[0]}.home@example.net"))
        if number % 5 == 2:
            user.identities.append(("phone_number", f"+4540{rng.randrange(10**5, 10**6)}"))
        if number % 6 == 3:
            user.identities.append(("twitter", f"{user.name.split()[0].lower()}{number}"))
        if number % 4 == 0:
            user.notes = f"Prefers email. Customer since {2015 + number % 8}."
        if number % 7 == 5:
            user.details = f"{10 + number} Strandvejen, Copenhagen"
        user.user_fields = {"plan": ("Pro", "Basic", None)[number % 3]}
    for number in range(6):
        first = corpus.FIRST_NAMES[(number * 11 + 5) % len(corpus.FIRST_NAMES)].lstrip("=+@-")
        last = corpus.LAST_NAMES[(number * 13 + 2) % len(corpus.LAST_NAMES)]
        email = f"prospect{number + 1}@{corpus.DOMAINS[number % 3]}" if number >= 2 else None
        phone = f"+4560{rng.randrange(10**5, 10**6)}" if number < 4 else None
        user = User(store.next_id(), f"{first} {last}", email, "end-user", BASE - 90 * DAY, phone)
        user.organization_id = 361000 + number % len(ORGANIZATIONS) if number % 2 else None
        user.notes = "Asked for a quote; no ticket yet." if number == 3 else ""
        user.user_fields = {"plan": "Basic" if number % 2 else None, "account_manager": "Ingrid"}
        store.users[user.id] = user
    for user in sorted(store.users.values(), key=lambda u: (u.created_at, u.id)):
        store.touch_user(user, user.created_at)
