"""Recovering what can still be read from a damaged SQLite history.

Design note. A SQLite file with some damaged pages usually still answers most queries: a
table's rows live on leaf pages reached from its root, and a lookup by ``rowid`` only
reads the pages on its own path. :func:`recover` therefore

1. moves the damaged file (and its ``-wal``/``-shm`` journal) aside as
   ``history.db.damaged-<time>``, so nothing is lost and nothing reads it by accident;
2. creates a fresh database with the history's own schema (:func:`plait.history.db.connect`,
   which also sets the schema version);
3. copies each table, first in one read and, when that fails on a damaged page, row by
   row by ``rowid`` up to the table's largest ``rowid``, skipping the rows that cannot be
   read; only the columns both schemas have are copied, so an older file is recovered too.

Only SQLite files are recovered; PostgreSQL and DuckDB have their own tools.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.history.db import Database, connect

__all__ = ["TABLES", "Recovery", "recover", "set_aside"]

TABLES = ("runs", "steps", "structures", "data", "assets", "asset_aliases", "meta")
_NEWER = ("assets", "asset_aliases")  # schema 6: a file of an older schema has none
_ROWID_SCAN_LIMIT = 10_000_000  # never scan further than this when max(rowid) is unreadable


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :func:`recover` did.

    Attributes:
        path: The fresh database's path.
        aside: Where the damaged file now is.
        copied: Rows copied, by table.
        lost: Rows (or, when a table could not be read at all, ``-1``) left behind.
    """

    path: str
    aside: str
    copied: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)


def set_aside(path: str) -> str:
    """Move ``path`` and its journal files to ``<path>.damaged-<time>``; return the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = f"{path}.damaged-{stamp}-{time.time_ns() % 1_000_000_000:09d}"
    for suffix in ("-wal", "-shm", ""):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + suffix, aside + suffix)
    return aside


def recover(path: str | os.PathLike[str]) -> Recovery:
    """Set a damaged SQLite history aside and copy its readable rows into a fresh one.

    Args:
        path: The history database file (``history.db``).

    Returns:
        Where the damaged file went and how many rows of each table were copied and lost.
    """
    target = os.fspath(path)
    aside = set_aside(target)
    fresh = connect(target)
    copied: dict[str, int] = {}
    lost: dict[str, int] = {}
    try:
        old = _open_read_only(aside)
    except sqlite3.DatabaseError:
        fresh.close()
        return Recovery(target, aside, {}, {table: -1 for table in TABLES})
    try:
        for table in TABLES:
            copied[table], lost[table] = _copy_table(old, fresh, table)
    finally:
        old.close()
        fresh.close()
    return Recovery(target, aside, copied, lost)


def _open_read_only(path: str) -> sqlite3.Connection:
    """Read the damaged file without changing it; with its ``-wal`` when it had one (then
    SQLite needs its ``-shm`` too), else as immutable, which creates no file at all."""
    mode = "mode=ro" if os.path.exists(path + "-wal") else "mode=ro&immutable=1"
    connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?{mode}", uri=True)
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return connection


def _copy_table(old: sqlite3.Connection, fresh: Database, table: str) -> tuple[int, int]:
    """Copy what can be read of ``table``; return (rows copied, rows lost or -1)."""
    try:
        present = [str(row[1]) for row in old.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError:
        return 0, -1
    columns = [c for c in present if c.lower() in fresh.columns(table)]
    if not columns:
        return 0, -1 if not present and table not in _NEWER else 0
    names = ", ".join(columns)
    try:
        rows = old.execute(f"SELECT {names} FROM {table}").fetchall()
        lost = 0
    except sqlite3.DatabaseError:
        rows, lost = _row_by_row(old, table, names)
    if table == "meta":  # the fresh database has its own schema version
        rows = [row for row in rows if row[columns.index("key")] != "schema_version"]
    _insert(fresh, table, columns, rows)
    return len(rows), lost


def _row_by_row(old: sqlite3.Connection, table: str, names: str) -> tuple[list[Any], int]:
    """Read each row by rowid, skipping the ones on damaged pages."""
    try:
        row = old.execute(f"SELECT max(rowid) FROM {table}").fetchone()
        highest = int(row[0] or 0)
    except sqlite3.DatabaseError:
        highest = _ROWID_SCAN_LIMIT
    rows: list[Any] = []
    lost = 0
    misses = 0
    for rowid in range(1, highest + 1):
        try:
            found = old.execute(f"SELECT {names} FROM {table} WHERE rowid = ?", (rowid,))
            one = found.fetchone()
        except sqlite3.DatabaseError:
            lost += 1
            continue
        if one is None:
            misses += 1
            if highest == _ROWID_SCAN_LIMIT and misses > 100_000:
                break  # far past the last row of an unknown size
            continue
        misses = 0
        rows.append(one)
    return rows, lost


def _insert(fresh: Database, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    fresh.execute_many([(sql, rows)])
