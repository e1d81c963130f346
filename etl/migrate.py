"""`etl migrate`: a helpdesk's API -> staging in --db -> source records -> the load's pipeline.

Three steps, each resumable on its own:

1. **stage** (`stage_zendesk`): read the source's API from the staging's saved cursor and save
   each page (tickets, comments, users, metric sets, attachment files) with the cursor that
   follows it, in one transaction. HTTP happens in `etl.sources.*`, SQLite in `etl.staging`.
2. **transform** (`zendesk_conversations`, pure): staged records -> one record per ticket ->
   the mapping -> `SourceConversation`s, exactly as `etl load` builds them from a file.
3. **send** (`send`): the load's planning, ledger and sender create what the target lacks;
   conversations created before get the threads that are new at the source appended
   (`POST /conversations/{id}/threads`, `imported: true`, dates kept), each carrying the
   source's status, and a status that changed alone is set with `PUT /conversations/{id}`.
   Every append is recorded before it is sent (`etl_migrate_threads`) and looked up on the
   target before it is sent again, so a killed run creates nothing twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl import mapping as m
from etl.client import Client
from etl.errors import EtlError
from etl.ledger import Entry, Ledger, target_key
from etl.load import (
    CONVERSATIONS,
    CUSTOMERS,
    Item,
    LoadFailed,
    Report,
    UsageError,
    fetch_target,
    plan_conversation,
    write_rejects,
)
from etl.load.customers import CustomerResolver
from etl.load.plan import materialize
from etl.load.report import write_report
from etl.load.send import Sender, run_workers
from etl.load.target import mailboxes_with_conversations
from etl.mirror import now_text
from etl.progress import Progress, silent
from etl.redact import redact_url
from etl.stage import SOURCES, Source, StageResult
from etl.staging import Staging

APPENDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS etl_migrate_threads (
    target TEXT NOT NULL,
    system TEXT NOT NULL,
    source_id TEXT NOT NULL,
    thread_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    target_thread_id INTEGER,
    updated_at TEXT,
    PRIMARY KEY (target, system, source_id, thread_type, created_at, position)
);
CREATE TABLE IF NOT EXISTS etl_migrate_status (
    target TEXT NOT NULL,
    system TEXT NOT NULL,
    source_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT,
    PRIMARY KEY (target, system, source_id)
);
"""


@dataclass
class MigrationReport(Report):
    """The load's report, with what reading the source and catching up did."""

    source: str = ""
    noun: str = "tickets"
    parts: str = "comments"
    stage: StageResult | None = None
    appended_threads: int = 0
    updated: int = 0
    status_changes: int = 0
    would_append: int = 0
    missing_files: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = super().lines()
        verb = "Checked (dry run, nothing sent)" if self.dry_run else "Migrated"
        into = f" mailbox {self.mailbox_id}" if self.mailbox_id else ""
        out[0] = f"{verb} {self.source} (mapping {self.mapping}) into {self.target}{into}"

        def line(label: str, value: Any, note: str = "") -> str:
            return f"  {label:<26}{value:>7}" + (f"   {note}" if note else "")

        if self.stage is not None:
            s = self.stage
            limited = f", {s.rate_limited} answered 429" if s.rate_limited else ""
            note = f"({s.comments} {self.parts}, {s.files_downloaded} files, {s.requests} requests"
            out.insert(1, line(f"{self.noun} read", s.records, f"{note}{limited})"))
        staged = f"{self.noun} staged"
        out = [line(staged, self.rows) if x.startswith("  rows read") else x for x in out]
        at = next(i for i, x in enumerate(out) if x.startswith(("  created", "  would be sent")))
        if self.dry_run:
            extra = [line("would be updated", self.would_append, "(new threads or status)")]
        else:
            threads = f"{self.appended_threads} thread{'s' if self.appended_threads != 1 else ''}"
            note = f"({threads} appended, {self.status_changes} status changes)"
            extra = [line("updated", self.updated, note)]
        if self.missing_files:
            gone = sum(self.missing_files.values())
            extra.append(line("attachments gone", gone, "(the source no longer has them)"))
        out[at + 1 : at + 1] = extra
        return out


# -- 3. send -----------------------------------------------------------------------------------


@dataclass
class Update:
    """A conversation created before: the threads new at the source, and its status now."""

    item: Item
    target_id: int
    threads: list[tuple[tuple[str, str, int], dict]]  # (type, createdAt, nth) -> thread payload
    status: str | None  # the status to set, when it changed


class AppendLog:
    """Threads appended and statuses set after a conversation's create, per target."""

    def __init__(self, conn, target: str, system: str):
        self.conn, self.target, self.system = conn, target_key(target), system
        self.lock = threading.RLock()
        with conn:
            conn.executescript(APPENDS_SCHEMA)

    def threads(self) -> dict[str, dict[tuple[str, str, int], tuple[str, int | None]]]:
        out: dict[str, dict] = {}
        with self.lock:
            cursor = self.conn.execute(
                "SELECT source_id, thread_type, created_at, position, state, target_thread_id "
                "FROM etl_migrate_threads WHERE target = ? AND system = ?",
                (self.target, self.system),
            )
            for source_id, kind, created, nth, state, tid in cursor:
                out.setdefault(source_id, {})[(kind, created, nth)] = (state, tid)
        return out

    def statuses(self) -> dict[str, str]:
        with self.lock:
            cursor = self.conn.execute(
                "SELECT source_id, status FROM etl_migrate_status WHERE target = ? AND system = ?",
                (self.target, self.system),
            )
            return dict(cursor.fetchall())

    def thread(self, source_id: str, key: tuple[str, str, int], state: str, tid=None) -> None:
        with self.lock, self.conn:
            self.conn.execute(
                "INSERT INTO etl_migrate_threads (target, system, source_id, thread_type, "
                "created_at, position, state, target_thread_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "state = excluded.state, target_thread_id = excluded.target_thread_id, "
                "updated_at = excluded.updated_at",
                (self.target, self.system, source_id, *key, state, tid, now_text()),
            )

    def status(self, source_id: str, status: str) -> None:
        with self.lock, self.conn:
            self.conn.execute(
                "INSERT INTO etl_migrate_status (target, system, source_id, status, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET status = excluded.status, "
                "updated_at = excluded.updated_at",
                (self.target, self.system, source_id, status, now_text()),
            )


def thread_keys(expected_threads: list) -> list[tuple[str, str, int]]:
    """(type, createdAt, nth) for a conversation's threads, oldest first: the nth thread of
    that type at that second, so equal timestamps stay apart."""
    seen: Counter = Counter()
    out = []
    for kind, created, *_ in expected_threads:
        seen[(kind, created)] += 1
        out.append((kind, created or "", seen[(kind, created)]))
    return out


def plan_update(item: Item, entry: Entry, appended: dict, last_status: str | None) -> Update | None:
    """What a conversation created before needs to match the source now (pure)."""
    sent = set(thread_keys((entry.expected or {}).get("threads") or []))
    sent |= {key for key, (state, _) in appended.items() if state == "done"}
    keys = thread_keys(item.expected["threads"])
    payloads = list(reversed(item.payload["threads"]))  # the payload lists newest first
    new = [(key, payload) for key, payload in zip(keys, payloads, strict=True) if key not in sent]
    status = item.expected["status"]
    before = last_status or (entry.expected or {}).get("status")
    changed = status if status != before else None
    if not new and changed is None:
        return None
    return Update(item, int(entry.target_id), new, changed)


@dataclass
class Catcher:
    """Appends new threads and sets statuses on conversations created before."""

    client: Client
    log: AppendLog
    report: MigrationReport
    by_user: int | None
    known: dict  # source id -> {key: (state, target thread id)}
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, update: Update) -> None:
        source_id = update.item.source_id
        status = update.item.expected["status"]
        thread_status = status if status in ("active", "pending", "closed") else None
        appended = 0
        for key, payload in update.threads:
            if self.known.get(source_id, {}).get(key, ("", None))[0] == "sending":
                found = self._find_thread(update.target_id, key)
                if found is not None:
                    self.log.thread(source_id, key, "done", found)
                    appended += 1
                    continue
            self.log.thread(source_id, key, "sending")
            body = dict(materialize({"threads": [payload]})["threads"][0], imported=True)
            if thread_status:
                body["status"] = thread_status
            thread_id = self.client.create(f"api/conversations/{update.target_id}/threads", body)
            self.log.thread(source_id, key, "done", thread_id)
            appended += 1
        changed = 0
        if update.status and not (update.threads and thread_status):
            body: dict[str, Any] = {"status": update.status}
            if self.by_user is not None:
                body["byUser"] = self.by_user
            self.client.put(f"api/conversations/{update.target_id}", body)
            changed = 1
        elif update.status:
            changed = 1  # the appended threads carried it
        self.log.status(source_id, status)
        with self.lock:
            self.report.appended_threads += appended
            self.report.status_changes += changed
            self.report.updated += 1

    def _find_thread(self, conversation_id: int, key: tuple[str, str, int]) -> int | None:
        """An append whose answer was lost: the nth thread of that type and date, if there."""
        document = self.client.get(f"api/conversations/{conversation_id}", {"embed": "threads"})
        threads = ((document or {}).get("_embedded") or {}).get("threads") or []
        kind, created, nth = key
        matches = sorted(
            (t for t in threads if t.get("type") == kind and t.get("createdAt") == created),
            key=lambda t: t.get("id", 0),
        )
        return int(matches[nth - 1]["id"]) if len(matches) >= nth else None


@dataclass
class SendOptions:
    mailbox_id: int | None = None
    fallback_user: str | None = None
    dry_run: bool = False
    workers: int = 1
    rejects_path: Path | None = None


def send(
    client: Client,
    conn,
    convs: list[m.SourceConversation],
    row_rejects: list[m.RowReject],
    system: str,
    report: MigrationReport,
    options: SendOptions,
    progress: Progress = silent,
) -> MigrationReport:
    """Create what the target lacks and catch up what it has; returns the report."""
    started = time.monotonic()
    before = client.requests_made
    target = fetch_target(client)
    if options.mailbox_id is None or not any(
        int(b["id"]) == options.mailbox_id for b in target.mailboxes
    ):
        names = ", ".join(f"{b['id']} ({b.get('name')})" for b in target.mailboxes)
        what = f"no mailbox {options.mailbox_id}" if options.mailbox_id else "no --mailbox"
        raise UsageError(f"{what} on the target; pass --mailbox ID ({names})")
    fallback_id = _fallback_id(target, options.fallback_user, report)
    report.mailbox_id = options.mailbox_id
    ledger = Ledger(conn, client.url, system, CONVERSATIONS)
    entries = ledger.entries()
    log = AppendLog(conn, client.url, system)
    appended = log.threads()
    statuses = log.statuses()
    for reject in row_rejects:
        report.reject(reject.file, reject.row, "", reject.problem)
    creates: list[tuple[Item, Entry | None]] = []
    updates: list[Update] = []
    run_id = None if options.dry_run else ledger.start_run(report.source, system, False)
    for conv in convs:
        if conv.skip_reason:
            report.skipped_records[conv.skip_reason] += 1
            report.note(conv.file, conv.row, conv.source_id, f"skipped: {conv.skip_reason}")
            continue
        report.records += 1
        report.threads += len(conv.threads)
        report.skipped_threads += conv.skipped_threads
        item, problems = plan_conversation(
            conv, target, options.mailbox_id, fallback_id, report.unmapped_agents
        )
        entry = entries.get(conv.source_id)
        if item is None:
            if entry is not None and entry.state == "done":
                report.changed.append((conv.source_id, conv.file, conv.row))
                continue
            for problem in problems:
                report.reject(conv.file, conv.row, conv.source_id, problem)
            if run_id is not None and not (entry and entry.state in ("sending", "created")):
                reason = "; ".join(f"{p.field}: {p.reason}" for p in problems)
                ledger.rejected(conv.source_id, reason, conv.file, conv.row, run_id)
            continue
        report.left_out.update(item.left_out)
        if entry is not None and entry.state == "done":
            update = plan_update(
                item, entry, appended.get(conv.source_id, {}), statuses.get(conv.source_id)
            )
            if update is None:
                report.already_loaded += 1
                report.outcome(item, "already loaded", entry.target_id)
            else:
                updates.append(update)
                report.outcome(item, "would be updated" if options.dry_run else "not attempted")
            continue
        creates.append((item, entry))
        report.outcome(item, "would be sent" if options.dry_run else "not attempted")
    report.to_send = len(creates)
    report.would_append = len(updates)
    if options.dry_run:
        report.requests = client.requests_made - before
        report.seconds = time.monotonic() - started
        write_rejects(report)
        write_report(report)
        return report
    sender = Sender(client, ledger, report, run_id)
    sender.customers = CustomerResolver(
        client, Ledger(conn, client.url, system, CUSTOMERS), sender.retry_pause
    )
    boxes = {i.payload.get("mailboxId") for i, e in creates if e is None}
    sender.look_in = mailboxes_with_conversations(client, boxes - {None})
    entry_of = {item.source_id: entry for item, entry in creates}
    by_user = fallback_id or _any_admin(target)
    catcher = Catcher(client, log, report, by_user, appended)
    status = "failed"
    try:
        bar = progress("conversations", len(creates) + len(updates))
        try:
            run_workers(
                [item for item, _ in creates],
                lambda item: sender.send(CONVERSATIONS, item, entry_of[item.source_id]),
                options.workers,
                sender.stop,
                bar,
            )
            for item, _ in creates:
                log.status(item.source_id, item.expected["status"])
            run_workers(updates, catcher.send, options.workers, threading.Event(), bar)
        finally:
            bar.close()
        status = "done"
    except EtlError as exc:
        raise LoadFailed(exc, report) from exc
    finally:
        report.requests = client.requests_made - before
        report.seconds = time.monotonic() - started
        report.not_attempted += len(creates) - sender.finished
        report.customers_created = sender.customers.created
        report.customers_found = sender.customers.found
        counts = dict(report.counts(), updated=report.updated)
        ledger.finish_run(run_id, status, counts)
        write_rejects(report)
        write_report(report)
    return report


def migrate(
    source: Source,
    reader,
    client: Client,
    conn,
    files: Path,
    mapping_name: str | None,
    options: SendOptions,
    progress: Progress = silent,
) -> MigrationReport:
    """Stage the account (from the saved cursor), transform, send: the whole migration."""
    chosen = m.load_mapping(mapping_name or source.mapping)
    shown = redact_url(reader.url)  # a password in the address is never shown or stored
    report = MigrationReport(
        CONVERSATIONS,
        chosen.system,  # names the report file: zendesk.report.csv
        chosen.name,
        client.url,
        options.dry_run,
        fallback_user=options.fallback_user,
        source=shown,
        noun=source.noun,
        parts=source.parts,
    )
    report.rejects_path = options.rejects_path or Path(f"{chosen.system}.rejects.csv")
    staging = Staging(conn, chosen.system, reader.url, files)
    staging.bind()
    report.stage = source.stage(reader, staging, progress, options.workers)
    convs, row_rejects, missing = source.transform(staging, chosen)
    report.rows = staging.count(source.kind)
    report.missing_files = missing
    return send(client, conn, convs, row_rejects, chosen.system, report, options, progress)


def migrate_zendesk(reader, client, conn, files, mapping_name, options, progress=silent):
    """`migrate` from Zendesk (the demo and the benchmark call it so)."""
    return migrate(SOURCES["zendesk"], reader, client, conn, files, mapping_name, options, progress)


def _fallback_id(target, email: str | None, report: MigrationReport) -> int | None:
    """The user for agents the target lacks: --fallback-user, else the first administrator,
    as `etl load` chooses."""
    if not email:
        if target.admin is None:
            return None
        report.fallback_user = f"{target.admin}, the first administrator; --fallback-user to choose"
        return target.users.get(target.admin.casefold())
    found = target.users.get(email.strip().casefold())
    if found is None:
        raise UsageError(f"--fallback-user {email} is not a user on the target")
    return found


def _any_admin(target) -> int | None:
    """Who a status change is made by when no fallback user is known: some target user."""
    return min(target.users.values()) if target.users else None
