"""The mapping file: find it (the working directory's `mappings/`, then the shipped ones),
read its TOML and check every section, key and spec before any row is read."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from etl.errors import EtlError


def _shipped_folder() -> Path:
    """etl/mappings in an installed package (setup.py puts them there), else the checkout's
    top-level mappings/ (an editable install, or running from the source tree)."""
    package = Path(__file__).resolve().parent.parent
    inside = package / "mappings"
    return inside if inside.is_dir() else package.parent / "mappings"


SHIPPED = _shipped_folder()

SECTIONS = {
    "source": {"system", "format", "records", "encoding", "timezone", "date_formats", "sheet"},
    "conversation": {
        "id",
        "skip",
        "threads",
        "threads_order",
        "subject",
        "status",
        "type",
        "createdAt",
        "closedAt",
        "customer",
        "assignee",
        "mailbox",
        "tags",
        "cc",
        "bcc",
        "custom_fields",
        "subject_from_first_message",
    },
    "thread": {
        "id",
        "type",
        "public",
        "body",
        "text_to_html",
        "createdAt",
        "author",
        "cc",
        "bcc",
        "to",
        "attachments",
    },
    "customer": {
        "id",
        "email",
        "emails",
        "name",
        "firstName",
        "lastName",
        "phone",
        "phones",
        "company",
        "jobTitle",
        "photoUrl",
        "notes",
        "address",
        "city",
        "state",
        "zip",
        "country",
        "websites",
        "socialProfiles",
        "customer_fields",
        "records",
        "skip",
    },
    "values": None,
    "lookups": None,
}
SPEC_KEYS = {
    "path",
    "map",
    "default",
    "split",
    "lookup",
    "field",
    "value",
    "first",
    "join",
    "sep",
    "strip_html",
    "truncate",
}
PERSON_KEYS = {"id", "email", "name", "firstName", "lastName", "type", "phone"}
ATTACHMENT_KEYS = {"path", "split", "fileName", "url", "file", "mimeType", "size"}


class MappingError(EtlError):
    """The mapping file is missing or malformed."""

    exit_code = 2


# -- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file."""

    name: str
    path: Path
    source: dict[str, Any]
    conversation: dict[str, Any]
    thread: dict[str, Any]
    customer: dict[str, Any]
    values: dict[str, dict[str, str]]
    lookups: dict[str, dict[str, Any]]

    @property
    def system(self) -> str:
        return str(self.source.get("system") or self.name)

    @property
    def timezone(self) -> str | None:
        return self.source.get("timezone") or None


def resolve_mapping_path(name_or_path: str, cwd: Path | None = None) -> Path:
    """A name resolves to `mappings/NAME.toml` (the working directory's, then the shipped one)."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path or "\\" in name_or_path:
        if not candidate.is_file():
            raise MappingError(f"mapping file {name_or_path} not found")
        return candidate
    for folder in ((cwd or Path.cwd()) / "mappings", SHIPPED):
        path = folder / f"{name_or_path}.toml"
        if path.is_file():
            return path
    names = ", ".join(shipped_mappings()) or "none"
    raise MappingError(f"no mapping named {name_or_path!r} (shipped: {names}; or give a path)")


def shipped_mappings() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.toml")) if SHIPPED.is_dir() else []


def load_mapping(name_or_path: str, timezone: str | None = None) -> Mapping:
    """Read and check a mapping; `timezone` (from --timezone) overrides the file's."""
    path = resolve_mapping_path(name_or_path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}") from None
    return parse_mapping(document, name=path.stem, path=path, timezone=timezone)


def parse_mapping(
    document: dict[str, Any], name: str = "mapping", path: Path | None = None, timezone=None
) -> Mapping:
    where = str(path or name)
    for section, value in document.items():
        if section not in SECTIONS:
            raise MappingError(f"{where}: unknown section [{section}]")
        if not isinstance(value, dict):
            raise MappingError(f"{where}: [{section}] must be a table")
        allowed = SECTIONS[section]
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise MappingError(f"{where}: [{section}] has unknown key(s): {', '.join(unknown)}")
    source = dict(document.get("source", {}))
    if timezone:
        source["timezone"] = timezone
    if source.get("timezone"):
        try:
            ZoneInfo(source["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise MappingError(f"{where}: unknown time zone {source['timezone']!r}") from None
    formats = source.get("date_formats", [])
    if isinstance(formats, str) or not all(isinstance(f, str) for f in formats):
        raise MappingError(f"{where}: [source] date_formats must be a list of strings")
    values = {
        table: {_key(k): str(v) for k, v in entries.items()}
        for table, entries in document.get("values", {}).items()
        if isinstance(entries, dict)
    }
    conversation = dict(document.get("conversation", {}))
    thread = dict(document.get("thread", {}))
    customer = dict(document.get("customer", {}))
    for section, specs in (("conversation", conversation), ("thread", thread)):
        for key, spec in specs.items():
            _check_spec(spec, f"{where}: [{section}] {key}", values, key)
    for key, spec in customer.items():
        _check_spec(spec, f"{where}: [customer] {key}", values, key)
    if conversation and "id" not in conversation:
        raise MappingError(f"{where}: [conversation] needs an `id`")
    return Mapping(
        name=name,
        path=path or Path(name),
        source=source,
        conversation=conversation,
        thread=thread,
        customer=customer,
        values=values,
        lookups=dict(document.get("lookups", {})),
    )


def _check_spec(spec: Any, where: str, values: dict, key: str) -> None:
    if key in ("text_to_html", "threads", "threads_order", "subject_from_first_message"):
        return
    if key in ("customer", "author") and isinstance(spec, dict):
        for sub, value in spec.items():
            if sub not in PERSON_KEYS:
                raise MappingError(f"{where}.{sub}: unknown key (use {sorted(PERSON_KEYS)})")
            _check_spec(value, f"{where}.{sub}", values, sub)
        return
    if key == "skip":
        if not isinstance(spec, dict):
            raise MappingError(f"{where}: a table of reason = spec")
        for sub, value in spec.items():
            _check_spec(value, f"{where}.{sub}", values, sub)
        return
    if key in ("custom_fields", "customer_fields") and isinstance(spec, dict):
        for sub, value in spec.items():
            _check_spec(value, f"{where}.{sub}", values, sub)
        return
    if key == "attachments" and isinstance(spec, dict):
        unknown = set(spec) - ATTACHMENT_KEYS
        if unknown:
            raise MappingError(f"{where}: unknown key(s) {sorted(unknown)}")
        return
    if isinstance(spec, str):
        return
    if isinstance(spec, list):
        for item in spec:
            _check_spec(item, where, values, key)
        return
    if isinstance(spec, dict):
        unknown = (
            set(spec)
            - SPEC_KEYS
            - ({"value", "type"} if key in ("emails", "phones", "socialProfiles") else set())
        )
        if unknown:
            raise MappingError(f"{where}: unknown key(s) {sorted(unknown)}")
        table = spec.get("map")
        if isinstance(table, str) and table not in values:
            raise MappingError(f"{where}: no value map [values.{table}]")
        return
    raise MappingError(f"{where}: expected a column/path, a list or a table")


def _key(value: Any) -> str:
    return str(value).strip().lower()
