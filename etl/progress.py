"""One place for progress output: tqdm bars on a terminal, silence under --quiet or in a pipe."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from tqdm import tqdm


class Bar:
    """A tqdm bar (count and rate) that can learn its total after the first page."""

    def __init__(self, name: str, total: int | None, enabled: bool):
        self._bar = tqdm(
            total=total,
            desc=f"{name:<14}",
            unit=" rec",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=True,
        )

    def set_total(self, total: int | None) -> None:
        if total is not None and not self._bar.disable:
            self._bar.total = total
            self._bar.refresh()

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


# A progress factory: (name, total or None) -> an object with update(n), set_total(t), close().
Progress = Callable[[str, int | None], Any]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def close(self) -> None:
        pass


def silent(name: str, total: int | None = None) -> _Silent:
    """The progress factory for library calls nobody watches."""
    return _Silent()


def retry_notices(quiet: bool) -> Callable[[float, str], None] | None:
    """A `Client.on_retry` that says on a terminal when a wait of a second or more begins
    ("retrying in 4 s: Connection refused"); None under --quiet or off a terminal."""
    if quiet or not sys.stderr.isatty():
        return None

    def notice(seconds: float, reason: str) -> None:
        if seconds >= 1:
            tqdm.write(f"retrying in {seconds:.0f} s: {reason}", file=sys.stderr)

    return notice


def bars(quiet: bool):
    """A progress factory for library calls: bars only when not quiet and stderr is a terminal."""
    enabled = not quiet and sys.stderr.isatty()

    def make(name: str, total: int | None = None) -> Bar:
        return Bar(name, total, enabled)

    return make
