"""Attachment files on disk: stored once each, content-addressed by sha256, beside the database.

A database `smarticks.db` keeps its files in `smarticks-files/`, as `ab/abcd…` (the sha256 in
hex, under a folder of its first two digits). The `attachments` rows name their file by a
path relative to the database's folder, so a mirror or snapshot moved with its files folder
still finds them. Names from the server never become paths.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path


def folder_for(db_path: str | os.PathLike) -> Path:
    """The files folder of a database: `<folder>/<db stem>-files`."""
    path = Path(db_path)
    return path.with_name(f"{path.stem}-files")


def relative_path(folder_name: str, sha256: str) -> str:
    """A file's path as its rows name it, relative to the database's folder."""
    return f"{folder_name}/{sha256[:2]}/{sha256}"


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows one, else a copy readable by its owner only."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        return
    except OSError:
        shutil.copyfile(source, target)
        os.chmod(target, 0o600)


def copy_for_snapshot(
    source_db: str | os.PathLike, snapshot: Path, folder: Path, folder_name: str
) -> int:
    """Give a snapshot of `source_db` its own files folder, written at `folder`.

    Each file the snapshot's rows name is linked from the mirror's files into `folder`, and
    the rows are pointed at `folder_name`, the name the folder will have beside the snapshot.
    A row whose file the mirror lacks loses its path (a sync fetches it again). Returns the
    number of files.
    """
    base = Path(source_db).parent
    folder.mkdir(mode=0o700)
    conn = sqlite3.connect(snapshot)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(attachments)")}
        if not {"sha256", "path"} <= columns:
            return 0
        held = conn.execute(
            "SELECT DISTINCT sha256, path FROM attachments WHERE path IS NOT NULL"
        ).fetchall()
        count = 0
        with conn:
            for sha256, path in held:
                source = base / path
                if source.is_file():
                    link_or_copy(source, folder / sha256[:2] / sha256)
                    new = relative_path(folder_name, sha256)
                    count += 1
                else:
                    new = None
                conn.execute(
                    "UPDATE attachments SET path = ? WHERE sha256 = ? AND path IS NOT NULL",
                    (new, sha256),
                )
        return count
    finally:
        conn.close()
