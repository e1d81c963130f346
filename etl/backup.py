"""Point-in-time snapshots of the mirror, named by UTC time, with the oldest pruned.

A snapshot is written with `VACUUM INTO`, which reads the database inside one transaction:
it is consistent even while a sync writes, unlike a copy of the file (and its WAL) in use.
It is written beside its final name and renamed only once it opens and checks clean, so a
crash never leaves a half-written file that looks like a backup.
"""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from etl.errors import ConfigError, EtlError
from etl.mirror import create_private

STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(EtlError):
    """A snapshot could not be written or did not check clean."""


def _pattern(stem: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(stem)}-(\d{{8}}T\d{{6}}Z)(?:-(\d+))?\.db$")


def snapshots(directory: str | os.PathLike, stem: str = "smarticks") -> list[Path]:
    """This mirror's snapshots in a directory, oldest first (other files are never touched)."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    pattern = _pattern(stem)
    found = []
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match:
            found.append(((match.group(1), int(match.group(2) or 0)), path))
    return [path for _, path in sorted(found)]


def snapshot(
    db_path: str | os.PathLike, directory: str | os.PathLike, now: datetime | None = None
) -> Path:
    """Write `<dir>/<db stem>-YYYYMMDDThhmmssZ.db`, a consistent copy of the mirror."""
    source = Path(db_path)
    if not source.is_file():
        raise ConfigError(f"no mirror at {source}: run `etl sync` first")
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP)
    target = folder / f"{source.stem}-{stamp}.db"
    sequence = 1
    while target.exists():  # two snapshots in one second: number the later ones
        target = folder / f"{source.stem}-{stamp}-{sequence}.db"
        sequence += 1
    part = target.with_name(target.name + ".part")
    part.unlink(missing_ok=True)
    try:
        create_private(part)  # VACUUM INTO writes into an empty file, keeping its mode
        conn = sqlite3.connect(source, timeout=30)
        try:
            conn.execute("VACUUM INTO ?", (str(part),))
        finally:
            conn.close()
        _check(part)
        os.replace(part, target)
    except sqlite3.Error as exc:
        part.unlink(missing_ok=True)
        raise BackupError(f"snapshot of {source} into {folder} failed: {exc}") from None
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise BackupError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    return target


def _check(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        conn.close()
    if result != "ok":
        raise sqlite3.DatabaseError(f"the new snapshot does not check clean: {result}")


def prune(directory: str | os.PathLike, keep: int, stem: str = "smarticks") -> list[Path]:
    """Delete all but the newest `keep` snapshots; returns the ones removed."""
    if keep < 1:
        raise ConfigError("--keep must be at least 1")
    old = snapshots(directory, stem)[:-keep]
    for path in old:
        path.unlink()
    return old


def backup(
    db_path: str | os.PathLike,
    directory: str | os.PathLike,
    keep: int | None = None,
    now: datetime | None = None,
) -> tuple[Path, list[Path]]:
    """Snapshot the mirror, then keep only the newest `keep` (all when None)."""
    if keep is not None and keep < 1:
        raise ConfigError("--keep must be at least 1")
    path = snapshot(db_path, directory, now)
    removed = prune(directory, keep, Path(db_path).stem) if keep else []
    return path, removed
