"""What a load saw and did: the summary that ends every run, and the rejects file."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl import mapping as m

CONVERSATIONS = "conversations"
CUSTOMERS = "customers"


@dataclass
class Reject:
    file: str
    row: int | None
    source_id: str
    field: str
    kind: str
    reason: str


@dataclass
class Outcome:
    """One source record's row of the report file."""

    file: str
    row: int | None
    source_id: str
    outcome: str
    target_id: int | None = None
    left_out: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class Report:
    """What a load saw and did; `lines()` is the summary that ends every run."""

    kind: str
    file: str
    mapping: str
    target: str
    dry_run: bool = False
    mailbox_id: int | None = None
    rows: int = 0
    records: int = 0
    threads: int = 0
    skipped_threads: int = 0
    skipped_records: Counter = field(default_factory=Counter)
    to_send: int = 0
    customers_new: int | None = None
    customers_existing: int | None = None
    unmapped_agents: Counter = field(default_factory=Counter)
    left_out: Counter = field(default_factory=Counter)  # values the target cannot hold
    fallback_user: str | None = None
    problems: Counter = field(default_factory=Counter)
    already_loaded: int = 0
    changed: list[tuple[str, str, int | None]] = field(default_factory=list)
    created: int = 0
    reused: int = 0
    updated: int = 0
    on_target: int = 0
    customers_created: int = 0
    customers_found: int = 0
    recovered: int = 0
    rejects: list[Reject] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # by source id
    rejects_path: Path | None = None
    requests: int = 0
    seconds: float = 0.0
    not_attempted: int = 0

    @property
    def rejected(self) -> int:
        return len({(r.file, r.source_id or f"row {r.row}") for r in self.rejects})

    def reject(self, file: str, row: int | None, source_id: str, problem: m.Problem) -> None:
        self.rejects.append(
            Reject(file, problem.row or row, source_id, problem.field, problem.kind, problem.reason)
        )
        self.problems[problem.kind] += 1
        key = source_id or f"\0{file}:{problem.row or row}"
        known = self.outcomes.get(key)
        reason = f"{problem.field}: {problem.reason}".strip(": ")
        if known is not None and known.outcome == "rejected":
            known.reason = f"{known.reason}; {reason}"
        else:
            self.outcomes[key] = Outcome(file, row, source_id, "rejected", reason=reason)

    def outcome(self, item: Any, outcome: str, target_id: int | None = None) -> None:
        """Note what became of a planned record (an `Item`)."""
        self.note(item.file, item.row, item.source_id, outcome, target_id, item.left_out)

    def note(
        self,
        file: str,
        row: int | None,
        source_id: str,
        outcome: str,
        target_id: int | None = None,
        left_out: list[str] | None = None,
    ) -> None:
        self.outcomes[source_id or f"\0{file}:{row}"] = Outcome(
            file, row, source_id, outcome, target_id, list(left_out or [])
        )

    def lines(self) -> list[str]:
        noun = "conversations" if self.kind == CONVERSATIONS else "customers"
        verb = "Checked (dry run, nothing sent)" if self.dry_run else "Loaded"
        into = f" mailbox {self.mailbox_id}" if self.mailbox_id else ""
        out = [f"{verb} {noun} from {self.file} (mapping {self.mapping}) for {self.target}{into}"]

        def line(label: str, value: Any, note: str = "") -> None:
            out.append(f"  {label:<26}{value:>7}" + (f"   {note}" if note else ""))

        line("rows read", self.rows)
        line(noun, self.records)
        if self.kind == CONVERSATIONS:
            note = (
                f"({self.skipped_threads} system threads skipped)" if self.skipped_threads else ""
            )
            line("threads", self.threads, note)
        for reason, count in sorted(self.skipped_records.items()):
            line("skipped", count, f"({reason})")
        if self.customers_new is not None:
            line("customers new", self.customers_new)
            line("customers existing", self.customers_existing)
        line("already loaded", self.already_loaded)
        if self.dry_run:
            line("would be sent", self.to_send)
        else:
            line("created", self.created)
            if self.reused:
                line("existing, reused", self.reused)
            if self.updated:
                what = (
                    "(new threads appended, status set)"
                    if self.kind == CONVERSATIONS
                    else "(on the target: what it lacked filled in)"
                )
                line("updated", self.updated, what)
            if self.on_target:
                line("already on the target", self.on_target, "(found there, not created)")
            if self.customers_created or self.customers_found:
                line(
                    "customers without email",
                    self.customers_created + self.customers_found,
                    f"({self.customers_created} created, {self.customers_found} found by "
                    "phone or name)",
                )
            if self.recovered:
                line(
                    "created before a stop",
                    self.recovered,
                    "(found on the target or in the ledger)",
                )
            if self.not_attempted:
                line("not attempted", self.not_attempted, "(--limit or a stop)")
        if self.changed:
            line(
                "changed since loaded",
                len(self.changed),
                "(not updated: the API cannot rewrite a subject or an old thread)",
            )
        target = f"-> {self.rejects_path}" if self.rejects_path and self.rejects else ""
        line("rejected", self.rejected, target)
        if self.rejects_path is not None:
            out.append(f"  report: {report_path(self)}")
        if self.problems:
            out.append("  problems by kind:")
            for kind, count in self.problems.most_common():
                out.append(f"    {kind:<24}{count:>7}")
        if self.unmapped_agents:
            where = f"sent to {self.fallback_user}" if self.fallback_user else "rows rejected"
            out.append(f"  unmapped agents ({where}):")
            for email, count in self.unmapped_agents.most_common():
                out.append(f"    {email}  ({count} reference{'s' if count != 1 else ''})")
        if self.left_out:
            out.append("  left out (the target cannot hold them; the records load without):")
            for what, count in sorted(self.left_out.items()):
                out.append(f"    {what}  ({count} record{'s' if count != 1 else ''})")
        for source_id, file, row in self.changed[:20]:
            out.append(f"  changed: {file} row {row} (id {source_id})")
        if len(self.changed) > 20:
            out.append(f"  ... and {len(self.changed) - 20} more changed")
        rate = ""
        if self.seconds and not self.dry_run and self.created + self.recovered:
            rate = f" ({(self.created + self.recovered) / self.seconds:.1f} {noun}/s)"
        out.append(f"  {self.requests} requests in {self.seconds:.1f} s{rate}")
        return out

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "records": self.records,
            "threads": self.threads,
            "created": self.created,
            "reused": self.reused,
            "on_target": self.on_target,
            "updated": self.updated,
            "recovered": self.recovered,
            "already_loaded": self.already_loaded,
            "changed": len(self.changed),
            "rejected": self.rejected,
        }


def default_rejects_path(path: Path) -> Path:
    """`tickets.csv` -> `tickets.rejects.csv` in the working directory."""
    return Path(f"{path.stem}.rejects.csv")


REJECT_COLUMNS = ("file", "row", "id", "field", "kind", "reason")


def write_rejects(report: Report) -> None:
    """Write the rejects file (UTF-8 with BOM so Excel opens it) when anything was rejected."""
    target = report.rejects_path
    if target is None:
        return
    if not report.rejects:
        # A rejects file left by an earlier run would describe rows that are fine now.
        if target.is_file() and _is_rejects_file(target):
            target.unlink()
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REJECT_COLUMNS)
        for r in sorted(report.rejects, key=lambda r: (r.file, r.row or 0)):
            writer.writerow([r.file, r.row, r.source_id.lstrip("\0"), r.field, r.kind, r.reason])


def _is_rejects_file(path: Path) -> bool:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return handle.readline().strip() == ",".join(REJECT_COLUMNS)


REPORT_COLUMNS = ("file", "row", "id", "target_id", "outcome", "left_out", "reason")


def report_path(report: Report) -> Path | None:
    """`FILESTEM.report.csv` beside the rejects file."""
    if report.rejects_path is None:
        return None
    return report.rejects_path.parent / f"{Path(report.file).stem}.report.csv"


def write_report(report: Report) -> Path | None:
    """One row per source record: what became of it, and what of it the target cannot hold."""
    target = report_path(report)
    if target is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(report.outcomes.values(), key=lambda o: (o.file, o.row or 0, o.source_id))
    with open(target, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        for o in rows:
            left = "; ".join(o.left_out)
            writer.writerow([o.file, o.row, o.source_id, o.target_id, o.outcome, left, o.reason])
    return target
