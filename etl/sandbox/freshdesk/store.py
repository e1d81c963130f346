"""The Freshdesk emulation's data: agents, contacts, tickets with conversations and files.

Records are rendered in the shapes of the Freshdesk API v2 reference
(https://developers.freshdesk.com/api/); each renderer names its section. Changes made while
the emulation runs (a reply, a status) move the ticket's `updated_at`.
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
from etl.sandbox.zendesk.store import PNG

BASE = int(datetime(2025, 5, 5, 7, 0, tzinfo=UTC).timestamp())
HOUR = 3600
DAY = 24 * HOUR
ACCOUNT = "{account}"  # stands for the account's URL in stored bodies, until it is served
AGENTS = (
    ("Ingrid Halvorsen", "agent2@support.example.org"),
    ("Tomás Ortega", "agent3@support.example.org"),
    ("Former Agent", "former.agent@freshdesk-team.example.com"),
)
# Custom contact fields (name, id, label): "Plan" is a customer field on the Smarticks sandbox.
CONTACT_FIELDS = (("plan", 9101, "Plan"), ("region", 9102, "Region"))
COMPANIES = ("Tulip Logistics", "Delft Ceramics")
STATUSES = (2, 2, 3, 4, 4, 5, 5)  # Open, Pending, Resolved, Closed
SOURCES = (1, 1, 2, 3, 7, 9, 10)  # Email, Portal, Phone, Chat, Feedback widget, Outbound email


@dataclass
class Contact:
    id: int
    name: str
    email: str | None
    phone: str | None = None
    # The rest of a contact's profile (View a Contact shows it; agents have none of it).
    mobile: str | None = None
    other_emails: list[str] = field(default_factory=list)
    twitter_id: str | None = None
    address: str | None = None
    company_id: int | None = None
    job_title: str | None = None
    description: str | None = None
    custom_fields: dict[str, str | None] = field(default_factory=dict)  # by the field's name
    created_at: int = 0
    updated_at: int = 0


@dataclass
class File:
    id: int
    name: str
    mime: str
    data: bytes
    token: str


@dataclass
class Note:
    """A conversation of a ticket: a reply, a customer's answer or a private note."""

    id: int
    body: str
    user_id: int
    incoming: bool
    private: bool
    created_at: int
    files: list[File] = field(default_factory=list)


@dataclass
class Ticket:
    id: int
    subject: str
    description: str
    status: int
    source: int
    priority: int
    requester_id: int
    responder_id: int | None
    created_at: int
    updated_at: int
    tags: list[str]
    custom_fields: dict
    files: list[File] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    resolved_at: int | None = None
    closed_at: int | None = None
    spam: bool = False
    deleted: bool = False


class FreshdeskStore:
    def __init__(self, seed: int = 1, tickets: int = 30):
        self.lock = threading.RLock()
        self.agents: dict[int, Contact] = {}  # agent id -> its contact details
        self.contacts: dict[int, Contact] = {}
        self.tickets: dict[int, Ticket] = {}
        self.files: dict[str, File] = {}  # by token
        self.base_url = "https://acme.freshdesk.com"
        self.files_url = "https://s3.amazonaws.com/cdn.freshdesk.com"
        self._ids = 8000
        self.companies: dict[int, str] = {}  # id -> name
        _populate(self, random.Random(seed), tickets)
        _profiles(self, random.Random(seed + 7919))  # its own draws: the tickets as seeded

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def file(self, name: str, mime: str, data: bytes) -> File:
        token = hashlib.sha1(f"{self._ids}:{name}".encode()).hexdigest()[:20]
        item = File(self.next_id(), name, mime, data, token)
        self.files[token] = item
        return item

    def inline_url(self, item: File, base: str | None = None) -> str:
        return f"{self.base_url if base is None else base}/inline/attachment?token={item.token}"

    # -- changes while running -----------------------------------------------------------------

    def reply(
        self, ticket_id: int, text: str, incoming: bool, status: int | None = None,
        files: list[tuple[str, str, bytes]] = (),
    ) -> int:  # fmt: skip
        with self.lock:
            ticket = self.tickets[ticket_id]
            last = max([n.created_at for n in ticket.notes] + [ticket.updated_at])
            now = max(int(time.time()), last + 60)
            user = ticket.requester_id if incoming else (ticket.responder_id or min(self.agents))
            note = Note(self.next_id(), f"<div>{text}</div>", user, incoming, False, now)
            note.files = [self.file(*spec) for spec in files]
            ticket.notes.append(note)
            if status:
                self._status(ticket, status, now)
            ticket.updated_at = now
            return note.id

    def set_status(self, ticket_id: int, status: int) -> None:
        with self.lock:
            ticket = self.tickets[ticket_id]
            now = max(int(time.time()), ticket.updated_at + 60)
            self._status(ticket, status, now)
            ticket.updated_at = now

    def _status(self, ticket: Ticket, status: int, when: int) -> None:
        ticket.status = status
        ticket.resolved_at = when if status in (4, 5) else None
        ticket.closed_at = when if status == 5 else None

    # -- rendering ------------------------------------------------------------------------------

    def render_attachment(self, item: File, at: int) -> dict:
        # https://developers.freshdesk.com/api/#attachments: attachment_url is a signed S3 link
        # that expires; it needs no Freshdesk credentials.
        url = f"{self.files_url}/{item.token}/{item.name}?X-Amz-Signature=sig{item.token[:8]}"
        return {"id": item.id, "name": item.name, "content_type": item.mime,
                "size": len(item.data), "attachment_url": url, "created_at": iso(at),
                "updated_at": iso(at)}  # fmt: skip

    def render_ticket(self, ticket: Ticket, include: set[str]) -> dict:
        # https://developers.freshdesk.com/api/#tickets (List All Tickets, View a Ticket)
        body = {
            "id": ticket.id,
            "subject": ticket.subject,
            "description": ticket.description.replace(ACCOUNT, self.base_url),
            "description_text": ticket.description,
            "status": ticket.status,
            "priority": ticket.priority,
            "source": ticket.source,
            "type": "Question",
            "requester_id": ticket.requester_id,
            "responder_id": ticket.responder_id,
            "group_id": None,
            "company_id": None,
            "product_id": None,
            "email_config_id": None,
            "to_emails": None,
            "cc_emails": [],
            "fwd_emails": [],
            "reply_cc_emails": [],
            "fr_escalated": False,
            "is_escalated": False,
            "spam": ticket.spam,
            "deleted": ticket.deleted,
            "due_by": iso(ticket.created_at + 3 * DAY),
            "fr_due_by": iso(ticket.created_at + DAY),
            "created_at": iso(ticket.created_at),
            "updated_at": iso(ticket.updated_at),
            "tags": list(ticket.tags),
            "custom_fields": dict(ticket.custom_fields),
            "attachments": [self.render_attachment(f, ticket.created_at) for f in ticket.files],
        }
        if "requester" in include:
            person = self.contacts[ticket.requester_id]
            body["requester"] = {"id": person.id, "name": person.name, "email": person.email,
                                 "mobile": None, "phone": person.phone}  # fmt: skip
        if "stats" in include:
            body["stats"] = {
                "agent_responded_at": None,
                "requester_responded_at": None,
                "first_responded_at": iso(ticket.notes[0].created_at) if ticket.notes else None,
                "status_updated_at": iso(ticket.updated_at),
                "reopened_at": None,
                "resolved_at": iso(ticket.resolved_at) if ticket.resolved_at else None,
                "closed_at": iso(ticket.closed_at) if ticket.closed_at else None,
                "pending_since": None,
            }
        return body

    def render_note(self, ticket: Ticket, note: Note) -> dict:
        # https://developers.freshdesk.com/api/#list_all_conversations_of_a_ticket
        return {
            "id": note.id,
            "body": note.body.replace(ACCOUNT, self.base_url),
            "body_text": note.body,
            "incoming": note.incoming,
            "private": note.private,
            "user_id": note.user_id,
            "support_email": None if note.incoming else "support@acme.freshdesk.com",
            "source": 2 if note.private else 0,
            "category": 2,
            "ticket_id": ticket.id,
            "to_emails": [],
            "from_email": None,
            "cc_emails": [],
            "bcc_emails": [],
            "created_at": iso(note.created_at),
            "updated_at": iso(note.created_at),
            "attachments": [self.render_attachment(f, note.created_at) for f in note.files],
        }

    def render_agent(self, agent_id: int) -> dict:
        # https://developers.freshdesk.com/api/#list_all_agents
        person = self.agents[agent_id]
        return {
            "id": agent_id,
            "available": True,
            "occasional": False,
            "signature": None,
            "ticket_scope": 1,
            "type": "support_agent",
            "created_at": iso(BASE - 300 * DAY),
            "updated_at": iso(BASE - 300 * DAY),
            "contact": {"active": True, "email": person.email, "name": person.name,
                        "phone": None, "mobile": None, "language": "en"},
        }  # fmt: skip

    def render_contact(self, person: Contact) -> dict:
        # https://developers.freshdesk.com/api/#view_contact (Contact attributes)
        return {
            "id": person.id, "name": person.name, "email": person.email,
            "phone": person.phone, "mobile": person.mobile, "active": True,
            "address": person.address, "company_id": person.company_id,
            "description": person.description, "job_title": person.job_title,
            "language": "en", "time_zone": "Amsterdam", "twitter_id": person.twitter_id,
            "facebook_id": None, "unique_external_id": None,
            "other_emails": list(person.other_emails), "other_companies": [],
            "view_all_tickets": False, "deleted": False, "tags": [],
            "custom_fields": {name: person.custom_fields.get(name)
                              for name, _, _ in CONTACT_FIELDS},
            "created_at": iso(person.created_at or BASE - 200 * DAY),
            "updated_at": iso(person.updated_at or BASE - 200 * DAY),
        }  # fmt: skip

    def render_company(self, ident: int) -> dict:
        # https://developers.freshdesk.com/api/#companies (Company attributes)
        made = iso(BASE - 400 * DAY)
        return {"id": ident, "name": self.companies[ident], "description": None, "note": None,
                "domains": [], "custom_fields": {}, "health_score": None,
                "account_tier": None, "renewal_date": None, "industry": None,
                "created_at": made, "updated_at": made}  # fmt: skip

    def render_contact_fields(self) -> list[dict]:
        # https://developers.freshdesk.com/api/#list_all_contact_fields (custom ones only
        # here: the default fields are the contact's own attributes)
        made, fields = iso(BASE - 400 * DAY), enumerate(CONTACT_FIELDS, start=20)
        return [{"id": ident, "name": name, "label": label, "label_for_customers": label,
                 "position": position, "type": "custom_text", "default": False,
                 "customers_can_edit": False, "required_for_customers": False,
                 "displayed_for_customers": False, "required_for_agents": False,
                 "created_at": made, "updated_at": made}
                for position, (name, ident, label) in fields]  # fmt: skip


def _populate(store: FreshdeskStore, rng: random.Random, count: int) -> None:
    for name, email in AGENTS:
        agent_id = store.next_id()
        store.agents[agent_id] = Contact(agent_id, name, email)
    agents = list(store.agents)
    people = []
    for number in range(max(4, count // 2)):
        first = corpus.FIRST_NAMES[(number * 7) % len(corpus.FIRST_NAMES)].lstrip("=+@-")
        last = corpus.LAST_NAMES[(number * 3) % len(corpus.LAST_NAMES)]
        person = Contact(store.next_id(), f"{first} {last}", f"fd.customer{number + 1}@example.com",
                         f"+3120{rng.randrange(10**6, 10**7)}")  # fmt: skip
        store.contacts[person.id] = person
        people.append(person)
    created = BASE
    for number in range(count):
        created += rng.randrange(HOUR, 20 * HOUR)
        requester = people[number % len(people)]
        status = STATUSES[number % len(STATUSES)]
        text = corpus.SENTENCES[number % len(corpus.SENTENCES)]
        ticket = Ticket(
            store.next_id(), corpus.SUBJECTS[(number + 5) % len(corpus.SUBJECTS)],
            f"<div>{text}</div>", status, SOURCES[number % len(SOURCES)], 1 + number % 4,
            requester.id, None if number % 5 == 0 else agents[number % len(agents)],
            created, created, sorted({rng.choice(("vip", "refund", "bug")) for _ in range(2)}),
            {"cf_order_number": f"FD-{2000 + number}" if number % 2 else None},
        )  # fmt: skip
        if number % 4 == 3:
            ticket.files.append(store.file(f"photo-{number}.jpg", "image/jpeg",
                                           f"JPEG bytes {number}".encode()))  # fmt: skip
        at = created
        for position in range(1 + number % 3):
            at += rng.randrange(30 * 60, 12 * HOUR)
            agent = ticket.responder_id or agents[position % len(agents)]
            if position == 1:
                answer = f"Thanks! {corpus.SENTENCES[position]}"
                ticket.notes.append(
                    Note(store.next_id(), f"<div>{answer}</div>", requester.id, True, False, at)
                )
                continue
            reply = corpus.SENTENCES[(number + position + 2) % len(corpus.SENTENCES)]
            note = Note(store.next_id(), f"<div>{reply}</div>", agent, False, position == 2, at)
            if number % 3 == 2 and position == 0:
                image = store.file(f"screen-{number}.png", "image/png", PNG)
                note.body += f'<div><img src="{store.inline_url(image, ACCOUNT)}"></div>'
            ticket.notes.append(note)
        if status in (4, 5):
            at += rng.randrange(60, HOUR)
            ticket.resolved_at = at
            ticket.closed_at = at if status == 5 else None
        ticket.updated_at = at + 60
        store.tickets[ticket.id] = ticket
    ordered = list(store.tickets.values())
    if len(ordered) >= 8:
        ordered[3].spam = True
        ordered[6].deleted = True


def _profiles(store: FreshdeskStore, rng: random.Random) -> None:
    """What contacts carry beyond their tickets (other emails, a mobile, a Twitter id, an
    address, a company, a job title, a description, custom fields), and contacts who never
    wrote in, one of them known by phone only."""
    for number, name in enumerate(COMPANIES):
        store.companies[7100 + number] = name
    for number, person in enumerate(store.contacts.values()):
        person.created_at = BASE - (250 - number) * DAY
        person.updated_at = person.created_at + HOUR
        if number % 3 == 0:
            person.company_id, person.job_title = 7100 + number % 2, "Planner"
        if number % 4 == 1:
            person.other_emails = [f"{person.email.split('@')[0]}.private@example.net"]
        if number % 2 == 0:
            person.mobile = f"+316{rng.randrange(10**7, 10**8)}"
        if number % 5 == 2:
            person.twitter_id = f"{person.name.split()[0].lower()}_{number}"
        if number % 4 == 0:
            person.address = f"Damrak {number + 1}, Amsterdam"
            person.description = "Key account; call before shipping."
        person.custom_fields = {"plan": ("Pro", None)[number % 2], "region": "EU"}
    for number in range(4):
        first = corpus.FIRST_NAMES[(number * 11 + 8) % len(corpus.FIRST_NAMES)].lstrip("=+@-")
        last = corpus.LAST_NAMES[(number * 13 + 4) % len(corpus.LAST_NAMES)]
        email = f"fd.lead{number + 1}@example.com" if number else None
        person = Contact(store.next_id(), f"{first} {last}", email,
                         f"+3130{rng.randrange(10**6, 10**7)}" if number < 2 else None)  # fmt: skip
        person.company_id = 7101 if number % 2 else None
        person.created_at = person.updated_at = BASE - (20 - number) * DAY
        store.contacts[person.id] = person
