"""Source timestamps -> the API's `YYYY-MM-DDThh:mm:ssZ`: ISO 8601, the mapping's formats,
Unix times; a value without an offset is read in the mapping's zone, never guessed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from etl.mapping.values import text
from etl.timeutil import format as _utc
from etl.timeutil import one_second_before  # noqa: F401 - etl.mapping's, for load


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
