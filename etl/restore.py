"""`etl restore`: a snapshot put in place of the mirror, its attachment files with it.

The snapshot is copied beside the mirror under a temporary name, its files are linked into
the mirror's files folder (content-addressed, so nothing there is overwritten) and its rows
pointed at them; only then is the old mirror moved aside and the copy renamed into place.
A failure before that leaves the old mirror as it was. The old mirror is kept beside the new
one, to be deleted once the restore has been checked.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from etl import files, lock
from etl.errors import ConfigError, LockedError, MirrorError

STAMP = "%Y%m%dT%H%M%SZ"


@dataclass
class Restored:
    conversations: int
    files: int
    missing_files: int
    previous: Path | None  # where the old mirror was kept, if there was one


def restore(
    snapshot: str | os.PathLike, db_path: str | os.PathLike, now: datetime | None = None
) -> Restored:
    """Put `snapshot` in place of the mirror at `db_path`, refusing while anything uses it."""
    source, target = Path(snapshot), Path(db_path)
    _check_snapshot(source)
    with lock.writer_lock(target):
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.restore-", dir=target.parent)
        os.close(fd)
        part = Path(name)
        try:
            conversations = _copy(source, part)
            folder = files.folder_for(target)
            held, missing = files.carry_files(part, source.parent, folder, folder.name)
            previous = _swap(part, target, now)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    return Restored(conversations, held, missing, previous)


def _check_snapshot(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"no snapshot at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            conn.execute("SELECT id FROM conversations LIMIT 1").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path} is not a snapshot of a mirror: {exc}") from None
    if result != "ok":
        raise MirrorError(f"the snapshot {path} does not check clean: {result}")


def _copy(source: Path, part: Path) -> int:
    """Copy the snapshot into `part` with SQLite's backup API; returns its conversations."""
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writer = sqlite3.connect(part)
    try:
        reader.backup(writer)
        writer.execute("PRAGMA journal_mode = DELETE")
        return writer.execute("SELECT count(*) FROM conversations").fetchone()[0]
    finally:
        writer.close()
        reader.close()


def _swap(part: Path, target: Path, now: datetime | None) -> Path | None:
    """Move the old mirror aside (self-contained, no WAL left) and the new one into place."""
    if not target.exists():
        os.rename(part, target)
        return None
    _seal(target)
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP)
    previous = target.with_name(f"{target.stem}-before-restore-{stamp}{target.suffix}")
    os.rename(target, previous)
    try:
        os.rename(part, target)
    except BaseException:
        os.rename(previous, target)
        raise
    return previous


def _seal(path: Path) -> None:
    """Fold the old mirror's WAL into it and leave WAL mode, which needs it alone.

    A reader (an export, datasette) still holding it would go on reading through -wal and
    -shm files that the new mirror would then inherit: refuse instead.
    """
    conn = sqlite3.connect(path, timeout=0)
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    except sqlite3.OperationalError:
        mode = None
    except sqlite3.DatabaseError:  # not a database at all: nothing to fold, keep it aside
        return
    finally:
        conn.close()
    if mode != "delete":
        raise LockedError(
            f"another program has {path} open (an export, datasette?): close it, then restore"
        )
