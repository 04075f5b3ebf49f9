"""SQLite helpers shared by the cache index and the run history.

Switching a database to WAL needs a moment alone with the file, and SQLite answers
"database is locked" at once, without waiting out the busy timeout, when another process
is creating or migrating the same new file (several processes starting on one store).
:func:`to_wal` waits and retries instead.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["to_wal"]


def to_wal(connection: sqlite3.Connection, wait: float = 30.0) -> None:
    """Put ``connection``'s database in WAL mode, retrying while another process holds it."""
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
