"""Cache indexes: where a store keeps its entries (small JSON documents keyed by cache key).

A local store keeps them in one SQLite file (``index.db``, WAL mode): a hit is a point
query on an open connection instead of opening a file, which is what makes a fully
cached step cost microseconds. Small artifacts live there too (table ``artifacts``, keyed
by the artifact's content-address path), written with their entry in one transaction
(:meth:`SQLiteIndex.put_with`): a process killed at any point leaves both or neither, and
a new step costs one commit instead of a file, a rename and a directory. Each step's
last key parts (what ``plait why`` and a miss's reason compare against) are kept beside
it in ``steps.db`` (:class:`PartsFile`), written in batches (see ``RunCache.remember``)
instead of a file per executed step; a separate file, so that a lost or damaged index
still lets a miss name what changed. A remote (fsspec) store keeps one object per entry
under ``cache/``, since a database file cannot be shared over an object store.

An index that is gone while the store around it was used (``index.db`` deleted beside
``objects/``, ``steps/`` or ``steps.db``), or that is not a database any more, is rebuilt empty: a
damaged file is set aside as ``index.db.damaged-<time>`` and never read again. Either way
:attr:`SQLiteIndex.rebuilt` says so, so that a step that misses can say why (every entry
written before the rebuild is lost, with the inline artifacts; files are rewritten).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from plait._sqlite import to_wal
from plait.store.backends import Backend

__all__ = ["FileIndex", "Index", "PartsFile", "RebuiltIndex", "SQLiteIndex"]

_log = logging.getLogger("plait.store")
_DAMAGED = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_GET = "SELECT data FROM entries WHERE key = ?"
_GET_ARTIFACT = "SELECT data FROM artifacts WHERE path = ?"
_ARTIFACTS_TABLE = (
    "CREATE TABLE IF NOT EXISTS artifacts (path TEXT PRIMARY KEY, data BLOB NOT NULL)"
)
_UPSERT_ENTRY = (
    "INSERT INTO entries (key, data) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET data = excluded.data"
)
_UPSERT_ARTIFACT = (
    "INSERT INTO artifacts (path, data) VALUES (?, ?) "
    "ON CONFLICT (path) DO UPDATE SET data = excluded.data"
)


class _Process:
    """This process's id, kept current across forks (``os.getpid`` is a system call, and
    a hit checks it once per lookup)."""

    __slots__ = ("pid",)

    def __init__(self) -> None:
        self.pid = os.getpid()

    def forked(self) -> None:
        self.pid = os.getpid()


_PROCESS = _Process()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_PROCESS.forked)


@dataclass(frozen=True, slots=True)
class RebuiltIndex:
    """An index that was found ``"missing"`` or ``"damaged"`` and rebuilt empty ``at``."""

    cause: Literal["missing", "damaged"]
    at: float


class Index(Protocol):
    """Entries by cache key."""

    def get(self, key: str) -> bytes | None:
        """The entry's bytes, or None."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store (or replace) an entry atomically."""
        ...

    def delete(self, key: str) -> None:
        """Remove an entry if present."""
        ...

    def values(self) -> Iterator[bytes]:
        """Every entry."""
        ...

    def first(self) -> bytes | None:
        """Any one entry (None when there is none): a cheap sample of the index."""
        ...


class FileIndex:
    """One object per entry, ``cache/ab/<key>.json``, through a backend."""

    rebuilt: RebuiltIndex | None = None  # one object per entry: nothing to rebuild

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @staticmethod
    def _path(key: str) -> str:
        return f"cache/{key[:2]}/{key}.json"

    def get(self, key: str) -> bytes | None:
        """Read the entry's object."""
        try:
            return self.backend.read(self._path(key))
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes) -> None:
        """Write the entry's object (atomically, by the backend)."""
        self.backend.write(self._path(key), data)

    def delete(self, key: str) -> None:
        """Remove the entry's object."""
        self.backend.delete(self._path(key))

    def first(self) -> bytes | None:
        """The first entry object found, or None."""
        return next(self.values(), None)

    def values(self) -> Iterator[bytes]:
        """Read every entry object."""
        for path in list(self.backend.list("cache")):
            if path.endswith(".json"):
                try:
                    yield self.backend.read(path)
                except FileNotFoundError:
                    continue


class SQLiteIndex:
    """Entries in one SQLite table; safe across threads and processes (WAL, busy timeout).

    The connection is opened lazily and again after a fork, so a store can be pickled to
    worker processes.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.rebuilt: RebuiltIndex | None = None  # set when found missing or damaged
        self._judged = False  # whether an absent file was judged new or missing already
        self._connection: sqlite3.Connection | None = None
        self._reader: sqlite3.Cursor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _absent(self) -> bool:
        """True while there is no database file yet: a read needs none (and creates none,
        so that a read-only command leaves a store as it found it)."""
        if self._connection is not None and self._pid == _PROCESS.pid:
            return False
        if os.path.exists(self.path):
            return False
        self._note_missing()
        return True

    def _note_missing(self) -> None:
        """Judge an absent index once, when first found absent: *missing* if the store
        around it was used, else *new*. (A store creates its index before it writes
        anything else, see ``Store.put``: artifacts beside no index mean it was lost.)"""
        if self._judged:
            return
        self._judged = True
        root = os.path.dirname(self.path)
        used = any(os.path.isdir(os.path.join(root, d)) for d in ("objects", "steps"))
        used = used or os.path.isfile(os.path.join(root, "steps.db"))  # written after it
        if used and self.rebuilt is None:
            _log.warning("cache index %s is missing; it is rebuilt empty", self.path)
            self.rebuilt = RebuiltIndex("missing", time.time())

    def _db(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != _PROCESS.pid:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            if not os.path.exists(self.path):
                self._note_missing()
            try:
                connection = self._open()
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorcode", None) not in _DAMAGED:
                    raise  # locked, read-only, out of space...: not the file's fault
                self._set_aside(exc)
                connection = self._open()
                self.rebuilt = RebuiltIndex("damaged", time.time())
            self._connection, self._pid = connection, _PROCESS.pid
            self._reader = connection.cursor()  # reused by get(): one cursor less per hit
        return self._connection

    def _open(self) -> sqlite3.Connection:
        # the artifacts table is made by the first write that needs it (put_with), so a
        # read leaves an index of an earlier version as it found it
        return _connect(self.path, "entries", "key", without_rowid=True)

    def _set_aside(self, error: sqlite3.DatabaseError) -> None:
        """Move a damaged index file away (another process may have done it already)."""
        aside = f"{self.path}.damaged-{time.time_ns()}"
        _log.warning("cache index %s is damaged (%s); set aside as %s", self.path, error, aside)
        for suffix in ("-wal", "-shm", ""):  # its journal goes with it
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.path + suffix, aside + suffix)

    def first(self) -> bytes | None:
        """One entry, or None (creates no file when there is none)."""
        with self._lock:
            if self._absent():
                return None
            row = self._db().execute("SELECT data FROM entries LIMIT 1").fetchone()
        return None if row is None else bytes(row[0])

    def ensure(self) -> None:
        """Open (and so create) the index file: the store is about to be written."""
        if self._connection is not None and self._pid == _PROCESS.pid:
            return
        with self._lock:
            self._db()

    def get(self, key: str) -> bytes | None:
        """Point query by key."""
        with self._lock:
            if self._connection is None or self._pid != _PROCESS.pid:
                if self._absent():
                    return None
                self._db()
            reader = self._reader
            assert reader is not None  # opened with the connection
            row = reader.execute(_GET, (key,)).fetchone()
        if row is None:
            return None
        data = row[0]
        return data if type(data) is bytes else bytes(data)

    def put(self, key: str, data: bytes) -> None:
        """Insert or replace, in its own transaction."""
        with self._lock:
            self._db().execute(_UPSERT_ENTRY, (key, data))

    def put_with(self, key: str, data: bytes, artifacts: list[tuple[str, bytes]]) -> None:
        """Insert or replace an entry and the small artifacts it names (path, bytes) in
        ONE transaction: a reader (or a process killed at any point) sees all or none."""
        if not artifacts:
            self.put(key, data)
            return
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                try:
                    db.executemany(_UPSERT_ARTIFACT, artifacts)
                except sqlite3.OperationalError as exc:  # a new index, or an earlier version's
                    if "no such table" not in str(exc):
                        raise
                    db.execute(_ARTIFACTS_TABLE)
                    db.executemany(_UPSERT_ARTIFACT, artifacts)
                db.execute(_UPSERT_ENTRY, (key, data))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def artifact(self, path: str) -> bytes | None:
        """The bytes of the artifact kept inline at ``path``, or None."""
        with self._lock:
            db = self._connection
            if db is None or self._pid != _PROCESS.pid:
                if self._absent():
                    return None
                db = self._db()
            try:
                row = db.execute(_GET_ARTIFACT, (path,)).fetchone()
            except sqlite3.OperationalError:  # no artifacts table: an earlier version's
                return None
        if row is None:
            return None
        data = row[0]
        return data if type(data) is bytes else bytes(data)

    def delete_artifacts(self, paths: list[str] | None = None) -> int:
        """Delete the inline artifacts at ``paths`` (None: all); return how many were."""
        with self._lock:
            if self._absent():
                return 0
            db = self._db()
            try:
                if paths is None:
                    return int(db.execute("DELETE FROM artifacts").rowcount)
                db.execute("BEGIN IMMEDIATE")
                try:
                    removed = sum(
                        db.execute("DELETE FROM artifacts WHERE path = ?", (p,)).rowcount
                        for p in paths
                    )
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return int(removed)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return 0
                raise

    def artifact_paths(self) -> list[str]:
        """The paths of every inline artifact."""
        with self._lock:
            if self._absent():
                return []
            try:
                rows = self._db().execute("SELECT path FROM artifacts").fetchall()
            except sqlite3.OperationalError:
                return []
        return [str(row[0]) for row in rows]

    def delete(self, key: str) -> None:
        """Delete by key."""
        with self._lock:
            if self._absent():
                return
            self._db().execute("DELETE FROM entries WHERE key = ?", (key,))

    def values(self) -> Iterator[bytes]:
        """Every entry (read at once, so the caller may modify the index meanwhile)."""
        with self._lock:
            if self._absent():
                return
            rows = self._db().execute("SELECT data FROM entries").fetchall()
        for row in rows:
            yield bytes(row[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
                self._pid = 0


_UPSERT_PART = (
    "INSERT INTO parts (name, data) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET data = excluded.data"
)


def _connect(path: str, table: str, key: str, *, without_rowid: bool = False) -> sqlite3.Connection:
    """A connection (WAL, ``synchronous=NORMAL``, autocommit) to the key-value file
    ``path``, whose ``table`` maps ``key`` to a blob (created if missing; ``WITHOUT
    ROWID``, one B-tree search per point query, when asked: a table made by an earlier
    version keeps its rowid, and reads the same)."""
    shape = " WITHOUT ROWID" if without_rowid else ""
    connection = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    try:
        to_wal(connection)
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ({key} TEXT PRIMARY KEY, data BLOB NOT NULL)"
            + shape
        )
    except sqlite3.DatabaseError:
        connection.close()
        raise
    return connection


class PartsFile:
    """The last key parts of each step, by name, in one SQLite file (WAL).

    Opened lazily (and again after a fork); a read finds nothing, and creates no file,
    while the file does not exist.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != _PROCESS.pid:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._connection, self._pid = _connect(self.path, "parts", "name"), _PROCESS.pid
        return self._connection

    def _absent(self) -> bool:
        """True when no connection is open here and the file does not exist."""
        fresh = self._connection is None or self._pid != _PROCESS.pid
        return fresh and not os.path.exists(self.path)

    def get(self, name: str) -> bytes | None:
        """The parts recorded under ``name``, or None."""
        with self._lock:
            if self._absent():
                return None
            row = self._db().execute("SELECT data FROM parts WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def names(self, prefix: str) -> list[str]:
        """Every name recorded that starts with ``prefix`` (none while there is no file)."""
        with self._lock:
            if self._absent():
                return []
            rows = (
                self._db()
                .execute(
                    "SELECT name FROM parts WHERE name >= ? AND name < ?",
                    (prefix, prefix + "\uffff"),
                )
                .fetchall()
            )
        return [str(row[0]) for row in rows if str(row[0]).startswith(prefix)]

    def put(self, name: str, data: bytes) -> None:
        """Record (or replace) the parts under ``name``, in its own transaction."""
        with self._lock:
            self._db().execute(_UPSERT_PART, (name, data))

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        """Record (or replace) several parts in one transaction."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN")
            try:
                db.executemany(_UPSERT_PART, items)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def clear(self) -> int:
        """Forget every step's parts; return how many there were."""
        with self._lock:
            if self._absent():
                return 0
            return int(self._db().execute("DELETE FROM parts").rowcount)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
                self._pid = 0
