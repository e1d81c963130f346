"""Whole-file problems, found before the first request: each is one line that names the fix.

A row with a problem goes to the rejects file while the rest load; a file whose every row
would fail the same way (a column the mapping needs and the file lacks, a lookup file that is
not beside it, dates without a zone when none is set) stops the load instead (exit 2).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from etl import mapping as m
from etl.errors import EtlError
from etl.readers import SourceRow


class FileProblem(EtlError):
    """The whole input cannot load as it is; the message says what to change."""

    exit_code = 2


# The specs a record cannot do without, per section; the customer is checked as a whole.
REQUIRED = {
    "conversation": ("id",),
    "thread": ("body",),
}


def check_file(mapping: m.Mapping, rows: list[SourceRow], path: Path, kind: str) -> None:
    """Raise FileProblem for a problem every row shares (the rows are already read)."""
    records = [r.data for r in rows if r.data is not None]
    if not records:
        return
    _check_lookups(mapping, path)
    if kind == "conversations":
        conv = mapping.conversation
        for key in REQUIRED["conversation"]:
            _check_spec(conv.get(key), records, f"[conversation] {key}", path)
        if not conv.get("subject_from_first_message"):
            _check_spec(conv.get("subject"), records, "[conversation] subject", path)
        threads = _thread_records(mapping, records)
        if threads:
            for key in REQUIRED["thread"]:
                _check_spec(mapping.thread.get(key), threads, f"[thread] {key}", path)
        customer = conv.get("customer")
        if isinstance(customer, dict) and "path" not in customer:
            specs = [
                customer[k]
                for k in ("id", "email", "phone", "name", "firstName", "lastName")
                if k in customer
            ]
            _check_any(specs, records, "[conversation] customer", path)
    else:
        spec = mapping.customer
        keys = ("email", "emails", "phone", "phones", "name", "firstName", "lastName")
        _check_any([spec[k] for k in keys if k in spec], records, "[customer] email", path)


def check_zones(convs: Iterable[m.SourceConversation], path: Path) -> None:
    """Dates without an offset in every dated record and no zone set: one line, not N rejects."""
    dated = [c for c in convs if c.created_at or c.problems]
    if not dated:
        return
    if all(any(p.kind == "date_without_zone" for p in c.problems) for c in dated):
        raise FileProblem(
            f"{path.name}: no date has a UTC offset and no time zone is set: pass --timezone "
            "ZONE (e.g. --timezone Europe/Paris) or set [source] timezone in the mapping"
        )


def _check_lookups(mapping: m.Mapping, path: Path) -> None:
    for name, spec in mapping.lookups.items():
        if spec.get("optional") or not _uses_lookup(mapping, name):
            continue
        files = spec.get("file")
        names = [files] if isinstance(files, str) else list(files or [])
        if names and not any((path.parent / f).is_file() for f in names):
            raise FileProblem(
                f"{path.name}: the lookup file {names[0]} ([lookups.{name}] of mapping "
                f"{mapping.name}) is not beside it in {path.parent}: put it there (the same "
                "export has it)"
            )


def _uses_lookup(mapping: m.Mapping, name: str) -> bool:
    def walk(spec: Any) -> bool:
        if isinstance(spec, dict):
            return spec.get("lookup") == name or any(walk(v) for v in spec.values())
        if isinstance(spec, list):
            return any(walk(v) for v in spec)
        return False

    return walk([mapping.conversation, mapping.thread, mapping.customer])


def _thread_records(mapping: m.Mapping, records: list[dict]) -> list[dict]:
    nested = mapping.conversation.get("threads")
    if not nested:
        return records
    ev = m.Evaluator(mapping)
    out = []
    for record in records:
        items = ev.value(nested, record)
        if isinstance(items, list):
            out += [i for i in items if isinstance(i, dict)]
    return out


def _paths(spec: Any) -> list[str]:
    """The columns or paths a spec reads (a constant or a join reads none that must exist)."""
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, list):
        return [p for s in spec for p in _paths(s)]
    if isinstance(spec, dict):
        if "value" in spec or "join" in spec or "default" in spec:
            return []
        if "first" in spec:
            return _paths(spec["first"])
        if isinstance(spec.get("path"), str):
            return [spec["path"]]
    return []


def _present(path: str, records: list[dict]) -> bool:
    if path.startswith("^."):
        return True
    top = path.split(".", 1)[0]
    return any(path in r or top in r or m.get_path(r, path) is not None for r in records)


def _check_spec(spec: Any, records: list[dict], what: str, path: Path) -> None:
    paths = _paths(spec)
    if paths and not any(_present(p, records) for p in paths):
        raise FileProblem(_missing(paths[0], records, what, path))


def _check_any(specs: list[Any], records: list[dict], what: str, path: Path) -> None:
    if not specs or any(not _paths(s) for s in specs):
        return  # a constant or a join can always give a value
    paths = [p for s in specs for p in _paths(s)]
    if not any(_present(p, records) for p in paths):
        raise FileProblem(_missing(paths[0], records, what, path))


def _missing(column: str, records: list[dict], what: str, path: Path) -> str:
    headers = sorted({k for r in records[:200] for k in r})
    close = difflib.get_close_matches(column, headers, n=1, cutoff=0.5)
    hint = f"; the closest header is {close[0]!r}" if close else ""
    return (
        f"{path.name}: no column {column!r}, which {what} of the mapping reads{hint}: "
        "rename the column or fix the mapping"
    )
