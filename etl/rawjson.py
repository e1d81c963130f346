"""Decode a page of records and keep each record's JSON text as the server sent it.

The mirror keeps every record's original JSON in `raw_json`. Encoding each decoded record
again took a fifth of a fetch process's time; cutting its text out of the page costs a fraction
of that. The standard library's scanner decodes one record at a time and says where it ends.

A conversation's threads are rows of their own, so its text leaves out `_embedded.threads`
and each thread keeps its own text. A record this reader does not expect is decoded the usual
way, without its text (the mirror then encodes it), and a page it does not expect is handed to
`json.loads` whole, so nothing is decoded differently from the standard library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_scan = json.JSONDecoder().scan_once
_string = json.decoder.scanstring
_SPACE = re.compile(r"[ \t\n\r]*")
_BLANKS = frozenset(" \t\n\r")
_EMBEDDED = re.compile(r'"_embedded"[ \t\n\r]*:[ \t\n\r]*\{')

Reader = Callable[[str, int], tuple[Any, int]]


class Sourced(dict):
    """A decoded JSON object that also holds its text as received.

    `detached` holds the texts of the objects of the list left out of `text`, in list order.
    """

    __slots__ = ("text", "detached")

    def __init__(self, items: dict, text: str, detached: list[str] | None = None) -> None:
        super().__init__(items)
        self.text = text
        self.detached = detached


def text_of(record: Any) -> str | None:
    """The record's JSON text as received, if it was decoded here."""
    return getattr(record, "text", None)


def detached_texts(record: Any) -> list[str] | None:
    """The texts of the objects of the list left out of the record's text, if any."""
    return getattr(record, "detached", None)


class _Unexpected(ValueError):
    """Text this reader does not handle (it may still be valid JSON)."""


def page_reader(key: str, detach: str | None = None) -> Callable[[bytes], Any]:
    """A decoder for a list page: the records under `_embedded.<key>` come out as `Sourced`.

    With `detach`, each record's `_embedded.<detach>` list is left out of its text, and the
    texts of that list's elements are kept beside it (`detached_texts`).
    """
    record = _detaching(detach) if detach else _sourced
    records = _readers({key: lambda s, i: _array(s, i, record)})
    page = _readers({"_embedded": records})

    def decode(content: bytes) -> Any:
        text = content.decode(json.detect_encoding(content))
        try:
            document, end = page(text, _skip(text, 0))
            if _skip(text, end) == len(text):
                return document
        except (ValueError, StopIteration):
            pass
        return json.loads(text)  # the standard library decides, and words any error

    return decode


def _skip(s: str, i: int) -> int:
    """The first position from `i` that is not whitespace (compact JSON has none to skip)."""
    return _SPACE.match(s, i).end() if s[i : i + 1] in _BLANKS else i


def _expect(s: str, i: int, char: str) -> int:
    """The position after `char` (expected at s[i]) and any whitespace after it."""
    if s[i : i + 1] != char:
        raise _Unexpected(i)
    return _skip(s, i + 1)


def _readers(readers: dict[str, Reader]) -> Reader:
    """A reader for an object whose members named in `readers` are read by those."""

    def read(s: str, i: int) -> tuple[dict, int]:
        into: dict = {}
        end, _ = _members(s, _expect(s, i, "{"), into, readers)
        return into, end

    return read


def _members(
    s: str, i: int, into: dict, readers: dict[str, Reader] | None = None, empty: bool = True
) -> tuple[int, dict[str, tuple[int, int]]]:
    """Read `"key": value` members from s[i] to the object's `}` into `into`.

    Values of keys in `readers` are read by those, the rest by the scanner. Returns the end
    and, for each specially read member, where its key began and its value ended.
    """
    spans = {}
    if empty and s[i : i + 1] == "}":
        return i + 1, spans
    while True:
        start = i
        if s[i : i + 1] != '"':
            raise _Unexpected(i)
        key, i = _string(s, i + 1)
        i = _expect(s, _skip(s, i), ":")
        reader = readers.get(key) if readers else None
        into[key], i = reader(s, i) if reader else _scan(s, i)
        if reader:
            spans[key] = (start, i)
        i = _skip(s, i)
        if s[i : i + 1] == "}":
            return i + 1, spans
        i = _expect(s, i, ",")


def _array(s: str, i: int, element: Reader, texts: list[str] | None = None) -> tuple[list, int]:
    """The array at s[i], each element read by `element`; with `texts`, their texts too."""
    items: list = []
    i = _expect(s, i, "[")
    if s[i : i + 1] == "]":
        return items, i + 1
    while True:
        start = i
        value, i = element(s, i)
        items.append(value)
        if texts is not None:
            texts.append(s[start:i])
        i = _skip(s, i)
        if s[i : i + 1] == "]":
            return items, i + 1
        i = _expect(s, i, ",")


def _sourced(s: str, i: int) -> tuple[Any, int]:
    value, end = _scan(s, i)
    return (Sourced(value, s[i:end]) if isinstance(value, dict) else value), end


def _own_embedded(s: str, start: int) -> tuple[dict, re.Match] | None:
    """The members before the object's own `"_embedded": {`, and where that is (None: none).

    Those members are decoded in one piece. A `"_embedded": {` that belongs to a nested
    object leaves that piece unbalanced, and the next one is tried; one beyond the object's end
    leaves a whole object and more in it.
    """
    if s[start : start + 1] != "{":
        raise _Unexpected(start)
    for found in _EMBEDDED.finditer(s, start):
        head = s[start : found.start()].rstrip(" \t\n\r")
        if head == "{":
            return {}, found
        if not head.endswith(","):
            continue  # the first member of a nested object
        try:
            record, end = _scan(head[:-1] + "}", 0)
        except (ValueError, StopIteration):
            continue  # unbalanced: a nested object's
        return (record, found) if end == len(head) else None
    return None


def _detaching(name: str) -> Reader:
    def read(s: str, i: int) -> tuple[Any, int]:
        try:
            return _detached(s, i, name)
        except (ValueError, StopIteration):
            return _scan(s, i)  # decoded the usual way, without its text

    return read


def _detached(s: str, start: int, name: str) -> tuple[Sourced, int]:
    """The object at s[start]; its text leaves out `_embedded.<name>`, whose texts are kept."""
    own = _own_embedded(s, start)
    if own is None:  # nothing to leave out
        return _sourced(s, start)
    record, found = own
    embedded: dict = {}
    texts: list[str] = []
    readers = {name: lambda s, i: _array(s, i, _scan, texts)}
    i, spans = _members(s, _skip(s, found.end()), embedded, readers)
    record["_embedded"] = embedded
    i = _skip(s, i)
    if s[i : i + 1] == ",":
        end, _ = _members(s, _skip(s, i + 1), record, empty=False)
    elif s[i : i + 1] == "}":
        end = i + 1
    else:
        raise _Unexpected(i)
    text = s[start:end]
    if name not in spans:
        return Sourced(record, text), end
    key_start, value_end = spans[name]
    after = _skip(s, value_end)
    if s[after] == ",":  # more members follow: drop this one and its comma
        text = s[start:key_start] + s[_skip(s, after + 1) : end]
    else:  # the last member: drop the comma before it, if any
        before = s[start:key_start].rstrip(" \t\n\r")
        text = before.removesuffix(",") + s[value_end:end]
    return Sourced(record, text, texts), end
