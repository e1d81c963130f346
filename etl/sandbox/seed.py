"""Deterministic seed data: the same seed and sizes always give the same helpdesk.

Times are relative to BASE (2024-01-01T00:00:00Z), never to the wall clock. Natural activity
ends at BASE - 3 days; bulk changes ("many records in one second") land in the last 2 days.
"""

import random
from urllib.parse import quote

from . import corpus
from .models import (
    SHARED_FOLDERS,
    USER_FOLDERS,
    Attachment,
    Conversation,
    Customer,
    CustomField,
    Folder,
    Mailbox,
    Tag,
    Thread,
    Timelog,
    User,
)
from .text import preview_of

BASE = 1704067200  # 2024-01-01T00:00:00Z
DAY = 86400
NATURAL_END = BASE - 3 * DAY
BULK_START, BULK_END = BASE - 2 * DAY, BASE - 60
BIG_BLOCK = 300  # conversations sharing one updatedAt second (capped at half the total)
SHARED_SHARE = 0.12  # further share of records sharing a second in small groups
LONG_BODY = 40_000

THREAD_COUNTS = (1, 2, 3, 4, 5, 6, 7, 8)
THREAD_WEIGHTS = (10, 14, 18, 18, 14, 11, 8, 7)  # mean ~4.1
STATUS_WEIGHTS = {"active": 35, "pending": 20, "closed": 38, "spam": 7}
STATE_WEIGHTS = {"published": 90, "draft": 6, "deleted": 4}
TYPE_WEIGHTS = {"email": 70, "phone": 15, "chat": 15}


def populate(store, seed=1, conversations=200, customers=None, empty=False, mailboxes=3, users=8):
    """Fill an empty store; `empty` keeps only mailboxes, users, folders and field definitions."""
    rng = random.Random(seed)
    with store.lock:
        _mailboxes(store, mailboxes)
        _users(store, rng, users)
        _folders(store)
        _fields(store)
        store.index_definitions()
        if not empty:
            _tags(store, rng)
            count = round(conversations * 0.4) if customers is None else customers
            if conversations and not count:
                count = 1
            _customers(store, rng, count)
            _conversations(store, rng, conversations)
        store.reindex()


def _pick(rng, weights: dict) -> str:
    return rng.choices(tuple(weights), tuple(weights.values()))[0]


def grouped_seconds(rng, ids: list, share: float, low: int, high: int) -> dict:
    """Map about `share` of the ids, in groups of 2-20, to one random second per group."""
    chosen = {}
    picked = rng.sample(ids, min(len(ids), int(len(ids) * share)))
    pos = 0
    while pos < len(picked):
        size = rng.randint(2, 20)
        second = rng.randrange(low, high)
        for ident in picked[pos : pos + size]:
            chosen[ident] = second
        pos += size
    return chosen


def shared_seconds(rng, ids: list, block: int, share: float) -> dict:
    """Bulk-change seconds: `block` ids on one single second, plus about `share` of the ids in
    small groups that each share a second (all in the last two days before BASE)."""
    chosen = grouped_seconds(rng, ids, share, BULK_START, BULK_END)
    for ident in rng.sample(ids, min(block, len(ids))):
        chosen[ident] = BASE - 3600
    return chosen


def _mailboxes(store, count: int) -> None:
    for ident in range(1, count + 1):
        name, email = corpus.MAILBOXES[(ident - 1) % len(corpus.MAILBOXES)]
        if ident > len(corpus.MAILBOXES):
            name, email = f"{name} {ident}", email.replace("@", f"{ident}@")
        created = BASE - 900 * DAY + ident * 7 * DAY
        store.mailboxes[ident] = Mailbox(ident, name, email, created, created + 200 * DAY)


def _users(store, rng, count: int) -> None:
    mailbox_ids = sorted(store.mailboxes)
    for ident in range(1, count + 1):
        first, last = corpus.USER_NAMES[(ident - 1) % len(corpus.USER_NAMES)]
        created = BASE - 880 * DAY + ident * 3 * DAY + rng.randrange(DAY)
        admin = ident == 1
        access = (
            set(mailbox_ids)
            if admin
            else set(rng.sample(mailbox_ids, rng.randint(1, len(mailbox_ids))))
        )
        store.users[ident] = User(
            id=ident,
            first_name=first,
            last_name=last,
            email="admin@support.example.org" if admin else f"agent{ident}@support.example.org",
            created_at=created,
            updated_at=created + rng.randrange(300 * DAY),
            role="admin" if admin else "user",
            alternate_emails=f"agent{ident}.alt@example.org" if ident % 3 == 0 else "",
            job_title=rng.choice(("Support agent", "Team lead", "Ingénieure support", "")),
            phone=f"+1867{rng.randrange(10**6, 10**7)}",
            timezone=rng.choice(corpus.TIMEZONES),
            photo_url=(
                f"https://support.example.org/storage/users/{ident:032x}.jpg" if ident % 2 else None
            ),
            language=rng.choice(("en", "en", "fr", "ja")),
            mailbox_ids=access,
        )


def _folders(store) -> None:
    ident = 0
    for mailbox_id in sorted(store.mailboxes):
        for name, kind in corpus_folders(store, mailbox_id):
            ident += 1
            store.folders[ident] = Folder(ident, mailbox_id, name, kind[0], kind[1])


def corpus_folders(store, mailbox_id: int) -> list:
    """The folders of one mailbox as (name, (type, userId)), in the reference's order."""
    folders = [(name, (kind, None)) for name, kind in SHARED_FOLDERS[:1]]
    for user in store.users.values():
        if mailbox_id in user.mailbox_ids:
            folders += [(name, (kind, user.id)) for name, kind in USER_FOLDERS]
    return folders + [(name, (kind, None)) for name, kind in SHARED_FOLDERS[1:]]


def _fields(store) -> None:
    ident = 0
    for mailbox_id in sorted(store.mailboxes):
        specs = (
            ("Priority", "dropdown", 1),
            ("Purchase Date", "date", 3),
            ("Vendor", "singleline", 6),
            ("Comments", "multiline", 7),
            ("Amount", "number", 8),
        )
        for name, kind, order in specs:
            ident += 1
            options = None
            if kind == "dropdown":
                first = ident * 10
                options = {
                    str(first + 1): "Low",
                    str(first + 2): "Medium",
                    str(first + 3): "Hïgh ⚠",
                }
            store.conv_fields[ident] = CustomField(
                ident, mailbox_id, name, kind, options, False, order
            )
    for name, kind, order in (
        ("Age", "number", 1),
        ("Gender", "dropdown", 2),
        ("Plan", "singleline", 3),
        ("Birthday", "date", 4),
        ("Remarks", "multiline", 5),
    ):
        ident += 1
        options = {"1": "Male", "2": "Female", "3": "Other"} if kind == "dropdown" else None
        store.cust_fields[ident] = CustomField(ident, None, name, kind, options, False, order)


def _tags(store, rng) -> None:
    for ident, name in enumerate(corpus.TAG_NAMES[:12], start=1):
        store.tags[ident] = Tag(ident, name, rng.randint(0, 10))


def field_value(rng, definition) -> str:
    """A plausible value for a custom/customer field of any type."""
    if definition.type == "dropdown":
        return rng.choice(sorted(definition.options))
    if definition.type == "date":
        return f"{rng.randint(2019, 2023)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if definition.type == "number":
        return str(rng.choice((rng.randint(0, 500), round(rng.uniform(0, 999), 2))))
    if definition.type == "multiline":
        return "\n".join(rng.sample(corpus.SENTENCES, 2))
    return rng.choice(("ACME", "Société Ünïe", "=1+1", "供应商", "O'Reilly, Ltd", "-"))


def _customers(store, rng, count: int) -> None:
    ids = list(range(1, count + 1))
    bulk = shared_seconds(rng, ids, min(BIG_BLOCK, count // 4), 0.10)
    email_id = 0
    defs = sorted(store.cust_fields.values(), key=lambda d: d.sort_order)
    for ident in ids:
        created = rng.randrange(BASE - 800 * DAY, BASE - 10 * DAY)
        updated = bulk.get(ident) or min(created + rng.randrange(120 * DAY), NATURAL_END)
        first, last = rng.choice(corpus.FIRST_NAMES), rng.choice(corpus.LAST_NAMES)
        customer = Customer(ident, first, last, created, updated)
        customer.company = rng.choice(corpus.COMPANIES)
        customer.job_title = rng.choice(corpus.JOB_TITLES)
        customer.photo_type = rng.choice(("unknown", "gravatar", "twitter", None))
        if rng.random() < 0.3:
            customer.photo_url = f"https://support.example.org/storage/customers/{ident:032x}.jpg"
        if rng.random() < 0.3:
            customer.notes = rng.choice(corpus.HTML_OPENERS + corpus.SENTENCES)
        roll = rng.random()
        emails = 0 if roll < 0.12 else (rng.randint(2, 3) if roll > 0.8 else 1)
        local = rng.choice(("mark", "anna", "j.doe", "o'brien", "user+tag", "zoe", "li.wei"))
        for j in range(emails):
            email_id += 1
            value = f"{local}{ident}{'.' + str(j) if j else ''}@{rng.choice(corpus.DOMAINS)}"
            customer.emails.append(
                {"id": email_id, "value": value, "type": ("work", "home", "other")[j]}
            )
        if rng.random() < 0.6 or not emails:
            for j in range(rng.choice((1, 1, 1, 2))):
                value = rng.choice(("+1 555-01{:02d}", "(555) 010-{:04d}", "777-777-{:03d}"))
                customer.phones.append(
                    {
                        "id": j,
                        "value": value.format(rng.randrange(100)),
                        "type": ("work", "mobile")[j],
                    }
                )
        if rng.random() < 0.2:
            customer.social_profiles = [
                {
                    "id": 0,
                    "value": f"@{local.replace('.', '')}{ident}",
                    "type": rng.choice(corpus.SOCIAL),
                }
            ]
        if rng.random() < 0.15:
            customer.websites = [
                {"id": 0, "value": f"https://{local.replace('+', '')}{ident}.example.org"}
            ]
        if rng.random() < 0.4:
            city, state, country = rng.choice(corpus.CITIES)
            customer.address = {
                "city": city,
                "state": state,
                "zip": f"{rng.randrange(10000, 99999)}",
                "country": country,
                "address": f"{rng.randint(1, 999)} Rue de l'Église, Bât. B",
            }
        for definition in defs:
            if rng.random() < 0.35:
                customer.fields[definition.id] = field_value(rng, definition)
        store.customers[ident] = customer


def _body(rng, long=False) -> str:
    parts = rng.sample(corpus.SENTENCES, rng.randint(1, 4))
    if rng.random() < 0.05:
        parts.insert(0, rng.choice(corpus.HTML_OPENERS))
    if long:
        parts = parts * (LONG_BODY // max(1, sum(map(len, parts))) + 2)
    if rng.random() < 0.3 and not long:
        return "\n\n".join(parts)
    html = "".join(f"<p>{p.replace('&', '&amp;').replace(chr(10), '<br>')}</p>" for p in parts)
    if rng.random() < 0.15:
        html += '<p><a href="https://example.org/help?a=1&amp;b=2">Help &amp; FAQ</a></p>'
    return html


def _conversations(store, rng, count: int) -> None:
    ids = list(range(1, count + 1))
    bulk_updated = shared_seconds(rng, ids, min(BIG_BLOCK, count // 2), SHARED_SHARE)
    created_groups = grouped_seconds(rng, ids, 0.05, BASE - 730 * DAY, BASE - 10 * DAY)
    long_ones = set(rng.sample(ids, min(count, max(2, count // 400))))
    customer_ids = sorted(store.customers)
    state = {"thread": 0, "attachment": 0, "timelog": 0}
    for ident in ids:
        created = created_groups.get(ident) or rng.randrange(BASE - 730 * DAY, BASE - 10 * DAY)
        conv = _conversation(store, rng, ident, created, customer_ids, state, ident in long_ones)
        if ident in bulk_updated:
            conv.updated_at = bulk_updated[ident]
        store.conversations[ident] = conv
    ordered = sorted(store.conversations.values(), key=lambda c: (c.created_at, c.id))
    for number, conv in enumerate(ordered, start=1):
        conv.number = number


def _conversation(store, rng, ident, created, customer_ids, state, long) -> Conversation:
    mailbox_id = rng.choice(sorted(store.mailboxes))
    agents = sorted(u.id for u in store.users.values() if mailbox_id in u.mailbox_ids)
    kind = _pick(rng, TYPE_WEIGHTS)
    status = _pick(rng, STATUS_WEIGHTS)
    customer_id = rng.choice(customer_ids)
    assignee = rng.choice(agents) if rng.random() < 0.7 else None
    subject = rng.choice(corpus.SUBJECTS).format(n=rng.randrange(1000, 99999))
    conv = Conversation(
        id=ident,
        number=0,
        type=kind,
        mailbox_id=mailbox_id,
        subject=subject,
        status=status,
        state=_pick(rng, STATE_WEIGHTS),
        customer_id=customer_id,
        created_by=("customer", customer_id),
        created_at=created,
        updated_at=created,
        assignee_id=assignee,
        source_type=kind,
    )
    moment = created
    previous = None
    for position in range(rng.choices(THREAD_COUNTS, THREAD_WEIGHTS)[0]):
        if position:
            moment = min(moment + rng.randrange(60, 2 * DAY), NATURAL_END)
        thread_kind = _thread_kind(rng, kind, previous)
        author_user = assignee or rng.choice(agents)
        if thread_kind == "customer":
            other = rng.random() < 0.05
            author = ("customer", rng.choice(customer_ids) if other else customer_id)
        else:
            author = ("user", author_user)
        thread = _thread(
            store, rng, conv, thread_kind, author, moment, state, long and not position
        )
        if position == 0:
            conv.created_by = author
            conv.source_via = "customer" if author[0] == "customer" else "user"
        conv.thread_ids.append(thread.id)
        previous = thread_kind
        for address in thread.cc:
            if address not in conv.cc:
                conv.cc.append(address)
        for address in thread.bcc:
            if address not in conv.bcc:
                conv.bcc.append(address)
        if thread_kind in ("message", "note"):
            conv.user_updated_at = moment
    conv.updated_at = moment
    if status == "closed":
        conv.closed_at = min(moment + rng.randrange(60, DAY), NATURAL_END)
        conv.closed_by = assignee or rng.choice(agents)
        conv.updated_at = conv.closed_at
    if conv.state == "draft":
        store.threads[conv.thread_ids[-1]].state = "draft"
    if rng.random() < 0.4:
        conv.tag_ids = rng.sample(sorted(store.tags), rng.randint(1, 3))
    for definition in store.mailbox_fields(mailbox_id):
        if rng.random() < 0.45:
            conv.custom_fields[definition.id] = field_value(rng, definition)
    if rng.random() < 0.15:
        for _ in range(rng.randint(1, 3)):
            state["timelog"] += 1
            at = rng.randrange(created, conv.updated_at + 1)
            store.timelogs[state["timelog"]] = Timelog(
                state["timelog"],
                ident,
                rng.choice(("active", "pending", "closed")),
                rng.choice(agents),
                rng.randrange(30, 7200),
                at,
                min(at + rng.randrange(3600), conv.updated_at),
            )
            conv.timelog_ids.append(state["timelog"])
        conv.timelog_ids.sort(key=lambda t: (store.timelogs[t].created_at, t), reverse=True)
    conv.thread_ids.reverse()  # newest first
    newest = [
        store.threads[t]
        for t in conv.thread_ids
        if store.threads[t].type in ("customer", "message")
    ]
    conv.preview = preview_of(newest[0].body if newest else store.threads[conv.thread_ids[0]].body)
    if newest:
        conv.waiting_since = newest[0].created_at
        conv.latest_reply_from = "customer" if newest[0].type == "customer" else "user"
    return conv


def _thread_kind(rng, conv_type: str, previous: str | None) -> str:
    if previous is None:
        return "message" if conv_type == "phone" and rng.random() < 0.7 else "customer"
    roll = rng.random()
    if roll < 0.08:
        return "lineitem"
    if roll < 0.25:
        return "note"
    return "message" if previous == "customer" else "customer"


def _thread(store, rng, conv, kind, author, moment, state, long) -> Thread:
    state["thread"] += 1
    ident = state["thread"]
    action = None
    body = _body(rng, long)
    if kind == "lineitem":
        action_type, template = rng.choice(corpus.LINEITEM_ACTIONS)
        user = store.users[author[1]]
        other = store.users[rng.choice(sorted(store.users))]
        text = template.format(
            user=f"{user.first_name} {user.last_name}",
            status=conv.status.title(),
            other=other.first_name,
        )
        action = {"type": action_type, "text": text, "associatedEntities": []}
        body = ""
    customer = store.customers.get(conv.customer_id)
    to = [customer.emails[0]["value"]] if kind == "message" and customer and customer.emails else []
    thread = Thread(
        id=ident,
        conversation_id=conv.id,
        type=kind,
        body=body,
        created_at=moment,
        status=conv.status,
        author=author,
        customer_id=conv.customer_id,
        assigned_to=conv.assignee_id,
        to=to,
        action=action,
        source_type=conv.source_type,
        source_via="customer" if author[0] == "customer" else "user",
    )
    if rng.random() < 0.12:
        thread.cc = [f"cc{rng.randrange(999)}@example.org" for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.04:
        thread.bcc = [f"audit{rng.randrange(99)}@example.net"]
    if kind == "message" and rng.random() < 0.5:
        thread.opened_at = moment + rng.randrange(60, DAY)
    if kind in ("customer", "message") and rng.random() < 0.1:
        for _ in range(rng.randint(1, 2)):
            state["attachment"] += 1
            name, mime = rng.choice(corpus.ATTACHMENTS)
            aid = state["attachment"]
            url = f"https://files.example.org/storage/attachment/{aid}/{quote(name)}?id={aid}"
            store.attachments[aid] = Attachment(
                aid, ident, name, mime, rng.randrange(100, 5_000_000), url
            )
            thread.attachment_ids.append(aid)
    store.threads[ident] = thread
    return thread
