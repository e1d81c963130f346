"""Read input files into plain rows: CSV (as Excel writes it), JSON, JSONL and XLSX.

Every row carries the file name and the number a person would look for: the spreadsheet row
for CSV and XLSX (the header is row 1), the line for JSONL, the record's position for JSON.
A row that cannot be read (a broken JSONL line) is still yielded, with `error` set, so it can
go to the rejects file while the rest load.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from etl.errors import EtlError

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
}
DELIMITERS = ",;\t|"


class InputError(EtlError):
    """The input file cannot be read at all (missing, wrong format, wrong encoding)."""

    exit_code = 2


@dataclass(frozen=True)
class SourceRow:
    """One input record: where it came from and its fields (None when it could not be read)."""

    file: str
    number: int
    data: dict[str, Any] | None
    error: str | None = None


def detect_format(path: Path, declared: str | None = None) -> str:
    """The reader for a file: the mapping's declared format, else the file extension."""
    if declared:
        if declared not in set(FORMATS.values()):
            raise InputError(f"unknown format {declared!r}: use csv, json, jsonl or xlsx")
        return declared
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        if path.suffix.lower() == ".xls":
            raise InputError(f"{path.name}: old .xls workbooks are not read; save it as .xlsx")
        raise InputError(
            f"{path.name}: unknown file type {path.suffix!r}; use csv, json, jsonl "
            "or xlsx (or set `format` in the mapping's [source])"
        )
    return kind


def read_rows(
    path: str | Path,
    *,
    fmt: str | None = None,
    encoding: str | None = None,
    records: str | None = None,
    sheet: str | None = None,
) -> Iterator[SourceRow]:
    """Yield every row of a file. `records` is the dotted path to the list inside a JSON file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    kind = detect_format(path, fmt)
    if kind == "csv":
        yield from _read_csv(path, encoding)
    elif kind == "jsonl":
        yield from _read_jsonl(path, encoding)
    elif kind == "json":
        yield from _read_json(path, encoding, records)
    else:
        yield from _read_xlsx(path, sheet)


# -- CSV ------------------------------------------------------------------------------------


def _text_encoding(encoding: str | None) -> str:
    # utf-8-sig reads plain UTF-8 too and drops the BOM Excel puts at the start.
    if not encoding or encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        return "utf-8-sig"
    return encoding


def _decode_hint(path: Path, exc: UnicodeDecodeError, encoding: str) -> InputError:
    line = exc.object[: exc.start].count(b"\n") + 1 if isinstance(exc.object, bytes) else "?"
    hint = " (Excel on Windows writes cp1252: try --encoding cp1252)" if "utf" in encoding else ""
    return InputError(
        f"{path.name}: line {line}: byte 0x{exc.object[exc.start]:02x} is not valid {encoding}"
        f"{hint}"
    )


def _read_csv(path: Path, encoding: str | None) -> Iterator[SourceRow]:
    codec = _text_encoding(encoding)
    raw = path.read_bytes()
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise _decode_hint(path, exc, codec) from None
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _guess_delimiter(first_line)
    header: list[str] | None = None
    number = 0
    for record, problem in _csv_records(text, delimiter):
        number += 1
        if problem is not None:
            if header is None:
                raise InputError(f"{path.name}: the header row: {problem}")
            yield SourceRow(path.name, number, None, problem)
            continue
        if header is None:
            if not any(cell.strip() for cell in record):
                continue
            header = _unique([cell.strip() for cell in record])
            continue
        if not any(cell.strip() for cell in record):
            continue  # Excel leaves blank rows at the end
        if len(record) > len(header):
            extra = [c for c in record[len(header) :] if c.strip()]
            if extra:
                yield SourceRow(
                    path.name,
                    number,
                    None,
                    f"{len(record)} cells but the header has {len(header)} columns "
                    "(an unquoted delimiter?)",
                )
                continue
        cells = record + [""] * (len(header) - len(record))
        yield SourceRow(path.name, number, dict(zip(header, cells, strict=False)))
    if header is None:
        raise InputError(f"{path.name}: the file is empty (no header row)")


def _csv_records(text: str, delimiter: str) -> Iterator[tuple[list[str], str | None]]:
    """The file's records, and for a record whose quotes do not pair up, why (no record).

    A stray quote opens a cell that runs on into the following lines: read leniently, it
    swallowed every row up to the next quote, or to the end of the file, without a word. Read
    strictly, the csv module stops there; the record that began on that line is reported,
    and reading goes on from the next line, so the rows after it still load.
    """
    # newline="" semantics: the csv module itself handles CRLF and newlines inside quotes.
    lines = io.StringIO(text, newline="").readlines()
    start = 0
    while start < len(lines):
        reader = csv.reader(iter(lines[start:]), delimiter=delimiter, strict=True)
        began = 0  # lines of this reader consumed before the current record
        try:
            for record in reader:
                yield record, None
                began = reader.line_num
            return
        except csv.Error as exc:
            line = start + began + 1
            yield (
                [],
                (
                    f"the quotes of the row that starts on line {line} do not pair up "
                    f"({exc}, line {start + reader.line_num}); read again from line {line + 1}"
                ),
            )
            start = line


def _guess_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


# -- JSON -----------------------------------------------------------------------------------


def _read_jsonl(path: Path, encoding: str | None) -> Iterator[SourceRow]:
    codec = _text_encoding(encoding)
    with open(path, encoding=codec, newline="") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield SourceRow(path.name, number, None, f"not valid JSON: {exc.msg}")
                    continue
                if not isinstance(value, dict):
                    yield SourceRow(path.name, number, None, "not a JSON object")
                    continue
                yield SourceRow(path.name, number, value)
        except UnicodeDecodeError as exc:
            raise _decode_hint(path, exc, codec) from None


def _read_json(path: Path, encoding: str | None, records: str | None) -> Iterator[SourceRow]:
    codec = _text_encoding(encoding)
    try:
        document = json.loads(path.read_text(encoding=codec))
    except UnicodeDecodeError as exc:
        raise _decode_hint(path, exc, codec) from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # one object per line, named .json
            yield from _read_jsonl(path, encoding)
            return
        raise InputError(f"{path.name}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    items = _records_in(document, records, path)
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            yield SourceRow(path.name, number, item)
        else:
            yield SourceRow(path.name, number, None, "not a JSON object")


def _records_in(document: Any, records: str | None, path: Path) -> list:
    if records:
        node = document
        for part in records.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, list):
            raise InputError(f"{path.name}: no list at {records!r}")
        return node
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        # A single list at the top or under `_embedded` (Help Scout, Smarticks pages).
        for holder in (document, document.get("_embedded")):
            if isinstance(holder, dict):
                lists = [v for v in holder.values() if isinstance(v, list)]
                if len(lists) == 1:
                    return lists[0]
        return [document]
    raise InputError(f"{path.name}: expected a JSON array or object")


# -- XLSX -----------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a person sees (ids stay `12`, not `12.0`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _read_xlsx(path: Path, sheet: str | None) -> Iterator[SourceRow]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a damaged or foreign file
        raise InputError(f"{path.name}: not a readable .xlsx workbook ({exc})") from None
    try:
        if sheet and sheet not in book.sheetnames:
            raise InputError(f"{path.name}: no sheet {sheet!r} (sheets: {book.sheetnames})")
        worksheet = book[sheet] if sheet else book.worksheets[0]
        header: list[str] | None = None
        for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            cells = [cell_text(v) for v in values]
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = _unique([c.strip() for c in cells])
                continue
            cells = cells[: len(header)] + [""] * (len(header) - len(cells))
            yield SourceRow(path.name, number, dict(zip(header, cells, strict=True)))
    finally:
        book.close()


# -- headers for `etl mapping init` ---------------------------------------------------------


def flatten(record: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Dotted paths of a JSON record's leaves; lists of objects are described by element 0."""
    out: dict[str, Any] = {}
    if isinstance(record, dict) and depth < 4:
        for key, value in record.items():
            out.update(flatten(value, f"{prefix}{key}.", depth + 1))
    elif isinstance(record, list) and record and isinstance(record[0], dict) and depth < 4:
        out[prefix.rstrip(".")] = record
        out.update(flatten(record[0], f"{prefix}0.", depth + 1))
    else:
        out[prefix.rstrip(".")] = record
    return out


def sample(path: str | Path, rows: int = 200, **kwargs: Any) -> list[dict[str, Any]]:
    """The first readable rows of a file (for drafting a mapping)."""
    out = []
    for row in read_rows(path, **kwargs):
        if row.data is not None:
            out.append(row.data)
        if len(out) >= rows:
            break
    return out
