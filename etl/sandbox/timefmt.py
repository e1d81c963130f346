"""Timestamps: epoch seconds in, the API's two string forms out, ISO 8601 in."""

import time
from datetime import UTC, datetime

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DASHED_FORMAT = "%Y-%m-%dT%H-%M-%SZ"


def fmt_time(ts: int | None) -> str | None:
    """Format epoch seconds as `2021-04-21T13:24:01Z` (None stays None)."""
    if ts is None:
        return None
    return time.strftime(ISO_FORMAT, time.gmtime(ts))


def fmt_dashed(ts: int | None) -> str | None:
    """Format epoch seconds in the reference's quirky `2021-04-21T13-24-01Z` form."""
    if ts is None:
        return None
    return time.strftime(DASHED_FORMAT, time.gmtime(ts))


def parse_time(text: object) -> int:
    """Parse an ISO 8601 date-time (UTC when no offset) to epoch seconds; ValueError if bad."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected an ISO 8601 date-time string")
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() // 1)


def humanize_ago(seconds: int) -> str:
    """A short `10 hours ago` phrase for a non-negative age in seconds."""
    seconds = max(0, int(seconds))
    for size, unit in (
        (86400 * 365, "year"),
        (86400 * 30, "month"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"
