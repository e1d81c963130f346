"""smarticks-etl: back up, export and migrate a Smarticks helpdesk through its REST API."""

import sys

__version__ = "0.1.0"


def _import_sqlite_utils_without_pandas() -> None:
    """Import sqlite-utils with pandas and numpy hidden, unless they are loaded already.

    sqlite-utils imports both only to map their scalar types to column types, which the mirror
    never stores; that took 0.35 s of every command's start, a third of a nightly sync that
    finds nothing new. Both import normally afterwards.
    """
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # an import of it now raises ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


_import_sqlite_utils_without_pandas()
