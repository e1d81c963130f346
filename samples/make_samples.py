"""Regenerate the sample exports in samples/ from one set of support stories.

Each sample has the shape of its source system's real export (Zendesk's NDJSON tickets with
comments, Freshdesk's ticket CSV with its column labels, Help Scout's Mailbox API 2.0 page,
a one-row-per-message Intercom CSV, this tool's own JSONL, the generic template). Run it from
the repository root: `python samples/make_samples.py`. The output is committed; tests load it.
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")

CUSTOMERS = [
    # first, last, email, phone, company, job title, city, country
    (
        "Ana María",
        "López",
        "ana.lopez@example.com",
        "+34 612 345 678",
        "Café Olé S.L.",
        "Gerente",
        "Sevilla",
        "ES",
    ),
    (
        "Jürgen",
        "Weiß",
        "j.weiss@beispiel.de",
        "+49 30 1234567",
        "Weiß & Söhne GmbH",
        "Einkauf",
        "Berlin",
        "DE",
    ),
    ("太郎", "山田", "taro.yamada@example.jp", "+81 3-1234-5678", "山田商事", "部長", "東京", "JP"),
    (
        "Chloé",
        "Dubois",
        "chloe.dubois@exemple.fr",
        "+33 6 12 34 56 78",
        "Boulangerie Dubois",
        "Gérante",
        "Lyon",
        "FR",
    ),
    (
        "Siobhán",
        "O'Connor",
        "siobhan@oconnor.ie",
        "",
        "O'Connor, Byrne & Co.",
        "CTO",
        "Dublin",
        "IE",
    ),
    (
        "Mark",
        "Morrison",
        "mark@example.org",
        "777-777-777",
        "Example, Inc",
        "Secretary",
        "Los Angeles",
        "US",
    ),
    ("Priya", "Raman", "priya.raman@example.in", "+91 98765 43210", "", "", "Chennai", "IN"),
    (
        "Олег",
        "Петров",
        "oleg.petrov@example.ru",
        "",
        "ООО «Ромашка»",
        "Разработчик",
        "Москва",
        "RU",
    ),
    ("Zoë", "Smith-Jones", "zoe@smith-jones.co.uk", "+44 20 7946 0958", "", "", "London", "GB"),
    ("Kwame", "Mensah", "kwame@example.gh", "", "Mensah Logistics", "Owner", "Accra", "GH"),
    ("Lucky", "Winner", "winner@prize-lottery.biz", "", "", "", "", ""),
]
AGENTS = {  # email -> (first, last); the first six are users of the target sandbox
    "admin@support.example.org": ("John", "Doe"),
    "agent2@support.example.org": ("Amélie", "Poulain"),
    "agent3@support.example.org": ("Kenji", "Sato"),
    "agent4@support.example.org": ("Layla", "Haddad"),
    "agent6@support.example.org": ("Dov", "Ben-David"),
    "agent7@support.example.org": ("Sara", "Lindqvist"),
    "former.agent@support.example.org": ("Tom", "Gone"),  # left the company: not on the target
}
BASE = datetime(2024, 2, 5, 9, 14, 7, tzinfo=UTC)


def story(n, subject, customer, agent, status, channel, tags, messages, **extra):
    return {
        "n": n,
        "subject": subject,
        "customer": customer,
        "agent": agent,
        "status": status,
        "channel": channel,
        "tags": tags,
        "messages": messages,
        **extra,
    }


# messages: (kind, minutes after the first, text) with kind customer | agent | note | system
STORIES = [
    story(
        1,
        "Refund for order #48213 — charged twice",
        0,
        "agent2@support.example.org",
        "closed",
        "email",
        ["refund", "billing"],
        [
            (
                "customer",
                0,
                "Hello,\n\nmy card was charged twice for order #48213 "
                "(2 × 49,90 €).\nCould you refund one of them?\n\nGracias,\nAna",
            ),
            (
                "agent",
                95,
                "Hi Ana,\n\nsorry about that! I refunded the duplicate charge; "
                "it shows in 3–5 business days.\n\nAmélie",
            ),
            ("system", 96, "Amélie Poulain changed status to Closed"),
            ("customer", 1500, "¡Perfecto, muchas gracias!"),
        ],
        closed_after=1502,
    ),
    story(
        2,
        "Can't log in after password reset",
        1,
        "agent3@support.example.org",
        "closed",
        "email",
        ["login"],
        [
            (
                "customer",
                0,
                'After resetting my password the login page says "invalid '
                'token". Browser: Firefox 122.',
            ),
            (
                "note",
                20,
                "Checked the auth logs: token expired after 10 min. Known issue #AUTH-231.",
            ),
            (
                "agent",
                31,
                "Hallo Jürgen, please request a new reset link and use it within "
                "10 minutes. We are fixing the expiry.",
            ),
            ("customer", 60, "Works now, danke!"),
        ],
        closed_after=75,
    ),
    story(
        3,
        "Facture : TVA incorrecte sur la commande 7741",
        3,
        "agent2@support.example.org",
        "pending",
        "email",
        ["billing", "vat"],
        [
            (
                "customer",
                0,
                "Bonjour,\nla facture 7741 applique 20 % de TVA au lieu de "
                "5,5 % (produits alimentaires).\nMerci de la corriger.",
            ),
            (
                "agent",
                180,
                "Bonjour Chloé, je transmets à la comptabilité et reviens vers vous sous 48 h.",
            ),
        ],
    ),
    story(
        4,
        "配送が遅れています (注文番号 55120)",
        2,
        "agent3@support.example.org",
        "active",
        "email",
        ["shipping"],
        [
            (
                "customer",
                0,
                "注文番号 55120 の商品がまだ届きません。\n追跡番号を教えていただけますか？",
            ),
        ],
    ),
    story(
        5,
        'Feature request: export to CSV with "quoted" fields, commas',
        4,
        "agent6@support.example.org",
        "closed",
        "email",
        ["feature-request"],
        [
            (
                "customer",
                0,
                "Could the report export quote fields that contain commas?\n"
                'Example: "O\'Connor, Byrne & Co." is split in two columns.',
            ),
            ("agent", 300, "Thanks Siobhán, logged as FR-1182. We'll let you know."),
        ],
        closed_after=301,
    ),
    story(
        6,
        "Damaged item on arrival",
        5,
        "agent4@support.example.org",
        "closed",
        "email",
        ["returns"],
        [
            (
                "customer",
                0,
                "The box arrived crushed and the mug inside is broken. Photo attached.",
            ),
            (
                "agent",
                42,
                "So sorry, Mark. A replacement ships today; no need to return the broken one.",
            ),
        ],
        closed_after=43,
        attachment=True,
    ),
    story(
        7,
        "Phone call: cancel subscription",
        6,
        "agent7@support.example.org",
        "closed",
        "phone",
        ["cancellation"],
        [
            (
                "agent",
                0,
                "Priya called to cancel her monthly plan at the end of the billing "
                "period. Confirmed by phone.",
            ),
            ("note", 2, "Offered 20 % discount, declined."),
        ],
        closed_after=3,
    ),
    story(
        8,
        "API rate limit: 429 errors since Monday",
        7,
        "agent6@support.example.org",
        "pending",
        "email",
        ["api", "vip"],
        [
            (
                "customer",
                0,
                "Since Monday our integration gets HTTP 429 after ~50 requests/"
                "min. Limits changed?",
            ),
            ("note", 15, "Customer is on Enterprise: limit should be 300/min. Config regression?"),
            (
                "agent",
                64,
                "Hi Oleg, confirmed: your key fell back to the default tier. Fixed; please retry.",
            ),
            ("customer", 200, "Still seeing 429 with Retry-After: 30 on /v2/orders."),
            ("agent", 260, "Thanks, the /v2 endpoints had a separate limit; raised it too."),
        ],
    ),
    story(
        9,
        "GDPR: please delete my data",
        8,
        "admin@support.example.org",
        "closed",
        "email",
        ["gdpr"],
        [
            ("customer", 0, "Under Article 17 GDPR I ask you to erase my personal data."),
            (
                "agent",
                1440,
                "Dear Zoë, your account and data were erased today. This "
                "message is our confirmation.",
            ),
        ],
        closed_after=1441,
    ),
    story(
        10,
        "Where is my parcel?",
        9,
        "agent4@support.example.org",
        "closed",
        "chat",
        ["shipping"],
        [
            ("customer", 0, "hi, parcel 00340434 says delivered but nothing here"),
            (
                "agent",
                1,
                'Hi Kwame! The driver left it at the reception desk, signed by "K. Asante".',
            ),
            ("customer", 3, "found it, thanks 👍"),
        ],
        closed_after=4,
    ),
    story(
        11,
        "Invoice request for Q3 😀",
        0,
        None,
        "active",
        "email",
        ["billing"],
        [
            ("customer", 0, "Could you send all invoices for July–September as one PDF?"),
        ],
    ),
    story(
        12,
        "You won a prize!!! Claim now",
        10,
        None,
        "spam",
        "email",
        [],
        [
            ("customer", 0, "Congratulations!!! Click here to claim your $1,000,000 prize."),
        ],
    ),
    story(
        13,
        "Upgrade to the annual plan",
        5,
        "former.agent@support.example.org",
        "closed",
        "email",
        ["upgrade", "billing"],
        [
            (
                "customer",
                0,
                "We'd like to switch to annual billing. Is the 2-month discount still on?",
            ),
            (
                "agent",
                120,
                "Yes! I've switched you; the prorated credit is on your next invoice.\nTom",
            ),
        ],
        closed_after=121,
    ),
    story(
        14,
        "Two-factor codes not arriving by SMS",
        6,
        "agent7@support.example.org",
        "active",
        "email",
        ["login", "2fa"],
        [
            ("customer", 0, "I don't receive the SMS codes (Airtel, India). Email codes work."),
            ("agent", 33, "Hi Priya, we added Airtel to our SMS routes; please try again."),
            ("customer", 90, "Still nothing after 3 tries :("),
        ],
    ),
]


def created(s) -> datetime:
    return BASE + timedelta(days=9 * (s["n"] - 1), hours=(s["n"] * 5) % 9, minutes=s["n"] * 7)


def at(s, minutes: int) -> datetime:
    return created(s) + timedelta(minutes=minutes)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_html(body: str) -> str:
    paragraphs = body.replace("&", "&amp;").replace("<", "&lt;").split("\n\n")
    return "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in paragraphs)


def cust(s):
    return CUSTOMERS[s["customer"]]


def closed_at(s):
    return at(s, s["closed_after"]) if s["status"] == "closed" and "closed_after" in s else None


def author_email(s, kind):
    if kind == "customer":
        return cust(s)[2]
    return s["agent"] or "admin@support.example.org"


PHOTO_URL = "https://files.example.org/uploads/damaged-box.jpg"


def write(path: Path, text: str, newline: str = "\n", bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.replace("\r\n", "\n").replace("\n", newline)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))


def csv_text(header, rows, crlf=False) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# -- smarticks (this tool's export) ------------------------------------------------------------


def smarticks() -> None:
    lines = []
    thread_id = 100
    for s in STORIES:
        first, last, email = cust(s)[:3]
        threads = []
        for kind, minutes, body in s["messages"]:
            thread_id += 1
            agent = s["agent"] or "admin@support.example.org"
            if kind == "customer":
                author = {
                    "type": "customer",
                    "id": 500 + s["customer"],
                    "email": email,
                    "firstName": first,
                    "lastName": last,
                }
            else:
                a_first, a_last = AGENTS[agent]
                author = {
                    "type": "user",
                    "id": 10 + list(AGENTS).index(agent),
                    "email": agent,
                    "firstName": a_first,
                    "lastName": a_last,
                }
            thread = {
                "id": thread_id,
                "type": {"agent": "message", "system": "lineitem"}.get(kind, kind),
                "body": "" if kind == "system" else to_html(body),
                "createdAt": iso(at(s, minutes)),
                "author": author,
                "to": [email] if kind == "agent" else [],
                "cc": ["accounting@example.com"] if s["n"] == 1 and minutes == 0 else [],
                "bcc": [],
                "status": s["status"],
                "attachments": [],
            }
            if s.get("attachment") and kind == "customer":
                thread["attachments"] = [
                    {
                        "fileName": "damaged-box.jpg",
                        "mimeType": "image/jpeg",
                        "size": 48213,
                        "fileUrl": PHOTO_URL,
                    }
                ]
            threads.append(thread)
        agent = s["agent"]
        record = {
            "id": s["n"],
            "number": 1000 + s["n"],
            "subject": s["subject"],
            "status": s["status"],
            "state": "published",
            "type": s["channel"],
            "mailbox": {"id": 1, "name": "Support", "email": "support@support.example.org"},
            "customer": {
                "id": 500 + s["customer"],
                "email": email,
                "firstName": first,
                "lastName": last,
            },
            "assignee": None
            if agent is None
            else {
                "id": 10 + list(AGENTS).index(agent),
                "email": agent,
                "firstName": AGENTS[agent][0],
                "lastName": AGENTS[agent][1],
            },
            "createdAt": iso(created(s)),
            "updatedAt": iso(at(s, s["messages"][-1][1] + 5)),
            "closedAt": iso(closed_at(s)) if closed_at(s) else None,
            "cc": threads[0]["cc"],
            "bcc": [],
            "tags": s["tags"],
            "customFields": {
                "Priority": ("Low", "Medium", "Hïgh ⚠")[s["n"] % 3],
                **({"Vendor": cust(s)[4]} if cust(s)[4] else {}),
            },
            "threads": threads,
            "deletedAt": None,
        }
        if s["n"] == 13:  # the former agent is not on the target: keep it unassigned here
            record["assignee"] = None
            for thread in record["threads"]:
                if thread["author"]["email"] == "former.agent@support.example.org":
                    thread["author"] = {
                        "type": "user",
                        "id": 10,
                        "email": "admin@support.example.org",
                        "firstName": "John",
                        "lastName": "Doe",
                    }
        lines.append(record)
    trashed = json.loads(json.dumps(lines[3]))
    trashed.update(
        id=15,
        number=1015,
        subject="Test, please ignore",
        state="deleted",
        deletedAt=None,
        tags=[],
        customFields={},
    )
    lines.append(trashed)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines)
    write(HERE / "smarticks" / "conversations.jsonl", text)
    customers = []
    for i, (first, last, email, phone, company, title, city, country) in enumerate(CUSTOMERS):
        emails = [{"value": email, "type": "work"}]
        if i == 5:
            emails.append({"value": "mark.morrison@example.net", "type": "home"})
        phones = [{"value": phone, "type": "work"}] if phone else []
        if i == 0:
            phones.append({"value": "+34 955 000 111", "type": "home"})
        customers.append(
            {  # as `etl export --format jsonl` writes a customer
                "id": 500 + i,
                "name": f"{first} {last}",
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": phone or None,
                "emails": emails,
                "company": company or None,
                "job_title": title or None,
                "address": None,
                "city": city or None,
                "state": None,
                "zip": None,
                "country": country or None,
                "notes": None,
                "created_at": iso(BASE - timedelta(days=400 - i)),
                "updated_at": iso(BASE),
                "phones": phones,
                "socialProfiles": [{"value": "@anamlopez", "type": "twitter"}] if i == 0 else [],
                "websites": [{"value": "https://cafeole.example.es"}] if i == 0 else [],
                "customerFields": {"Plan": "Pro"} if i % 2 else {},
            }
        )
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in customers)
    write(HERE / "smarticks" / "customers.jsonl", text)


# -- zendesk -------------------------------------------------------------------------------------


def zendesk() -> None:
    users = {}
    for i, (first, last, email, phone, *_rest) in enumerate(CUSTOMERS):
        users[email] = {
            "id": 9000 + i,
            "name": f"{first} {last}",
            "email": email,
            "phone": phone or None,
            "role": "end-user",
            "notes": "Prefers email" if i == 1 else "",
            "user_fields": {"plan": "Pro" if i % 2 else "Free"},
            "time_zone": "UTC",
            "active": True,
        }
    for i, (email, (first, last)) in enumerate(AGENTS.items()):
        users[email] = {
            "id": 360000 + i,
            "name": f"{first} {last}",
            "email": email,
            "role": "admin" if i == 0 else "agent",
            "time_zone": "Paris",
            "active": email != "former.agent@support.example.org",
        }
    users["k.asante@example.gh"] = {
        "id": 9100,
        "name": "Kofi Asante",
        "email": "k.asante@example.gh",
        "role": "end-user",
    }
    first, last, phone = CHAT_ONLY  # an end-user known by phone only (no tickets here)
    users[phone] = {
        "id": 9301,
        "name": f"{first} {last}",
        "email": None,
        "phone": phone,
        "role": "end-user",
        "user_fields": {"plan": "Free"},
    }
    tickets = []
    status_of = {"closed": "solved", "pending": "pending", "active": "open", "spam": "deleted"}
    for s in STORIES:
        requester = users[cust(s)[2]]
        comments = []
        for k, (kind, minutes, body) in enumerate(s["messages"]):
            if kind == "system":
                continue  # Zendesk keeps system events in audits, not comments
            author = users[author_email(s, kind)]
            comment = {
                "id": 21000000 + s["n"] * 100 + k,
                "type": "Comment",
                "author_id": author["id"],
                "body": body,
                "html_body": f'<div class="zd-comment" dir="auto">{to_html(body)}</div>',
                "plain_body": body,
                "public": kind != "note",
                "attachments": [],
                "audit_id": 31000000 + s["n"] * 100 + k,
                "via": {
                    "channel": "email" if kind == "customer" else "web",
                    "source": {"from": {}, "to": {}, "rel": None},
                },
                "created_at": iso(at(s, minutes)),
            }
            if s.get("attachment") and kind == "customer":
                comment["attachments"] = [
                    {
                        "url": "https://acme.zendesk.com/api/v2/attachments/4401.json",
                        "id": 4401,
                        "file_name": "damaged-box.jpg",
                        "content_url": PHOTO_URL,
                        "content_type": "image/jpeg",
                        "size": 48213,
                        "width": 800,
                        "height": 600,
                        "inline": False,
                        "deleted": False,
                        "thumbnails": [],
                    }
                ]
            comments.append(comment)
        if s["n"] == 10:  # a colleague of the requester answers too
            comments.insert(
                2,
                {
                    "id": 21001099,
                    "type": "Comment",
                    "author_id": 9100,
                    "body": "I signed for it, it's at the front desk.",
                    "html_body": "<p>I signed for it, it's at the front desk.</p>",
                    "plain_body": "I signed for it, it's at the front desk.",
                    "public": True,
                    "attachments": [],
                    "created_at": iso(at(s, 2)),
                    "via": {"channel": "email"},
                },
            )
        status = status_of[s["status"]]
        if s["n"] == 9:
            status = "closed"  # solved tickets close automatically after a few days
        if s["n"] == 3:
            status = "hold"
        agent = users.get(s["agent"]) if s["agent"] else None
        ticket = {
            "url": f"https://acme.zendesk.com/api/v2/tickets/{s['n'] + 4000}.json",
            "id": s["n"] + 4000,
            "external_id": None,
            "via": {
                "channel": {"chat": "chat", "phone": "voice"}.get(s["channel"], "email"),
                "source": {"from": {}, "to": {}, "rel": None},
            },
            "created_at": iso(created(s)),
            "updated_at": iso(at(s, s["messages"][-1][1] + 5)),
            "type": "incident" if s["n"] % 2 else "question",
            "subject": s["subject"],
            "raw_subject": s["subject"],
            "description": s["messages"][0][2],
            "priority": ("low", "normal", "high")[s["n"] % 3],
            "status": status,
            "recipient": "support@acme.zendesk.com",
            "requester_id": requester["id"],
            "submitter_id": requester["id"],
            "assignee_id": agent["id"] if agent else None,
            "organization_id": None,
            "group_id": 360001,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": [t.replace("-", "_") for t in s["tags"]],
            "custom_fields": [{"id": 360011, "value": None}],
            "satisfaction_rating": {"score": "unoffered"},
            "brand_id": 360002,
            "allow_attachments": True,
            "generated_timestamp": int(at(s, 6000).timestamp()),
            "metric_set": {"solved_at": iso(closed_at(s)) if closed_at(s) else None},
            "comments": comments,
        }
        tickets.append(ticket)
    text = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tickets)
    write(HERE / "zendesk" / "tickets.json", text)
    text = "".join(json.dumps(u, ensure_ascii=False) + "\n" for u in users.values())
    write(HERE / "zendesk" / "users.json", text)


# -- freshdesk ----------------------------------------------------------------------------------


def local(moment: datetime | None) -> str:
    return moment.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def freshdesk() -> None:
    header = [
        "Ticket ID",
        "Subject",
        "Description",
        "Status",
        "Priority",
        "Source",
        "Type",
        "Agent",
        "Group",
        "Created time",
        "Due by Time",
        "Resolved time",
        "Closed time",
        "Last update time",
        "Initial response time",
        "Time tracked",
        "First response time (in hrs)",
        "Resolution time (in hrs)",
        "Agent interactions",
        "Customer interactions",
        "Resolution status",
        "First response status",
        "Tags",
        "Survey results",
        "Product",
        "Full name",
        "Contact ID",
        "Email",
        "Work phone",
        "Company Name",
    ]
    status_of = {"closed": "Closed", "pending": "Pending", "active": "Open"}
    rows = []
    for s in STORIES:
        if s["status"] == "spam":
            continue  # Freshdesk's export leaves spam out
        first, last, email, phone, company = cust(s)[:5]
        status = status_of[s["status"]]
        if s["n"] == 1:
            status = "Resolved"
        if s["n"] == 8:
            status = "Waiting on Customer"
        agent = s["agent"]
        source = {"chat": "Chat", "phone": "Phone"}.get(s["channel"], "Email")
        if s["n"] == 5:
            source = "Portal"
        closed = closed_at(s)
        rows.append(
            [
                s["n"] + 7000,
                s["subject"],
                s["messages"][0][2],
                status,
                ("Low", "Medium", "High", "Urgent")[s["n"] % 4],
                source,
                "Question" if s["n"] % 2 else "Problem",
                " ".join(AGENTS[agent]) if agent else "",
                "Customer Support",
                local(created(s)),
                local(at(s, 2880)),
                local(closed) if status == "Resolved" else "",
                local(closed) if status == "Closed" else "",
                local(at(s, s["messages"][-1][1])),
                local(at(s, 30)),
                "00:15",
                "0.5",
                "1.2",
                len(s["messages"]) - 1,
                1,
                "Within SLA",
                "Within SLA",
                ",".join(s["tags"]),
                "",
                "",
                f"{first} {last}",
                48000000000 + s["customer"],
                email,
                phone,
                company,
            ]
        )
    write(HERE / "freshdesk" / "tickets.csv", csv_text(header, rows))
    agents = [[f"{f} {la}", e, "Agent", "Full time"] for e, (f, la) in AGENTS.items()]
    write(
        HERE / "freshdesk" / "agents.csv", csv_text(["Name", "Email", "Role", "Agent type"], agents)
    )


# -- help scout ---------------------------------------------------------------------------------


def helpscout() -> None:
    conversations = []
    for s in STORIES[:12]:
        first, last, email = cust(s)[:3]
        threads = []
        for k, (kind, minutes, body) in enumerate(s["messages"]):
            agent = s["agent"] or "admin@support.example.org"
            if kind == "customer":
                by = {
                    "id": 700 + s["customer"],
                    "type": "customer",
                    "first": first,
                    "last": last,
                    "email": email,
                }
            else:
                by = {
                    "id": 40 + list(AGENTS).index(agent),
                    "type": "user",
                    "first": AGENTS[agent][0],
                    "last": AGENTS[agent][1],
                    "email": agent,
                }
            kind_name = {"agent": "message", "system": "lineitem"}.get(kind, kind)
            if s["channel"] == "phone" and kind == "agent":
                kind_name = "phone"
            if s["channel"] == "chat" and kind in ("agent", "customer"):
                kind_name = "chat"
            thread = {
                "id": 880000 + s["n"] * 10 + k,
                "type": kind_name,
                "status": s["status"] if s["status"] != "spam" else "closed",
                "state": "published",
                "action": {"type": "manual-workflow", "text": body} if kind == "system" else None,
                "body": None if kind == "system" else to_html(body),
                "source": {"type": "email", "via": "customer" if kind == "customer" else "user"},
                "customer": {
                    "id": 700 + s["customer"],
                    "first": first,
                    "last": last,
                    "email": email,
                },
                "createdBy": by,
                "assignedTo": None,
                "savedReplyId": 0,
                "to": [email] if kind == "agent" else [],
                "cc": [],
                "bcc": [],
                "createdAt": iso(at(s, minutes)),
                "openedAt": iso(at(s, minutes + 30)) if kind == "agent" else None,
                "_embedded": {"attachments": []},
            }
            if s.get("attachment") and kind == "customer":
                thread["_embedded"]["attachments"] = [
                    {
                        "id": 5501,
                        "filename": "damaged-box.jpg",
                        "mimeType": "image/jpeg",
                        "width": 800,
                        "height": 600,
                        "size": 48213,
                        "_links": {
                            "data": {
                                "href": "https://api.helpscout.net/v2/conversations/"
                                "1/attachments/5501/data"
                            },
                            "web": {"href": PHOTO_URL},
                        },
                    }
                ]
            threads.append(thread)
        threads.reverse()  # the API lists newest first
        agent = s["agent"] if s["agent"] != "former.agent@support.example.org" else None
        conversations.append(
            {
                "id": 2300000 + s["n"],
                "number": 4300 + s["n"],
                "threads": len(threads),
                "type": s["channel"],
                "folderId": 1234,
                "status": s["status"],
                "state": "published",
                "subject": s["subject"],
                "preview": s["messages"][-1][2][:80],
                "mailboxId": 85,
                "assignee": None
                if agent is None
                else {
                    "id": 40 + list(AGENTS).index(agent),
                    "type": "user",
                    "first": AGENTS[agent][0],
                    "last": AGENTS[agent][1],
                    "email": agent,
                },
                "createdBy": threads[-1]["createdBy"],
                "createdAt": iso(created(s)),
                "closedBy": 0,
                "closedAt": iso(closed_at(s)) if closed_at(s) else None,
                "userUpdatedAt": iso(at(s, s["messages"][-1][1])),
                "customerWaitingSince": {"time": iso(created(s)), "friendly": "Feb 5"},
                "source": {"type": "email", "via": "customer"},
                "tags": [
                    {"id": 100 + zlib.crc32(t.encode()) % 900, "color": "#929499", "tag": t}
                    for t in s["tags"]
                ],
                "cc": [],
                "bcc": [],
                "primaryCustomer": {
                    "id": 700 + s["customer"],
                    "type": "customer",
                    "first": first,
                    "last": last,
                    "email": email,
                },
                "customFields": [
                    {
                        "id": 8,
                        "name": "Priority",
                        "value": str(s["n"] % 2 + 1),
                        "text": ("Low", "Medium")[s["n"] % 2],
                    },
                ],
                "_embedded": {"threads": threads},
            }
        )
    page = {
        "_embedded": {"conversations": conversations},
        "_links": {"self": {"href": "https://api.helpscout.net/v2/conversations?page=1"}},
        "page": {"size": 50, "totalElements": len(conversations), "totalPages": 1, "number": 1},
    }
    write(
        HERE / "helpscout" / "conversations.json",
        json.dumps(page, ensure_ascii=False, indent=2) + "\n",
    )


# -- intercom -----------------------------------------------------------------------------------


def intercom() -> None:
    header = [
        "conversation_id",
        "conversation_created_at",
        "conversation_state",
        "title",
        "last_closed_at",
        "user_email",
        "user_name",
        "assignee_email",
        "tags",
        "part_id",
        "part_type",
        "author_type",
        "author_email",
        "author_name",
        "body",
        "part_created_at",
        "attachment_urls",
    ]
    rows = []
    for s in STORIES:
        if s["channel"] == "phone" or s["status"] == "spam":
            continue
        first, last, email = cust(s)[:3]
        state = {"active": "open", "pending": "snoozed", "closed": "closed"}[s["status"]]
        cid = f"{215467000000 + s['n']:d}"
        common = [
            cid,
            int(created(s).timestamp()),
            state,
            s["subject"] if s["n"] % 3 else "",  # Intercom titles are often empty
            int(closed_at(s).timestamp()) if closed_at(s) else "",
            email,
            f"{first} {last}",
            s["agent"] or "",
            " | ".join(s["tags"]),
        ]
        parts = []
        for k, (kind, minutes, body) in enumerate(s["messages"]):
            if kind == "system":
                continue
            agent = s["agent"] or "admin@support.example.org"
            part_type = "note" if kind == "note" else "comment"
            if k == 0:
                part_type = "conversation"
            html_body = to_html(body)
            who = (
                ("user", email, f"{first} {last}")
                if kind == "customer"
                else ("admin", agent, " ".join(AGENTS[agent]))
            )
            urls = PHOTO_URL if s.get("attachment") and kind == "customer" else ""
            parts.append(
                [f"{cid}-{k}", part_type, *who, html_body, int(at(s, minutes).timestamp()), urls]
            )
            if k == 0 and s["agent"]:
                parts.append(
                    [
                        f"{cid}-a",
                        "assignment",
                        "bot",
                        "operator@intercom.io",
                        "Operator",
                        "",
                        int(at(s, minutes).timestamp()) + 1,
                        "",
                    ]
                )
        if s["n"] == 1:
            parts.insert(
                1,
                [
                    f"{cid}-b",
                    "comment",
                    "bot",
                    "operator@intercom.io",
                    "Operator",
                    "<p>The team typically replies in a few hours.</p>",
                    int(created(s).timestamp()) + 2,
                    "",
                ],
            )
        if closed_at(s):
            parts.append(
                [
                    f"{cid}-c",
                    "close",
                    "admin",
                    s["agent"],
                    "",
                    "",
                    int(closed_at(s).timestamp()),
                    "",
                ]
            )
        rows += [common + p for p in parts]
    rows.sort(key=lambda r: (r[0], r[15]))
    write(HERE / "intercom" / "messages.csv", csv_text(header, rows))


# -- generic ------------------------------------------------------------------------------------


def paris(moment: datetime | None) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


GENERIC_HEADER = [
    "conversation_id",
    "subject",
    "customer_email",
    "customer_first_name",
    "customer_last_name",
    "status",
    "type",
    "created_at",
    "closed_at",
    "assignee_email",
    "tags",
    "Priority",
    "message_type",
    "author_email",
    "message_created_at",
    "body",
    "attachments",
]


def generic() -> None:
    rows = []
    for s in STORIES:
        first, last, email = cust(s)[:3]
        head = True
        for kind, minutes, body in s["messages"]:
            if kind == "system":
                continue
            conv = [
                f"T-{s['n']:03d}",
                s["subject"],
                email,
                first,
                last,
                s["status"],
                s["channel"],
                paris(created(s)),
                paris(closed_at(s)),
                s["agent"] or "",
                ", ".join(s["tags"]),
                ("Low", "Medium", "")[s["n"] % 3],
            ]
            if not head:  # a person fills the conversation columns once, on the first row
                conv = [conv[0]] + [""] * (len(conv) - 1)
            head = False
            attachments = ""
            if s.get("attachment") and kind == "customer":
                attachments = f"files/damaged-box.jpg; {PHOTO_URL}"
            rows.append(
                conv
                + [
                    {"agent": "reply"}.get(kind, kind),
                    author_email(s, kind) if kind != "customer" else "",
                    paris(at(s, minutes)),
                    body,
                    attachments,
                ]
            )
    # Excel's "CSV UTF-8": a BOM, CRLF line ends, newlines inside quoted cells.
    write(
        HERE / "generic" / "conversations.csv", csv_text(GENERIC_HEADER, rows, crlf=True), bom=True
    )
    header = [
        "email",
        "first_name",
        "last_name",
        "phone",
        "company",
        "job_title",
        "city",
        "country",
        "notes",
    ]
    rows = [
        [
            c[2],
            c[0],
            c[1],
            c[3],
            c[4],
            c[5],
            c[6],
            c[7],
            "VIP – call before shipping\nprefers Spanish" if i == 0 else "",
        ]
        for i, c in enumerate(CUSTOMERS[:10])
    ]
    write(HERE / "generic" / "customers.csv", csv_text(header, rows, crlf=True), bom=True)
    (HERE / "generic" / "files").mkdir(parents=True, exist_ok=True)
    # A tiny valid JPEG-like file is enough: the bytes are sent base64-encoded as they are.
    (HERE / "generic" / "files" / "damaged-box.jpg").write_bytes(
        bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")
    )


# -- customers from each vendor (etl load customers FILE --mapping NAME) ------------------------

CHAT_ONLY = ("Chen", "Wei", "+86 10 5555 0101")  # a phone/chat customer: no email at all


def vendor_customers() -> None:
    """Each vendor's user/contact export: every phone, profile and field it has, one agent
    (skipped), one customer without an email."""
    people = [c for c in CUSTOMERS if c[2] != "winner@prize-lottery.biz"]
    mobile = "+1 555-01{:02d}"
    # Zendesk: users.json (zendesk() writes it), end-users and agents, phones, user fields.
    first, last, phone = CHAT_ONLY
    # Freshdesk: the contacts CSV export, with its column labels.
    header = [
        "Contact ID",
        "Full name",
        "Email",
        "Work phone",
        "Mobile phone",
        "Twitter ID",
        "Company",
        "Title",
        "Address",
        "Description",
    ]
    rows = [
        [
            7000 + i,
            f"{c[0]} {c[1]}",
            c[2],
            c[3],
            mobile.format(i) if i % 3 == 0 else "",
            f"@{c[1].lower()}" if i == 2 else "",
            c[4],
            c[5],
            c[6],
            "VIP" if i == 0 else "",
        ]
        for i, c in enumerate(people)
    ]
    rows.append([7099, f"{first} {last}", "", phone, "", "", "", "", "", "chat only"])
    write(HERE / "freshdesk" / "contacts.csv", csv_text(header, rows))

    # Help Scout: a Mailbox API 2.0 customers page with embedded entries.
    customers = []
    for i, (first_name, last_name, email, phone_no, company, title, city, country) in enumerate(
        people
    ):
        customers.append(
            {
                "id": 5000 + i,
                "firstName": first_name,
                "lastName": last_name,
                "jobTitle": title or None,
                "organization": company or None,
                "background": "Met at the trade fair" if i == 3 else None,
                "_embedded": {
                    "emails": [{"id": 1, "value": email, "type": "work"}],
                    "phones": [{"id": 1, "value": phone_no, "type": "work"}] if phone_no else [],
                    "social_profiles": (
                        [{"id": 1, "type": "twitter", "value": f"https://twitter.com/u{i}"}]
                        if i in (0, 4)
                        else []
                    ),
                    "websites": [{"id": 1, "value": f"https://www.example{i}.org"}]
                    if i == 5
                    else [],
                    "address": {
                        "city": city,
                        "state": None,
                        "postalCode": None,
                        "country": country or None,
                        "lines": [],
                    },
                },
            }
        )
    customers.append(
        {
            "id": 5099,
            "firstName": first,
            "lastName": last,
            "_embedded": {
                "emails": [],
                "phones": [{"id": 1, "value": phone, "type": "mobile"}],
                "social_profiles": [],
                "websites": [],
                "address": None,
            },
        }
    )
    page = {
        "_embedded": {"customers": customers},
        "page": {"size": 50, "totalElements": len(customers), "totalPages": 1, "number": 1},
    }
    write(HERE / "helpscout" / "customers.json", json.dumps(page, ensure_ascii=False, indent=1))

    # Intercom: the contacts CSV export (users and leads), a custom attribute as a column.
    header = [
        "id",
        "role",
        "name",
        "email",
        "phone",
        "company_name",
        "location_city",
        "location_country_code",
        "plan",
    ]
    rows = [
        [
            f"6a{i:04x}",
            "user" if i % 2 else "lead",
            f"{c[0]} {c[1]}",
            c[2],
            c[3],
            c[4],
            c[6],
            c[7],
            "Pro" if i % 2 else "",
        ]
        for i, c in enumerate(people)
    ]
    rows.append(["6a00ff", "lead", f"{first} {last}", "", phone, "", "", "", ""])
    write(HERE / "intercom" / "contacts.csv", csv_text(header, rows))


if __name__ == "__main__":
    smarticks()
    zendesk()
    freshdesk()
    helpscout()
    intercom()
    generic()
    vendor_customers()
    print("samples written under", HERE)
