"""Attachment files on disk: stored once each, content-addressed by sha256, beside the database.

A database `smarticks.db` keeps its files in `smarticks-files/`, as `ab/abcd…` (the sha256 in
hex, under a folder of its first two digits). The `attachments` rows name their file by a
path relative to the database's folder, so a mirror or snapshot moved with its files folder
still finds them. Names from the server never become paths.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from etl.client import Client
from etl.errors import ApiError, EtlError
from etl.interrupt import deferred_interrupt
from etl.progress import Progress, silent

PARTIAL = ".partial"  # downloads in progress, inside the files folder
GONE = frozenset({404, 410})
CHUNK = 1024 * 1024


def folder_for(db_path: str | os.PathLike) -> Path:
    """The files folder of a database: `<folder>/<db stem>-files`."""
    path = Path(db_path)
    return path.with_name(f"{path.stem}-files")


def held_files(conn: sqlite3.Connection, db_path: str | os.PathLike) -> dict:
    """The files the rows name that are on disk: how many, their bytes, for how many rows."""
    base = Path(db_path).parent
    named = conn.execute(
        "SELECT path, count(*) FROM attachments WHERE path IS NOT NULL GROUP BY path"
    ).fetchall()
    count = size = rows = 0
    for path, attachments in named:
        try:
            size += (base / path).stat().st_size
        except OSError:
            continue
        count += 1
        rows += attachments
    return {
        "folder": str(folder_for(db_path)),
        "files": count,
        "bytes": size,
        "attachments_with_file": rows,
    }


def count_files(folder: Path) -> int:
    """How many files a files folder holds (0 when there is none)."""
    return sum(len(names) for _, _, names in os.walk(folder))


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
        # Copied under a temporary name first: a copy cut short never takes the file's name.
        partial = target.with_name(f"{target.name}{PARTIAL}")
        shutil.copyfile(source, partial)
        os.chmod(partial, 0o600)
        os.replace(partial, target)


def carry_files(db: Path, found_in: Path, folder: Path, folder_name: str) -> tuple[int, int]:
    """Give the database `db` the files its rows name, in `folder`, and point the rows there.

    The rows' paths are relative to `found_in` (the folder of the database they were written
    for: the mirror a snapshot was taken of, the folder of a snapshot being restored). Each
    file found is linked into `folder` (a copy where links cannot be made), and its rows are
    set to `<folder_name>/ab/abcd…`, the folder's name beside `db`; rows whose file is not
    found lose their path (`fetch_files` gets it again). `folder` is made (mode 0700) only
    when there is a file to put in it. Returns (files carried, files not found).
    """
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(attachments)")}
        if not {"sha256", "path"} <= columns:
            return 0, 0
        named = conn.execute(
            "SELECT DISTINCT sha256, path FROM attachments WHERE path IS NOT NULL"
        ).fetchall()
        carried = missing = 0
        with conn:
            for sha256, path in named:
                source = found_in / path
                new = None
                if source.is_file():
                    if not folder.exists():
                        folder.mkdir(mode=0o700)
                    link_or_copy(source, folder / sha256[:2] / sha256)
                    new = relative_path(folder_name, sha256)
                    carried += 1
                else:
                    missing += 1
                conn.execute(
                    "UPDATE attachments SET path = ? WHERE sha256 = ? AND path IS NOT NULL",
                    (new, sha256),
                )
        return carried, missing
    finally:
        conn.close()


def database_folder(conn: sqlite3.Connection) -> Path | None:
    """The folder of the connection's main database file, which its rows' paths are
    relative to; None for a database in memory."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return Path(file).parent if file else None
    return None


EXPORT_FOLDER = "files"  # beside an export: `<out>/files/ab/abcd…`


class ExportFiles:
    """The mirror's stored files, put beside an export so that a load reads them from there.

    `place(sha256, path)` links (or copies) the file a row names into `<out>/files/ab/abcd…`
    and returns that path relative to `out`, the form `etl load` reads beside its input
    (`--mapping smarticks`, attachments' `file`); None when the mirror does not hold it (never
    downloaded, or gone from disk). Counts the files placed and the attachments without one.
    """

    def __init__(self, found_in: Path, out: Path):
        self.found_in = found_in  # the folder the rows' paths are relative to
        self.folder = out / EXPORT_FOLDER
        self.placed: set[str] = set()  # sha256 of the files put beside the export
        self.bytes = 0
        self.without_file = 0  # attachments whose file the mirror does not hold

    def place(self, sha256: str | None, path: str | None) -> str | None:
        if not path or not _is_digest(sha256):  # never downloaded, or not a name of ours
            self.without_file += 1
            return None
        if sha256 not in self.placed:
            source = self.found_in / path
            if not source.is_file():
                self.without_file += 1
                return None
            if not self.folder.exists():
                self.folder.mkdir(mode=0o700, parents=True)
            link_or_copy(source, self.folder / sha256[:2] / sha256)
            self.placed.add(sha256)
            self.bytes += source.stat().st_size
        return f"{EXPORT_FOLDER}/{sha256[:2]}/{sha256}"


def _is_digest(text: str | None) -> bool:
    """A sha256 in lowercase hex: the only names a files folder holds."""
    return bool(text) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


@dataclass
class Fetched:
    """What `fetch_files` did: files downloaded, already held, and those it could not get."""

    files: int = 0  # downloaded in this run
    bytes: int = 0
    duplicates: int = 0  # downloaded, but the same content was held already
    held: int = 0  # attachments whose file was there already: no request
    requests: int = 0
    gone: list[int] = field(default_factory=list)  # attachment ids the server no longer has
    failed: list[str] = field(default_factory=list)  # one line per file that kept failing


class FilesFailed(EtlError):
    """Some attachment files could not be downloaded, after retries."""


def fetch_files(
    client: Client,
    conn: sqlite3.Connection,
    db_path: str | os.PathLike,
    workers: int = 4,
    progress: Progress = silent,
) -> Fetched:
    """Download every attachment file the mirror lacks into its files folder.

    An attachment whose file is on disk already costs no request. Each download streams into
    a private temporary file (flat memory), is hashed, and is moved to `ab/abcd…`, or dropped
    when that content is held already; its row gets `sha256` and `path` in the same step.
    Files the server no longer has (404, 410) are listed in `gone`; the others that kept
    failing raise FilesFailed once every other file is in.
    """
    folder = folder_for(db_path)
    done = Fetched()
    todo = _missing(conn, db_path, done)
    if not todo:
        return done
    partial = folder / PARTIAL
    folder.mkdir(mode=0o700, exist_ok=True)
    partial.mkdir(mode=0o700, exist_ok=True)
    for stale in partial.iterdir():  # a killed run's; only the writer-lock holder is here
        stale.unlink(missing_ok=True)
    bar = progress("files", len(todo))
    first_request = client.requests_made
    waiting = iter(todo)

    def one(item: tuple[int, str]) -> tuple[int, _Stored | None, ApiError | None]:
        ident, url = item
        try:
            return ident, _store(client, url, folder), None
        except ApiError as exc:
            return ident, None, exc

    pool = ThreadPoolExecutor(max(1, workers))
    try:
        with deferred_interrupt() as stop:
            # One download per worker in flight; after Ctrl-C no new one starts, and those
            # under way are recorded before the run stops.
            running = set()
            while True:
                while len(running) < max(1, workers) and not stop.requested:
                    item = next(waiting, None)
                    if item is None:
                        break
                    running.add(pool.submit(one, item))
                if not running:
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                with conn:
                    for future in finished:
                        _record(conn, folder, *future.result(), done)
                        bar.update(1)
            stop.check()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
        done.requests = client.requests_made - first_request
    if done.failed:
        shown = "; ".join(done.failed[:3]) + (" ..." if len(done.failed) > 3 else "")
        raise FilesFailed(
            f"{len(done.failed)} attachment files could not be downloaded ({shown}); "
            "the others are in: run the command again to retry them"
        )
    return done


def _missing(conn, db_path, done: Fetched) -> list[tuple[int, str]]:
    """(id, file URL) of the attachments whose file is not on disk yet.

    A row whose content is held under another row's path gets that path, with no request.
    """
    base = Path(db_path).parent
    folder = folder_for(db_path)
    todo = []
    rows = conn.execute(
        "SELECT id, file_url, sha256, path FROM attachments "
        "WHERE file_url IS NOT NULL AND file_url != '' ORDER BY id"
    ).fetchall()
    with conn:
        for ident, url, sha256, path in rows:
            if path and (base / path).is_file():
                done.held += 1
            elif sha256 and (folder / sha256[:2] / sha256).is_file():
                conn.execute(
                    "UPDATE attachments SET path = ? WHERE id = ?",
                    (relative_path(folder.name, sha256), ident),
                )
                done.held += 1
            else:
                todo.append((ident, url))
    return todo


@dataclass
class _Stored:
    sha256: str
    size: int
    new: bool  # False: the same content was held already


def _store(client: Client, url: str, folder: Path) -> _Stored:
    """Download one file into the folder, named by its sha256.

    `Client.download` streams it, retried like the API, and sends the key only to the API's
    own origin (file URLs carry their own token).
    """
    handle = tempfile.NamedTemporaryFile(dir=folder / PARTIAL, delete=False)  # noqa: SIM115
    temporary = Path(handle.name)
    try:
        with handle:
            size = client.download(url, handle)
        digest = hashlib.sha256()
        with open(temporary, "rb") as written:
            while block := written.read(CHUNK):
                digest.update(block)
        sha256 = digest.hexdigest()
        final = folder / sha256[:2] / sha256
        final.parent.mkdir(mode=0o700, exist_ok=True)
        try:  # a link, not a rename: of two downloads of one content, one is told it is second
            os.link(temporary, final)
            new = True
        except FileExistsError:
            new = False
        except OSError:  # no hard links here
            new = not final.exists()
            os.replace(temporary, final)
        temporary.unlink(missing_ok=True)
        return _Stored(sha256, size, new)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _record(conn, folder: Path, ident, stored: _Stored | None, error, done: Fetched) -> None:
    if stored is not None:
        conn.execute(
            "UPDATE attachments SET sha256 = ?, path = ? WHERE id = ?",
            (stored.sha256, relative_path(folder.name, stored.sha256), ident),
        )
        done.files += stored.new
        done.duplicates += not stored.new
        done.bytes += stored.size
    elif error.status in GONE:
        done.gone.append(ident)
    else:
        reason = f"HTTP {error.status}" if error.status else "no response"
        done.failed.append(f"attachment {ident}: {reason}")
