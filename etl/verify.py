"""`etl verify`: what the load ledger says was loaded, compared with what the target shows.

For each loaded conversation the ledger keeps what the target should show (`expected`):
subject, customer email, status, type, createdAt, closedAt, mailbox, assignee, tags, and per
thread its type, createdAt and a hash of its body, oldest first. Lineitem threads the target
adds itself (status changes) are not compared.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from etl import ledger
from etl.client import Client
from etl.errors import ConfigError, NotFound
from etl.progress import Progress, silent
from etl.timeutil import format as format_timestamp
from etl.timeutil import parse as parse_timestamp


@dataclass(frozen=True)
class Difference:
    kind: str
    system: str
    source_id: str
    target_id: int | None
    field: str
    expected: Any
    actual: Any

    def line(self) -> str:
        noun = self.kind[:-1]
        where = f"{noun} {self.system}:{self.source_id} -> #{self.target_id}"
        if self.field == "missing":
            return f"{where}: missing on the target"
        return f"{where}: {self.field}: expected {self.expected!r}, target has {self.actual!r}"


@dataclass
class VerifyResult:
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)


def _stamp(value: str | None) -> str | None:
    return format_timestamp(parse_timestamp(value)) if value else None


def compare_conversation(expected: dict, actual: dict) -> list[tuple[str, Any, Any]]:
    """(field, expected, actual) for every difference between the ledger and the target."""
    out: list[tuple[str, Any, Any]] = []

    def check(name: str, want: Any, have: Any) -> None:
        if want != have:
            out.append((name, want, have))

    check("subject", expected["subject"], actual.get("subject"))
    customer = actual.get("customer") or {}
    if expected.get("customerEmail") or not expected.get("customerId"):
        email = customer.get("email") or ""
        check("customer", (expected.get("customerEmail") or "").casefold(), email.casefold())
    else:  # a customer without an email, given by id
        check("customer", expected["customerId"], customer.get("id"))
    check("status", expected["status"], actual.get("status"))
    check("type", expected["type"], actual.get("type"))
    check("createdAt", expected["createdAt"], _stamp(actual.get("createdAt")))
    if expected.get("closedAt"):
        check("closedAt", expected["closedAt"], _stamp(actual.get("closedAt")))
    if expected.get("mailboxId"):
        check("mailbox", expected["mailboxId"], actual.get("mailboxId"))
    if expected.get("assignTo"):
        check("assignee", expected["assignTo"], (actual.get("assignee") or {}).get("id"))
    embedded = actual.get("_embedded") or {}
    tags = sorted(str(t.get("name", "")).casefold() for t in embedded.get("tags") or [])
    check("tags", expected.get("tags", []), tags)
    threads = [t for t in embedded.get("threads") or [] if t.get("type") != "lineitem"]
    have = [
        [t.get("type"), _stamp(t.get("createdAt")), ledger.thread_digest(t.get("body"))]
        for t in reversed(threads)
    ]  # the API lists newest first
    want = [list(t) for t in expected.get("threads", [])]
    if len(want) != len(have):
        out.append(("threads", len(want), len(have)))
    else:
        for position, (w, h) in enumerate(zip(want, have, strict=True), start=1):
            for index, name in enumerate(("type", "createdAt", "body")):
                if w[index] != h[index]:
                    out.append((f"thread {position} {name}", w[index], h[index]))
    return out


def compare_customer(expected: dict, actual: dict) -> list[tuple[str, Any, Any]]:
    out = []
    emails = [
        str(e.get("value", "")).casefold()
        for e in (actual.get("_embedded") or {}).get("emails") or []
    ]
    want = (expected.get("email") or "").casefold()
    if want and want not in emails:
        out.append(("email", want, emails))
    if not expected.get("created"):
        return out  # a customer found on the target keeps its own names and phones
    for name in ("firstName", "lastName"):
        if expected.get(name) and expected[name] != actual.get(name):
            out.append((name, expected[name], actual.get(name)))
    phones = [p.get("value") for p in (actual.get("_embedded") or {}).get("phones") or []]
    missing = [p for p in expected.get("phones") or [] if p not in phones]
    if missing:
        out.append(("phones", expected["phones"], phones))
    return out


def nothing_loaded(conn, url: str, system: str | None) -> ConfigError:
    """Checking nothing is no success: most likely the URL or the database is the wrong one."""
    what = f"from {system} " if system else ""
    others = [t for t in ledger.targets(conn) if t != ledger.target_key(url)]
    where = f"it holds loads into {', '.join(others)}" if others else "it holds no loads"
    return ConfigError(f"the ledger holds nothing loaded {what}into {url}: {where}")


def verify(
    client: Client,
    conn,
    kinds: list[str],
    system: str | None = None,
    workers: int = 4,
    progress: Progress = silent,
) -> VerifyResult:
    """Check every loaded record of the client's target; differences are listed, not fixed."""
    result = VerifyResult()
    jobs = []
    for kind in kinds:
        for source_system, entry in ledger.loaded(conn, client.url, kind, system):
            jobs.append((kind, source_system, entry))
    if not jobs:
        raise nothing_loaded(conn, client.url, system)
    bar = progress("verify", len(jobs))

    def check(job) -> list[Difference]:
        kind, source_system, entry = job
        path = (
            f"api/conversations/{entry.target_id}"
            if kind == "conversations"
            else f"api/customers/{entry.target_id}"
        )
        params = {"embed": "threads,tags"} if kind == "conversations" else None
        try:
            actual = client.get(path, params) or {}
        except NotFound:
            return [
                Difference(
                    kind, source_system, entry.source_id, entry.target_id, "missing", None, None
                )
            ]
        if kind == "conversations":
            found = compare_conversation(entry.expected, actual) if entry.expected else []
        else:  # names and phones are checked only on customers the load created
            wanted = dict(entry.expected or {}, created=not entry.existing)
            found = compare_customer(wanted, actual) if entry.expected else []
        if kind == "conversations" and any(name == "customer" for name, _, _ in found):
            # The conversation may belong to a customer whose primary email is another one.
            customer_id = (actual.get("customer") or {}).get("id")
            if customer_id and not compare_customer(
                {"email": entry.expected.get("customerEmail")},
                client.get(f"api/customers/{customer_id}") or {},
            ):
                found = [f for f in found if f[0] != "customer"]
        return [
            Difference(kind, source_system, entry.source_id, entry.target_id, *f) for f in found
        ]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for differences in pool.map(check, jobs):
            result.checked += 1
            result.differences.extend(differences)
            bar.update(1)
    bar.close()
    return result
