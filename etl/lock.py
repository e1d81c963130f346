"""One writer per mirror: an OS lock on a file beside it, which dies with its process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from etl.errors import ConfigError, LockedError


def check_mirror_path(db_path: str | os.PathLike) -> None:
    """Fail with one clear line when the mirror cannot be created where `db_path` says."""
    path = Path(db_path)
    if path.is_dir():
        raise ConfigError(
            f"the mirror {db_path} is a folder: name a file, e.g. {path / 'helpdesk.db'}"
        )
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot create the mirror {db_path}: the folder {folder} does not exist")


def _holder(handle) -> str:
    """The pid the lock's holder wrote, if this OS lets a locked file be read."""
    try:
        handle.seek(0)
        return handle.read().strip()
    except OSError:
        return ""


@contextmanager
def writer_lock(db_path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock beside the database; a second writer fails at once.

    An OS lock (flock on POSIX, LockFileEx or msvcrt on Windows, through portalocker) is
    released by the kernel when the process dies, even on kill -9, so a crashed sync never
    leaves a stale lock behind. The holder writes its pid into the file for the message.
    """
    import portalocker  # imported here: it needs fcntl or msvcrt, which not every OS has

    if str(db_path) == ":memory:":
        yield
        return
    check_mirror_path(db_path)
    lock_path = Path(f"{db_path}.lock")
    try:
        handle = open(lock_path, "a+")  # noqa: SIM115 - held for the lifetime of the lock
    except OSError as exc:
        raise ConfigError(f"cannot write beside the mirror {db_path}: {exc.strerror}") from None
    try:
        try:
            portalocker.lock(handle, portalocker.LOCK_EX | portalocker.LOCK_NB)
        except portalocker.exceptions.LockException:
            holder = _holder(handle)
            who = f" (pid {holder})" if holder else ""
            raise LockedError(
                f"another etl process is writing {db_path}{who}; wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
