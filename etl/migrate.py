"""`etl migrate`: a helpdesk's API -> staging in --db -> source records -> the load's pipeline.

Three steps, each resumable on its own (customers go through all three first, when the
mapping has a [customer] section: every customer of the source is staged, mapped and loaded as
`etl load customers` loads a file, then the conversations):

1. **stage** (`etl.stage`): read the source's API from the staging's saved cursor and save
   each page (records, attachment files) with the cursor that follows it, in one transaction.
   HTTP happens in `etl.sources.*`, SQLite in `etl.staging`.
2. **transform** (`etl.stage`, pure over the staging): one record per conversation -> the
   mapping -> `SourceConversation`s, exactly as `etl load` builds them from a file.
3. **send** (`send` here): the load's planning, ledger and sender. What the target lacks is
   created; a conversation loaded before whose source changed since is caught up by the load's
   delta (the threads the target lacks are appended with `imported: true` and their dates,
   each carrying the source's status; a status that changed alone is set), matched on the
   target, so a killed run creates nothing twice.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl import mapping as m
from etl.client import Client
from etl.errors import EtlError
from etl.fit import MB, first_request, split_attachments
from etl.ledger import Entry, Ledger
from etl.load import (
    CONVERSATIONS,
    CUSTOMERS,
    Item,
    LoadFailed,
    LoadOptions,
    Report,
    UsageError,
    counted,
    fallback_user_id,
    fetch_target,
    plan_conversation,
    send_records,
    write_rejects,
)
from etl.load.attachments import downloader
from etl.load.customers import CustomerResolver
from etl.load.report import write_report
from etl.load.send import Sender, run_workers
from etl.load.target import Target, mailboxes_with_conversations
from etl.progress import Progress, silent
from etl.redact import redact_url
from etl.stage import Source, StageResult
from etl.staging import Staging


@dataclass
class MigrationReport(Report):
    """The load's report, with what reading the source and catching up did."""

    source: str = ""
    noun: str = "tickets"
    parts: str = "comments"
    stage: StageResult | None = None
    would_update: int = 0
    fitted: list[str] = field(default_factory=list)  # what was split to fit the request limit
    missing_files: Counter = field(default_factory=Counter)
    customers: Report | None = None  # every customer of the source, sent before the tickets
    customers_read: StageResult | None = None

    @property
    def rejected(self) -> int:
        """Conversations and customers rejected."""
        return super().rejected + (self.customers.rejected if self.customers else 0)

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
        extra = []
        if not self.dry_run and not self.updated:  # the load's report shows it when not 0
            extra.append(line("updated", 0, "(new threads appended, status set)"))
        if self.dry_run:
            extra.append(line("would be updated", self.would_update, "(new threads or status)"))
        if self.fitted:
            extra.append(line("split to fit", len(self.fitted), "(the target's request limit)"))
            extra += [f"    {what}" for what in self.fitted[:20]]
        if self.missing_files:
            gone = sum(self.missing_files.values())
            extra.append(line("attachments gone", gone, "(the source no longer has them)"))
        out[at + 1 : at + 1] = extra
        if self.customers is not None:
            out[-1:-1] = self._customer_lines(line)
        return out

    def _customer_lines(self, line) -> list[str]:
        """The customers' part of the summary (every label starts with "customers")."""
        c, read = self.customers, self.customers_read
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(c.skipped_records.items()))
        now = f"{read.records} read now, {read.requests} requests" if read is not None else ""
        note = "; ".join(p for p in (now, f"skipped: {skipped}" if skipped else "") if p)
        out = [line("customers staged", c.rows, f"({note})" if note else "")]
        if c.dry_run:
            out.append(line("customers would be sent", c.to_send))
            if c.customers_new is not None:
                out.append(line("customers to create", c.customers_new))
                out.append(line("customers on the target", c.customers_existing))
        else:
            out.append(line("customers created", c.created + c.recovered))
            out.append(line("customers filled in", c.updated, "(on the target: what it lacked)"))
            out.append(line("customers on the target", c.reused, "(nothing to add)"))
        out.append(line("customers loaded before", c.already_loaded))
        target = f"-> {c.rejects_path}" if c.rejects else ""
        out.append(line("customers rejected", c.rejected, target))
        for what, count in sorted(c.left_out.items()):
            out.append(f"    left out: {what}  ({count} customer{'s' if count != 1 else ''})")
        return out


# -- send ------------------------------------------------------------------------------------


@dataclass
class SendOptions:
    mailbox_id: int | None = None
    fallback_user: str | None = None
    dry_run: bool = False
    workers: int = 1
    rejects_path: Path | None = None
    max_request: int = 20 * MB  # the target's request limit, with room to spare
    customer_fields: dict[str, int] = field(default_factory=dict)  # --customer-field NAME=ID


def send(
    client: Client,
    conn,
    convs: list[m.SourceConversation],
    row_rejects: list[m.RowReject],
    system: str,
    report: MigrationReport,
    options: SendOptions,
    progress: Progress = silent,
    target: Target | None = None,
) -> MigrationReport:
    """Create what the target lacks and catch up what changed since; returns the report."""
    started = time.monotonic()
    before = client.requests_made
    target = target or fetch_target(client)
    fallback_id = _check_settings(target, options, report)
    report.mailbox_id = options.mailbox_id
    ledger = Ledger(conn, client.url, system, CONVERSATIONS)
    for reject in row_rejects:
        report.reject(reject.file, reject.row, "", reject.problem)
    run_id = None if options.dry_run else ledger.start_run(report.source, system, False)
    to_send = _plan(convs, target, ledger, run_id, fallback_id, report, options)
    rest = _fit_creates(to_send, options.max_request, report)
    if options.dry_run:
        report.requests = client.requests_made - before
        report.seconds = time.monotonic() - started
        write_rejects(report)
        write_report(report)
        return report
    sender = _sender(client, conn, ledger, system, report, run_id, fallback_id, to_send)
    entry_of = {item.source_id: entry for item, entry in to_send}
    bar = progress("conversations", len(to_send))
    status = "failed"
    try:
        run_workers(
            [item for item, _ in to_send],
            lambda item: sender.send(CONVERSATIONS, item, entry_of[item.source_id]),
            options.workers,
            sender.stop,
            bar,
        )
        entries = ledger.entries()
        for item in rest:  # created with its first threads: the catch-up appends the others
            entry = entries.get(item.source_id)
            if entry is not None and entry.state == "done":
                item.update_of = entry.target_id
                sender.send(CONVERSATIONS, item, entry)
        status = "done"
    except EtlError as exc:
        raise LoadFailed(exc, report) from exc
    finally:
        bar.close()
        report.requests = client.requests_made - before
        report.seconds = time.monotonic() - started
        report.not_attempted += max(0, len(to_send) - sender.finished)
        report.customers_created = sender.customers.created
        report.customers_found = sender.customers.found
        ledger.finish_run(run_id, status, report.counts())
        write_rejects(report)
        write_report(report)
    return report


def _plan(convs, target, ledger, run_id, fallback_id, report, options):
    """Each conversation's payload, and whether it is new, changed since, loaded or rejected:
    (item, ledger entry) for each one to send."""
    entries = ledger.entries()
    to_send: list[tuple[Item, Entry | None]] = []
    for conv in convs:
        if not counted(conv, report):
            continue
        for what in split_attachments(conv, options.max_request):
            report.fitted.append(f"{conv.source_id}: {what}")
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
            if not entry.target_id or entry.fingerprint == item.fingerprint:
                report.already_loaded += 1
                report.outcome(item, "already loaded", entry.target_id)
                continue
            item.update_of = entry.target_id  # changed at the source since: catch it up
            report.would_update += 1
        to_send.append((item, entry))
        label = "would be updated" if item.update_of else "would be sent"
        report.outcome(item, label if options.dry_run else "not attempted")
    report.to_send = len(to_send) - report.would_update
    return to_send


def _fit_creates(to_send: list[tuple[Item, Entry | None]], budget: int, report) -> list[Item]:
    """Creates too big for one request become their first threads (in place); the whole items
    are returned, for the catch-up to append the rest right after."""
    rest: list[Item] = []
    for position, (item, entry) in enumerate(to_send):
        first = None if item.update_of else first_request(item, budget)
        if first is not None:
            to_send[position] = (first, entry)
            rest.append(item)
            kept = len(first.expected["threads"])
            report.fitted.append(
                f"{item.source_id}: created with {kept} of {len(item.expected['threads'])} "
                "threads, the rest appended right after"
            )
    return rest


def _sender(client, conn, ledger, system, report, run_id, fallback_id, to_send) -> Sender:
    """The load's sender, set up as `etl load` sets it up for conversations."""
    sender = Sender(client, ledger, report, run_id)
    sender.fetch = downloader(client)
    sender.by_user = fallback_id
    sender.customers = CustomerResolver(
        client, Ledger(conn, client.url, system, CUSTOMERS), sender.retry_pause
    )
    boxes = {i.payload.get("mailboxId") for i, e in to_send if e is None}
    sender.look_in = mailboxes_with_conversations(client, boxes - {None})
    return sender


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
        redact_url(client.url),
        options.dry_run,
        fallback_user=options.fallback_user,
        source=shown,
        noun=source.noun,
        parts=source.parts,
    )
    report.rejects_path = options.rejects_path or Path(f"{chosen.system}.rejects.csv")
    target = fetch_target(client)
    _check_settings(target, options, report)  # before hours of reading the source
    staging = Staging(conn, chosen.system, reader.url, files)
    staging.bind()
    if source.stage_customers is not None and chosen.customer:
        _migrate_customers(source, reader, staging, client, conn, chosen, report, options,
                           progress)  # fmt: skip
    report.stage = source.stage(reader, staging, progress, options.workers)
    convs, row_rejects, missing = source.transform(staging, chosen)
    report.rows = staging.count(source.kind)
    report.missing_files = missing
    return send(client, conn, convs, row_rejects, chosen.system, report, options, progress, target)


def _migrate_customers(
    source: Source, reader, staging: Staging, client: Client, conn, chosen: m.Mapping,
    report: MigrationReport, options: SendOptions, progress: Progress,
) -> None:  # fmt: skip
    """Stage every customer of the source (from the saved cursor), then load them as
    `etl load customers` does, into `report.customers`; before the conversations, so these
    find their customers on the target or in the ledger."""
    report.customers_read = source.stage_customers(reader, staging, progress, options.workers)
    people, rejects = source.customers(staging, chosen)
    stem = f"{report.file}-customers"  # zendesk-customers.rejects.csv, .report.csv
    found = Report(CUSTOMERS, stem, report.mapping, report.target, options.dry_run)
    folder = options.rejects_path.parent if options.rejects_path else Path()
    found.rejects_path = folder / f"{stem}.rejects.csv"
    found.rows = len(people) + len(rejects)
    report.customers = found
    load_options = LoadOptions(
        kind=CUSTOMERS,
        mapping=chosen.name,
        dry_run=options.dry_run,
        workers=options.workers,
        customer_fields=dict(options.customer_fields),
    )
    try:
        send_records(client, conn, chosen.system, people, rejects, found, load_options,
                     progress, (report.source, str(chosen.path)))  # fmt: skip
    except LoadFailed as exc:
        raise LoadFailed(exc, report) from exc


def _check_settings(target: Target, options: SendOptions, report: MigrationReport) -> int | None:
    """A usage error for a mailbox or fallback user the target lacks; the fallback user's id."""
    if options.mailbox_id is None or not any(
        int(b["id"]) == options.mailbox_id for b in target.mailboxes
    ):
        names = ", ".join(f"{b['id']} ({b.get('name')})" for b in target.mailboxes)
        if options.mailbox_id is None:
            raise UsageError(f"say which target mailbox to migrate into: --mailbox ID ({names})")
        raise UsageError(f"no mailbox {options.mailbox_id} on the target; mailboxes: {names}")
    return fallback_user_id(target, options.fallback_user, report)
