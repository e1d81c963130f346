"""A mirror is bound to its source: the helpdesk's scheme, host, port and path, never the key.

Ids are only unique within one helpdesk. A sync of a second helpdesk into a mirror of the
first would overwrite its records by id and mix the two, so it stops instead, naming both.
When the helpdesk moves to another address, `--rebind` accepts the new one.
"""

from __future__ import annotations

import sqlite3

from etl.errors import ConfigError
from etl.ledger import target_key
from etl.state import get_state, set_state

# The tables whose rows only make sense for the source they came from.
RECORDS = ("mailboxes", "users", "customers", "conversations")


def source_address(url: str) -> str:
    """The source as the mirror records it: as the load ledger names a target."""
    return target_key(url)


def bound_source(conn: sqlite3.Connection) -> str | None:
    return get_state(conn, "source")


def _holds_records(conn: sqlite3.Connection) -> bool:
    return any(conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in RECORDS)


def bind(conn: sqlite3.Connection, url: str, rebind: bool = False, db: str = "the mirror") -> str:
    """Check that `url` is the mirror's source, binding it if the mirror has none yet.

    A mirror that holds no records yet takes any source (a first sync that failed at once
    does not tie it to a wrong address). Raises ConfigError (exit 2) on another source
    unless `rebind`. Returns the bound address.
    """
    address = source_address(url)
    bound = bound_source(conn)
    if bound == address:
        return address
    if bound is not None and not rebind and _holds_records(conn):
        raise ConfigError(
            f"{db} is a mirror of {bound}, not of {address}: use another --db for another "
            "helpdesk, or --rebind if this helpdesk moved"
        )
    with conn:
        set_state(conn, "source", address)
    return address
