"""A small shared layer over three DB-API drivers: sqlite3, psycopg (PostgreSQL), duckdb.

The schema and every query are written once, in portable SQL with ``?`` placeholders
(rewritten to ``%s`` for psycopg). The three databases agree on what plait needs:
``INSERT ... ON CONFLICT ... DO UPDATE``, ``TEXT``/``DOUBLE PRECISION``/``BIGINT``/
``BYTEA``-or-``BLOB`` columns and ordinary indexes. URLs follow SQLAlchemy's form:
``sqlite:///path.db``, ``duckdb:///path.db``, ``postgresql://user@host/db``; a plain
path means SQLite.

Schema versions live in the ``meta`` table. :func:`_schema` is the newest schema, which a
new database gets whole; :data:`MIGRATIONS` lists the columns and tables that take an
existing database from one version to the next, applied in order on connect. A migration
adds columns, tables and indexes, or drops an index (never data), and is idempotent: a
column that is already there is left alone, so two processes opening one old database at
once both succeed.

Versions: 1, the first schema; 2 adds ``runs.structure`` (the id of the pipeline's
structure, kept once per distinct structure in ``structures``), ``steps.params`` (the
param values a step received, defaults included) and ``steps.logs`` (its log lines); 3
adds ``runs.pid``, ``runs.pid_start`` and ``runs.heartbeat`` (to tell a run whose process
died), ``runs.inputs_signature`` (the HMAC of the params/config blob) and
``steps.element_attempts`` (a map step's attempts per element); 4 adds ``runs.target``
(the pipeline a run loaded, so a resume can find its code) and the indexes the UI's pages
need on big histories (runs by origin, by status and start time; steps by name and run);
5 adds ``runs.trigger`` (what started a run: JSON ``{"kind", "name", "event_id"}``),
``runs.experiment``, ``runs.version`` (the pipeline's version) and ``runs.project``, with
indexes to list runs by each; 6 adds the asset catalog: ``assets`` (one row per project,
asset name and version, with its kind, run, step, metadata and tags) and
``asset_aliases`` (an alias such as ``production`` naming one version of an asset); 7
drops the index ``steps_by_name_run`` (version 4's), whose lookups the primary key of
``steps`` serves, and which cost a page write per recorded step.

Indexes. Each one is written on every step record, so the schema keeps only those a
reader's query uses (checked with ``EXPLAIN QUERY PLAN``): ``steps`` by its primary key
``(run_id, name)`` (a run's steps; one step of a run) and ``steps_by_name`` (a step's
executions across runs, newest first); ``data_by_version`` (lineage: producers and
consumers of a value) and ``data_by_run`` (a run's lineage rows, deleted with it); the
``runs`` indexes for the listings. A migration that adds an index says which reader
needs it. :func:`_schema` runs on every connect: it never makes an index that a later
version drops (it would come back each time), nor one on a column a migration adds.

Damage. A SQLite file that is not a database, or whose pages are damaged, raises
:class:`DamagedHistoryError`, which names the file and the fix (``plait doctor --repair``),
instead of a driver error.

DuckDB lets one process at a time open a database file for writing, so a DuckDB history
is opened for each transaction and closed after it; an open that finds the file locked by
another process is retried with backoff (for up to :data:`LOCK_WAIT` seconds). SQLite and
PostgreSQL keep one connection.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from plait.errors import DamagedHistoryError, PlaitError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AddColumn",
    "DamagedHistoryError",
    "Database",
    "connect",
]

LOCK_WAIT = 60.0  # seconds a DuckDB open waits for another process's lock


_INDEXES_4 = [  # for the UI's pages over big histories (schema version 4)
    "CREATE INDEX IF NOT EXISTS runs_by_origin ON runs (origin_run_id)",
    "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, started_at)",
    # version 4 also made steps_by_name_run (name, run_id), which version 7 drops
]
_INDEXES_5 = [  # listings by experiment, version and project (schema version 5)
    "CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, started_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_version ON runs (version, started_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_project ON runs (project, started_at)",
]


def _schema(blob: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
        f"""CREATE TABLE IF NOT EXISTS runs (
            run_id TEXT PRIMARY KEY, pipeline TEXT, fingerprint TEXT, status TEXT,
            params TEXT, config TEXT, tags TEXT, started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION, duration DOUBLE PRECISION, host TEXT,
            plait_version TEXT, python_version TEXT, origin_run_id TEXT, executor TEXT,
            error TEXT, inputs {blob}, structure TEXT, pid BIGINT, pid_start TEXT,
            heartbeat DOUBLE PRECISION, inputs_signature TEXT, target TEXT, trigger TEXT,
            experiment TEXT, version TEXT, project TEXT)""",
        """CREATE TABLE IF NOT EXISTS steps (
            run_id TEXT, name TEXT, status TEXT, cached INTEGER, reason TEXT,
            attempts INTEGER, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
            duration DOUBLE PRECISION, cache_key TEXT, input_versions TEXT,
            data_versions TEXT, error_type TEXT, error_message TEXT, error_traceback TEXT,
            metrics TEXT, peak_memory BIGINT, fingerprint TEXT, params TEXT, logs TEXT,
            element_attempts TEXT, PRIMARY KEY (run_id, name))""",
        "CREATE TABLE IF NOT EXISTS structures (id TEXT PRIMARY KEY, body TEXT)",
        """CREATE TABLE IF NOT EXISTS data (
            version TEXT, run_id TEXT, step TEXT, name TEXT, role TEXT)""",
        "CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_at)",
        "CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, started_at)",
        "CREATE INDEX IF NOT EXISTS steps_by_name ON steps (name, started_at)",
        "CREATE INDEX IF NOT EXISTS data_by_version ON data (version, role)",
        "CREATE INDEX IF NOT EXISTS data_by_run ON data (run_id)",
        *_INDEXES_4,
        *_CATALOG_6,
        # no index on a column added after version 4 here: this runs before the migrations
        # add it to an older database (they create such indexes, for new databases too)
    ]


_CATALOG_6 = [  # the asset catalog (schema version 6; plait.assets._catalog)
    """CREATE TABLE IF NOT EXISTS assets (
        project TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, kind TEXT,
        output TEXT, run_id TEXT, step TEXT, pipeline TEXT, experiment TEXT, metadata TEXT,
        tags TEXT, created_at DOUBLE PRECISION, PRIMARY KEY (project, name, version))""",
    """CREATE TABLE IF NOT EXISTS asset_aliases (
        project TEXT NOT NULL, name TEXT NOT NULL, alias TEXT NOT NULL, version TEXT,
        created_at DOUBLE PRECISION, PRIMARY KEY (project, name, alias))""",
    "CREATE INDEX IF NOT EXISTS assets_by_time ON assets (created_at)",
    "CREATE INDEX IF NOT EXISTS assets_by_name ON assets (name, created_at)",
    "CREATE INDEX IF NOT EXISTS assets_by_run ON assets (run_id)",
    "CREATE INDEX IF NOT EXISTS asset_aliases_by_name ON asset_aliases (name)",
]

SCHEMA_VERSION = 7


@dataclass(frozen=True, slots=True)
class AddColumn:
    """A migration step: add ``column`` (of SQL ``kind``) to ``table`` unless it exists."""

    table: str
    column: str
    kind: str


# version n -> what takes a database from n-1 to n: statements (idempotent, such as
# ``CREATE TABLE IF NOT EXISTS``) and added columns
MIGRATIONS: dict[int, list[str | AddColumn]] = {
    2: [
        "CREATE TABLE IF NOT EXISTS structures (id TEXT PRIMARY KEY, body TEXT)",
        AddColumn("runs", "structure", "TEXT"),
        AddColumn("steps", "params", "TEXT"),
        AddColumn("steps", "logs", "TEXT"),
    ],
    3: [
        AddColumn("runs", "pid", "BIGINT"),
        AddColumn("runs", "pid_start", "TEXT"),
        AddColumn("runs", "heartbeat", "DOUBLE PRECISION"),
        AddColumn("runs", "inputs_signature", "TEXT"),
        AddColumn("steps", "element_attempts", "TEXT"),
    ],
    4: [AddColumn("runs", "target", "TEXT"), *_INDEXES_4],
    5: [
        AddColumn("runs", "trigger", "TEXT"),
        AddColumn("runs", "experiment", "TEXT"),
        AddColumn("runs", "version", "TEXT"),
        AddColumn("runs", "project", "TEXT"),
        *_INDEXES_5,
    ],
    6: list(_CATALOG_6),
    # every step record wrote an entry at a random place of steps_by_name_run: a page
    # written per step; its lookups, (run_id, name), are the steps table's primary key's
    7: ["DROP INDEX IF EXISTS steps_by_name_run"],
}


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the databases."""

    name: str
    placeholder: str
    blob: str


_DIALECTS = {
    "sqlite": Dialect("sqlite", "?", "BLOB"),
    "duckdb": Dialect("duckdb", "?", "BLOB"),
    "postgresql": Dialect("postgresql", "%s", "BYTEA"),
}


class Database:
    """A connection (or, for DuckDB, a way to open one per transaction), serialised by a
    lock, with portable ``execute`` helpers.

    Args:
        url: The database's URL, for messages.
        opener: Opens a connection.
        dialect: What differs between the databases.
        path: The database file (SQLite, DuckDB), named when it is damaged.
    """

    def __init__(
        self, url: str, opener: Callable[[], Any], dialect: Dialect, path: str | None = None
    ) -> None:
        self.url = url
        self.dialect = dialect
        self.path = path
        self.lock = threading.RLock()
        self._opener = opener
        self._per_transaction = dialect.name == "duckdb"
        self._connection: Any = None if self._per_transaction else self._guarded(opener)

    def _guarded(self, opener: Callable[[], Any]) -> Any:
        try:
            return opener()
        except Exception as exc:
            self._raise_if_damaged(exc)
            raise

    def _raise_if_damaged(self, exc: BaseException) -> None:
        import sqlite3

        if isinstance(exc, DamagedHistoryError):
            return
        name = getattr(exc, "sqlite_errorname", "")
        if isinstance(exc, sqlite3.DatabaseError) and name in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            raise DamagedHistoryError(self.path or self.url, exc) from exc
        text = str(exc)
        duckdb_damage = type(exc).__name__ in ("SerializationException", "InternalException")
        if (
            self.dialect.name == "duckdb"
            and "Could not set lock" not in text
            and (duckdb_damage or "not a valid DuckDB database file" in text)
        ):
            raise DamagedHistoryError(self.path or self.url, exc) from exc

    def sql(self, sql: str) -> str:
        """``sql`` with the driver's placeholders."""
        return sql if self.dialect.placeholder == "?" else sql.replace("?", "%s")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor whose statements commit together at the end (or roll back)."""
        with self.lock:
            connection = self._connection or self._open_shared()
            try:
                cursor = connection.cursor()
                try:
                    yield cursor
                    connection.commit()
                except BaseException:
                    with contextlib.suppress(Exception):
                        connection.rollback()
                    raise
                finally:
                    with contextlib.suppress(Exception):
                        cursor.close()
            except Exception as exc:
                self._raise_if_damaged(exc)
                raise
            finally:
                if self._per_transaction:
                    with contextlib.suppress(Exception):
                        connection.close()

    def _open_shared(self) -> Any:
        """Open a DuckDB file, waiting (with backoff) while another process holds it."""
        deadline = time.monotonic() + LOCK_WAIT
        delay = 0.005
        while True:
            try:
                return self._guarded(self._opener)
            except DamagedHistoryError:
                raise
            except Exception as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.2)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and commit; return the rows it produced."""
        with self.transaction() as cursor:
            cursor.execute(self.sql(sql), tuple(args))
            rows = cursor.fetchall() if cursor.description else []
            return [tuple(row) for row in rows]

    def execute_many(self, statements: Iterable[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """Run several batched statements in one transaction."""
        with self.transaction() as cursor:
            for sql, rows in statements:
                if rows:
                    cursor.executemany(self.sql(sql), [tuple(r) for r in rows])

    def insert_rows(
        self,
        table: str,
        columns: str,
        rows: Sequence[Sequence[Any]],
        extra: tuple[str, str, Sequence[Sequence[Any]]] | None = None,
    ) -> None:
        """Insert many rows (and optionally rows of a second table) in one transaction,
        with multi-row ``VALUES`` statements: few statements, one commit."""
        with self.transaction() as cursor:
            self.insert(cursor, table, columns, rows)
            if extra is not None:
                self.insert(cursor, *extra)

    def insert(
        self,
        cursor: Any,
        table: str,
        columns: str,
        rows: Sequence[Sequence[Any]],
        *,
        conflict: str = "",
    ) -> None:
        """Insert ``rows`` with multi-row ``VALUES`` statements, each followed by
        ``conflict`` (an ``ON CONFLICT ...`` clause) when given; on SQLite, one prepared
        statement run over the rows (``executemany``: no flattening, no new SQL text)."""
        if not rows:
            return
        width = len(rows[0])
        if self.dialect.name == "sqlite":
            one = "(" + ", ".join("?" * width) + ")"
            sql = f"INSERT INTO {table} ({columns}) VALUES {one} {conflict}".rstrip()
            cursor.executemany(sql, rows)
            return
        chunk = max(1, 30000 // width)  # below SQLite's limit on bound parameters
        one = "(" + ", ".join([self.dialect.placeholder] * width) + ")"
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            sql = f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([one] * len(part))
            cursor.execute(f"{sql} {conflict}".rstrip(), [value for row in part for value in row])

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            if self._connection is not None:
                self._connection.close()

    def columns(self, table: str) -> set[str]:
        """The names of ``table``'s columns."""
        with self.transaction() as cursor:
            cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")
            names = {str(column[0]).lower() for column in cursor.description or ()}
            if cursor.description:
                cursor.fetchall()
            return names

    def _apply(self, change: str | AddColumn) -> None:
        if isinstance(change, str):
            self.execute(change)
        elif change.column not in self.columns(change.table):
            try:
                self.execute(f"ALTER TABLE {change.table} ADD COLUMN {change.column} {change.kind}")
            except Exception:
                if change.column not in self.columns(change.table):
                    raise  # not another process adding it at the same moment

    def migrate(self) -> None:
        """Create the schema, or bring an older one up to :data:`SCHEMA_VERSION`."""
        self.execute_many((s, [()]) for s in _schema(self.dialect.blob))
        rows = self.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        current = int(rows[0][0]) if rows else 0
        if current > SCHEMA_VERSION:
            raise PlaitError(
                f"history database {self.url} has schema version {current}, newer than this "
                f"plait understands ({SCHEMA_VERSION}); upgrade plait"
            )
        # a new database already has the newest schema; its (idempotent) migrations are
        # no-ops, and running them covers a version-1 database whose version row is missing
        for version in range(max(current, 1) + 1, SCHEMA_VERSION + 1):
            for change in MIGRATIONS[version]:
                self._apply(change)
        self.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [str(SCHEMA_VERSION)],
        )


def _sqlite(path: str) -> Any:
    import sqlite3

    from plait._sqlite import to_wal

    connection = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
    try:
        connection.execute("PRAGMA busy_timeout=30000")
        to_wal(connection)
        connection.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        connection.close()
        raise
    return connection


def _duckdb(path: str) -> Any:
    try:
        import duckdb
    except ImportError as exc:
        raise PlaitError("duckdb history needs: pip install 'plait[duckdb]'") from exc
    return duckdb.connect(path)


def _postgres(url: str) -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise PlaitError("PostgreSQL history needs: pip install 'plait[postgres]'") from exc
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


def connect(url: str) -> Database:
    """Open (and migrate) the history database at ``url``.

    Raises:
        DamagedHistoryError: When the database file is damaged.
    """
    import functools
    import os

    path: str | None = None
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        dialect, opener = _DIALECTS["postgresql"], functools.partial(_postgres, url)
    elif url.startswith("duckdb://"):
        path = url.removeprefix("duckdb:///") or ":memory:"
        dialect, opener = _DIALECTS["duckdb"], functools.partial(_duckdb, path)
        if path == ":memory:":  # one in-memory database: keep its connection
            dialect = Dialect("duckdb-memory", "?", "BLOB")
    else:
        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        dialect, opener = _DIALECTS["sqlite"], functools.partial(_sqlite, path)
    try:
        database = Database(url, opener, dialect, path)
    except PlaitError:
        raise
    except Exception as exc:
        raise PlaitError(f"cannot open the history database {url}: {exc}") from exc
    try:
        database.migrate()
    except BaseException:
        database.close()
        raise
    return database
