"""Mirror -> CSV, XLSX, JSON, JSONL and Parquet, streamed in chunks so memory stays flat.

Rows come from the sheet queries in `etl.views` (the same SQL as the mirror's `*_sheet` views),
read with a cursor in chunks inside one read transaction, so an export is a consistent
point-in-time picture even while a sync writes. Each format's writer appends as rows arrive
and works on a `.part` file that is renamed into place only when the table is complete.

JSON and JSONL conversations are nested, self-contained records (threads, tags, custom fields
by name, customer and assignee with emails) in the shape `etl load conversations` reads back.
The attachment files the mirror holds go beside them (`files/ab/abcd…`, named by each
attachment's `file`), so a load needs nothing from the source, which may be gone.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from etl import files, search, timeutil, views
from etl.errors import ConfigError, EtlError
from etl.progress import Progress, silent
from etl.resources import ALL_STATUSES
from etl.views import DATE, INT, NUMBER, TEXT, TIME, Column, Sheet

FORMATS = ("csv", "xlsx", "json", "jsonl", "parquet")
DEFAULT_TABLES = views.SHEET_NAMES
TABLES = (*views.SHEET_NAMES, *views.MORE_SHEETS)
STATUSES = tuple(ALL_STATUSES.split(","))

EXCEL_MAX_ROWS = 1_048_576  # including the header row
EXCEL_MAX_CHARS = 32_767
# OWASP CSV injection: a cell starting with one of these is read as a formula by spreadsheets.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# ...unless the whole cell is a plain number, which a spreadsheet reads as that number.
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


class ExportError(EtlError):
    """Writing an export failed part-way (disk full, file removed...)."""


@dataclass(frozen=True)
class ExportOptions:
    tables: tuple[str, ...] = DEFAULT_TABLES
    since: str | None = None  # canonical UTC text, compared with `updated_at`
    mailboxes: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    include_deleted: bool = False
    excel: bool = False  # csv only: BOM, CRLF, neutralised formula-lookalikes
    chunk_size: int = 1000
    timezone: str = "UTC"  # an IANA zone: the times of every format are written in it
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> its columns
    attachment_files: bool = True  # json/jsonl: the mirror's stored files go beside the export

    @property
    def zone(self) -> tzinfo:
        return time_zone(self.timezone)


@dataclass
class ExportSummary:
    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    attachment_files: files.ExportFiles | None = None  # what went to `<out>/files/`


def time_zone(name: str) -> tzinfo:
    """An IANA time zone by name (`UTC`, `Europe/Paris`, `Asia/Kolkata`)."""
    if name.strip().upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"--timezone {name!r} is not a time zone: use an IANA name such as UTC, "
            "Europe/Paris or Australia/Sydney"
        ) from None


def parse_since(text: str, zone: tzinfo = UTC) -> str:
    """`2024-01-31`, `2024-01-31T10:00` (in `zone`), `...Z` or with an offset -> canonical UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return timeutil.format(moment)


def check_tables(names: Iterable[str]) -> tuple[str, ...]:
    """Validate table names (comma-separated entries allowed); none means the default five."""
    tables = [n.strip() for name in names for n in name.split(",") if n.strip()]
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise ConfigError(f"unknown table {unknown[0]!r}: choose from {', '.join(TABLES)}")
    return tuple(dict.fromkeys(tables)) or DEFAULT_TABLES


def parse_columns(values: Iterable[str], tables: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`--columns TABLE:COL,COL` (or just `COL,COL` when one table is exported) -> table -> names.

    Names are read as a CSV row, so a column whose name holds a comma can be "quoted".
    """
    chosen: dict[str, tuple[str, ...]] = {}
    for value in values:
        table, sep, names = value.partition(":")
        if not sep or table.strip() not in TABLES:
            if len(tables) != 1:
                raise ConfigError(
                    f"--columns {value!r}: name the table, as in conversations:id,subject "
                    "(several tables are exported)"
                )
            table, names = tables[0], value
        table = table.strip()
        if table not in tables:
            raise ConfigError(f"--columns names table {table!r}, which --tables does not export")
        row = next(csv.reader([names], skipinitialspace=True), [])
        picked = tuple(dict.fromkeys(n.strip() for n in row if n.strip()))
        if not picked:
            raise ConfigError(f"--columns {value!r} names no column")
        chosen[table] = picked
    return chosen


def pick_columns(sheet: Sheet, names: Sequence[str] | None, include_deleted: bool) -> list[Column]:
    """The sheet's columns to export, in the order asked; an unknown name is a usage error."""
    visible = sheet.visible(include_deleted)
    if not names:
        return list(visible)
    by_name = {c.name: c for c in visible}
    folded = {c.name.casefold(): c for c in visible}
    picked = []
    for name in names:
        column = by_name.get(name) or folded.get(name.casefold())
        if column is None:
            raise ConfigError(
                f"--columns: {sheet.name} has no column {name!r}; it has "
                f"{', '.join(c.name for c in visible)}"
            )
        picked.append(column)
    return picked


def conditions(sheet: Sheet, options: ExportOptions) -> tuple[list[str], list[Any]]:
    """The WHERE terms and parameters the options ask of this sheet (unused filters skipped)."""
    where: list[str] = []
    params: list[Any] = []
    f = sheet.filters
    if options.since and "since" in f:
        where.append(f"{f['since']} >= ?")
        params.append(options.since)
    if options.mailboxes and "mailbox" in f:
        where.append(f"{f['mailbox']} IN ({', '.join('?' for _ in options.mailboxes)})")
        params.extend(options.mailboxes)
    if options.statuses and "status" in f:
        where.append(f"{f['status']} IN ({', '.join('?' for _ in options.statuses)})")
        params.extend(options.statuses)
    if not options.include_deleted and "deleted" in f:
        where.append(f"{f['deleted']} IS NULL")
    return where, params


def _chunks(cursor: sqlite3.Cursor, size: int) -> Iterator[list[tuple]]:
    while rows := cursor.fetchmany(size):
        yield rows


# -- conversations as nested records -----------------------------------------------------------


def _person(kind: str | None, pid, email, first, last) -> dict[str, Any]:
    person = {"id": pid, "email": email, "firstName": first, "lastName": last}
    return {"type": kind, **person} if kind else person


def _list(text: str | None) -> list:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    return value if isinstance(value, list) else [value]


def _in(ids: Sequence[int]) -> str:
    return ", ".join(str(int(i)) for i in ids)


_RECORD_SQL = """SELECT c.id, c.number, c.subject, c.status, c.state, c.type,
  c.mailbox_id, m.name, m.email,
  c.customer_id, COALESCE(c.customer_email, cu.email),
  COALESCE(cu.first_name, json_extract(c.raw_json, '$.customer.firstName')),
  COALESCE(cu.last_name, json_extract(c.raw_json, '$.customer.lastName')),
  c.assignee_id, COALESCE(c.assignee_email, u.email),
  COALESCE(u.first_name, json_extract(c.raw_json, '$.assignee.firstName')),
  COALESCE(u.last_name, json_extract(c.raw_json, '$.assignee.lastName')),
  c.created_at, c.updated_at, c.closed_at, c.cc, c.bcc, c.deleted_at
FROM conversations c
LEFT JOIN mailboxes m ON m.id = c.mailbox_id
LEFT JOIN customers cu ON cu.id = c.customer_id
LEFT JOIN users u ON u.id = c.assignee_id"""

_THREAD_SQL = f"""SELECT t.conversation_id, t.id, t.type, t.body, t.created_at, t.status,
  t."to", t.cc, t.bcc,
  CASE WHEN {views.IS_USER_AUTHOR} THEN 'user' ELSE 'customer' END,
  CASE WHEN {views.IS_USER_AUTHOR} THEN t.created_by_id ELSE {views.CUSTOMER_AUTHOR_ID} END,
  CASE WHEN {views.IS_USER_AUTHOR} THEN COALESCE(au.email, t.created_by_email)
       ELSE {views.CUSTOMER_AUTHOR_EMAIL} END,
  CASE WHEN {views.IS_USER_AUTHOR} THEN au.first_name ELSE ac.first_name END,
  CASE WHEN {views.IS_USER_AUTHOR} THEN au.last_name ELSE ac.last_name END
FROM threads t
{views.THREAD_AUTHOR_JOINS}
WHERE t.conversation_id IN ({{ids}})
ORDER BY t.conversation_id, t.position, t.id"""

_FIELDS_SQL = f"""SELECT v.conversation_id, COALESCE(f.name, v.name), {views.field_label("v", "f")}
FROM conversation_custom_fields v LEFT JOIN custom_fields f ON f.id = v.field_id
WHERE v.conversation_id IN ({{ids}})
ORDER BY v.conversation_id, f.sort_order, v.field_id"""


def conversation_records(
    conn: sqlite3.Connection,
    where: Sequence[str],
    params: Sequence[Any],
    chunk_size: int = 100,
    zone: tzinfo = UTC,
    stored: files.ExportFiles | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Chunks of self-contained conversation records, threads oldest first (the load format).

    Times are ISO 8601 in `zone`, with its offset (`Z` for UTC). With `stored`, each
    attachment's file the mirror holds is put beside the export and named by its `file`.
    """

    def moment(value: Any) -> Any:
        return value if value is None or zone is UTC else (local_text(value, zone) or value)

    clause = f"\nWHERE {' AND '.join(where)}" if where else ""
    cursor = conn.execute(f"{_RECORD_SQL}{clause}\nORDER BY c.id", list(params))
    for rows in _chunks(cursor, chunk_size):
        ids = _in([r[0] for r in rows])
        attachments: dict[int, list] = {}
        for thread_id, name, mime, size, url, sha256, path in conn.execute(
            "SELECT thread_id, file_name, mime_type, size, file_url, sha256, path "
            f"FROM attachments WHERE conversation_id IN ({ids}) ORDER BY thread_id, id"
        ):
            attachment = {"fileName": name, "mimeType": mime, "size": size, "fileUrl": url}
            if stored is not None:
                attachment["file"] = stored.place(sha256, path)
            attachments.setdefault(thread_id, []).append(attachment)
        threads: dict[int, list] = {}
        for row in conn.execute(_THREAD_SQL.format(ids=ids)):
            cid, tid, kind, body, created, status, to, cc, bcc, *author = row
            threads.setdefault(cid, []).append(
                {
                    "id": tid,
                    "type": kind,
                    "body": body,
                    "createdAt": moment(created),
                    "author": _person(*author),
                    "to": _list(to),
                    "cc": _list(cc),
                    "bcc": _list(bcc),
                    "status": status,
                    "attachments": attachments.get(tid, []),
                }
            )
        tags: dict[int, list] = {}
        for cid, name in conn.execute(
            "SELECT conversation_id, name FROM conversation_tags "
            f"WHERE conversation_id IN ({ids}) ORDER BY conversation_id, name"
        ):
            tags.setdefault(cid, []).append(name)
        fields: dict[int, dict] = {}
        for cid, name, value in conn.execute(_FIELDS_SQL.format(ids=ids)):
            fields.setdefault(cid, {})[name] = value
        yield [_conversation_record(row, threads, tags, fields, moment) for row in rows]


def _conversation_record(row, threads, tags, fields, moment) -> dict[str, Any]:
    (cid, number, subject, status, state, kind, mailbox_id, mailbox, mailbox_email) = row[:9]
    customer, assignee = row[9:13], row[13:17]
    created, updated, closed, cc, bcc, deleted = row[17:]
    return {
        "id": cid,
        "number": number,
        "subject": subject,
        "status": status,
        "state": state,
        "type": kind,
        "mailbox": {"id": mailbox_id, "name": mailbox, "email": mailbox_email},
        "customer": _person(None, *customer),
        "assignee": _person(None, *assignee) if assignee[0] is not None else None,
        "createdAt": moment(created),
        "updatedAt": moment(updated),
        "closedAt": moment(closed),
        "cc": _list(cc),
        "bcc": _list(bcc),
        "tags": tags.get(cid, []),
        "customFields": fields.get(cid, {}),
        "threads": threads.get(cid, []),
        "deletedAt": moment(deleted),
    }


def customer_records(
    conn: sqlite3.Connection,
    sheet: Sheet,
    where: Sequence[str],
    params: Sequence[Any],
    options,
    zone: tzinfo = UTC,
) -> Iterator[list[dict[str, Any]]]:
    """The customers sheet's rows with every email, phone, social profile and website as
    `{value, type}` lists and the customer fields by name (`--mapping smarticks` loads them).

    Times are ISO 8601 in `zone`, with its offset (`Z` for UTC)."""
    columns = sheet.visible(options.include_deleted)
    names = [c.name for c in columns]
    times = [c.name for c in columns if c.kind == TIME] if zone is not UTC else []
    cursor = conn.execute(sheet.select(where, options.include_deleted), list(params))
    for rows in _chunks(cursor, min(options.chunk_size, 500)):
        records = [dict(zip(names, row, strict=True)) for row in rows]
        for record in records:
            for name in times:
                if record[name] is not None:
                    record[name] = local_text(record[name], zone) or record[name]
        ids = _in([r["id"] for r in records])
        lists: dict[str, dict[int, list]] = {}
        for key, table in (
            ("emails", "customer_emails"),
            ("phones", "customer_phones"),
            ("socialProfiles", "customer_social_profiles"),
            ("websites", "customer_websites"),
        ):
            found = lists[key] = {}
            for cid, value, kind in conn.execute(
                f"SELECT customer_id, value, type FROM {table} WHERE customer_id IN ({ids}) "
                "ORDER BY customer_id, position"
            ):
                entry = {"value": value, "type": kind} if kind else {"value": value}
                found.setdefault(cid, []).append(entry)
        fields: dict[int, dict[str, Any]] = {}
        for cid, name, label in conn.execute(
            "SELECT customer_id, name, COALESCE(NULLIF(text, ''), value) FROM customer_fields "
            f"WHERE customer_id IN ({ids}) ORDER BY customer_id, field_id"
        ):
            if label is not None:
                fields.setdefault(cid, {})[name] = label
        for record in records:
            for key, found in lists.items():
                record[key] = found.get(record["id"], [])
            record["customerFields"] = fields.get(record["id"], {})
        yield records


# -- value conversions ---------------------------------------------------------------------------


def parse_time(text: Any) -> datetime | None:
    """The mirror's `YYYY-MM-DDThh:mm:ssZ` as an aware UTC datetime; None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return timeutil.parse(text)
    except ValueError:
        return None


_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d", re.ASCII)


def parse_date(text: Any) -> date | None:
    """A date field's `YYYY-MM-DD` as a date; None for anything else."""
    if not isinstance(text, str) or not _ISO_DATE.fullmatch(text.strip()):
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def is_number(value: Any) -> bool:
    """Number fields arrive from the sheet query as numbers when they parsed (`views.as_number`)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def local_text(value: Any, zone: tzinfo) -> str | None:
    """A mirror time as ISO 8601 in `zone`, with its offset; None if it is not a time.

    UTC keeps the mirror's own `...Z` text, so the default export is unchanged.
    """
    moment = parse_time(value)
    if moment is None:
        return None
    if zone is UTC:
        return value
    return moment.astimezone(zone).isoformat()


UNPARSED = {
    TIME: "values that are not times",
    NUMBER: "values that are not numbers",
    DATE: "values that are not dates (YYYY-MM-DD)",
}


def neutralise(value: Any) -> Any:
    """OWASP CSV-injection defence: a leading quote makes a spreadsheet read the cell as text.

    Every cell is checked whatever its column's type: a mirror column typed as a number or a
    time still holds whatever the server sent when it did not parse (`+cmd|' /C calc'!A0` as a
    conversation number). Integers and empty cells cannot be formulas and pass untouched.
    """
    if value is None or isinstance(value, int):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_TRIGGERS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


# -- writers -------------------------------------------------------------------------------------


class Writer:
    """One output format. `table()` writes one table from chunks and returns its row count."""

    suffix = ""

    def __init__(self, out: Path, options: ExportOptions):
        self.out = out
        self.options = options
        self.zone = options.zone
        self.files: list[Path] = []
        self.warnings: Counter[str] = Counter()  # what -> how many times
        self.notes: list[str] = []  # one-off warnings

    def path_for(self, table: str) -> Path:
        return self.out / f"{table}{self.suffix}"

    def table(
        self, name: str, columns: Sequence[Column] | None, chunks: Iterable[list]
    ) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> None:
        """Called once after every table (the workbook is saved here)."""

    def abandon(self) -> None:
        """Called instead of `finish` when the export fails or is interrupted."""

    def unparsed(self, table: str, column: Column, outcome: str = "kept as text") -> None:
        self.warnings[f"{table}.{column.name}: {UNPARSED[column.kind]} {outcome}"] += 1

    def text_rows(self, table: str, columns: Sequence[Column], rows: list) -> list:
        """Rows for the text formats (CSV, JSON): times in the export's zone, all else as is.

        Typed custom fields are counted where a value did not parse (it stays text).
        """
        times = [i for i, c in enumerate(columns) if c.kind == TIME] if self.zone is not UTC else []
        checked = [i for i, c in enumerate(columns) if c.kind in (NUMBER, DATE)]
        if not times and not checked:
            return rows
        out = []
        for row in rows:
            row = list(row)
            for i in times:
                value = row[i]
                if value is not None:
                    text = local_text(value, self.zone)
                    if text is None:
                        self.unparsed(table, columns[i])
                    else:
                        row[i] = text
            for i in checked:
                value = row[i]
                if value is not None and not _parses(columns[i].kind, value):
                    self.unparsed(table, columns[i])
            out.append(row)
        return out


def _parses(kind: str, value: Any) -> bool:
    return is_number(value) if kind == NUMBER else parse_date(value) is not None


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


@contextmanager
def _writing(path: Path) -> Iterator[Path]:
    """Write to `<path>.part` and rename it into place only when complete."""
    part = _part(path)
    try:
        yield part
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)


class CsvWriter(Writer):
    suffix = ".csv"

    def table(self, name, columns, chunks) -> int:
        excel = self.options.excel
        path = self.path_for(name)
        count = 0
        encoding = "utf-8-sig" if excel else "utf-8"
        with _writing(path) as part, open(part, "w", encoding=encoding, newline="") as handle:
            writer = csv.writer(
                handle,
                lineterminator="\r\n" if excel else "\n",
                quoting=csv.QUOTE_ALL if excel else csv.QUOTE_MINIMAL,
            )
            header = [c.name for c in columns]
            writer.writerow([neutralise(h) for h in header] if excel else header)
            for rows in chunks:
                rows = self.text_rows(name, columns, rows)
                if excel:
                    rows = [[neutralise(value) for value in row] for row in rows]
                writer.writerows(rows)
                count += len(rows)
        self.files.append(path)
        return count


class JsonWriter(Writer):
    """`.json`: one array, a record per line; `.jsonl`: a record per line."""

    def __init__(self, out: Path, options: ExportOptions, lines: bool):
        super().__init__(out, options)
        self.lines = lines
        self.suffix = ".jsonl" if lines else ".json"

    def table(self, name, columns, chunks) -> int:
        path = self.path_for(name)
        names = [c.name for c in columns] if columns is not None else None
        count = 0
        with _writing(path) as part, open(part, "w", encoding="utf-8", newline="\n") as handle:
            if not self.lines:
                handle.write("[")
            for rows in chunks:
                if names:
                    rows = self.text_rows(name, columns, rows)
                for row in rows:
                    record = dict(zip(names, row, strict=True)) if names else row
                    text = json.dumps(record, ensure_ascii=False)
                    if self.lines:
                        handle.write(text + "\n")
                    else:
                        handle.write(("\n" if count == 0 else ",\n") + text)
                    count += 1
            if not self.lines:
                handle.write("\n]\n" if count else "]\n")
        self.files.append(path)
        return count


class ParquetWriter(Writer):
    """One file per table; ids int64, times timestamp[ms] in the export's zone, number fields
    float64, date fields date32, the rest strings. A value that does not fit its column's type
    is left empty and counted."""

    suffix = ".parquet"

    def table(self, name, columns, chunks) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {
            INT: pa.int64(),
            TIME: pa.timestamp("ms", tz=str(self.zone)),
            TEXT: pa.string(),
            NUMBER: pa.float64(),
            DATE: pa.date32(),
        }
        schema = pa.schema([pa.field(c.name, types[c.kind]) for c in columns])
        path = self.path_for(name)
        count = 0
        with _writing(path) as part, pq.ParquetWriter(part, schema, compression="zstd") as writer:
            for rows in chunks:
                arrays = [
                    pa.array(self._values(name, c, [row[i] for row in rows]), type=types[c.kind])
                    for i, c in enumerate(columns)
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                count += len(rows)
        self.files.append(path)
        return count

    def _values(self, table: str, column: Column, values: list) -> list:
        if column.kind == TEXT:
            return [v if v is None or isinstance(v, str) else str(v) for v in values]
        convert = {TIME: parse_time, INT: _int, NUMBER: _float, DATE: parse_date}[column.kind]
        out: list = []
        for value in values:
            if value is None:
                out.append(None)
                continue
            converted = convert(value)
            if converted is None:
                self.unparsed(table, column, "left empty in Parquet")
            out.append(converted)
        return out


def _int(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    return float(value) if is_number(value) else None


class XlsxWriter(Writer):
    """One sheet per table (continued on `name (2)` past Excel's row limit), in one workbook.

    Written by xlsxwriter in constant-memory mode: each row goes to the sheet's file as it
    comes, so memory stays flat; text is always written as text, never as a formula.
    """

    def __init__(
        self,
        out: Path,
        options: ExportOptions,
        max_rows: int | None = None,
        max_chars: int | None = None,
    ):
        import xlsxwriter

        super().__init__(out, options)
        self.part = _part(out)
        self.workbook = xlsxwriter.Workbook(
            str(self.part),
            {
                "constant_memory": True,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        self.bold = self.workbook.add_format({"bold": True})
        self.time_format = self.workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.date_format = self.workbook.add_format({"num_format": "yyyy-mm-dd"})
        self.max_rows = max_rows or EXCEL_MAX_ROWS
        self.max_chars = max_chars or EXCEL_MAX_CHARS

    def table(self, name, columns, chunks) -> int:
        count = 0
        part = 1
        sheet, row_at = None, 0
        writers = [self._cell_writer(name, c) for c in columns]
        for rows in chunks:
            for row in rows:
                if sheet is None or row_at >= self.max_rows:
                    if sheet is not None:
                        self._close_sheet(sheet, columns, row_at)
                        part += 1
                        self.notes.append(
                            f"{name}: more than {self.max_rows - 1:,} rows, continued on "
                            f"sheet '{name} ({part})'"
                        )
                    title = name if part == 1 else f"{name} ({part})"
                    sheet = self._open_sheet(title, columns, rows)
                    row_at = 1
                for col, (write, value) in enumerate(zip(writers, row, strict=True)):
                    if value is not None:
                        write(sheet, row_at, col, value)
                row_at += 1
                count += 1
        if sheet is None:
            sheet, row_at = self._open_sheet(name, columns, []), 1
        self._close_sheet(sheet, columns, row_at)
        return count

    def _open_sheet(self, title: str, columns: Sequence[Column], sample: list):
        sheet = self.workbook.add_worksheet(title)
        sheet.freeze_panes(1, 0)
        for i, column in enumerate(columns):
            sheet.set_column(i, i, _width(column, i, sample))
        for i, column in enumerate(columns):
            sheet.write_string(0, i, column.name, self.bold)
        return sheet

    def _close_sheet(self, sheet, columns: Sequence[Column], rows: int) -> None:
        sheet.autofilter(0, 0, max(0, rows - 1), max(0, len(columns) - 1))

    def _cell_writer(self, table: str, column: Column):
        """How this column's cells are written: typed where they parse, else as text."""
        text = self._text_writer(column)
        if column.kind == TIME:
            zone, fmt = self.zone, self.time_format

            def write_time(sheet, row, col, value):
                moment = parse_time(value)
                if moment is None:
                    self.unparsed(table, column)
                    return text(sheet, row, col, value)
                # Excel has no time zones: a local clock time in the export's zone
                sheet.write_datetime(row, col, moment.astimezone(zone).replace(tzinfo=None), fmt)

            return write_time
        if column.kind == DATE:

            def write_date(sheet, row, col, value):
                day = parse_date(value)
                if day is None:
                    self.unparsed(table, column)
                    return text(sheet, row, col, value)
                sheet.write_datetime(row, col, day, self.date_format)

            return write_date
        if column.kind in (INT, NUMBER):

            def write_number(sheet, row, col, value):
                if is_number(value):
                    return sheet.write_number(row, col, value)
                if column.kind == NUMBER:
                    self.unparsed(table, column)
                return text(sheet, row, col, value)

            return write_number
        return text

    def _text_writer(self, column: Column):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        max_chars = self.max_chars

        def write_text(sheet, row, col, value):
            text = value if isinstance(value, str) else str(value)
            if ILLEGAL_CHARACTERS_RE.search(text):
                text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
                self.warnings["cells with control characters Excel forbids (shown as \ufffd)"] += 1
            if len(text) > max_chars:
                marker = f" [… cut: {len(text):,} characters in full; CSV/JSON/Parquet keep all]"
                text = text[: max_chars - len(marker)] + marker
                self.warnings[
                    f"cells over Excel's {max_chars:,}-character limit cut (marked '[… cut') "
                    f"in sheet '{sheet.name}', column {column.name}"
                ] += 1
            sheet.write_string(row, col, text)

        return write_text

    def finish(self) -> None:
        self.workbook.close()
        os.replace(self.part, self.out)
        self.files.append(self.out)

    def abandon(self) -> None:
        """Remove the sheets' row files (constant-memory mode keeps one per sheet) and the
        part-written workbook."""
        for sheet in self.workbook.worksheets():
            with suppress(Exception):
                sheet.row_data_fh.close()
            with suppress(Exception):
                os.unlink(sheet.row_data_filename)
        self.part.unlink(missing_ok=True)


def _width(column: Column, index: int, sample: list) -> float:
    if column.kind == TIME:
        return 20
    if column.kind == DATE:
        return 12
    if column.kind in (INT, NUMBER):
        return max(8, len(column.name) + 3)
    longest = len(column.name)
    for row in sample[:200]:
        value = row[index]
        if isinstance(value, str):
            longest = max(longest, len(value.split("\n", 1)[0][:100]))
    return min(60, max(10, longest + 2))


def make_writer(fmt: str, out: Path, options: ExportOptions) -> Writer:
    if fmt == "csv":
        return CsvWriter(out, options)
    if fmt == "xlsx":
        return XlsxWriter(out, options)
    if fmt in ("json", "jsonl"):
        return JsonWriter(out, options, lines=fmt == "jsonl")
    if fmt == "parquet":
        return ParquetWriter(out, options)
    raise ConfigError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")


def prepare_output(fmt: str, out: str | os.PathLike) -> Path:
    """The file (xlsx) or directory (others) to write, created and checked writable up front."""
    path = Path(out)
    try:
        if fmt == "xlsx":
            if path.is_dir():
                path = path / "smarticks.xlsx"
            path.parent.mkdir(parents=True, exist_ok=True)
            probe = _part(path)
        else:
            if path.exists() and not path.is_dir():
                raise ConfigError(f"--out {path} is a file: {fmt} export writes a directory")
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".etl-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to {path}: {exc.strerror or exc}") from None
    return path


# -- the export ----------------------------------------------------------------------------------


def export(
    conn: sqlite3.Connection,
    fmt: str,
    out: str | os.PathLike,
    options: ExportOptions | None = None,
    progress: Progress = silent,
) -> ExportSummary:
    """Write the selected tables of the mirror in one format; returns files, rows and warnings."""
    options = options or ExportOptions()
    options = ExportOptions(**{**options.__dict__, "tables": check_tables(options.tables)})
    if options.excel and fmt != "csv":
        raise ConfigError("--excel applies to --format csv only")
    unknown = [t for t in options.columns if t not in options.tables]
    if unknown:
        raise ConfigError(f"--columns names table {unknown[0]!r}, which --tables does not export")
    time_zone(options.timezone)  # an unknown zone stops the export before anything is written
    writer = make_writer(fmt, prepare_output(fmt, out), options)
    summary = ExportSummary()
    found_in = files.database_folder(conn)
    if fmt in ("json", "jsonl") and options.attachment_files and found_in is not None:
        summary.attachment_files = files.ExportFiles(found_in, writer.out)
    if not conn.in_transaction:
        search.refresh(conn)  # thread text in the sheets is read from the search index
    began = not conn.in_transaction
    if began:
        conn.execute("BEGIN")  # one read snapshot for every table
    try:
        sheets = views.sheets(conn)
        picked = {
            name: pick_columns(sheets[name], options.columns.get(name), options.include_deleted)
            for name in options.tables
        }
        for name in options.tables:
            summary.rows[name] = _export_table(
                conn, fmt, writer, sheets[name], picked[name], options, progress, summary
            )
        writer.finish()
    except BaseException as exc:
        writer.abandon()
        if isinstance(exc, OSError):
            raise ExportError(f"writing the {fmt} export failed: {exc}") from None
        raise
    finally:
        if began:
            conn.rollback()
    summary.files = writer.files
    summary.warnings = [f"{n:,} {what}" for what, n in writer.warnings.items()] + writer.notes
    return summary


def _export_table(conn, fmt, writer: Writer, sheet: Sheet, columns, options, progress, summary):
    where, params = conditions(sheet, options)
    # JSON conversations and customers are nested records, unless columns are picked
    nested = fmt in ("json", "jsonl") and sheet.name in ("conversations", "customers")
    nested = nested and sheet.name not in options.columns
    if not nested and any(c.name == views.MORE_FIELDS for c in columns):
        writer.notes.extend(f"{sheet.name}: {note}" for note in sheet.notes)
    total = conn.execute(sheet.count(where), params).fetchone()[0]
    bar = progress(sheet.name, total)
    try:
        if nested and sheet.name == "conversations":
            chunks = conversation_records(
                conn,
                where,
                params,
                min(options.chunk_size, 100),
                writer.zone,
                summary.attachment_files,
            )
            header = None
        elif nested:
            chunks = customer_records(conn, sheet, where, params, options, writer.zone)
            header = None
        else:
            query = sheet.select(where, options.include_deleted, columns)
            chunks = _chunks(conn.execute(query, params), options.chunk_size)
            header = columns
        return writer.table(sheet.name, header, _counted(chunks, bar))
    finally:
        bar.close()


def _counted(chunks: Iterable[list], bar) -> Iterator[list]:
    for chunk in chunks:
        yield chunk
        bar.update(len(chunk))
