"""`etl verify`: what the load ledger says was loaded, compared with what the target shows.

For each loaded conversation the ledger keeps what the target should show (`expected`):
subject, customer email, status, type, createdAt, closedAt, mailbox, assignee, tags, and per
thread its type, createdAt, a hash of its body and the files sent (name, size, sha256), oldest
first. Lineitem threads the target adds itself (status changes) are not compared. A thread's
attachments are compared by name and size; with `files`, each target file is downloaded and
its sha256 compared too. Ledger entries written before files were recorded are counted, and
their attachments not compared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from etl import ledger
from etl.client import Client
from etl.errors import ApiError, ConfigError, NotFound
from etl.load.attachments import why_not_read
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
    files: int = 0  # attachments the ledger recorded, compared by name and size
    downloaded: int = 0  # of those, downloaded from the target and compared by sha256
    bytes: int = 0
    unrecorded: int = 0  # conversations whose ledger entry names no files (older ledgers)

    def add(self, other: VerifyResult) -> None:
        self.checked += other.checked
        self.differences.extend(other.differences)
        self.files += other.files
        self.downloaded += other.downloaded
        self.bytes += other.bytes
        self.unrecorded += other.unrecorded


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
    threads = _threads(actual)
    have = [
        [t.get("type"), _stamp(t.get("createdAt")), ledger.thread_digest(t.get("body"))]
        for t in threads
    ]
    want = [list(t) for t in expected.get("threads", [])]
    if len(want) != len(have):
        out.append(("threads", len(want), len(have)))
    else:
        for position, (w, h) in enumerate(zip(want, have, strict=True), start=1):
            for index, name in enumerate(("type", "createdAt", "body")):
                if w[index] != h[index]:
                    out.append((f"thread {position} {name}", w[index], h[index]))
    for position, recorded, attached in thread_files(expected, actual):
        out.extend(compare_files(position, recorded, attached))
    return out


def _threads(actual: dict) -> list[dict]:
    """The target's threads oldest first (the API lists newest first), lineitems left out."""
    threads = (actual.get("_embedded") or {}).get("threads") or []
    return [t for t in reversed(threads) if t.get("type") != "lineitem"]


def thread_files(expected: dict, actual: dict) -> Iterator[tuple[int, list[dict], list[dict]]]:
    """(position, files the ledger recorded, the target's attachments) for each thread whose
    files the ledger recorded; none when the thread counts differ (reported already)."""
    threads = _threads(actual)
    if len(threads) != len(expected.get("threads", [])):
        return
    pairs = zip(expected["threads"], threads, strict=True)
    for position, (want, have) in enumerate(pairs, start=1):
        if len(want) > 3:
            yield position, want[3], (have.get("_embedded") or {}).get("attachments") or []


def records_files(expected: dict) -> bool:
    """Whether the entry records its threads' files (ledgers before that recorded none)."""
    return all(len(t) > 3 for t in expected.get("threads", []))


def pair_files(recorded: list[dict], attached: list[dict]) -> tuple[list, list, list]:
    """The recorded files matched with the target's attachments by name, in order:
    (pairs, recorded files the target lacks, target attachments not recorded)."""
    left = list(attached)
    pairs, missing = [], []
    for want in recorded:
        match = next((a for a in left if a.get("fileName") == want["fileName"]), None)
        if match is None:
            missing.append(want)
        else:
            left.remove(match)
            pairs.append((want, match))
    return pairs, missing, left


def compare_files(position: int, recorded: list[dict], attached: list[dict]) -> list[tuple]:
    """A thread's attachments by name (in any order) and size; a file the load left out was
    never recorded, so its absence is no difference."""
    out: list[tuple[str, Any, Any]] = []
    pairs, missing, extra = pair_files(recorded, attached)
    if missing or extra:
        names = [f["fileName"] for f in recorded], [a.get("fileName") for a in attached]
        out.append((f"thread {position} attachments", *names))
    for want, have in pairs:
        if want["size"] != have.get("size"):
            where = f"thread {position} attachment {want['fileName']} size"
            out.append((where, want["size"], have.get("size")))
    return out


class DigestSink:
    """A sink for Client.download that keeps only the hash of what is written; a retried
    download starts over with seek(0)."""

    def __init__(self) -> None:
        self.hash = hashlib.new(ledger.FILE_HASH)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.hash = hashlib.new(ledger.FILE_HASH)
        return 0

    def truncate(self, size: int | None = None) -> int:
        return 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return len(data)


def compare_contents(
    client: Client, position: int, recorded: list[dict], attached: list[dict], result: VerifyResult
) -> list[tuple]:
    """Download each target attachment that matches a recorded one by name and size, and
    compare its sha256 (the file URL, which may carry a token, is never shown)."""
    out: list[tuple[str, Any, Any]] = []
    pairs, _, _ = pair_files(recorded, attached)
    for want, have in pairs:
        if want["size"] != have.get("size"):
            continue  # reported by compare_files
        where = f"thread {position} attachment {want['fileName']} sha256"
        if not have.get("fileUrl"):
            out.append((where, want["sha256"], "no fileUrl on the target"))
            continue
        sink = DigestSink()
        try:
            result.bytes += client.download(have["fileUrl"], sink)
        except ApiError as exc:
            out.append((where, want["sha256"], why_not_read(exc)))
            continue
        result.downloaded += 1
        if sink.hash.hexdigest() != want["sha256"]:
            out.append((where, want["sha256"], sink.hash.hexdigest()))
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
    files: bool = False,
) -> VerifyResult:
    """Check every loaded record of the client's target; differences are listed, not fixed.
    With `files`, every recorded attachment is downloaded from the target and its sha256
    compared."""
    result = VerifyResult()
    jobs = []
    for kind in kinds:
        for source_system, entry in ledger.loaded(conn, client.url, kind, system):
            jobs.append((kind, source_system, entry))
    if not jobs:
        raise nothing_loaded(conn, client.url, system)
    bar = progress("verify", len(jobs))

    def check(job) -> VerifyResult:
        kind, source_system, entry = job
        one = VerifyResult(checked=1)
        path = (
            f"api/conversations/{entry.target_id}"
            if kind == "conversations"
            else f"api/customers/{entry.target_id}"
        )
        params = {"embed": "threads,tags"} if kind == "conversations" else None
        try:
            actual = client.get(path, params) or {}
        except NotFound:
            one.differences.append(
                Difference(
                    kind, source_system, entry.source_id, entry.target_id, "missing", None, None
                )
            )
            return one
        if kind == "conversations":
            found = compare_conversation(entry.expected, actual) if entry.expected else []
            for position, recorded, attached in thread_files(entry.expected or {}, actual):
                one.files += len(recorded)
                if files:
                    found += compare_contents(client, position, recorded, attached, one)
            if entry.expected and not records_files(entry.expected):
                one.unrecorded += 1
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
        one.differences += [
            Difference(kind, source_system, entry.source_id, entry.target_id, *f) for f in found
        ]
        return one

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for one in pool.map(check, jobs):
            result.add(one)
            bar.update(1)
    bar.close()
    return result
