"""OS locks on files, which die with their process: one writer per mirror (`writer_lock`),
and a mark that a named piece of work is in progress (`try_hold`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

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


def try_hold(path: str | os.PathLike) -> IO | None:
    """An open file `path` (created if missing, mode 0600) exclusively locked by this process,
    or None when another process holds it.

    The lock dies with its holder, even on kill -9: a file that can be locked belongs to no
    running process. When the file was replaced or removed while this waited for it (by the
    holder letting go, see `let_go`), the lock is on a name nobody sees: None too.
    """
    import portalocker

    path = Path(path)
    handle = open(path, "a+b", opener=_private)  # noqa: SIM115 - held until let_go
    try:
        portalocker.lock(handle, portalocker.LOCK_EX | portalocker.LOCK_NB)
        if os.fstat(handle.fileno()).st_ino != os.stat(path).st_ino:
            raise FileNotFoundError(path)
    except (portalocker.exceptions.LockException, FileNotFoundError):
        handle.close()
        return None
    return handle


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def let_go(handle: IO) -> None:
    """Remove a file held with `try_hold` and release it (in that order where the OS allows:
    nobody locks the name in between)."""
    try:
        os.unlink(handle.name)
    except OSError:  # Windows removes no open file: release first
        handle.close()
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
    handle.close()
