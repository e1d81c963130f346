"""Load: input rows -> validated payloads -> the API's create endpoints, exactly once.

The run has three phases, and nothing is created before the second one ends:

1. read and map every row (`readers`, `mapping`: pure);
2. resolve against the target (agents by email, custom fields by name, dropdown labels to
   option ids, the mailbox) and build every payload; rows that cannot load become rejects;
3. send, with N workers sharing one `Client` (so a 429 holds everyone back), each create
   preceded by an intent in the ledger (`ledger.py`).

Exactly once: a record whose ledger entry is `done` is never sent again. An entry left in
`sending` by a crash, and a create whose outcome is unknown (timeout, 5xx), are looked up on
the target (subject + customer email + createdAt for conversations, the customer's phone
instead of a missing email, or subject + createdAt + mailbox alone for a customer known by name
only; the email for customers) before anything is sent again. Every create carries
`imported: true`, so no customer is emailed and no notification is raised.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from etl import mapping as m
from etl.client import Client
from etl.errors import EtlError
from etl.ledger import Entry, Ledger
from etl.load.attachments import downloader
from etl.load.checks import FileProblem, check_file, check_zones
from etl.load.customers import (
    CustomerFields,
    CustomerResolver,
    find_match,
    lookups,
    match_key,
)
from etl.load.plan import Item, plan_conversation, plan_customer
from etl.load.report import (
    CONVERSATIONS,
    CUSTOMERS,
    Reject,
    Report,
    default_rejects_path,
    write_rejects,
    write_report,
)
from etl.load.send import Sender, customer_ref, run_workers
from etl.load.target import (
    Target,
    fetch_target,
    find_customer,
    mailboxes_with_conversations,
)
from etl.progress import Progress, silent
from etl.readers import read_rows
from etl.redact import redact_url

__all__ = [
    "CONVERSATIONS",
    "CUSTOMERS",
    "FileProblem",
    "Item",
    "LoadFailed",
    "LoadOptions",
    "Reject",
    "Report",
    "Target",
    "UsageError",
    "default_rejects_path",
    "fetch_target",
    "find_customer",
    "load",
    "send_records",
    "plan_conversation",
    "plan_customer",
    "write_rejects",
]


class LoadFailed(EtlError):
    """Sending stopped on an error; `report` says what was done before it."""

    def __init__(self, cause: EtlError, report: Report):
        super().__init__(str(cause))
        self.exit_code = cause.exit_code
        self.report = report


class UsageError(EtlError):
    """The command cannot run as asked (no mailbox to load into, an unknown fallback user)."""

    exit_code = 2


@dataclass
class LoadOptions:
    kind: str = CONVERSATIONS
    mapping: str = "generic"
    mailbox_id: int | None = None
    dry_run: bool = False
    rejects_path: Path | None = None
    limit: int | None = None
    workers: int = 1
    fallback_user: str | None = None
    retry_rejects: bool = False
    encoding: str | None = None
    timezone: str | None = None
    sheet: str | None = None
    customer_fields: dict[str, int] = field(default_factory=dict)  # --customer-field NAME=ID


# -- the whole load -----------------------------------------------------------------------------


def load(
    client: Client,
    conn,
    path: str | Path,
    options: LoadOptions,
    progress: Progress = silent,
) -> Report:
    """Load one file into the target; returns the report (rejects are in it and in the file)."""
    started = time.monotonic()
    path = Path(path)
    mapping = m.load_mapping(options.mapping, timezone=options.timezone)
    requests_before = client.requests_made
    report = Report(
        options.kind,
        str(path),
        mapping.name,
        redact_url(client.url),
        options.dry_run,
        fallback_user=options.fallback_user,
    )
    report.rejects_path = options.rejects_path or default_rejects_path(path)
    rows = list(
        read_rows(
            path,
            fmt=mapping.source.get("format"),
            encoding=options.encoding or mapping.source.get("encoding"),
            # A users or contacts export may nest its records elsewhere than the tickets.
            records=(mapping.customer if options.kind == CUSTOMERS else {}).get("records")
            or mapping.source.get("records"),
            sheet=options.sheet or mapping.source.get("sheet"),
        )
    )
    report.rows = len(rows)
    # Whole-file problems stop here, before the first request.
    check_file(mapping, rows, path, options.kind)
    if options.kind == CONVERSATIONS:
        records, row_rejects = m.conversations(mapping, rows, path.parent)
        check_zones(records, path)
    else:
        records, row_rejects = m.customers(mapping, rows, path.parent)
    return send_records(
        client, conn, mapping.system, records, row_rejects, report, options, progress,
        run_label=(str(path), str(mapping.path)), started=started, before=requests_before,
    )  # fmt: skip


def send_records(
    client: Client,
    conn,
    system: str,
    records: list,
    row_rejects: list[m.RowReject],
    report: Report,
    options: LoadOptions,
    progress: Progress = silent,
    run_label: tuple[str, str] = ("", ""),
    started: float | None = None,
    before: int | None = None,
) -> Report:
    """Plan and send mapped records (`SourceConversation`s or `SourceCustomer`s, as
    `options.kind` says) with the ledger of `system`: what `etl load` does once a file is read,
    and what `etl migrate` does with the customers it read from a source's API."""
    started = time.monotonic() if started is None else started
    requests_before = client.requests_made if before is None else before
    ledger = Ledger(conn, client.url, system, options.kind)
    entries = ledger.entries()
    fallback_id = None
    if options.kind == CONVERSATIONS:
        target = fetch_target(client)
        if options.mailbox_id is not None and not any(
            int(b["id"]) == options.mailbox_id for b in target.mailboxes
        ):
            names = ", ".join(f"{b['id']} ({b.get('name')})" for b in target.mailboxes)
            raise UsageError(f"no mailbox {options.mailbox_id} on the target; mailboxes: {names}")
        report.mailbox_id = options.mailbox_id
        fallback_id = fallback_user_id(target, options.fallback_user, report)
        items, problems = _plan_conversations(
            records, row_rejects, target, options, fallback_id, report, entries
        )
    else:
        items, problems = _plan_customers(records, row_rejects, report, entries, options)
    run_id = None if options.dry_run else ledger.start_run(*run_label, options.dry_run)
    # Validation is over: record rejects, then decide what to send.
    for source_id, (file, row, found) in problems.items():
        entry = entries.get(source_id)
        if entry is not None and entry.state == "done":
            report.changed.append((source_id, file, row))
            continue
        for problem in found:
            report.reject(file, row, source_id, problem)
        in_flight = entry is not None and entry.state in ("sending", "created")
        if not options.dry_run and source_id and not source_id.startswith("\0") and not in_flight:
            # An entry in flight keeps its state: its conversation may exist on the target.
            reason = "; ".join(f"{p.field}: {p.reason}" for p in found)
            ledger.rejected(source_id, reason, file, row, run_id)
    to_send: list[tuple[Item, Entry | None]] = []
    for item in items:
        entry = entries.get(item.source_id)
        if entry is not None and entry.state == "done":
            if entry.fingerprint and entry.fingerprint != item.fingerprint and entry.target_id:
                # Changed since: a conversation gets what is new appended, a customer what
                # the target's customer lacks filled in.
                item.update_of = entry.target_id
                to_send.append((item, entry))
                continue
            report.already_loaded += 1
            report.outcome(item, "already loaded", entry.target_id)
            if entry.fingerprint and entry.fingerprint != item.fingerprint:
                report.changed.append((item.source_id, item.file, item.row))
            continue
        to_send.append((item, entry))
    for item, _ in to_send:  # until the sender says what became of it
        label = "would be updated" if item.update_of else "would be sent"
        report.outcome(item, label if options.dry_run else "not attempted")
    if options.limit is not None:
        report.not_attempted = max(0, len(to_send) - options.limit)
        to_send = to_send[: options.limit]
    report.to_send = len(to_send)
    fields = None
    wanted: dict[str, set[str]] = {}
    for item, _ in to_send:
        for name, value in item.customer_fields.items():
            wanted.setdefault(name, set()).add(value)
    if wanted:
        fields = CustomerFields(options.customer_fields)
        fields.learn(client, wanted)
    if options.dry_run:
        _count_customers(client, [i for i, _ in to_send], report, options.workers)
        for item, _ in to_send if fields is not None else ():
            left: list[str] = []
            fields.resolve(item.customer_fields, left)
            item.left_out.extend(left)
            report.left_out.update(left)
            report.outcome(item, "would be sent")
    else:
        sender = Sender(client, ledger, report, run_id)
        sender.customer_fields = fields
        sender.fetch = downloader(client)
        sender.by_user = fallback_id
        if options.kind == CONVERSATIONS:
            customers = ledger.sibling(CUSTOMERS)
            sender.customers = CustomerResolver(client, customers, sender.retry_pause)
            boxes = {i.payload.get("mailboxId") for i, e in to_send if e is None}
            sender.look_in = mailboxes_with_conversations(client, boxes - {None})
        entry_of = {item.source_id: entry for item, entry in to_send}
        bar = progress(options.kind, len(to_send))
        status = "failed"
        try:
            run_workers(
                [item for item, _ in to_send],
                lambda item: sender.send(options.kind, item, entry_of[item.source_id]),
                options.workers,
                sender.stop,
                bar,
            )
            status = "done"
        except EtlError as exc:
            raise LoadFailed(exc, report) from exc
        finally:
            bar.close()
            report.requests = client.requests_made - requests_before
            report.seconds = time.monotonic() - started
            report.not_attempted += len(to_send) - sender.finished
            if sender.customers is not None:
                report.customers_created = sender.customers.created
                report.customers_found = sender.customers.found
            ledger.finish_run(run_id, status, report.counts())
            write_rejects(report)
            write_report(report)
    report.requests = client.requests_made - requests_before
    report.seconds = time.monotonic() - started
    if options.dry_run:
        write_rejects(report)
        write_report(report)
    return report


def fallback_user_id(target: Target, email: str | None, report: Report) -> int | None:
    """The user for agents the target lacks: --fallback-user, else the first administrator
    (an agent the target lacks never rejects a conversation). `etl migrate` chooses so too."""
    if not email:
        if target.admin is None:
            return None
        report.fallback_user = f"{target.admin}, the first administrator; --fallback-user to choose"
        return target.users.get(target.admin.casefold())
    found = target.users.get(email.strip().casefold())
    if found is None:
        raise UsageError(f"--fallback-user {email} is not a user on the target")
    return found


def counted(conv: m.SourceConversation, report: Report) -> bool:
    """Count a conversation in the summary, with its threads; False, and noted as skipped,
    when the mapping skips it. `etl migrate` counts so too."""
    if conv.skip_reason:
        report.skipped_records[conv.skip_reason] += 1
        report.note(conv.file, conv.row, conv.source_id, f"skipped: {conv.skip_reason}")
        return False
    report.records += 1
    report.threads += len(conv.threads)
    report.skipped_threads += conv.skipped_threads
    return True


def _plan_conversations(convs, row_rejects, target, options, fallback_id, report, entries):
    if (
        options.mailbox_id is None
        and len(target.mailboxes) > 1
        and not any(c.mailbox for c in convs)
    ):
        names = ", ".join(f"{b['id']} ({b.get('name')})" for b in target.mailboxes)
        raise UsageError(
            f"the file names no mailbox and the target has several: pass --mailbox ID ({names})"
        )
    for reject in row_rejects:
        report.reject(reject.file, reject.row, "", reject.problem)
    if options.retry_rejects:
        convs = [c for c in convs if _was_rejected(entries.get(c.source_id))]
    items: list[Item] = []
    problems: dict[str, tuple[str, int, list[m.Problem]]] = {}
    for conv in convs:
        if not counted(conv, report):
            continue
        item, found = plan_conversation(
            conv, target, options.mailbox_id, fallback_id, report.unmapped_agents
        )
        if item is None:
            problems[conv.source_id] = (conv.file, conv.row, found)
        else:
            items.append(item)
            report.left_out.update(item.left_out)
    return items, problems


def _plan_customers(customers, row_rejects, report, entries, options):
    for reject in row_rejects:
        report.reject(reject.file, reject.row, "", reject.problem)
    if options.retry_rejects:
        customers = [c for c in customers if _was_rejected(entries.get(c.source_id))]
    items: list[Item] = []
    problems: dict[str, tuple[str, int, list[m.Problem]]] = {}
    for position, customer in enumerate(customers):
        if customer.skip_reason:
            report.skipped_records[customer.skip_reason] += 1
            report.note(customer.file, customer.row, customer.source_id, "skipped")
            continue
        report.records += 1
        item, found = plan_customer(customer)
        if item is None:
            key = customer.source_id or f"\0row {position}"
            problems[key] = (customer.file, customer.row, found)
        else:
            items.append(item)
    return items, problems


def _was_rejected(entry: Entry | None) -> bool:
    return entry is not None and entry.state == "rejected"


def _count_customers(client: Client, items: list[Item], report: Report, workers: int) -> None:
    """Dry run: how many of the customers exist on the target already (GETs only), matched as
    a load matches them: by email, else phone, else name."""
    refs: dict[str, dict] = {}
    for item in items:
        ref = item.payload.get("customer") if "customer" in item.payload else None
        ref = ref if ref is not None else customer_ref(item.payload)
        ref = {k: v for k, v in ref.items() if not k.startswith("_")}
        key = (ref.get("email") or "").casefold() or match_key(ref)
        if key and lookups(ref):
            refs.setdefault(key, ref)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        found = list(pool.map(lambda ref: find_match(client, ref), refs.values()))
    report.customers_existing = sum(1 for f in found if f is not None)
    report.customers_new = len(refs) - report.customers_existing
