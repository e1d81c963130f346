"""smarticks-etl: back up, export and migrate a Smarticks helpdesk through its REST API."""

import sys

__version__ = "0.1.0"


def import_sqlite_utils():
    """sqlite-utils, imported with pandas and numpy hidden unless they are loaded already.

    sqlite-utils imports both only to map their scalar types to column types, which the mirror
    never stores; that took 0.35 s of every command's start. Both import normally afterwards.
    Only a mirror whose schema must be created or brought up to date needs sqlite-utils at
    all (see `etl.mirror.ensure_schema`), and importing it took another 30 ms.
    """
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # an import of it now raises ImportError
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return sqlite_utils
