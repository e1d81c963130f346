"""Fault injection: which requests get dropped, rate limited or answered with a 5xx."""

import math
import time
from email.utils import formatdate

ERROR_STATUSES = (500, 502, 503, 504)


def applies(fault_paths, path: str) -> bool:
    """Faults hit every path unless `fault_paths` lists prefixes to limit them to."""
    if not fault_paths:
        return True
    if isinstance(fault_paths, str):
        fault_paths = (fault_paths,)
    return any(path.startswith(prefix) for prefix in fault_paths)


def decide(settings, number: int, rng) -> str | int | None:
    """For the `number`th fault-eligible request: "drop", 429, a 5xx status, or None.

    `settings` has drop_rate, rate_limit_every and error_rate. The drop and error draws are
    made from `rng` (the faults' own generator) only when their switch is on.
    """
    if settings.drop_rate and rng.random() < settings.drop_rate:
        return "drop"
    every = settings.rate_limit_every
    if every and number % every == 0:
        return 429
    if settings.error_rate and rng.random() < settings.error_rate:
        return rng.choice(ERROR_STATUSES)
    return None


def retry_after_value(seconds: float, as_http_date: bool, now: float | None = None) -> str:
    """The Retry-After header: whole seconds, or an HTTP date that far in the future."""
    if as_http_date:
        return formatdate((time.time() if now is None else now) + seconds, usegmt=True)
    return str(max(0, math.ceil(seconds)))
