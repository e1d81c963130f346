"""The one home for time: the API's timestamps parsed, written as the mirror stores them, shifted.

The mirror stores every moment as UTC text, `2024-01-31T10:00:00Z`, so that text order is
time order (cursors compare as text). The API writes that form too, except some endpoints
that write `2021-04-21T13-24-01Z`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", re.ASCII)


def parse(text: str) -> datetime:
    """An API timestamp as an aware UTC datetime; ValueError if it is not one."""
    text = text.strip()
    if len(text) >= 19 and text[10] == "T" and text[13] == "-" and text[16] == "-":
        text = f"{text[:13]}:{text[14:16]}:{text[17:]}"
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def format(when: datetime) -> str:
    """A moment as the mirror stores it (a naive datetime counts as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime(FORMAT)


def is_canonical(value: Any) -> bool:
    """True for text in the mirror's form (ASCII digits only)."""
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None


def canonical(value: Any) -> str | None:
    """An API timestamp as the mirror stores it; None for no value, text it cannot read as is."""
    if not value or not isinstance(value, str):
        return None
    if _CANONICAL.fullmatch(value):
        return value
    try:
        return format(parse(value))
    except ValueError:
        return value


def one_second_before(text: str) -> str:
    """`updatedSince` is strictly after: one second earlier includes the second itself."""
    return format(parse(text) - timedelta(seconds=1))


def now() -> str:
    """This moment, as the mirror stores it."""
    return format(datetime.now(UTC))
