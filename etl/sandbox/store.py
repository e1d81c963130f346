"""The in-memory helpdesk: records, indexes and every mutation, behind one lock."""

import hashlib
import json
import threading
import time
from collections import Counter, defaultdict
from urllib.parse import quote

from . import render
from .index import SortedIndex
from .models import (
    FOLDER_ASSIGNED,
    FOLDER_CLOSED,
    FOLDER_DELETED,
    FOLDER_DRAFTS,
    FOLDER_MINE,
    FOLDER_SPAM,
    FOLDER_UNASSIGNED,
    Attachment,
    Conversation,
    Customer,
    Tag,
    Thread,
    User,
    Webhook,
)
from .text import digits, preview_of

CUSTOMER_KEYS = {
    "firstName": "first_name",
    "lastName": "last_name",
    "company": "company",
    "jobTitle": "job_title",
    "photoType": "photo_type",
    "photoUrl": "photo_url",
    "notes": "notes",
}
EMBED_ORDER = ("threads", "timelogs", "tags")


def _system_clock() -> int:
    return int(time.time())


def _entries(values, with_type=True) -> list:
    """Normalise `[{"value", "type"}]` or `["value"]` lists to entries with list-index ids."""
    out = []
    for value in values or ():
        if isinstance(value, dict):
            entry = {"id": len(out), "value": value.get("value")}
            if with_type:
                entry["type"] = value.get("type")
        else:
            entry = {"id": len(out), "value": value}
            if with_type:
                entry["type"] = None
        out.append(entry)
    return out


class Store:
    """All sandbox data. Every public method takes `lock`; seeding fills the maps directly."""

    def __init__(self, clock=None):
        self.lock = threading.RLock()
        self.clock = clock or _system_clock
        self.base_url = ""
        self.mailboxes, self.users, self.folders = {}, {}, {}
        self.conv_fields, self.cust_fields = {}, {}
        self.tags, self.tag_by_name = {}, {}
        self.customers, self.email_index = {}, {}
        self.conversations, self.threads, self.timelogs = {}, {}, {}
        self.attachments, self.webhooks = {}, {}
        self.conv_updated, self.conv_created = SortedIndex(), SortedIndex()
        self.cust_updated, self.cust_created = SortedIndex(), SortedIndex()
        self.customer_convs = defaultdict(set)
        self.folder_lookup = {}
        self._mailbox_fields = {}
        self._last_ids = defaultdict(int)
        self.last_number = 0
        self._conv_cache, self._cust_cache = {}, {}
        # Folder counts per mailbox, and what each conversation was counted as (see
        # folder_counts): counting walked every conversation, 15 ms a request at 50,000.
        self._folder_counts: dict[int, tuple[Counter, Counter]] = {}
        self._counted_as: dict[int, tuple] = {}
        self.notifications_sent = 0
        self.imported_creates = 0
        self.imported_threads = 0

    # ----- plumbing -------------------------------------------------------------------

    def now(self) -> int:
        """The clock, in whole seconds."""
        return int(self.clock())

    def next_id(self, kind: str) -> int:
        """The next id of a kind (ids are per kind, from 1)."""
        self._last_ids[kind] += 1
        return self._last_ids[kind]

    def reindex(self) -> None:
        """Rebuild every derived index from the maps (after seeding)."""
        with self.lock:
            self._folder_counts.clear()
            self.conv_updated = SortedIndex(
                (c.updated_at, c.id) for c in self.conversations.values()
            )
            self.conv_created = SortedIndex(
                (c.created_at, c.id) for c in self.conversations.values()
            )
            self.cust_updated = SortedIndex((c.updated_at, c.id) for c in self.customers.values())
            self.cust_created = SortedIndex((c.created_at, c.id) for c in self.customers.values())
            self.email_index = {
                e["value"].casefold(): c.id for c in self.customers.values() for e in c.emails
            }
            self.tag_by_name = {t.name.casefold(): t.id for t in self.tags.values()}
            self.folder_lookup = {
                (f.mailbox_id, f.type, f.user_id): f.id for f in self.folders.values()
            }
            self.index_definitions()
            self.customer_convs = defaultdict(set)
            counts = defaultdict(int)
            for conv in self.conversations.values():
                self._link_customers(conv)
                for tag_id in conv.tag_ids:
                    counts[tag_id] += 1
                conv.folder_id = self.folder_for(conv)
            for tag in self.tags.values():
                tag.counter = counts[tag.id]
            self.last_number = max((c.number for c in self.conversations.values()), default=0)
            for kind, table in (
                ("mailbox", self.mailboxes),
                ("user", self.users),
                ("folder", self.folders),
                ("field", {**self.conv_fields, **self.cust_fields}),
                ("tag", self.tags),
                ("customer", self.customers),
                ("conversation", self.conversations),
                ("thread", self.threads),
                ("timelog", self.timelogs),
                ("attachment", self.attachments),
            ):
                self._last_ids[kind] = max(table, default=0)
            self._last_ids["email"] = max(
                (e["id"] for c in self.customers.values() for e in c.emails), default=0
            )
            self._conv_cache.clear()
            self._cust_cache.clear()

    def index_definitions(self) -> None:
        """Group custom field definitions by mailbox, in display order."""
        self._mailbox_fields = {}
        for definition in sorted(self.conv_fields.values(), key=lambda d: (d.sort_order, d.id)):
            self._mailbox_fields.setdefault(definition.mailbox_id, []).append(definition)

    def _link_customers(self, conv) -> None:
        if conv.customer_id is not None:
            self.customer_convs[conv.customer_id].add(conv.id)
        for thread_id in conv.thread_ids:
            kind, ident = self.threads[thread_id].author
            if kind == "customer":
                self.customer_convs[ident].add(conv.id)

    def mailbox_fields(self, mailbox_id: int) -> list:
        """A mailbox's custom field definitions in display order."""
        return self._mailbox_fields.get(mailbox_id, [])

    def customer_field_defs(self) -> list:
        """Customer field definitions in display order."""
        return sorted(self.cust_fields.values(), key=lambda d: (d.sort_order, d.id))

    def folder_for(self, conv) -> int:
        """The folder a conversation sits in, from its state, status and assignee."""
        if conv.state == "deleted":
            kind, user = FOLDER_DELETED, None
        elif conv.state == "draft":
            kind, user = FOLDER_DRAFTS, None
        elif conv.status == "closed":
            kind, user = FOLDER_CLOSED, None
        elif conv.status == "spam":
            kind, user = FOLDER_SPAM, None
        elif conv.assignee_id is None:
            kind, user = FOLDER_UNASSIGNED, None
        else:
            kind, user = FOLDER_MINE, conv.assignee_id
        found = self.folder_lookup.get((conv.mailbox_id, kind, user))
        if found is None:
            found = self.folder_lookup.get((conv.mailbox_id, FOLDER_ASSIGNED, None), 0)
        return found

    def refresh_derived(self, conv) -> None:
        """Recompute thread order, preview, waiting-since and folder after a change."""
        threads = self.threads
        conv.thread_ids.sort(key=lambda t: (threads[t].created_at, t), reverse=True)
        replies = [
            threads[t] for t in conv.thread_ids if threads[t].type in ("customer", "message")
        ]
        newest = (
            replies[0] if replies else (threads[conv.thread_ids[0]] if conv.thread_ids else None)
        )
        conv.preview = preview_of(newest.body) if newest else ""
        if replies:
            conv.waiting_since = replies[0].created_at
            conv.latest_reply_from = "customer" if replies[0].type == "customer" else "user"
        else:
            conv.waiting_since, conv.latest_reply_from = None, None
        conv.folder_id = self.folder_for(conv)
        self._recount_if_moved(conv)

    def _changed(self, conv, now: int | None = None) -> None:
        """Set updatedAt to now, keep the index in order, drop the cached JSON and counts."""
        now = self.now() if now is None else now
        self.conv_updated.move(conv.updated_at, now, conv.id)
        conv.updated_at = now
        self._conv_cache.pop(conv.id, None)
        self._recount_if_moved(conv)

    def _recount_if_moved(self, conv) -> None:
        """Forget the folder counts if this conversation no longer counts as it did."""
        if self._folder_counts and self._counted_as.get(conv.id) != _counted_key(conv):
            self._folder_counts.clear()

    def _customer_changed(self, customer, now: int | None = None) -> None:
        now = self.now() if now is None else now
        self.cust_updated.move(customer.updated_at, now, customer.id)
        customer.updated_at = now
        self._cust_cache.pop(customer.id, None)
        for conv_id in self.customer_convs.get(customer.id, ()):
            self._conv_cache.pop(conv_id, None)

    def _conv(self, conv_id: int):
        conv = self.conversations.get(conv_id)
        if conv is None:
            raise KeyError(f"conversation {conv_id} not found")
        return conv

    # ----- reads ----------------------------------------------------------------------

    def folder_counts(self, mailbox_id: int) -> tuple[Counter, Counter]:
        """Conversations per folder id in a mailbox: all of them, and the active ones.

        Counted once for every mailbox and kept until a conversation is created, deleted or
        changes mailbox, folder or status; a retag or a new field value keeps them.
        """
        with self.lock:
            if not self._folder_counts:
                self._counted_as = {}
                for conv in self.conversations.values():
                    mailbox, folder, status = self._counted_as[conv.id] = _counted_key(conv)
                    totals, active = self._folder_counts.setdefault(mailbox, (Counter(), Counter()))
                    totals[folder] += 1
                    active[folder] += status == "active"
            return self._folder_counts.get(mailbox_id) or (Counter(), Counter())

    def count(self, kind: str) -> int:
        """How many records of a kind: conversations, threads, customers, users, ..."""
        tables = {
            "conversations": self.conversations,
            "threads": self.threads,
            "customers": self.customers,
            "users": self.users,
            "mailboxes": self.mailboxes,
            "tags": self.tags,
            "timelogs": self.timelogs,
            "attachments": self.attachments,
            "webhooks": self.webhooks,
            "folders": self.folders,
            "custom_fields": self.conv_fields,
            "customer_fields": self.cust_fields,
        }
        with self.lock:
            return len(tables[kind])

    def conversation_ids(self) -> list[int]:
        """Every conversation id (any status or state), ascending."""
        with self.lock:
            return sorted(self.conversations)

    def customer_ids(self) -> list[int]:
        """Every customer id, ascending."""
        with self.lock:
            return sorted(self.customers)

    def conversation_json(self, conv_id: int, embed=("threads",), in_list=False) -> str:
        """A conversation's encoded JSON, cached until it changes."""
        key = (in_list, tuple(e for e in EMBED_ORDER if e in embed))
        with self.lock:
            cached = self._conv_cache.get(conv_id)
            if cached is None:
                cached = self._conv_cache[conv_id] = {}
            text = cached.get(key)
            if text is None:
                conv = self._conv(conv_id)
                doc = render.conversation(self, conv, key[1], in_list)
                text = cached[key] = render.to_json(doc)
            return text

    def customer_json(self, customer_id: int) -> str:
        """A customer's encoded JSON, cached until it changes."""
        with self.lock:
            text = self._cust_cache.get(customer_id)
            if text is None:
                customer = self.customers[customer_id]
                text = self._cust_cache[customer_id] = render.to_json(
                    render.customer(self, customer)
                )
            return text

    def get_conversation(self, conv_id: int, embed=("threads",)) -> dict | None:
        """A conversation as the API shows it (threads embedded), or None if missing."""
        with self.lock:
            if conv_id not in self.conversations:
                return None
            return json.loads(self.conversation_json(conv_id, embed))

    def get_customer(self, customer_id: int) -> dict | None:
        """A customer as the API shows it, or None if missing."""
        with self.lock:
            if customer_id not in self.customers:
                return None
            return json.loads(self.customer_json(customer_id))

    def find_customer(self, email: str) -> int | None:
        """The id of the customer owning an email (case-insensitive)."""
        with self.lock:
            return self.email_index.get(email.casefold())

    def customers_with_phone(self, phone: str) -> set[int]:
        """Ids of customers having a phone number (digits compared)."""
        wanted = digits(phone)
        with self.lock:
            return {
                c.id
                for c in self.customers.values()
                if any(digits(p["value"]) == wanted for p in c.phones)
            }

    # ----- customers ------------------------------------------------------------------

    def create_customer(self, data: dict, now: int | None = None) -> int:
        """Create a customer from (validated) API fields; emails already taken are skipped."""
        with self.lock:
            now = self.now() if now is None else now
            customer = Customer(self.next_id("customer"), None, None, now, now)
            self._apply_customer(customer, data)
            self.customers[customer.id] = customer
            self.cust_updated.add(now, customer.id)
            self.cust_created.add(now, customer.id)
            return customer.id

    def _apply_customer(self, customer, data: dict) -> None:
        for key, value in data.items():
            if key in CUSTOMER_KEYS:
                setattr(customer, CUSTOMER_KEYS[key], value)
            elif key == "address":
                customer.address = dict(value) if value else None
            elif key == "emails":
                self._set_emails(customer, value or [], replace=True)
            elif key == "emails_add" and "emails" not in data:
                self._set_emails(customer, value or [], replace=False)
            elif key == "phones":
                customer.phones = _entries(value)
            elif key == "phone" and value and "phones" not in data:
                if not any(digits(p["value"]) == digits(value) for p in customer.phones):
                    customer.phones.append(
                        {"id": len(customer.phones), "value": value, "type": "work"}
                    )
            elif key == "socialProfiles":
                customer.social_profiles = _entries(value)
            elif key == "websites":
                customer.websites = _entries(value, with_type=False)

    def _set_emails(self, customer, values, replace: bool) -> None:
        if replace:
            for entry in customer.emails:
                self.email_index.pop(entry["value"].casefold(), None)
            customer.emails = []
        for value in values:
            email, kind = (
                (value.get("value"), value.get("type"))
                if isinstance(value, dict)
                else (value, "work")
            )
            owner = self.email_index.get(email.casefold())
            if owner is not None:
                continue
            customer.emails.append(
                {"id": self.next_id("email"), "value": email, "type": kind or "work"}
            )
            self.email_index[email.casefold()] = customer.id

    def email_owner_conflicts(self, customer_id: int | None, emails) -> list[str]:
        """Emails in the list that belong to a customer other than `customer_id`."""
        with self.lock:
            taken = []
            for email in emails:
                owner = self.email_index.get(email.casefold())
                if owner is not None and owner != customer_id:
                    taken.append(email)
            return taken

    def update_customer(self, customer_id: int, **changes) -> None:
        """Apply API-named customer changes (firstName, emails, phones, ...); bumps updatedAt."""
        with self.lock:
            customer = self.customers.get(customer_id)
            if customer is None:
                raise KeyError(f"customer {customer_id} not found")
            self._apply_customer(customer, changes)
            self._customer_changed(customer)

    def touch_customer(self, customer_id: int) -> None:
        """Bump a customer's updatedAt only."""
        with self.lock:
            self._customer_changed(self.customers[customer_id])

    def set_customer_fields(self, customer_id: int, values: dict) -> None:
        """Set customer field values by id (None or "" clears one)."""
        with self.lock:
            customer = self.customers[customer_id]
            for field_id, value in values.items():
                if value is None or value == "":
                    customer.fields.pop(field_id, None)
                else:
                    customer.fields[field_id] = value
            self._customer_changed(customer)

    def resolve_customer(self, ref: dict, now: int | None = None) -> int:
        """The customer id for an `{id}`, `{email}` or `{firstName|phone}` ref (created if new)."""
        with self.lock:
            if ref.get("id") is not None:
                return int(ref["id"])
            email = ref.get("email")
            if email:
                found = self.email_index.get(email.casefold())
                if found is not None:
                    return found
                data = {k: ref[k] for k in ("firstName", "lastName", "phone") if ref.get(k)}
                data["emails"] = [{"value": email, "type": "work"}]
                return self.create_customer(data, now)
            if ref.get("phone"):
                matches = sorted(self.customers_with_phone(ref["phone"]))
                if matches:
                    return matches[0]
            data = {k: ref[k] for k in ("firstName", "lastName", "phone") if ref.get(k)}
            return self.create_customer(data, now)

    # ----- conversations --------------------------------------------------------------

    def create_conversation(self, spec: dict) -> int:
        """Create a conversation from a validated API payload; returns its id."""
        with self.lock:
            now = self.now()
            imported = spec.get("imported") is True
            created_at = spec.get("createdAt") if imported and spec.get("createdAt") else now
            status = spec.get("status") or "active"
            customer_id = self.resolve_customer(spec["customer"], now)
            self.last_number += 1
            conv = Conversation(
                id=self.next_id("conversation"),
                number=self.last_number,
                type=spec["type"],
                mailbox_id=spec["mailboxId"],
                subject=spec["subject"],
                status=status,
                state="published",
                customer_id=customer_id,
                created_by=("customer", customer_id),
                created_at=created_at,
                updated_at=now,
                assignee_id=spec.get("assignTo"),
                source_type="api",
                user_updated_at=created_at,
            )
            self.conversations[conv.id] = conv
            for item in reversed(spec["threads"]):  # the request lists newest first
                thread_at = item.get("createdAt") if imported and item.get("createdAt") else now
                self._new_thread(conv, item, thread_at, status)
            oldest = min(
                (self.threads[t] for t in conv.thread_ids), key=lambda t: (t.created_at, t.id)
            )
            conv.created_by = oldest.author
            conv.source_via = "customer" if oldest.author[0] == "customer" else "user"
            for item in reversed(spec["threads"]):
                for key in ("cc", "bcc"):
                    for address in item.get(key) or ():
                        if address not in getattr(conv, key):
                            getattr(conv, key).append(address)
            if status == "closed":
                conv.closed_at = spec.get("closedAt") if imported and spec.get("closedAt") else now
                conv.closed_by = spec.get("assignTo")
            for field_id, value in (spec.get("customFields") or {}).items():
                if value is not None and value != "":
                    conv.custom_fields[field_id] = value
            self.refresh_derived(conv)
            self.conv_updated.add(conv.updated_at, conv.id)
            self.conv_created.add(conv.created_at, conv.id)
            self.customer_convs[customer_id].add(conv.id)
            if imported:
                self.imported_creates += 1
            else:
                self.notifications_sent += 1
            return conv.id

    def _new_thread(self, conv, item: dict, created_at: int, status: str):
        kind = item["type"]
        if kind == "customer":
            author = (
                "customer",
                self.resolve_customer(item.get("customer") or {"id": conv.customer_id}),
            )
            self.customer_convs[author[1]].add(conv.id)
        else:
            author = ("user", item["user"])
        customer = self.customers.get(conv.customer_id)
        to = (
            [customer.emails[0]["value"]]
            if kind == "message" and customer and customer.emails
            else []
        )
        thread = Thread(
            id=self.next_id("thread"),
            conversation_id=conv.id,
            type=kind,
            body=item["text"],
            created_at=created_at,
            status=status,
            author=author,
            customer_id=conv.customer_id,
            assigned_to=conv.assignee_id,
            to=to,
            cc=list(item.get("cc") or []),
            bcc=list(item.get("bcc") or []),
            source_type="api",
            source_via="customer" if kind == "customer" else "user",
        )
        self.threads[thread.id] = thread
        for spec in item.get("attachments") or ():
            self._new_attachment(thread, spec)
        conv.thread_ids.append(thread.id)
        return thread

    def serve_seeded_files(self, max_bytes: int) -> None:
        """Point seeded attachments at this sandbox, which makes up their content.

        Seeded sizes run to 5 MB; each becomes 1..max_bytes (its size modulo the cap), so
        tests download little. The URL carries a token, as the real API's do.
        """
        with self.lock:
            for item in self.attachments.values():
                if item.data is not None or item.generated:
                    continue
                item.size = 1 + (item.size - 1) % max_bytes
                token = hashlib.sha1(f"attachment {item.id}".encode()).hexdigest()
                path = f"storage/attachment/{item.id}/{quote(item.file_name, safe='')}"
                item.file_url = f"{self.base_url}/{path}?id={item.id}&token={token}"
                item.generated = True
            self._conv_cache.clear()  # the URLs are in the conversations' cached JSON

    def _new_attachment(self, thread, spec: dict) -> None:
        ident = self.next_id("attachment")
        data = spec.get("_bytes")
        if data is not None:
            url = f"{self.base_url}/storage/attachment/{ident}/{quote(spec['fileName'], safe='')}"
            size = len(data)
        else:
            url, size = spec.get("fileUrl"), 0
        self.attachments[ident] = Attachment(
            ident,
            thread.id,
            spec["fileName"],
            spec.get("mimeType") or "application/octet-stream",
            size,
            url,
            data,
        )
        thread.attachment_ids.append(ident)

    def add_thread(
        self,
        conv_id: int,
        type: str,
        text: str,
        user_id: int | None = None,
        customer_email: str | None = None,
        *,
        customer: dict | None = None,
        status: str | None = None,
        cc=(),
        bcc=(),
        attachments=(),
        created_at: int | None = None,
        imported: bool = False,
    ) -> int:
        """Add a customer/message/note thread; follows the API's status rules; returns its id."""
        with self.lock:
            conv = self._conv(conv_id)
            now = self.now()
            if customer is None and customer_email:
                customer = {"email": customer_email}
            if status is None:
                status = {"customer": "active", "message": "pending"}.get(type, conv.status)
            if type != "customer" and user_id is None:
                user_id = min(self.users)
            item = {
                "type": type,
                "text": text,
                "user": user_id,
                "customer": customer,
                "cc": list(cc),
                "bcc": list(bcc),
                "attachments": list(attachments),
            }
            at = created_at if imported and created_at is not None else now
            self._set_status(conv, status, user_id if type != "customer" else None, now)
            thread = self._new_thread(conv, item, at, conv.status)
            if type != "customer":
                conv.user_updated_at = now
            self.refresh_derived(conv)
            self._changed(conv, now)
            if imported:
                self.imported_threads += 1
            elif type in ("message", "customer"):
                self.notifications_sent += 1
            return thread.id

    def _set_status(self, conv, status: str, by_user, now: int) -> None:
        if status == conv.status:
            return
        conv.status = status
        if status == "closed":
            conv.closed_at, conv.closed_by = now, by_user
        else:
            conv.closed_at, conv.closed_by = None, None

    def update_conversation(self, conv_id: int, **changes) -> None:
        """Apply API-named changes in the given order (byUser, status, assignTo, mailboxId,
        customerId, subject; also state and type); bumps updatedAt."""
        with self.lock:
            conv = self._conv(conv_id)
            now = self.now()
            by_user = changes.get("byUser")
            for key, value in changes.items():
                if key == "status":
                    self._set_status(conv, value, by_user, now)
                elif key == "assignTo":
                    conv.assignee_id = value or None
                elif key == "mailboxId":
                    conv.mailbox_id = value
                    allowed = {d.id for d in self.mailbox_fields(value)}
                    conv.custom_fields = {
                        k: v for k, v in conv.custom_fields.items() if k in allowed
                    }
                elif key == "customerId":
                    conv.customer_id = value
                    self.customer_convs[value].add(conv.id)
                elif key == "subject":
                    conv.subject = str(value)
                elif key == "state":
                    conv.state = value
                elif key == "type":
                    conv.type = value
                elif key != "byUser":
                    raise KeyError(f"unknown conversation field {key!r}")
            if by_user is not None:
                conv.user_updated_at = now
            conv.folder_id = self.folder_for(conv)
            self._changed(conv, now)

    def touch_conversation(self, conv_id: int) -> None:
        """Bump a conversation's updatedAt only."""
        with self.lock:
            self._changed(self._conv(conv_id))

    def set_conversation_fields(self, conv_id: int, values: dict) -> None:
        """Set custom field values by id (None or "" clears one); bumps updatedAt."""
        with self.lock:
            conv = self._conv(conv_id)
            for field_id, value in values.items():
                if value is None or value == "":
                    conv.custom_fields.pop(field_id, None)
                else:
                    conv.custom_fields[field_id] = value
            self._changed(conv)

    def set_conversation_tags(self, conv_id: int, names) -> None:
        """Replace a conversation's tags by name, creating unknown tags; bumps updatedAt."""
        with self.lock:
            conv = self._conv(conv_id)
            wanted = []
            for name in names:
                tag_id = self.tag_by_name.get(name.casefold())
                if tag_id is None:
                    tag_id = self.next_id("tag")
                    self.tags[tag_id] = Tag(tag_id, name)
                    self.tag_by_name[name.casefold()] = tag_id
                if tag_id not in wanted:
                    wanted.append(tag_id)
            for tag_id in conv.tag_ids:
                self.tags[tag_id].counter -= 1
            for tag_id in wanted:
                self.tags[tag_id].counter += 1
            conv.tag_ids = wanted
            self._changed(conv)

    def delete_conversation(self, conv_id: int) -> None:
        """Delete a conversation forever, with its threads, attachments and timelogs."""
        with self.lock:
            conv = self._conv(conv_id)
            linked = {conv.customer_id} | {
                self.threads[t].author[1]
                for t in conv.thread_ids
                if self.threads[t].author[0] == "customer"
            }
            for thread_id in conv.thread_ids:
                thread = self.threads.pop(thread_id)
                for attachment_id in thread.attachment_ids:
                    self.attachments.pop(attachment_id, None)
            for timelog_id in conv.timelog_ids:
                self.timelogs.pop(timelog_id, None)
            for tag_id in conv.tag_ids:
                self.tags[tag_id].counter -= 1
            for customer_id in linked:
                self.customer_convs.get(customer_id, set()).discard(conv_id)
            self.conv_updated.remove(conv.updated_at, conv.id)
            self.conv_created.remove(conv.created_at, conv.id)
            self._conv_cache.pop(conv_id, None)
            self._folder_counts.clear()
            del self.conversations[conv_id]

    # ----- users and webhooks ---------------------------------------------------------

    def create_user(self, data: dict) -> int:
        """Create a regular user with no mailbox access; returns its id."""
        with self.lock:
            now = self.now()
            user = User(
                id=self.next_id("user"),
                first_name=data["firstName"],
                last_name=data["lastName"],
                email=data["email"],
                created_at=now,
                updated_at=now,
                alternate_emails=data.get("alternateEmails") or "",
                job_title=data.get("jobTitle") or "",
                phone=data.get("phone") or "",
                timezone=data.get("timezone") or "UTC",
                photo_url=data.get("photoUrl"),
            )
            self.users[user.id] = user
            return user.id

    def user_by_email(self, email: str):
        """The user with an email (case-insensitive), or None."""
        with self.lock:
            wanted = email.casefold()
            return next((u for u in self.users.values() if u.email.casefold() == wanted), None)

    def create_webhook(self, url: str, events) -> int:
        """Register a webhook (stored only, never called); returns its id."""
        with self.lock:
            ident = self.next_id("webhook")
            self.webhooks[ident] = Webhook(ident, url, list(events), self.now())
            return ident

    def delete_webhook(self, webhook_id: int) -> bool:
        """Remove a webhook; False if it did not exist."""
        with self.lock:
            return self.webhooks.pop(webhook_id, None) is not None


def _counted_key(conv) -> tuple:
    """What a conversation's place in the folder counts depends on."""
    return (conv.mailbox_id, conv.folder_id, conv.status)
