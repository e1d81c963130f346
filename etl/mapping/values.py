"""The value language of mapping specs: paths into records, value maps, lookups, and the
small conversions (text, lists, booleans, names, emails) that every spec result goes through."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from etl.mapping.definition import Mapping, MappingError, _key
from etl.readers import read_rows

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def get_path(record: Any, path: str, parent: Any = None) -> Any:
    """A column by its exact name, else a dotted path (`a.b.0.c`); `^.` starts at the parent."""
    if path.startswith("^."):
        return get_path(parent, path[2:])
    if isinstance(record, dict) and path in record:
        return record[path]
    node = record
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
        if node is None:
            return None
    return node


class Evaluator:
    """Evaluates specs against records; holds the value maps and lookup tables of one mapping."""

    def __init__(self, mapping: Mapping, base_dir: Path | None = None):
        self.mapping = mapping
        self.base_dir = base_dir or Path.cwd()
        self._lookups: dict[str, dict[str, Any]] = {}

    def value(self, spec: Any, record: Any, parent: Any = None) -> Any:
        if spec is None:
            return None
        if isinstance(spec, str):
            return get_path(record, spec, parent)
        if isinstance(spec, list):
            return self._first(spec, record, parent)
        if "value" in spec:
            out = spec["value"]
        elif "first" in spec:
            out = self._first(spec["first"], record, parent)
        elif "join" in spec:
            parts = [self.value(s, record, parent) for s in spec["join"]]
            out = spec.get("sep", " ").join(text(p) for p in parts if not is_empty(p))
        else:
            out = get_path(record, spec.get("path", ""), parent) if spec.get("path") else None
        if "lookup" in spec and not is_empty(out):
            found = self.lookup(spec["lookup"], out)
            out = get_path(found, spec["field"]) if found and spec.get("field") else found
        if "split" in spec and isinstance(out, str):
            out = [p.strip() for p in out.split(spec["split"]) if p.strip()]
        if spec.get("strip_html") and isinstance(out, str):
            out = html_to_line(out)
        if spec.get("truncate") and isinstance(out, str) and len(out) > spec["truncate"]:
            out = out[: spec["truncate"] - 1].rstrip() + "…"
        if "map" in spec and not is_empty(out):
            out = self.mapped(spec["map"], out)
        if is_empty(out) and "default" in spec:
            out = spec["default"]
        return out

    def _first(self, specs: list, record: Any, parent: Any) -> Any:
        for spec in specs:
            value = self.value(spec, record, parent)
            if not is_empty(value):
                return value
        return None

    def mapped(self, table: str | dict, value: Any) -> Any:
        entries = self.mapping.values.get(table, {}) if isinstance(table, str) else table
        entries = {_key(k): v for k, v in entries.items()}
        if isinstance(value, list):
            return [entries.get(_key(v), entries.get("*", v)) for v in value]
        if isinstance(value, bool):
            key = "true" if value else "false"
        else:
            key = _key(text(value))
        return entries.get(key, entries.get("*", value))

    def lookup(self, name: str, key: Any) -> Any:
        if name not in self._lookups:
            spec = self.mapping.lookups.get(name)
            if not spec or "file" not in spec or "key" not in spec:
                raise MappingError(f"{self.mapping.path}: [lookups.{name}] needs `file` and `key`")
            table: dict[str, Any] = {}
            files = [spec["file"]] if isinstance(spec["file"], str) else list(spec["file"])
            path = next(
                (self.base_dir / f for f in files if (self.base_dir / f).is_file()),
                self.base_dir / files[0],
            )
            if path.is_file():
                for row in read_rows(path, records=spec.get("records")):
                    if row.data is not None:
                        table[text(get_path(row.data, spec["key"]))] = row.data
            self._lookups[name] = table
        return self._lookups[name].get(text(key))


def text(value: Any) -> str:
    """A scalar as text: `12` for 12 and 12.0, `true`/`false` for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_TAG = re.compile(r"<[^>]+>")


def html_to_line(value: str) -> str:
    """Tags dropped, entities decoded, whitespace collapsed (for subjects made from bodies)."""
    return " ".join(html.unescape(_TAG.sub(" ", value)).split())


def as_list(value: Any, sep: str = ",") -> list[str]:
    """A list from a list, a JSON array in text, or delimited text; empties dropped."""
    if is_empty(value):
        return []
    if isinstance(value, list):
        items = [
            v.get("name", v.get("tag", v.get("value"))) if isinstance(v, dict) else v for v in value
        ]
        return [text(v).strip() for v in items if not is_empty(v)]
    raw = text(value).strip()
    if raw.startswith("["):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return as_list(parsed)
    return [p.strip() for p in raw.split(sep) if p.strip()]


def as_bool(value: Any) -> bool | None:
    if is_empty(value):
        return None
    if isinstance(value, bool):
        return value
    word = text(value).strip().lower()
    if word in ("true", "yes", "y", "1", "public"):
        return True
    if word in ("false", "no", "n", "0", "private", "internal"):
        return False
    return None


def split_name(full: str) -> tuple[str, str]:
    """`Ana María López` -> (`Ana`, `María López`)."""
    parts = full.strip().split(None, 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (full.strip(), "")


def valid_email(value: str) -> bool:
    return bool(EMAIL.match(value))
