"""Step 1 and 2 of `etl migrate`: read a source into the staging area, and turn what is staged
into source conversations.

Staging (`stage_*`) is where a source's HTTP reader and the staging's database meet, one page
at a time: a page's records, its files and the cursor after it are saved in one transaction,
so a killed run goes on from the last saved page. The transforms (`*_conversations`) read the
staging only: staged records -> one self-contained record per conversation (the
`etl.sources.*_records` modules, pure) -> the mapping -> `SourceConversation`s, as `etl load`
builds them from a file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from etl import mapping as m
from etl.progress import Progress, silent
from etl.readers import SourceRow
from etl.sources.freshdesk import FreshdeskReader
from etl.sources.freshdesk_records import attachment_urls as fd_attachment_urls
from etl.sources.freshdesk_records import customer_record as fd_customer_record
from etl.sources.freshdesk_records import ticket_record as fd_ticket_record
from etl.sources.helpscout import HelpScoutReader
from etl.sources.helpscout_records import attachment_links, conversation_record
from etl.sources.helpscout_records import customer_record as hs_customer_record
from etl.sources.zendesk import ZendeskReader
from etl.sources.zendesk_records import attachment_urls, customer_record, ticket_record
from etl.staging import StagedFile, Staging


@dataclass
class StageResult:
    """What reading the source did."""

    pages: int = 0
    records: int = 0  # tickets or conversations read
    comments: int = 0  # comments or threads among them
    users: int = 0
    files_downloaded: int = 0
    requests: int = 0
    rate_limited: int = 0


Record = tuple[str, str, str | None, Any]  # (kind, id, updated at, the record) as staged


@dataclass
class _Walk:
    """One read of a source under way: what it did so far, its progress bar, and the threads
    that make the per-ticket requests and the downloads."""

    staging: Staging
    result: StageResult
    bar: Any
    pool: ThreadPoolExecutor

    def each(self, items: list[dict], call: Callable[[dict], Any]) -> dict[str, Any]:
        """`call(item)` for every item, on the threads; by the item's id as text."""
        return dict(zip([str(i["id"]) for i in items], self.pool.map(call, items), strict=True))

    def save_page(
        self,
        records: list[Record],
        urls: Iterable[str],
        keep: Callable[[str], StagedFile],
        cursor: tuple[str, str],
        read: int,
    ) -> None:
        """Download each URL once (on the threads), then save the page's records, its files and
        the cursor after it in one transaction; `read`: the tickets or conversations it held."""
        unique = list(dict.fromkeys(urls))
        files = list(self.pool.map(lambda url: (url, keep(url)), unique))
        self.result.files_downloaded += sum(1 for _, f in files if f.sha256)
        self.staging.save_page(records, files, cursor)
        self.result.pages += 1
        self.result.records += read
        self.bar.update(read)


@contextmanager
def _walking(
    reader: ZendeskReader | HelpScoutReader | FreshdeskReader,
    staging: Staging,
    progress: Progress,
    label: str,
    workers: int,
) -> Iterator[_Walk]:
    """A `_Walk` with `workers` threads; when it ends, however it ends, the threads and the bar
    are closed and the requests it made are counted."""
    before = reader.requests_made
    bar = progress(label, None)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="source")
    walk = _Walk(staging, StageResult(), bar, pool)
    try:
        yield walk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        walk.result.requests = reader.requests_made - before
        walk.result.rate_limited = reader.rate_limited


def _conversations(
    staging: Staging,
    mapping: m.Mapping,
    staged: Iterable[dict],
    created: str,
    record_of: Callable[[dict, Callable], tuple[dict, Iterable[str]]],
) -> tuple[list[m.SourceConversation], list[m.RowReject], Counter]:
    """The staged tickets or conversations, oldest first (by their `created` field), each ->
    `record_of(item, local_file)`: its self-contained record and the names of its files gone ->
    the mapping. Returns the conversations, the row rejects and the files gone by name."""
    local_file = _local_files(staging)
    rows = []
    missing: Counter = Counter()
    ordered = sorted(staged, key=lambda item: (item.get(created) or "", item["id"]))
    for number, item in enumerate(ordered, start=1):
        record, gone = record_of(item, local_file)
        missing.update(gone)
        rows.append(SourceRow(staging.url, number, record))
    convs, rejects = m.conversations(mapping, rows, staging.files)
    return convs, rejects, missing


# -- Zendesk -------------------------------------------------------------------------------------


def stage_zendesk(
    reader: ZendeskReader, staging: Staging, progress: Progress = silent, workers: int = 4
) -> StageResult:
    """Read the export from the saved cursor; save each page with its comments, users, metric
    sets and files, and the cursor after it, in one transaction."""
    with _walking(reader, staging, progress, "source tickets", workers) as walk:
        result = walk.result
        fields = reader.ticket_fields()
        staging.save_page(
            [("ticket_field", str(f["id"]), f.get("updated_at"), f) for f in fields], [], None
        )
        for page in reader.ticket_pages(staging.cursor("tickets")):
            ids = [str(t["id"]) for t in page.tickets]
            stamps = staging.updated_at("comments", ids)
            wanted = [
                t
                for t in page.tickets
                if t.get("status") != "deleted" and stamps.get(str(t["id"])) != t.get("updated_at")
            ]
            fetched = walk.each(wanted, lambda t: reader.comments(t["id"]))
            records: list[Record] = []
            user_ids: set = set()
            urls: list[str] = []
            for ticket in page.tickets:
                key = str(ticket["id"])
                records.append(("ticket", key, ticket.get("updated_at"), ticket))
                user_ids.update((ticket.get("requester_id"), ticket.get("assignee_id")))
                if key in fetched:
                    comments = fetched[key]
                    records.append(("comments", key, ticket.get("updated_at"), comments))
                    result.comments += len(comments)
                    for comment in comments:
                        user_ids.add(comment.get("author_id"))
                        for url, _, _ in attachment_urls(comment, reader.url):
                            if staging.file(url) is None:
                                urls.append(url)
            for metric in page.metric_sets:
                records.append(
                    ("metric", str(metric.get("ticket_id")), metric.get("updated_at"), metric)
                )
            users = reader.users(i for i in user_ids if i is not None)["users"]
            records.extend(("user", str(u["id"]), u.get("updated_at"), u) for u in users)
            result.users += len(users)
            walk.save_page(
                records,
                urls,
                lambda url: _keep(reader, staging, url),
                ("tickets", page.after_cursor),
                len(page.tickets),
            )
    return result


def _keep(reader: ZendeskReader | FreshdeskReader, staging: Staging, url: str) -> StagedFile:
    found = reader.download(url)
    if found is None:
        return StagedFile(None, None, None)
    return StagedFile(staging.keep_file(found.data), found.content_type or None, len(found.data))


def _local_files(staging: Staging):
    """`local_file(url)` for the records modules: (path in the staging's folder, content type)."""
    files = staging.files_by_url()

    def local_file(url: str) -> tuple[str, str] | None:
        found = files.get(url)
        if found is None or not found.sha256:
            return None
        path = staging.file_path(found.sha256).relative_to(staging.files)
        return str(path), found.content_type or "application/octet-stream"

    return local_file


def zendesk_conversations(
    staging: Staging, mapping: m.Mapping
) -> tuple[list[m.SourceConversation], list[m.RowReject], Counter]:
    """Staged tickets -> source conversations through the mapping; and the files gone."""
    comments = staging.records("comments")
    users = staging.records("user")
    metrics = staging.records("metric")
    ticket_fields = staging.records("ticket_field")

    def record_of(ticket: dict, local_file: Callable) -> tuple[dict, Iterable[str]]:
        key = str(ticket["id"])
        return ticket_record(
            ticket,
            comments.get(key, []),
            users,
            metrics.get(key),
            ticket_fields,
            staging.url,
            local_file,
        )

    tickets = staging.records("ticket").values()
    return _conversations(staging, mapping, tickets, "created_at", record_of)


def stage_zendesk_customers(
    reader: ZendeskReader, staging: Staging, progress: Progress = silent, workers: int = 4
) -> StageResult:
    """Read the user fields, then the incremental user export from the saved cursor; save each
    page's users, their identities and organizations with the cursor after it."""
    with _walking(reader, staging, progress, "source users", workers) as walk:
        fields = reader.user_fields()
        staging.save_page(
            [("user_field", str(f["id"]), f.get("updated_at"), f) for f in fields], [], None
        )
        for page in reader.user_pages(staging.cursor("users")):
            records: list[Record] = [
                ("user", str(u["id"]), u.get("updated_at"), u) for u in page.users
            ]
            mine: dict[str, list[dict]] = {str(u["id"]): [] for u in page.users
                                           if u.get("role") == "end-user"}  # fmt: skip
            for identity in page.identities:
                mine.setdefault(str(identity.get("user_id")), []).append(identity)
            records += [("identities", key, None, found) for key, found in mine.items()]
            records += [("organization", str(o["id"]), o.get("updated_at"), o)
                        for o in page.organizations]  # fmt: skip
            walk.save_page(records, [], _no_file, ("users", page.after_cursor), len(page.users))
    return walk.result


def _no_file(url: str) -> StagedFile:
    raise AssertionError(f"no file expected: {url}")


def zendesk_customers(
    staging: Staging, mapping: m.Mapping
) -> tuple[list[m.SourceCustomer], list[m.RowReject]]:
    """Staged users -> source customers through the mapping's [customer] section."""
    identities = staging.records("identities")
    organizations = staging.records("organization")
    fields = staging.records("user_field")

    def record_of(user: dict) -> dict:
        return customer_record(user, identities.get(str(user["id"]), []), organizations, fields)

    return _customer_rows(staging, mapping, staging.records("user").values(), "created_at",
                          record_of)  # fmt: skip


# -- Help Scout ----------------------------------------------------------------------------------


def stage_helpscout(
    reader: HelpScoutReader, staging: Staging, progress: Progress = silent, workers: int = 4
) -> StageResult:
    """Read the conversations changed since the last walk (with their threads), the users and
    every attachment's data; save each page with the cursor after it."""
    with _walking(reader, staging, progress, "source convs", workers) as walk:
        result = walk.result
        users = reader.users()
        staging.save_page([("user", str(u["id"]), u.get("updatedAt"), u) for u in users], [], None)
        result.users = len(users)
        saved = staging.cursor("conversations")
        for page in reader.conversation_pages(json.loads(saved) if saved else None):
            records: list[Record] = []
            wanted: list[str] = []
            for conv in page.conversations:
                records.append(("conversation", str(conv["id"]), conv.get("userUpdatedAt"), conv))
                threads = (conv.get("_embedded") or {}).get("threads") or []
                result.comments += len(threads)
                for thread in threads:
                    for url, _, _, _ in attachment_links(thread):
                        if staging.file(url) is None:
                            wanted.append(url)
            walk.save_page(
                records,
                wanted,
                lambda url: _keep_data(reader, staging, url),
                ("conversations", json.dumps(page.cursor)),
                len(page.conversations),
            )
    return result


def _keep_data(reader: HelpScoutReader, staging: Staging, url: str) -> StagedFile:
    data = reader.attachment(url)
    if data is None:
        return StagedFile(None, None, None)
    return StagedFile(staging.keep_file(data), None, len(data))


def helpscout_conversations(
    staging: Staging, mapping: m.Mapping
) -> tuple[list[m.SourceConversation], list[m.RowReject], Counter]:
    """Staged conversations -> source conversations through the mapping; and the files gone."""
    users = staging.records("user")
    return _conversations(
        staging,
        mapping,
        staging.records("conversation").values(),
        "createdAt",
        lambda conv, local_file: conversation_record(conv, users, local_file),
    )


def stage_helpscout_customers(
    reader: HelpScoutReader, staging: Staging, progress: Progress = silent, workers: int = 4
) -> StageResult:
    """Read the customers changed since the last walk (every one the first time); save each
    page with the cursor after it."""
    with _walking(reader, staging, progress, "source customers", workers) as walk:
        saved = staging.cursor("customers")
        pages = reader.customer_pages(json.loads(saved) if saved else None)
        _save_people(walk, ((p.conversations, p.cursor) for p in pages), "customers", "updatedAt")
    return walk.result


def _save_people(walk: _Walk, pages: Iterable[tuple[list[dict], dict]], stream: str, updated: str):
    """Each page of people (as kind `customer`) with the cursor after it, in one transaction."""
    for people, cursor in pages:
        records: list[Record] = [("customer", str(p["id"]), p.get(updated), p) for p in people]
        walk.save_page(records, [], _no_file, (stream, json.dumps(cursor)), len(records))


def helpscout_customers(
    staging: Staging, mapping: m.Mapping
) -> tuple[list[m.SourceCustomer], list[m.RowReject]]:
    """Staged customers -> source customers through the mapping's [customer] section."""
    return _customer_rows(staging, mapping, staging.records("customer").values(), "createdAt",
                          hs_customer_record)  # fmt: skip


def _customer_rows(staging, mapping, staged, created, record_of):
    """Staged people, oldest first (by their `created` field), each -> `record_of(person)` ->
    the mapping's [customer] section: the customers and the row rejects."""
    ordered = sorted(staged, key=lambda item: (item.get(created) or "", item["id"]))
    rows = [SourceRow(staging.url, n, record_of(p)) for n, p in enumerate(ordered, start=1)]
    return m.customers(mapping, rows, staging.files)


# -- Freshdesk -----------------------------------------------------------------------------------


def stage_freshdesk(
    reader: FreshdeskReader, staging: Staging, progress: Progress = silent, workers: int = 4
) -> StageResult:
    """Read the agents, the spam and deleted tickets (to count them), then the tickets changed
    since the last walk with their conversations, contacts and files; save each page with the
    cursor after it."""
    with _walking(reader, staging, progress, "source tickets", workers) as walk:
        result = walk.result
        agents = reader.agents()
        flagged = [dict(t, spam=True) for t in reader.flagged("spam")]
        flagged += [dict(t, deleted=True) for t in reader.flagged("deleted")]
        staging.save_page(
            [("agent", str(a["id"]), a.get("updated_at"), a) for a in agents]
            + [("ticket", str(t["id"]), t.get("updated_at"), t) for t in flagged],
            [],
            None,
        )
        result.users = len(agents)
        saved = staging.cursor("tickets")
        known = set(staging.records("contact"))
        for page in reader.ticket_pages(json.loads(saved) if saved else None):
            ids = [str(t["id"]) for t in page.tickets]
            stamps = staging.updated_at("conversations", ids)
            wanted = [t for t in page.tickets if stamps.get(str(t["id"])) != t.get("updated_at")]
            fetched = walk.each(wanted, lambda t: reader.conversations(t["id"]))
            records: list[Record] = []
            people: set[str] = set()
            urls: list[str] = []
            for ticket in page.tickets:
                key = str(ticket["id"])
                ticket = dict(ticket, spam=False, deleted=False)
                records.append(("ticket", key, ticket.get("updated_at"), ticket))
                requester = ticket.get("requester")
                if requester:
                    records.append(("contact", str(requester["id"]), None, requester))
                    known.add(str(requester["id"]))
                parts = [ticket]
                if key in fetched:
                    notes = fetched[key]
                    records.append(("conversations", key, ticket.get("updated_at"), notes))
                    result.comments += len(notes)
                    parts += notes
                    people.update(str(n["user_id"]) for n in notes if n.get("incoming"))
                for part in parts:
                    urls += [url for url, _, _ in fd_attachment_urls(part, reader.url)
                             if staging.file(url) is None]  # fmt: skip
            contacts = reader.contacts(people - known)
            known.update(str(c["id"]) for c in contacts)
            records += [("contact", str(c["id"]), c.get("updated_at"), c) for c in contacts]
            walk.save_page(
                records,
                urls,
                lambda url: _keep(reader, staging, url),
                ("tickets", json.dumps(page.cursor)),
                len(page.tickets),
            )
    return result


def stage_freshdesk_customers(
    reader: FreshdeskReader, staging: Staging, progress: Progress = silent, workers: int = 4
) -> StageResult:
    """Read the companies and contact fields, then the contacts changed since the last walk
    (every one the first time); save each page with the cursor after it."""
    with _walking(reader, staging, progress, "source contacts", workers) as walk:
        staging.save_page(
            [("company", str(c["id"]), c.get("updated_at"), c) for c in reader.companies()]
            + [("contact_field", str(f["id"]), f.get("updated_at"), f)
               for f in reader.contact_fields()],
            [], None,
        )  # fmt: skip
        saved = staging.cursor("contacts")
        pages = reader.contact_pages(json.loads(saved) if saved else None)
        # Kind `customer`: the whole contact (`contact` holds the tickets' requesters).
        _save_people(walk, ((p.tickets, p.cursor) for p in pages), "contacts", "updated_at")
    return walk.result


def freshdesk_customers(
    staging: Staging, mapping: m.Mapping
) -> tuple[list[m.SourceCustomer], list[m.RowReject]]:
    """Staged contacts -> source customers through the mapping's [customer] section."""
    companies = staging.records("company")
    fields = list(staging.records("contact_field").values())
    return _customer_rows(staging, mapping, staging.records("customer").values(), "created_at",
                          lambda c: fd_customer_record(c, companies, fields))  # fmt: skip


def freshdesk_conversations(
    staging: Staging, mapping: m.Mapping
) -> tuple[list[m.SourceConversation], list[m.RowReject], Counter]:
    """Staged tickets -> source conversations through the mapping; and the files gone."""
    notes = staging.records("conversations")
    agents = staging.records("agent")
    contacts = staging.records("contact")

    def record_of(ticket: dict, local_file: Callable) -> tuple[dict, Iterable[str]]:
        record, gone = fd_ticket_record(
            ticket, notes.get(str(ticket["id"]), []), agents, contacts, staging.url, local_file
        )
        if ticket.get("spam") or ticket.get("deleted"):  # left out: their files not fetched
            return record, ()
        return record, gone

    tickets = staging.records("ticket").values()
    return _conversations(staging, mapping, tickets, "created_at", record_of)


@dataclass(frozen=True)
class Source:
    """A helpdesk `etl migrate` reads: its steps and the words its summary uses."""

    system: str
    mapping: str  # the shipped mapping used by default
    kind: str  # the staged records that become conversations
    noun: str  # what the summary calls them
    parts: str  # and their messages
    stage: object  # (reader, staging, progress, workers) -> StageResult
    transform: object  # (staging, mapping) -> (conversations, row rejects, files gone)
    stage_customers: object = None  # (reader, staging, progress, workers) -> StageResult
    customers: object = None  # (staging, mapping) -> (customers, row rejects)


SOURCES = {
    "zendesk": Source(
        "zendesk", "zendesk-api", "ticket", "tickets", "comments",
        stage_zendesk, zendesk_conversations, stage_zendesk_customers, zendesk_customers,
    ),
    "helpscout": Source(
        "helpscout", "helpscout-api", "conversation", "conversations", "threads",
        stage_helpscout, helpscout_conversations, stage_helpscout_customers, helpscout_customers,
    ),
    "freshdesk": Source(
        "freshdesk", "freshdesk-api", "ticket", "tickets", "conversations",
        stage_freshdesk, freshdesk_conversations, stage_freshdesk_customers, freshdesk_customers,
    ),
}  # fmt: skip
