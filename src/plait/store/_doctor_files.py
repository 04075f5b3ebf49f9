"""The files and databases ``plait doctor`` looks at (see :mod:`plait.store.doctor`).

Every database is opened so that a check creates and changes nothing: ``index.db`` and a
SQLite ``history.db`` through :func:`read_only`, artifacts listed as files (older than
:data:`GRACE`, so that a write in flight is left alone) and as rows inline in
``index.db`` (written with their entry: never in flight).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plait.store.store import Store

GRACE = 60.0  # seconds: younger temporary files and unnamed artifacts may be writes in flight


def local_root(store: Store) -> str | None:
    from plait.store.backends import LocalBackend

    return store.backend.root if isinstance(store.backend, LocalBackend) else None


def index_path(store: Store) -> str | None:
    """``index.db`` of a local store (a remote store keeps one object per entry)."""
    root = local_root(store)
    return None if root is None else os.path.join(root, "index.db")


def history_path(store: Store) -> str | None:
    """The SQLite file of the store's history, if it is one."""
    if not store.has_history:
        return None
    url = store.history.url
    if "://" in url and not url.startswith("sqlite:///"):
        return None  # PostgreSQL, DuckDB: checked by their own tools
    path = url.removeprefix("sqlite:///")
    return None if path == ":memory:" else path


def read_only(path: str) -> sqlite3.Connection:
    """A connection that reads an existing database and creates no file: not ``mode=ro``,
    which leaves a WAL database's ``-wal`` and ``-shm`` behind (it may not remove them)."""
    connection = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=rw", uri=True)
    connection.execute("PRAGMA query_only = ON")
    return connection


def sqlite_state(path: str, *, required: str) -> str:
    """``"ok"``, ``"missing"``, or what is wrong with the database file at ``path``."""
    if not os.path.exists(path):
        return "missing"
    try:
        connection = read_only(path)
        try:
            result = [str(row[0]) for row in connection.execute("PRAGMA quick_check")]
            connection.execute(f"SELECT count(*) FROM {required}").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        return f"damaged ({exc})"
    if result != ["ok"]:
        return f"damaged ({'; '.join(result[:3])})"
    return "ok"


def schema_version(path: str) -> int | None:
    connection = read_only(path)
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    finally:
        connection.close()
    return None if row is None else int(row[0])


def read_index(path: str) -> list[tuple[str, bytes]]:
    if not os.path.exists(path):
        return []
    connection = read_only(path)
    try:
        rows = connection.execute("SELECT key, data FROM entries").fetchall()
    finally:
        connection.close()
    return [(str(key), bytes(data)) for key, data in rows]


def inline_paths(store: Store) -> list[str]:
    """The artifacts inline in a local ``index.db``, read read-only (none when it is
    missing or damaged: a check never sets the index aside, a repair does)."""
    path = index_path(store)
    if path is None or not os.path.exists(path):
        return []
    try:
        connection = read_only(path)
        try:
            rows = connection.execute("SELECT path FROM artifacts").fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return []
    return [str(row[0]) for row in rows]


def old_files(store: Store, *, temporary: bool) -> Iterator[str]:
    """Temporary files anywhere in a local store, or artifacts: files older than
    :data:`GRACE`, and every inline one (written with its entry: never in flight)."""
    root = local_root(store)
    if root is None:
        if not temporary:
            yield from list(store.backend.list("objects"))
        return
    if not temporary:
        yield from inline_paths(store)
    now = time.time()
    base = root if temporary else os.path.join(root, "objects")
    for directory, _, names in os.walk(base):
        for name in names:
            if name.endswith(".tmp") != temporary:
                continue
            full = os.path.join(directory, name)
            try:
                young = now - os.stat(full).st_mtime < GRACE
            except FileNotFoundError:
                continue
            if not young:
                yield os.path.relpath(full, root).replace(os.sep, "/")
