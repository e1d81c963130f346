"""Mapping files -> pure row transformations: input rows in, source conversations/customers out.

A mapping is a TOML file (read with `tomllib`) that says where each Smarticks field comes from.
Nothing here talks to the API or the database: the output is normalised, checked data
(timestamps in UTC, statuses mapped, emails checked, limits checked), with every problem named
by file, row and field so the row can go to the rejects file.

The format, in brief (the shipped `mappings/*.toml` are commented examples):

    [source]
    system = "zendesk"        # names the source in the load ledger (ids are unique per system)
    format = "jsonl"          # csv | json | jsonl | xlsx; default from the file extension
    records = "tickets"       # JSON only: dotted path to the list of records
    encoding = "utf-8"        # text files; Excel on Windows writes cp1252
    timezone = "Europe/Paris" # zone of timestamps without an offset; unset: such rows are rejected
    date_formats = ["%d/%m/%Y %H:%M"]   # strptime formats tried after ISO 8601; "unix", "unix_ms"

    [conversation]            # one record = one conversation ...
    id = "id"
    threads = "comments"      # ... with its threads nested in a list; without `threads`, rows
                              #     sharing an `id` form one conversation, one thread per row
    threads_order = "oldest_first"      # the source's order, for threads with equal timestamps
    subject = "subject"
    status = { path = "status", map = "status" }
    type = { path = "via.channel", map = "type", default = "email" }
    createdAt = "created_at"  # default: the first thread's time
    closedAt = "closed_at"
    customer = { email = "requester.email", name = "requester.name" }   # or firstName/lastName
    assignee = "assignee.email"         # an agent's email, matched to the target's users
    mailbox = "mailbox.name"            # a target mailbox name, email or id (--mailbox wins)
    skip = { "deleted at the source" = "deletedAt" }   # reason = spec: not loaded when the
                              #     value is non-empty and not false/no/0
    tags = { path = "tags", split = "," }
    cc = "cc"
    custom_fields = { "Priority" = "priority" }   # target field name = spec; dropdown by label

    [thread]                  # evaluated on each thread (nested) or each row (grouped)
    type = { path = "type", map = "thread_type" }  # customer | message | note | skip | auto
    public = "public"         # false makes an agent's thread a note
    body = "html_body"
    text_to_html = false      # true: the body is plain text; escape it and keep line breaks
    createdAt = "created_at"
    author = { email = "author.email", type = "author.role", name = "author.name" }
    attachments = { path = "attachments", fileName = "file_name", url = "content_url" }

    [customer]                # for `etl load customers`
    id = "id"                 # default: the email
    email = "email"           # or emails = { path = "emails", value = "value", type = "type" }
    firstName = "first_name"

    [values.status]           # value maps, matched case-insensitively; "*" matches the rest
    solved = "closed"

    [lookups.users]           # another file beside the input, indexed by `key`
    file = "users.jsonl"
    key = "id"

A *spec* is a column name or dotted JSON path (`requester.email`, `emails.0.value`; `^.x`
reads the parent record from inside a nested thread), a list of specs (the first non-empty
wins), or a table: `{ path, map, default, split, lookup, field, strip_html, truncate }`,
`{ value = "constant" }`, `{ first = [...] }` or `{ join = [...], sep = " " }`.
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from etl.errors import EtlError
from etl.readers import SourceRow, read_rows
from etl.redact import redact_url

SHIPPED = Path(__file__).resolve().parent.parent / "mappings"

STATUSES = ("active", "pending", "closed", "spam")
TYPES = ("email", "phone", "chat")
THREAD_TYPES = ("customer", "message", "note")
SKIPPED_THREAD_TYPES = ("lineitem", "skip")
AUTHOR_TYPES = ("customer", "user")

# The API's documented limits (Create Customer) and the sandbox's for subjects and tags.
LIMITS = {
    "subject": 998,
    "firstName": 40,
    "lastName": 40,
    "jobTitle": 60,
    "company": 60,
    "photoUrl": 200,
    "tag": 100,
    "fileName": 255,
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

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
PERSON_KEYS = {"email", "name", "firstName", "lastName", "type", "phone"}
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
    if key in ("text_to_html", "threads", "threads_order"):
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
    if key == "custom_fields" and isinstance(spec, dict):
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
            set(spec) - SPEC_KEYS - ({"value", "type"} if key in ("emails", "phones") else set())
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


# -- evaluating specs ----------------------------------------------------------------------


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
            path = self.base_dir / spec["file"]
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


# -- dates ---------------------------------------------------------------------------------


class DateProblem(ValueError):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


def parse_date(value: Any, formats: Iterable[str] = (), timezone: str | None = None) -> str:
    """Any accepted timestamp as the API's `YYYY-MM-DDThh:mm:ssZ`; DateProblem if it can't be.

    A value without an offset is read in `timezone`; with no zone it is refused, never guessed.
    A local time that a daylight-saving change makes ambiguous or impossible is refused too.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "unix_ms" in formats:
            return _utc(datetime.fromtimestamp(value / 1000, UTC))
        return _utc(datetime.fromtimestamp(value, UTC))
    raw = text(value).strip()
    if not raw:
        raise DateProblem("missing_date", "no date")
    if raw.isdigit() and ("unix" in formats or "unix_ms" in formats):
        number = int(raw)
        if "unix_ms" in formats and number > 10**11:
            number //= 1000
        return _utc(datetime.fromtimestamp(number, UTC))
    parsed = _iso(raw)
    if parsed is None:
        for fmt in formats:
            if fmt in ("unix", "unix_ms"):
                continue
            try:
                parsed = datetime.strptime(raw, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise DateProblem(
            "bad_date", f"{raw!r} is not a date (ISO 8601 or one of the mapping's date_formats)"
        )
    if parsed.tzinfo is None:
        if not timezone:
            raise DateProblem(
                "date_without_zone",
                f"{raw!r} has no UTC offset and the mapping sets no time zone "
                "(set [source] timezone or pass --timezone)",
            )
        zone = ZoneInfo(timezone)
        early = parsed.replace(tzinfo=zone, fold=0)
        if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != parsed:
            raise DateProblem(
                "bad_date", f"{raw!r} does not exist in {timezone} (clocks go forward)"
            )
        if early.utcoffset() != parsed.replace(tzinfo=zone, fold=1).utcoffset():
            raise DateProblem("bad_date", f"{raw!r} is ambiguous in {timezone} (clocks go back)")
        parsed = early
    return _utc(parsed)


def _iso(raw: str) -> datetime | None:
    candidate = raw.replace("Z", "+00:00").replace("z", "+00:00")
    # The API's own `2021-04-21T13-24-01Z` form.
    if len(raw) >= 19 and raw[10] == "T" and raw[13] == "-" and raw[16] == "-":
        candidate = f"{raw[:13]}:{raw[14:16]}:{raw[17:]}".replace("Z", "+00:00")
    if len(candidate) < 10 or not candidate[:4].isdigit() or candidate[4] != "-":
        return None
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        return None


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def one_second_before(stamp: str) -> str:
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return _utc(when - timedelta(seconds=1))


# -- normalised source records ---------------------------------------------------------------


@dataclass
class Problem:
    """Why a row cannot be loaded: the field it concerns, a kind for counting, a sentence."""

    field: str
    kind: str
    reason: str
    row: int | None = None


@dataclass
class Person:
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    type: str | None = None  # customer | user, when the source says
    phone: str | None = None


@dataclass
class Attachment:
    file_name: str
    mime_type: str
    url: str | None = None
    path: Path | None = None


@dataclass
class SourceThread:
    row: int
    type: str  # customer | message | note | auto
    body: str
    created_at: str
    author: Person
    public: bool | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class SourceConversation:
    source_id: str
    file: str
    rows: list[int]
    subject: str = ""
    status: str = ""
    type: str = "email"
    created_at: str | None = None
    closed_at: str | None = None
    customer: Person = field(default_factory=Person)
    assignee_email: str | None = None
    mailbox: str | None = None
    tags: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    custom_fields: dict[str, str] = field(default_factory=dict)
    threads: list[SourceThread] = field(default_factory=list)  # oldest first
    skipped_threads: int = 0
    skip_reason: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def row(self) -> int:
        return self.rows[0] if self.rows else 0


@dataclass
class SourceCustomer:
    source_id: str
    file: str
    row: int
    payload: dict[str, Any] = field(default_factory=dict)
    email: str | None = None
    problems: list[Problem] = field(default_factory=list)


@dataclass
class RowReject:
    """A row that could not become a record at all (unreadable, or no id to group it by)."""

    file: str
    row: int
    problem: Problem


# -- conversations -------------------------------------------------------------------------


def conversations(
    mapping: Mapping, rows: Iterable[SourceRow], base_dir: Path
) -> tuple[list[SourceConversation], list[RowReject]]:
    """Rows -> source conversations (each with its problems, if any) and unusable rows."""
    if not mapping.conversation:
        raise MappingError(f"{mapping.path}: no [conversation] section; it maps customers only")
    ev = Evaluator(mapping, base_dir)
    spec = mapping.conversation
    nested = spec.get("threads")
    out: dict[str, SourceConversation] = {}
    grouped_rows: dict[str, list[tuple[int, dict]]] = {}
    rejects: list[RowReject] = []
    for row in rows:
        if row.data is None:
            rejects.append(RowReject(row.file, row.number, Problem("", "unreadable", row.error)))
            continue
        source_id = text(ev.value(spec["id"], row.data)).strip()
        if not source_id:
            rejects.append(
                RowReject(row.file, row.number, Problem(_name(spec["id"]), "missing_id", "no id"))
            )
            continue
        if nested:
            if source_id in out:
                first = out[source_id].row
                conv = SourceConversation(source_id, row.file, [row.number])
                conv.problems.append(
                    Problem("id", "duplicate_id", f"id {source_id} already at row {first}")
                )
                rejects.append(RowReject(row.file, row.number, conv.problems[0]))
                continue
            out[source_id] = _nested_conversation(ev, mapping, row, source_id)
        else:
            grouped_rows.setdefault(source_id, []).append((row.number, row.data))
            if source_id not in out:
                out[source_id] = SourceConversation(source_id, row.file, [])
    for source_id, members in grouped_rows.items():
        _grouped_conversation(ev, mapping, out[source_id], members)
    for conv in out.values():
        _check_conversation(conv)
    return list(out.values()), rejects


def _name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and isinstance(spec.get("path"), str):
        return spec["path"]
    if isinstance(spec, list) and spec:
        return _name(spec[0])
    return ""


def _nested_conversation(ev: Evaluator, mapping: Mapping, row: SourceRow, source_id: str):
    conv = SourceConversation(source_id, row.file, [row.number])
    _conversation_fields(ev, mapping, conv, [row.data], row.number)
    items = ev.value(mapping.conversation["threads"], row.data) or []
    if not isinstance(items, list):
        conv.problems.append(
            Problem(
                _name(mapping.conversation["threads"]),
                "bad_value",
                "threads is not a list",
                row.number,
            )
        )
        items = []
    if mapping.conversation.get("threads_order") == "newest_first":
        items = list(reversed(items))
    for item in items:
        if isinstance(item, dict):
            _add_thread(ev, mapping, conv, item, row.data, row.number)
    _sort_threads(conv)
    return conv


def _grouped_conversation(ev, mapping, conv: SourceConversation, members) -> None:
    conv.rows = [number for number, _ in members]
    _conversation_fields(ev, mapping, conv, [data for _, data in members], conv.rows[0])
    for number, data in members:
        _add_thread(ev, mapping, conv, data, None, number)
    _sort_threads(conv)


def _sort_threads(conv: SourceConversation) -> None:
    # Stable: equal timestamps keep the source's order.
    conv.threads.sort(key=lambda t: t.created_at or "")
    if not conv.created_at and conv.threads and conv.threads[0].created_at:
        conv.created_at = conv.threads[0].created_at


def _first_value(ev: Evaluator, spec: Any, records: list[dict]) -> Any:
    for record in records:
        value = ev.value(spec, record)
        if not is_empty(value):
            return value
    return None


def _conversation_fields(ev, mapping, conv: SourceConversation, records, row: int) -> None:
    spec = mapping.conversation
    fmt = mapping.source.get("date_formats", [])
    zone = mapping.timezone

    def get(key: str) -> Any:
        return _first_value(ev, spec.get(key), records) if key in spec else None

    def problem(key: str, kind: str, reason: str) -> None:
        conv.problems.append(Problem(_field_label(spec.get(key), key), kind, reason, row))

    for reason, rule in (spec.get("skip") or {}).items():
        value = _first_value(ev, rule, records)
        if not is_empty(value) and as_bool(value) is not False:
            conv.skip_reason = reason
            break
    conv.subject = text(get("subject"))
    status = text(get("status")).strip().lower()
    conv.status = status
    conv.type = text(get("type")).strip().lower() or "email"
    for key in ("createdAt", "closedAt"):
        raw = get(key)
        if is_empty(raw):
            continue
        try:
            stamp = parse_date(raw, fmt, zone)
        except DateProblem as exc:
            problem(key, exc.kind, f"{key}: {exc}")
            continue
        if key == "createdAt":
            conv.created_at = stamp
        else:
            conv.closed_at = stamp
    conv.customer = _person(ev, spec.get("customer"), records)
    assignee = get("assignee")
    conv.assignee_email = text(assignee).strip() or None
    conv.mailbox = text(get("mailbox")).strip() or None
    tag_spec = spec.get("tags")
    sep = tag_spec.get("split", ",") if isinstance(tag_spec, dict) else ","
    conv.tags = _unique_ci(as_list(get("tags"), sep))
    conv.cc = as_list(get("cc"))
    conv.bcc = as_list(get("bcc"))
    fields = spec.get("custom_fields")
    if isinstance(fields, dict):
        for name, field_spec in fields.items():
            value = _first_value(ev, field_spec, records)
            if not is_empty(value):
                conv.custom_fields[name] = text(value).strip()
    elif fields is not None:
        # A path to an object of name -> value (this tool's own export).
        value = _first_value(ev, fields, records)
        if isinstance(value, dict):
            conv.custom_fields = {k: text(v) for k, v in value.items() if not is_empty(v)}
        elif isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict) and not is_empty(entry.get("value")):
                    label = entry.get("text") or entry.get("value")
                    conv.custom_fields[text(entry.get("name"))] = text(label)


def _field_label(spec: Any, key: str) -> str:
    name = _name(spec)
    return name or key


def _unique_ci(items: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return list(seen.values())


def _person(ev: Evaluator, spec: Any, records: list[dict], parent: Any = None) -> Person:
    if spec is None:
        return Person()
    if not isinstance(spec, dict) or not (set(spec) & PERSON_KEYS) or "path" in spec:
        value = _first_value_parent(ev, spec, records, parent)
        return Person(email=text(value).strip() or None)

    def get(key: str) -> Any:
        return _first_value_parent(ev, spec[key], records, parent) if key in spec else None

    person = Person(
        email=text(get("email")).strip() or None,
        first_name=text(get("firstName")).strip() or None,
        last_name=text(get("lastName")).strip() or None,
        type=text(get("type")).strip().lower() or None,
        phone=text(get("phone")).strip() or None,
    )
    full = text(get("name")).strip()
    if full and not person.first_name and not person.last_name:
        person.first_name, last = split_name(full)
        person.last_name = last or None
    return person


def _first_value_parent(ev, spec, records, parent):
    for record in records:
        value = ev.value(spec, record, parent)
        if not is_empty(value):
            return value
    return None


def _add_thread(ev, mapping, conv: SourceConversation, item: dict, parent, row: int) -> None:
    spec = mapping.thread
    fmt = mapping.source.get("date_formats", [])

    def get(key: str) -> Any:
        return ev.value(spec.get(key), item, parent) if key in spec else None

    kind = text(get("type")).strip().lower() or "auto"
    if kind in SKIPPED_THREAD_TYPES:
        conv.skipped_threads += 1
        return
    body = get("body")
    body = "" if is_empty(body) else text(body)
    if spec.get("text_to_html") and body:
        body = html.escape(body, quote=False).replace("\r\n", "\n").replace("\n", "<br>\n")
    created = None
    raw = get("createdAt")
    try:
        created = parse_date(raw, fmt, mapping.timezone)
    except DateProblem as exc:
        label = _field_label(spec.get("createdAt"), "createdAt")
        conv.problems.append(Problem(label, exc.kind, f"thread createdAt: {exc}", row))
    thread = SourceThread(
        row=row,
        type=kind,
        body=body,
        created_at=created or "",
        author=_person(ev, spec.get("author"), [item], parent),
        public=as_bool(get("public")),
        cc=as_list(get("cc")),
        bcc=as_list(get("bcc")),
    )
    thread.attachments = _attachments(ev, spec.get("attachments"), item, parent, conv, row)
    if not body.strip() and not thread.attachments:
        conv.problems.append(
            Problem(
                _field_label(spec.get("body"), "body"), "empty_body", "a thread with no text", row
            )
        )
    conv.threads.append(thread)


def _attachments(ev, spec, item, parent, conv: SourceConversation, row: int) -> list[Attachment]:
    if spec is None:
        return []
    if isinstance(spec, dict):
        raw = get_path(item, spec["path"], parent) if spec.get("path") else None
    else:
        raw = ev.value(spec, item, parent)
    if is_empty(raw):
        return []
    if isinstance(raw, str):
        sep = spec.get("split", ";") if isinstance(spec, dict) else ";"
        raw = [p.strip() for p in raw.split(sep) if p.strip()]
    if not isinstance(raw, list):
        raw = [raw]
    out = []
    for entry in raw:
        if isinstance(entry, dict) and isinstance(spec, dict):
            name = text(ev.value(spec.get("fileName"), entry)).strip()
            url = text(ev.value(spec.get("url"), entry)).strip()
            local = text(ev.value(spec.get("file"), entry)).strip()
            mime = text(ev.value(spec.get("mimeType"), entry)).strip()
            where = url or local
        else:
            where, name, mime = text(entry).strip(), "", ""
        if not where:
            continue
        attachment = _attachment(ev.base_dir, where, name, mime, conv, row)
        if attachment and len(attachment.file_name) > LIMITS["fileName"]:
            conv.problems.append(
                Problem(
                    "attachments",
                    "too_long",
                    f"attachment name over {LIMITS['fileName']} characters",
                    row,
                )
            )
        elif attachment:
            out.append(attachment)
    return out


def _attachment(base: Path, where: str, name: str, mime: str, conv, row) -> Attachment | None:
    if re.match(r"^https?://", where, re.IGNORECASE):
        name = name or where.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "attachment"
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Attachment(name, mime, url=where)
    if re.match(r"^[a-z][a-z0-9+.-]*://", where, re.IGNORECASE):
        conv.problems.append(
            Problem(
                "attachments",
                "bad_attachment",
                f"{redact_url(where)}: only http(s) URLs or files",
                row,
            )
        )
        return None
    folder = base.resolve()
    path = (folder / where).resolve()
    if not path.is_relative_to(folder):
        conv.problems.append(
            Problem(
                "attachments",
                "attachment_outside_folder",
                f"{where}: refused, attachments must be inside the input file's folder",
                row,
            )
        )
        return None
    if not path.is_file():
        conv.problems.append(
            Problem("attachments", "attachment_missing", f"{where}: no such file", row)
        )
        return None
    name = name or path.name
    mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Attachment(name, mime, path=path)


def _check_dates(conv: SourceConversation) -> None:
    """A conversation closed before it was created, or dated in the future, is a problem.

    The API stores such dates as given; a mistyped year would file the conversation years
    away, where no one looks.
    """
    latest = _utc(datetime.now(UTC) + FUTURE_SLACK)
    for key, stamp in (("createdAt", conv.created_at), ("closedAt", conv.closed_at)):
        if stamp and stamp > latest:
            conv.problems.append(
                Problem(key, "bad_date", f"{key}: {stamp} is in the future", conv.row)
            )
    if conv.created_at and conv.closed_at and conv.closed_at < conv.created_at:
        conv.problems.append(
            Problem(
                "closedAt",
                "bad_date",
                f"closedAt {conv.closed_at} is before createdAt {conv.created_at}",
                conv.row,
            )
        )


def phone_customer_ok(conv: SourceConversation) -> bool:
    """A phone conversation may name its customer by phone or first name instead of an email
    (API reference, Create Conversation); every other type needs the email."""
    customer = conv.customer
    return conv.type == "phone" and bool(customer.phone or customer.first_name)


# A clock a little ahead at the source, or a time zone written one way too far, is not an error.
FUTURE_SLACK = timedelta(days=1)


def _check_conversation(conv: SourceConversation) -> None:
    """Checks that need no target: required fields, enums, emails, limits, dates."""
    add = conv.problems.append
    _check_dates(conv)
    if not conv.subject.strip():
        add(Problem("subject", "missing_subject", "no subject", conv.row))
    elif len(conv.subject) > LIMITS["subject"]:
        add(
            Problem("subject", "too_long", f"subject over {LIMITS['subject']} characters", conv.row)
        )
    if not conv.status:
        add(
            Problem(
                "status", "missing_status", "no status (set a default in the mapping)", conv.row
            )
        )
    elif conv.status not in STATUSES:
        add(
            Problem(
                "status",
                "unknown_status",
                f"unknown status {conv.status!r} (map it in [values.status] to one of "
                f"{', '.join(STATUSES)})",
                conv.row,
            )
        )
    if conv.type not in TYPES:
        add(
            Problem(
                "type",
                "unknown_type",
                f"unknown type {conv.type!r} (map it to email, phone or chat)",
                conv.row,
            )
        )
    email = conv.customer.email
    if not email and not phone_customer_ok(conv):
        reason = "no customer email"
        if conv.type == "phone":
            reason += " (a phone conversation needs at least a customer phone or first name)"
        add(Problem("customer.email", "missing_email", reason, conv.row))
    elif email and not valid_email(email):
        add(
            Problem(
                "customer.email", "invalid_email", f"{email!r} is not an email address", conv.row
            )
        )
    for key, value in (
        ("firstName", conv.customer.first_name),
        ("lastName", conv.customer.last_name),
    ):
        if value and len(value) > LIMITS[key]:
            add(
                Problem(
                    f"customer.{key}",
                    "too_long",
                    f"customer {key} over {LIMITS[key]} characters",
                    conv.row,
                )
            )
    if conv.assignee_email and not valid_email(conv.assignee_email):
        add(
            Problem(
                "assignee",
                "invalid_email",
                f"assignee {conv.assignee_email!r} is not an email address",
                conv.row,
            )
        )
    for tag in conv.tags:
        if len(tag) > LIMITS["tag"]:
            add(Problem("tags", "too_long", f"tag over {LIMITS['tag']} characters", conv.row))
    for address in conv.cc + conv.bcc:
        if not valid_email(address):
            add(
                Problem(
                    "cc", "invalid_email", f"cc/bcc {address!r} is not an email address", conv.row
                )
            )
    if not conv.threads:
        skipped = (
            f" ({conv.skipped_threads} system threads skipped)" if conv.skipped_threads else ""
        )
        add(Problem("threads", "no_threads", f"a conversation with no threads{skipped}", conv.row))
    for thread in conv.threads:
        if thread.type not in THREAD_TYPES and thread.type != "auto":
            add(
                Problem(
                    "thread.type",
                    "unknown_thread_type",
                    f"unknown thread type {thread.type!r} (map it to customer, message, "
                    "note or skip)",
                    thread.row,
                )
            )
        if thread.author.email and not valid_email(thread.author.email):
            add(
                Problem(
                    "thread.author",
                    "invalid_email",
                    f"thread author {thread.author.email!r} is not an email address",
                    thread.row,
                )
            )
        for address in thread.cc + thread.bcc:
            if not valid_email(address):
                add(
                    Problem(
                        "thread.cc",
                        "invalid_email",
                        f"cc/bcc {address!r} is not an email address",
                        thread.row,
                    )
                )


# -- customers -------------------------------------------------------------------------------


def customers(
    mapping: Mapping, rows: Iterable[SourceRow], base_dir: Path
) -> tuple[list[SourceCustomer], list[RowReject]]:
    """Rows -> Create Customer payloads with their problems, and unreadable rows."""
    if not mapping.customer:
        raise MappingError(f"{mapping.path}: no [customer] section; it maps conversations only")
    ev = Evaluator(mapping, base_dir)
    spec = mapping.customer
    out: list[SourceCustomer] = []
    rejects: list[RowReject] = []
    seen: dict[str, int] = {}
    for row in rows:
        if row.data is None:
            rejects.append(RowReject(row.file, row.number, Problem("", "unreadable", row.error)))
            continue
        customer = _customer(ev, spec, row)
        if customer.source_id in seen and customer.source_id:
            customer.problems.append(
                Problem(
                    "id",
                    "duplicate_id",
                    f"id {customer.source_id} already at row {seen[customer.source_id]}",
                    row.number,
                )
            )
        elif customer.source_id:
            seen[customer.source_id] = row.number
        out.append(customer)
    return out, rejects


def _customer(ev: Evaluator, spec: dict, row: SourceRow) -> SourceCustomer:
    data = row.data

    def get(key: str) -> Any:
        return ev.value(spec[key], data) if key in spec else None

    def label(key: str) -> str:
        return _field_label(spec.get(key), key)

    problems: list[Problem] = []
    emails = _entries(ev, spec.get("emails"), data) if "emails" in spec else []
    single = text(get("email")).strip()
    if single:  # the email column is the primary address
        emails = [e for e in emails if e["value"].casefold() != single.casefold()]
        emails.insert(0, {"value": single, "type": "work"})
    phones = _entries(ev, spec.get("phones"), data) if "phones" in spec else []
    phone = text(get("phone")).strip()
    if phone and phone not in {p["value"] for p in phones}:
        phones.insert(0, {"value": phone, "type": "work"})
    payload: dict[str, Any] = {}
    first, last = text(get("firstName")).strip(), text(get("lastName")).strip()
    full = text(get("name")).strip()
    if full and not first and not last:
        first, last = split_name(full)
    for key, value in (("firstName", first), ("lastName", last)):
        if value:
            payload[key] = value
    for key in ("company", "jobTitle", "photoUrl", "notes"):
        value = text(get(key)).strip()
        if value:
            payload[key] = value
    for key, value in payload.items():
        if key in LIMITS and len(value) > LIMITS[key]:
            problems.append(
                Problem(label(key), "too_long", f"{key} over {LIMITS[key]} characters", row.number)
            )
    if phones:
        payload["phones"] = phones
    address = {}
    for key in ("address", "city", "state", "zip", "country"):
        value = get(key)
        if isinstance(value, dict):  # an address object
            address.update({k: text(v) for k, v in value.items() if not is_empty(v)})
        elif not is_empty(value):
            address[key] = text(value).strip()
    if address.get("country") and not re.fullmatch(r"[A-Za-z]{2}", address["country"]):
        problems.append(
            Problem(
                label("country"),
                "bad_value",
                f"country {address['country']!r} is not a two-letter code",
                row.number,
            )
        )
    if address:
        payload["address"] = address
    websites = as_list(get("websites"))
    if websites:
        payload["websites"] = [{"value": w} for w in websites]
    if not emails:
        problems.append(Problem(label("email"), "missing_email", "no email", row.number))
    for entry in emails:
        if not valid_email(entry["value"]):
            problems.append(
                Problem(
                    label("email"),
                    "invalid_email",
                    f"{entry['value']!r} is not an email address",
                    row.number,
                )
            )
    payload["emails"] = emails
    primary = emails[0]["value"] if emails else None
    source_id = text(get("id")).strip() or (primary or "").lower()
    return SourceCustomer(source_id, row.file, row.number, payload, primary, problems)


def _entries(ev: Evaluator, spec: Any, data: Any) -> list[dict[str, str]]:
    """`emails`/`phones`: a list of {value, type} objects, a list of strings or delimited text."""
    raw = (
        ev.value(spec, data)
        if not isinstance(spec, dict) or "path" not in spec
        else (get_path(data, spec["path"]))
    )
    if is_empty(raw):
        return []
    value_key = spec.get("value", "value") if isinstance(spec, dict) else "value"
    type_key = spec.get("type", "type") if isinstance(spec, dict) else "type"
    if isinstance(raw, str) and raw.strip().startswith("["):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            pass
    if isinstance(raw, str):
        sep = spec.get("split", ",") if isinstance(spec, dict) else ","
        raw = [p.strip() for p in raw.split(sep) if p.strip()]
    out = []
    for entry in raw if isinstance(raw, list) else [raw]:
        if isinstance(entry, dict):
            value = text(entry.get(value_key)).strip()
            kind = text(entry.get(type_key)).strip() or "work"
        else:
            value, kind = text(entry).strip(), "work"
        if value:
            out.append({"value": value, "type": kind})
    return out


# -- drafting a mapping from a file's headers (`etl mapping init`) ---------------------------

GUESSES: dict[str, tuple[str, ...]] = {
    # target key: normalised header names, most specific first
    "id": ("conversationid", "ticketid", "caseid", "threadid", "ticketnumber", "id", "number"),
    "subject": ("subject", "title", "summary", "topic"),
    "status": ("status", "state", "ticketstatus"),
    "type": ("channel", "source", "via", "viachannel", "medium"),
    "createdAt": (
        "createdat",
        "createdtime",
        "created",
        "createddate",
        "conversationcreatedat",
        "dateopened",
        "opened",
        "date",
    ),
    "closedAt": ("closedat", "closedtime", "closed", "resolvedat", "resolvedtime", "solvedat"),
    "customer.email": (
        "customeremail",
        "requesteremail",
        "contactemail",
        "useremail",
        "email",
        "requester",
        "from",
        "fromemail",
    ),
    "customer.name": (
        "customername",
        "requestername",
        "contactname",
        "fullname",
        "name",
        "username",
    ),
    "customer.firstName": ("firstname", "customerfirstname", "givenname"),
    "customer.lastName": ("lastname", "customerlastname", "surname", "familyname"),
    "assignee": ("assigneeemail", "agentemail", "assignee", "agent", "owner", "ownedby"),
    "tags": ("tags", "tag", "labels"),
    "thread.body": (
        "body",
        "htmlbody",
        "message",
        "text",
        "content",
        "description",
        "comment",
        "messagebody",
    ),
    "thread.createdAt": (
        "messagecreatedat",
        "sentat",
        "threadcreatedat",
        "commentcreatedat",
        "partcreatedat",
        "messagedate",
    ),
    "thread.author.email": ("authoremail", "senderemail", "fromemail", "author"),
    "thread.type": ("threadtype", "messagetype", "parttype", "authortype", "sendertype"),
    "threads": ("threads", "comments", "messages", "conversationparts", "parts"),
}
STATUS_GUESSES = {
    "active": ("new", "open", "opened", "active", "reopened", "unassigned", "2"),
    "pending": ("pending", "hold", "onhold", "waiting", "waitingoncustomer", "snoozed", "3"),
    "closed": ("solved", "closed", "resolved", "done", "archived", "4", "5"),
    "spam": ("spam", "junk"),
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.casefold())


def draft_mapping(file_name: str, records: list[dict[str, Any]], kind: str = "conversations"):
    """A commented TOML mapping guessed from sample records, for a person to finish."""
    columns: dict[str, Any] = {}
    for record in records:
        for key, value in record.items() if all("." not in k for k in record) else []:
            columns.setdefault(key, value)
        if any(isinstance(v, dict | list) for v in record.values()):
            from etl.readers import flatten

            for key, value in flatten(record).items():
                columns.setdefault(key, value)
    by_norm: dict[str, list[str]] = {}
    for key in columns:
        for name in {_norm(key), _norm(key.rsplit(".", 1)[-1])}:
            by_norm.setdefault(name, []).append(key)
    used: set[str] = set()

    def guess(target: str) -> str | None:
        for candidate in GUESSES.get(target, ()):
            for found in by_norm.get(candidate, []):
                if found not in used and (kind == "customers" or ".0." not in found):
                    used.add(found)
                    return found
        return None

    lines = [
        f"# Draft mapping for {file_name}, guessed from its headers by `etl mapping init`.",
        "# Check every line, fill in the TODOs, then try: etl load ... --mapping THIS --dry-run",
        "# Format: see the comments in mappings/generic.toml and samples/README.md.",
        "",
        "[source]",
        f"system = {json.dumps(Path(file_name).stem)}   # names this source in the load ledger",
        '# timezone = "Europe/Paris"   # TODO: the zone of dates written without an offset',
        '# date_formats = ["%d/%m/%Y %H:%M"]   # if dates are not ISO 8601',
        "",
    ]
    if kind == "customers":
        lines.append("[customer]")
        for key, target in (
            ("id", "id"),
            ("email", "customer.email"),
            ("firstName", "customer.firstName"),
            ("lastName", "customer.lastName"),
            ("name", "customer.name"),
        ):
            found = guess(target)
            lines.append(f"{key} = {json.dumps(found)}" if found else f'# {key} = ""   # TODO')
        for key, names in (
            ("phone", ("phone", "phonenumber", "workphone", "mobile")),
            ("company", ("company", "companyname", "organization")),
            ("jobTitle", ("jobtitle", "title")),
            ("city", ("city",)),
            ("country", ("country", "countrycode")),
        ):
            found = next(
                (k for n in names for k in by_norm.get(n, []) if k not in used and "." not in k),
                None,
            )
            if found:
                used.add(found)
                lines.append(f"{key} = {json.dumps(found)}")
    else:
        threads = guess("threads")
        lines.append("[conversation]")
        for key, target in (
            ("id", "id"),
            ("subject", "subject"),
            ("createdAt", "createdAt"),
            ("closedAt", "closedAt"),
            ("assignee", "assignee"),
        ):
            found = guess(target)
            lines.append(f"{key} = {json.dumps(found)}" if found else f'# {key} = ""   # TODO')
        status = guess("status")
        lines.append(
            f'status = {{ path = {json.dumps(status)}, map = "status" }}'
            if status
            else '# status = { path = "", map = "status" }   # TODO'
        )
        channel = guess("type")
        lines.append(
            f'type = {{ path = {json.dumps(channel)}, default = "email" }}'
            if channel
            else 'type = { value = "email" }   # email, phone or chat'
        )
        person = {k: guess(f"customer.{k}") for k in ("email", "name", "firstName", "lastName")}
        parts = ", ".join(f"{k} = {json.dumps(v)}" for k, v in person.items() if v)
        lines.append(
            f"customer = {{ {parts} }}" if parts else '# customer = { email = "" }  # TODO'
        )
        tags = guess("tags")
        if tags:
            lines.append(f'tags = {{ path = {json.dumps(tags)}, split = "," }}')
        if threads:
            lines.append(f"threads = {json.dumps(threads)}   # each element is one thread")
        else:
            lines.append(
                "# No list of threads: rows sharing an id form one conversation, one"
                " thread per row."
            )
        lines += ["", "[thread]"]
        prefix = f"{threads}.0." if threads else ""
        body = _guess_in(by_norm, GUESSES["thread.body"], prefix, used)
        when = _guess_in(
            by_norm,
            GUESSES["thread.createdAt"] + GUESSES["createdAt"],
            prefix,
            used if threads else set(),
        )
        author = _guess_in(by_norm, GUESSES["thread.author.email"], prefix, used)
        kind_col = _guess_in(by_norm, GUESSES["thread.type"], prefix, used)
        lines.append(f"body = {json.dumps(body)}" if body else '# body = ""   # TODO')
        lines.append(f"createdAt = {json.dumps(when)}" if when else '# createdAt = ""   # TODO')
        if author:
            lines.append(f"author = {{ email = {json.dumps(author)} }}")
        lines.append(
            f'type = {{ path = {json.dumps(kind_col)}, map = "thread_type" }}'
            if kind_col
            else '# type = ""   # default: from the author (customer or agent)'
        )
        if not threads:
            lines.append("# text_to_html = true   # if bodies are plain text")
        if status:
            lines += ["", "[values.status]   # source value = active | pending | closed | spam"]
            seen = []
            for record in records:
                value = text(get_path(record, status)).strip()
                if value and value not in seen:
                    seen.append(value)
            for value in seen[:30]:
                mapped = next(
                    (k for k, names in STATUS_GUESSES.items() if _norm(value) in names), None
                )
                if mapped:
                    lines.append(f"{json.dumps(value)} = {json.dumps(mapped)}")
                else:
                    lines.append(f'# {json.dumps(value)} = ""   # TODO')
        if kind_col:
            lines += ["", "[values.thread_type]   # = customer | message | note | skip"]
            lines.append('# "agent" = "message"   # TODO')
    inner = f"{threads}." if kind != "customers" and threads else "\0"
    rest = [
        k
        for k in columns
        if k not in used and not isinstance(columns[k], list) and not k.startswith(inner)
    ]
    if rest:
        lines += ["", "# Columns not used above:"]
        lines += [f"#   {k}" for k in rest[:80]]
    return "\n".join(lines) + "\n"


def _guess_in(by_norm: dict[str, list[str]], names: tuple[str, ...], prefix: str, used: set[str]):
    for name in names:
        for key in by_norm.get(name, []):
            inside = key.startswith(prefix) and "." not in key[len(prefix) :]
            if inside and key not in used:
                used.add(key)
                return key[len(prefix) :] if prefix else key
    return None
