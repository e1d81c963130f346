"""The Help Scout emulation's data: users, customers, conversations with threads and files.

Records are rendered in the shapes of the Mailbox API 2.0 reference; each renderer names the
page it follows. A change made while the emulation runs (a new thread, a status) updates the
conversation's modification time, which `modifiedSince` filters on.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from etl.sandbox import corpus
from etl.sandbox.timefmt import fmt_time as iso  # the vendors' APIs write UTC times so too
from etl.sandbox.zendesk.store import PNG

BASE = int(datetime(2025, 4, 7, 8, 0, tzinfo=UTC).timestamp())
HOUR = 3600
DAY = 24 * HOUR
FILES = "{files}"  # stands for the file host's URL in stored bodies, until it is served
AGENTS = (
    ("Ingrid", "Halvorsen", "agent2@support.example.org"),
    ("Tomás", "Ortega", "agent3@support.example.org"),
    ("Former", "Agent", "former.agent@helpscout-team.example.com"),
)
STATUSES = ("active", "active", "pending", "closed", "closed", "closed", "spam")
TYPES = ("email", "email", "email", "chat", "phone")
PRIORITIES = ("Low", "Medium", None)
PROPERTIES = {"plan": "Plan", "region": "Region"}  # customer properties: slug -> name
FIELDS = {"Priority": (7001, {"Low": "1", "Medium": "2"}), "Plan": (7002, {"Pro": "1"})}


@dataclass
class Person:
    id: int
    first: str
    last: str
    email: str | None
    # A customer's profile (List Customers shows it; users have none of it).
    emails: list[tuple[str, str]] = field(default_factory=list)  # more: (value, type)
    phones: list[tuple[str, str]] = field(default_factory=list)  # (value, type)
    social: list[tuple[str, str]] = field(default_factory=list)  # (value, type)
    websites: list[str] = field(default_factory=list)
    organization: str | None = None
    job_title: str | None = None
    background: str | None = None  # "the Notes field from the user interface"
    address: dict | None = None  # lines, city, state, postalCode, country
    properties: dict[str, str] = field(default_factory=dict)  # customer properties, by slug
    created_at: int = 0
    modified_at: int = 0


@dataclass
class File:
    id: int
    name: str
    mime: str
    data: bytes
    token: str


@dataclass
class Thread:
    id: int
    type: str  # customer message note lineitem chat phone
    body: str
    created_at: int
    author: Person
    by_user: bool
    files: list[File] = field(default_factory=list)
    action: str | None = None  # lineitems: what happened


@dataclass
class Conversation:
    id: int
    number: int
    subject: str
    status: str
    type: str
    customer: Person
    assignee: Person | None
    created_at: int
    modified_at: int
    tags: list[str]
    threads: list[Thread] = field(default_factory=list)
    closed_at: int | None = None
    priority: str | None = None  # the custom field "Priority" (a dropdown)
    plan: str | None = None  # the custom field "Plan" (a dropdown the target lacks)


class HelpScoutStore:
    def __init__(self, seed: int = 1, conversations: int = 30):
        self.lock = threading.RLock()
        self.users: dict[int, Person] = {}
        self.customers: dict[int, Person] = {}
        self.conversations: dict[int, Conversation] = {}
        self.files: dict[int, File] = {}
        self.api_url = "https://api.helpscout.net"
        self.files_url = "https://secure.helpscout.net"
        self._ids = 5000
        _populate(self, random.Random(seed), conversations)
        _profiles(self, random.Random(seed + 7919))  # its own draws: conversations as seeded

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def file(self, name: str, mime: str, data: bytes) -> File:
        token = hashlib.sha1(f"{self._ids}:{name}".encode()).hexdigest()[:20]
        item = File(self.next_id(), name, mime, data, token)
        self.files[item.id] = item
        return item

    def web_url(self, item: File, base: str | None = None) -> str:
        return f"{self.files_url if base is None else base}/file/{item.token}/{item.name}"

    # -- changes while running -----------------------------------------------------------------

    def add_thread(
        self, conversation_id: int, text: str, by_user: bool, status: str | None = None,
        files: list[tuple[str, str, bytes]] = (),
    ) -> int:  # fmt: skip
        with self.lock:
            conv = self.conversations[conversation_id]
            now = max(int(time.time()), max(t.created_at for t in conv.threads) + 60)
            author = conv.assignee or self.users[min(self.users)] if by_user else conv.customer
            kind = "message" if by_user else "customer"
            thread = Thread(self.next_id(), kind, f"<p>{text}</p>", now, author, by_user)
            thread.files = [self.file(*spec) for spec in files]
            conv.threads.append(thread)
            if status:
                self._status(conv, status, now)
            conv.modified_at = now
            return thread.id

    def set_status(self, conversation_id: int, status: str) -> None:
        with self.lock:
            conv = self.conversations[conversation_id]
            now = max(int(time.time()), conv.modified_at + 60)
            self._status(conv, status, now)
            conv.modified_at = now

    def _status(self, conv: Conversation, status: str, when: int) -> None:
        conv.status = status
        conv.closed_at = when if status == "closed" else None

    # -- rendering ----------------------------------------------------------------------------

    def render_person(self, person: Person, kind: str) -> dict:
        return {"id": person.id, "type": kind, "first": person.first, "last": person.last,
                "email": person.email}  # fmt: skip

    def render_customer(self, person: Person) -> dict:
        # https://developer.helpscout.com/mailbox-api/endpoints/customers/list/ (each customer
        # with its entries embedded: emails, phones, chats, social_profiles, websites, address)
        emails = ([(person.email, "work")] if person.email else []) + person.emails
        embedded = {
            "emails": [{"id": person.id * 10 + n, "value": v, "type": t}
                       for n, (v, t) in enumerate(emails)],
            "phones": [{"id": person.id * 10 + n, "value": v, "type": t}
                       for n, (v, t) in enumerate(person.phones)],
            "chats": [],
            "social_profiles": [{"id": person.id * 10 + n, "value": v, "type": t}
                                for n, (v, t) in enumerate(person.social)],
            "websites": [{"id": person.id * 10 + n, "value": v}
                         for n, v in enumerate(person.websites)],
            # Customer properties (type, slug, name, value), as the official PHP client
            # (helpscout/helpscout-api-php, Customers/Entry/Property) reads them.
            "properties": [{"type": "text", "slug": slug, "name": PROPERTIES[slug],
                            "value": value, "source": {"type": "api"}}
                           for slug, value in person.properties.items()],
        }  # fmt: skip
        if person.address:
            embedded["address"] = {"id": person.id, **person.address,
                                   "createdAt": iso(person.created_at),
                                   "updatedAt": iso(person.modified_at)}  # fmt: skip
        return {
            "id": person.id,
            "firstName": person.first,
            "lastName": person.last,
            "gender": "unknown",
            "jobTitle": person.job_title,
            "location": (person.address or {}).get("city"),
            "organization": person.organization,
            "photoType": "unknown",
            "photoUrl": None,
            "age": None,
            "background": person.background,
            "createdAt": iso(person.created_at),
            "updatedAt": iso(person.modified_at),
            "draft": False,
            "_embedded": embedded,
            "_links": {"self": {"href": f"{self.api_url}/v2/customers/{person.id}"}},
        }

    def render_user(self, user: Person) -> dict:
        # https://developer.helpscout.com/mailbox-api/endpoints/users/list/
        return {
            "id": user.id,
            "firstName": user.first,
            "lastName": user.last,
            "email": user.email,
            "role": "user",
            "timezone": "Europe/Oslo",
            "type": "user",
            "createdAt": iso(BASE - 400 * DAY),
            "updatedAt": iso(BASE - 400 * DAY),
            "_links": {"self": {"href": f"{self.api_url}/v2/users/{user.id}"}},
        }

    def render_thread(self, conv: Conversation, thread: Thread) -> dict:
        # https://developer.helpscout.com/mailbox-api/endpoints/conversations/threads/list/
        author = self.render_person(thread.author, "user" if thread.by_user else "customer")
        return {
            "id": thread.id,
            "type": thread.type,
            "status": conv.status if thread.type != "lineitem" else "nochange",
            "state": "published",
            "action": {"type": "default", "text": thread.action} if thread.action else None,
            "body": thread.body.replace(FILES, self.files_url),
            "source": {"type": "email" if conv.type == "email" else "web", "via": author["type"]},
            "customer": self.render_person(conv.customer, "customer"),
            "createdBy": author,
            "assignedTo": self.render_person(conv.assignee, "user") if conv.assignee else None,
            "savedReplyId": 0,
            "to": [],
            "cc": [],
            "bcc": [],
            "createdAt": iso(thread.created_at),
            "openedAt": None,
            "_embedded": {"attachments": [self.render_file(conv, f) for f in thread.files]},
            "_links": {},
        }

    def render_file(self, conv: Conversation, item: File) -> dict:
        # https://developer.helpscout.com/mailbox-api/endpoints/conversations/threads/list/
        # (attachments: _links.data is the API's Get Attachment Data, _links.web the file)
        data = f"{self.api_url}/v2/conversations/{conv.id}/attachments/{item.id}/data"
        return {
            "id": item.id,
            "filename": item.name,
            "mimeType": item.mime,
            "width": 1 if item.mime.startswith("image/") else 0,
            "height": 1 if item.mime.startswith("image/") else 0,
            "size": len(item.data),
            "_links": {"data": {"href": data}, "web": {"href": self.web_url(item)}},
        }

    def render_conversation(self, conv: Conversation, with_threads: bool) -> dict:
        # https://developer.helpscout.com/mailbox-api/endpoints/conversations/list/
        published = [t for t in conv.threads if t.type != "lineitem"]
        body = {
            "id": conv.id,
            "number": conv.number,
            "threads": len(published),
            "type": conv.type,
            "folderId": 1,
            "status": conv.status,
            "state": "published",
            "subject": conv.subject,
            "preview": published[-1].body[:185] if published else "",
            "mailboxId": 1,
            "assignee": self.render_person(conv.assignee, "user") if conv.assignee else None,
            "createdBy": self.render_person(conv.customer, "customer"),
            "createdAt": iso(conv.created_at),
            "closedBy": 0,
            "closedAt": iso(conv.closed_at) if conv.closed_at else None,
            "userUpdatedAt": iso(conv.modified_at),
            "customerWaitingSince": {
                "time": iso(conv.modified_at), "friendly": "", "latestReplyFrom": "customer",
            },
            "source": {"type": "email", "via": "customer"},
            "tags": [{"id": zlib.crc32(t.encode()) % 10000, "color": "#929499", "tag": t}
                     for t in conv.tags],
            "cc": [],
            "bcc": [],
            "primaryCustomer": self.render_person(conv.customer, "customer"),
            "customFields": _custom_fields(conv),
            "_links": {"self": {"href": f"{self.api_url}/v2/conversations/{conv.id}"}},
        }  # fmt: skip
        if with_threads:
            threads = sorted(conv.threads, key=lambda t: (t.created_at, t.id), reverse=True)
            body["_embedded"] = {"threads": [self.render_thread(conv, t) for t in threads]}
        return body


def _populate(store: HelpScoutStore, rng: random.Random, count: int) -> None:
    agents = []
    for first, last, email in AGENTS:
        agent = Person(store.next_id(), first, last, email)
        store.users[agent.id] = agent
        agents.append(agent)
    customers = []
    for number in range(max(4, count // 2)):
        first = corpus.FIRST_NAMES[(number * 3) % len(corpus.FIRST_NAMES)].lstrip("=+@-")
        last = corpus.LAST_NAMES[(number * 5) % len(corpus.LAST_NAMES)]
        person = Person(store.next_id(), first, last, f"hs.customer{number + 1}@example.net")
        store.customers[person.id] = person
        customers.append(person)
    created = BASE
    for number in range(count):
        created += rng.randrange(HOUR, 20 * HOUR)
        status = STATUSES[number % len(STATUSES)]
        customer = customers[number % len(customers)]
        assignee = None if number % 6 == 0 else agents[number % len(agents)]
        conv = Conversation(
            store.next_id(), 100 + number, corpus.SUBJECTS[(number + 3) % len(corpus.SUBJECTS)],
            status, TYPES[number % len(TYPES)], customer, assignee, created, created,
            sorted({rng.choice(("vip", "billing", "bug", "feedback")) for _ in range(2)}),
        )  # fmt: skip
        at = created
        text = corpus.SENTENCES[number % len(corpus.SENTENCES)]
        opening = Thread(store.next_id(), "customer", f"<p>{text}</p>", at, customer, False)
        if number % 4 == 2:
            opening.files.append(store.file(f"receipt-{number}.pdf", "application/pdf",
                                            f"%PDF-1.4 receipt {number}".encode()))  # fmt: skip
        conv.threads.append(opening)
        for position in range(1 + number % 3):
            at += rng.randrange(30 * 60, 10 * HOUR)
            agent = assignee or agents[position % len(agents)]
            reply = corpus.SENTENCES[(number + position + 5) % len(corpus.SENTENCES)]
            kind = "note" if position == 1 else "message"
            thread = Thread(store.next_id(), kind, f"<p>{reply}</p>", at, agent, True)
            if number % 3 == 1 and position == 0:
                image = store.file(f"diagram-{number}.png", "image/png", PNG)
                thread.files.append(image)
                thread.body += f'<p><img src="{store.web_url(image, FILES)}" alt="diagram"></p>'
            conv.threads.append(thread)
        if status == "closed":
            at += rng.randrange(60, HOUR)
            conv.closed_at = at
            line = Thread(store.next_id(), "lineitem", "", at, agents[0], True)
            line.action = "Marked as closed"
            conv.threads.append(line)
        conv.modified_at = at + 60
        conv.priority = PRIORITIES[number % len(PRIORITIES)]
        conv.plan = "Pro" if number % 4 == 0 else None
        store.conversations[conv.id] = conv


def _custom_fields(conv: Conversation) -> list[dict]:
    # https://developer.helpscout.com/mailbox-api/endpoints/conversations/list/ (customFields:
    # id, name, value - a dropdown's option id - and text, its label)
    out = []
    for name, label in (("Priority", conv.priority), ("Plan", conv.plan)):
        if label:
            ident, options = FIELDS[name]
            out.append({"id": ident, "name": name, "value": options[label], "text": label})
    return out


def _profiles(store: HelpScoutStore, rng: random.Random) -> None:
    """What customers carry beyond their conversations (more emails, phones, social profiles,
    websites, organization, job title, background, address), and customers who never wrote
    in, one of them known by phone only."""
    people = list(store.customers.values())
    for number, person in enumerate(people):
        person.created_at = BASE - (300 - number) * DAY
        person.modified_at = person.created_at + HOUR
        if number % 3 == 0:
            person.organization, person.job_title = "Fjord Outfitters", "Buyer"
        if number % 4 == 1:
            person.emails.append((f"{person.first.lower()}.{number}@home.example.org", "home"))
        if number % 2 == 0:
            person.phones.append((f"+4790{rng.randrange(10**5, 10**6)}", "mobile"))
        if number % 5 == 2:
            person.social.append((f"https://twitter.com/{person.first.lower()}{number}", "twitter"))
            person.websites.append(f"https://{person.last.lower()}.example.org")
        person.properties = {"plan": ("Pro", "Basic")[number % 2]} if number % 3 else {}
        if number % 4 == 0:
            person.background = "Met at the Oslo trade fair."
            person.address = {"lines": ["Karl Johans gate 1", "3rd floor"], "city": "Oslo",
                              "state": "Oslo", "postalCode": "0154", "country": "NO"}  # fmt: skip
    for number in range(5):
        first = corpus.FIRST_NAMES[(number * 11 + 3) % len(corpus.FIRST_NAMES)].lstrip("=+@-")
        last = corpus.LAST_NAMES[(number * 13 + 7) % len(corpus.LAST_NAMES)]
        email = f"hs.lead{number + 1}@example.net" if number else None
        person = Person(store.next_id(), first, last, email)
        person.phones = [(f"+4791{rng.randrange(10**5, 10**6)}", "work")] if number < 2 else []
        person.organization = "Fjord Outfitters" if number % 2 else None
        person.created_at = BASE - (30 - number) * DAY
        person.modified_at = person.created_at
        store.customers[person.id] = person
