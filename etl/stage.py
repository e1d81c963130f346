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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from etl import mapping as m
from etl.progress import Progress, silent
from etl.readers import SourceRow
from etl.sources.freshdesk import FreshdeskReader
from etl.sources.freshdesk_records import attachment_urls as fd_attachment_urls
from etl.sources.freshdesk_records import ticket_record as fd_ticket_record
from etl.sources.helpscout import HelpScoutReader
from etl.sources.helpscout_records import attachment_links, conversation_record
from etl.sources.zendesk import ZendeskReader
from etl.sources.zendesk_records import attachment_urls, ticket_record
from etl.staging import StagedFile, Staging


@dataclass
class StageResult:
    """What reading the source did."""

    pages: int = 0
    records: int = 0  # tickets or conversations read
    comments: int = 0  # comments or threads among them
    users: int = 0
    files_downloaded: int = 0
    files_missing: int = 0
    requests: int = 0
    rate_limited: int = 0


# -- Zendesk -------------------------------------------------------------------------------------


def stage_zendesk(
    reader: ZendeskReader, staging: Staging, progress: Progress = silent, workers: int = 4
) -> StageResult:
    """Read the export from the saved cursor; save each page with its comments, users, metric
    sets and files, and the cursor after it, in one transaction."""
    result = StageResult()
    before = reader.requests_made
    bar = progress("source tickets", None)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="source")
    try:
        for page in reader.ticket_pages(staging.cursor("tickets")):
            ids = [str(t["id"]) for t in page.tickets]
            stamps = staging.updated_at("comments", ids)
            wanted = [
                t
                for t in page.tickets
                if t.get("status") != "deleted" and stamps.get(str(t["id"])) != t.get("updated_at")
            ]
            fetched = dict(
                zip(
                    [str(t["id"]) for t in wanted],
                    pool.map(lambda t: reader.comments(t["id"]), wanted),
                    strict=True,
                )
            )
            records: list[tuple[str, str, str | None, Any]] = []
            user_ids: set = set()
            downloads: list[tuple[str, str]] = []
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
                                downloads.append((url, key))
            for metric in page.metric_sets:
                records.append(
                    ("metric", str(metric.get("ticket_id")), metric.get("updated_at"), metric)
                )
            users = reader.users(i for i in user_ids if i is not None)
            records.extend(("user", str(u["id"]), u.get("updated_at"), u) for u in users)
            unique = list(dict.fromkeys(url for url, _ in downloads))
            files = list(pool.map(lambda url: (url, _keep(reader, staging, url)), unique))
            result.files_downloaded += sum(1 for _, f in files if f.sha256)
            result.files_missing += sum(1 for _, f in files if not f.sha256)
            staging.save_page(records, files, ("tickets", page.after_cursor))
            result.pages += 1
            result.records += len(page.tickets)
            result.users += len(users)
            bar.update(len(page.tickets))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        result.requests = reader.requests_made - before
        result.rate_limited = reader.rate_limited
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
    tickets = staging.records("ticket")
    comments = staging.records("comments")
    users = staging.records("user")
    metrics = staging.records("metric")
    local_file = _local_files(staging)
    rows = []
    missing: Counter = Counter()
    ordered = sorted(tickets.values(), key=lambda t: (t.get("created_at") or "", t["id"]))
    for number, ticket in enumerate(ordered, start=1):
        record, gone = ticket_record(
            ticket,
            comments.get(str(ticket["id"]), []),
            users,
            metrics.get(str(ticket["id"])),
            staging.url,
            local_file,
        )
        for name in gone:
            missing[name] += 1
        rows.append(SourceRow(staging.url, number, record))
    convs, rejects = m.conversations(mapping, rows, staging.files)
    return convs, rejects, missing


# -- Help Scout ----------------------------------------------------------------------------------


def stage_helpscout(
    reader: HelpScoutReader, staging: Staging, progress: Progress = silent, workers: int = 4
) -> StageResult:
    """Read the conversations changed since the last walk (with their threads), the users and
    every attachment's data; save each page with the cursor after it."""
    result = StageResult()
    before = reader.requests_made
    bar = progress("source convs", None)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="source")
    try:
        users = reader.users()
        staging.save_page([("user", str(u["id"]), u.get("updatedAt"), u) for u in users], [], None)
        result.users = len(users)
        saved = staging.cursor("conversations")
        for page in reader.conversation_pages(json.loads(saved) if saved else None):
            records: list[tuple[str, str, str | None, Any]] = []
            wanted: list[str] = []
            for conv in page.conversations:
                records.append(("conversation", str(conv["id"]), conv.get("userUpdatedAt"), conv))
                threads = (conv.get("_embedded") or {}).get("threads") or []
                result.comments += len(threads)
                for thread in threads:
                    for url, _, _, _ in attachment_links(thread):
                        if staging.file(url) is None:
                            wanted.append(url)
            unique = list(dict.fromkeys(wanted))
            files = list(pool.map(lambda url: (url, _keep_data(reader, staging, url)), unique))
            result.files_downloaded += sum(1 for _, f in files if f.sha256)
            result.files_missing += sum(1 for _, f in files if not f.sha256)
            staging.save_page(records, files, ("conversations", json.dumps(page.cursor)))
            result.pages += 1
            result.records += len(page.conversations)
            bar.update(len(page.conversations))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        result.requests = reader.requests_made - before
        result.rate_limited = reader.rate_limited
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
    local_file = _local_files(staging)
    rows = []
    missing: Counter = Counter()
    ordered = sorted(
        staging.records("conversation").values(),
        key=lambda c: (c.get("createdAt") or "", c["id"]),
    )
    for number, conv in enumerate(ordered, start=1):
        record, gone = conversation_record(conv, users, local_file)
        missing.update(gone)
        rows.append(SourceRow(staging.url, number, record))
    convs, rejects = m.conversations(mapping, rows, staging.files)
    return convs, rejects, missing


# -- Freshdesk -----------------------------------------------------------------------------------


def stage_freshdesk(
    reader: FreshdeskReader, staging: Staging, progress: Progress = silent, workers: int = 4
) -> StageResult:
    """Read the agents, the spam and deleted tickets (to count them), then the tickets changed
    since the last walk with their conversations, contacts and files; save each page with the
    cursor after it."""
    result = StageResult()
    before = reader.requests_made
    bar = progress("source tickets", None)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="source")
    try:
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
            fetched = dict(
                zip(
                    [str(t["id"]) for t in wanted],
                    pool.map(lambda t: reader.conversations(t["id"]), wanted),
                    strict=True,
                )
            )
            records: list[tuple[str, str, str | None, Any]] = []
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
            unique = list(dict.fromkeys(urls))
            files = list(pool.map(lambda url: (url, _keep(reader, staging, url)), unique))
            result.files_downloaded += sum(1 for _, f in files if f.sha256)
            result.files_missing += sum(1 for _, f in files if not f.sha256)
            staging.save_page(records, files, ("tickets", json.dumps(page.cursor)))
            result.pages += 1
            result.records += len(page.tickets)
            bar.update(len(page.tickets))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        result.requests = reader.requests_made - before
        result.rate_limited = reader.rate_limited
    return result


def freshdesk_conversations(
    staging: Staging, mapping: m.Mapping
) -> tuple[list[m.SourceConversation], list[m.RowReject], Counter]:
    """Staged tickets -> source conversations through the mapping; and the files gone."""
    notes = staging.records("conversations")
    agents = staging.records("agent")
    contacts = staging.records("contact")
    local_file = _local_files(staging)
    rows = []
    missing: Counter = Counter()
    ordered = sorted(
        staging.records("ticket").values(), key=lambda t: (t.get("created_at") or "", t["id"])
    )
    for number, ticket in enumerate(ordered, start=1):
        record, gone = fd_ticket_record(
            ticket, notes.get(str(ticket["id"]), []), agents, contacts, staging.url, local_file
        )
        if not (ticket.get("spam") or ticket.get("deleted")):  # left out: files not fetched
            missing.update(gone)
        rows.append(SourceRow(staging.url, number, record))
    convs, rejects = m.conversations(mapping, rows, staging.files)
    return convs, rejects, missing


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


SOURCES = {
    "zendesk": Source(
        "zendesk", "zendesk-api", "ticket", "tickets", "comments",
        stage_zendesk, zendesk_conversations,
    ),
    "helpscout": Source(
        "helpscout", "helpscout-api", "conversation", "conversations", "threads",
        stage_helpscout, helpscout_conversations,
    ),
    "freshdesk": Source(
        "freshdesk", "freshdesk-api", "ticket", "tickets", "conversations",
        stage_freshdesk, freshdesk_conversations,
    ),
}  # fmt: skip
