"""Point-in-time snapshots of the mirror, named by UTC time, with the oldest pruned.

A snapshot is written with `VACUUM INTO`, which reads the database inside one transaction:
it is consistent even while a sync writes, unlike a copy of the file (and its WAL) in use.

A snapshot is whole or absent. Each one first claims its name with a `.part` file created
exclusively (mode 0600), so two backups started in the same second never write the same file;
it is checked (`PRAGMA integrity_check`, and every table and view of the mirror opens) before
it is linked to its final name, which never replaces another snapshot; and whatever fails,
Ctrl-C included, removes what it wrote.

A kill -9 (or a power cut) leaves its `.part` files behind. While it runs, a backup holds an
OS lock on `<name>.part.lock`, which the kernel releases when the process dies however it
dies; the next backup (`clear_leftovers`) removes the `.part` files and folders of each name
whose lock it can take, and leaves those of backups still running alone.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from etl import files
from etl.errors import ConfigError, EtlError
from etl.lock import let_go, try_hold
from etl.mirror import create_private

STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(EtlError):
    """A snapshot could not be written or did not check clean."""


def _pattern(stem: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(stem)}-(\d{{8}}T\d{{6}}Z)(?:-(\d+))?\.db$")


def _leftover_pattern(stem: str) -> re.Pattern:
    """What a backup writes before its snapshot has its name: the `.part` (and the -wal,
    -shm or -journal SQLite may put beside it), its files folder's `.part`, its lock."""
    name = rf"{re.escape(stem)}-\d{{8}}T\d{{6}}Z(?:-\d+)?"
    return re.compile(rf"^({name})(?:\.db\.part(?:-wal|-shm|-journal|\.lock)?|-files\.part)$")


def snapshots(directory: str | os.PathLike, stem: str = "smarticks") -> list[Path]:
    """This mirror's snapshots in a directory, oldest first (other files are never touched)."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    pattern = _pattern(stem)
    found = []
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            found.append(((match.group(1), int(match.group(2) or 0)), path))
    return [path for _, path in sorted(found)]


def snapshot(
    db_path: str | os.PathLike, directory: str | os.PathLike, now: datetime | None = None
) -> Path:
    """Write `<dir>/<db stem>-YYYYMMDDThhmmssZ.db`, a consistent, checked copy of the mirror.

    The attachment files the mirror holds go to the snapshot's own files folder beside it
    (`<snapshot stem>-files`, hard links where the file system allows), and its rows name
    that folder, so the snapshot opened as a mirror finds them.
    """
    source = Path(db_path)
    if not source.is_file():
        raise ConfigError(f"no mirror at {source}: run `etl sync` first")
    folder = Path(directory)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP)
    target, part, running = _claim(folder, source.stem, stamp)
    folder_part = None
    try:
        create_private(part)  # VACUUM INTO writes into an empty file, keeping its mode
        conn = sqlite3.connect(source, timeout=30)
        try:
            conn.execute("VACUUM INTO ?", (str(part),))
            expected = _tables(conn)
        finally:
            conn.close()
        folder_part = part.with_name(files.folder_for(target).name + ".part")
        files.carry_files(part, source.parent, folder_part, files.folder_for(target).name)
        _check(part, expected)
        if folder_part.exists():
            os.rename(folder_part, files.folder_for(target))
        _place(part, target)
    except BaseException as exc:
        part.unlink(missing_ok=True)
        if folder_part is not None:
            shutil.rmtree(folder_part, ignore_errors=True)
        if isinstance(exc, sqlite3.Error):
            raise BackupError(f"snapshot of {source} into {folder} failed: {exc}") from None
        if isinstance(exc, OSError):
            raise BackupError(f"cannot write to {folder}: {exc.strerror or exc}") from None
        raise
    finally:
        let_go(running)
    return target


def _claim(folder: Path, stem: str, stamp: str) -> tuple[Path, Path, IO]:
    """The first free snapshot name for this second, its `.part` file, created as the claim,
    and the lock that says the backup writing it runs (`<name>.part.lock`, see `try_hold`).

    The lock comes first and goes last (`snapshot`), so a `.part` whose lock can be taken
    belongs to nobody alive. The `.part` file is created exclusively, so of two backups in one
    second only one gets a name; the other numbers its own. A name is free while neither the
    snapshot nor its files folder exists: checked again after the claim, since a backup that
    just finished has removed its `.part` only after its snapshot was in place.
    """
    for sequence in itertools.count():
        name = f"{stem}-{stamp}.db" if sequence == 0 else f"{stem}-{stamp}-{sequence}.db"
        target = folder / name
        if _taken(target):
            continue
        part = folder / f"{name}.part"
        running = try_hold(folder / f"{name}.part.lock")
        if running is None:  # another backup is writing this name
            continue
        try:
            os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:  # a dead backup's: the next one clears it
            let_go(running)
            continue
        except BaseException:
            let_go(running)
            raise
        if _taken(target):
            part.unlink()
            let_go(running)
            continue
        return target, part, running
    raise AssertionError("unreachable")


def clear_leftovers(directory: str | os.PathLike, stem: str = "smarticks") -> list[Path]:
    """Remove the `.part` files and folders that backups of this mirror killed mid-way left.

    A name's leftovers go only when its lock (`<name>.part.lock`) can be taken: its backup is
    dead; those of backups still running stay. The files folder of a backup killed between
    naming its folder and its snapshot (`<name>-files` beside no `<name>.db`) goes with them.
    Other files are never touched. Returns what was removed.
    """
    folder = Path(directory)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    pattern = _leftover_pattern(stem)
    names: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match:
            names.setdefault(match[1], []).append(path)
    for name, paths in sorted(names.items()):
        lock = folder / f"{name}.db.part.lock"
        held = try_hold(lock)
        if held is None:  # its backup is running
            continue
        try:
            orphan = folder / f"{name}-files"
            if orphan.is_dir() and not (folder / f"{name}.db").exists():
                paths.append(orphan)
            for path in sorted(paths):
                if path == lock:
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        finally:
            let_go(held)
    return removed


def _taken(target: Path) -> bool:
    return target.exists() or files.folder_for(target).exists()


def _place(part: Path, target: Path) -> None:
    """Give the checked snapshot its name; never over another file of that name."""
    try:
        os.link(part, target)
    except FileExistsError:
        raise BackupError(f"{target} appeared while the snapshot was written") from None
    except OSError:  # a file system without hard links; the claim keeps the name ours
        os.rename(part, target)
        return
    part.unlink()


def _tables(conn: sqlite3.Connection) -> list[str]:
    """The mirror's tables and views, each of which the snapshot must open."""
    query = (
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    return [row[0] for row in conn.execute(query)]


def _check(path: Path, tables: list[str]) -> None:
    """Raise sqlite3.DatabaseError unless the new snapshot checks clean and opens every table."""
    os.chmod(path, 0o600)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(f"the new snapshot does not check clean: {result}")
        for name in tables:
            try:
                conn.execute(f'SELECT * FROM "{name}" LIMIT 1').fetchall()
            except sqlite3.Error as exc:
                raise sqlite3.DatabaseError(f"the new snapshot cannot open {name}: {exc}") from None
    finally:
        conn.close()


def prune(directory: str | os.PathLike, keep: int, stem: str = "smarticks") -> list[Path]:
    """Delete all but the newest `keep` snapshots, each with its files folder; returns them."""
    if keep < 1:
        raise ConfigError("--keep must be at least 1")
    old = snapshots(directory, stem)[:-keep]
    for path in old:
        path.unlink()
        shutil.rmtree(files.folder_for(path), ignore_errors=True)
    return old


@dataclass
class Backup:
    """What `backup` did: the new snapshot, the old ones pruned, dead backups' leftovers."""

    path: Path
    pruned: list[Path]
    leftovers: list[Path]


def backup(
    db_path: str | os.PathLike,
    directory: str | os.PathLike,
    keep: int | None = None,
    now: datetime | None = None,
) -> Backup:
    """Clear what killed backups left, snapshot the mirror, then keep only the newest `keep`
    (all when None)."""
    if keep is not None and keep < 1:
        raise ConfigError("--keep must be at least 1")
    stem = Path(db_path).stem
    leftovers = clear_leftovers(directory, stem)
    path = snapshot(db_path, directory, now)
    pruned = prune(directory, keep, stem) if keep else []
    return Backup(path, pruned, leftovers)
