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
only adds (columns, tables, indexes) and is idempotent: a column that is already there is
left alone, so two processes opening one old database at once both succeed.

Versions: 1, the first schema; 2 adds ``runs.structure`` (the id of the pipeline's
structure, kept once per distinct structure in ``structures``), ``steps.params`` (the
param values a step received, defaults included) and ``steps.logs`` (its log lines).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from plait.errors import PlaitError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "AddColumn", "Database", "connect"]


def _schema(blob: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
        f"""CREATE TABLE IF NOT EXISTS runs (
            run_id TEXT PRIMARY KEY, pipeline TEXT, fingerprint TEXT, status TEXT,
            params TEXT, config TEXT, tags TEXT, started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION, duration DOUBLE PRECISION, host TEXT,
            plait_version TEXT, python_version TEXT, origin_run_id TEXT, executor TEXT,
            error TEXT, inputs {blob}, structure TEXT)""",
        """CREATE TABLE IF NOT EXISTS steps (
            run_id TEXT, name TEXT, status TEXT, cached INTEGER, reason TEXT,
            attempts INTEGER, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
            duration DOUBLE PRECISION, cache_key TEXT, input_versions TEXT,
            data_versions TEXT, error_type TEXT, error_message TEXT, error_traceback TEXT,
            metrics TEXT, peak_memory BIGINT, fingerprint TEXT, params TEXT, logs TEXT,
            PRIMARY KEY (run_id, name))""",
        "CREATE TABLE IF NOT EXISTS structures (id TEXT PRIMARY KEY, body TEXT)",
        """CREATE TABLE IF NOT EXISTS data (
            version TEXT, run_id TEXT, step TEXT, name TEXT, role TEXT)""",
        "CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_at)",
        "CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, started_at)",
        "CREATE INDEX IF NOT EXISTS steps_by_name ON steps (name, started_at)",
        "CREATE INDEX IF NOT EXISTS data_by_version ON data (version, role)",
        "CREATE INDEX IF NOT EXISTS data_by_run ON data (run_id)",
    ]


SCHEMA_VERSION = 2


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
    """One connection, serialised by a lock, with portable ``execute`` helpers."""

    def __init__(self, url: str, connection: Any, dialect: Dialect) -> None:
        self.url = url
        self.connection = connection
        self.dialect = dialect
        self.lock = threading.RLock()

    def _sql(self, sql: str) -> str:
        return sql if self.dialect.placeholder == "?" else sql.replace("?", "%s")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and commit; return the rows it produced."""
        with self.lock:
            cursor = self.connection.cursor()
            try:
                cursor.execute(self._sql(sql), tuple(args))
                rows = cursor.fetchall() if cursor.description else []
                self.connection.commit()
                return [tuple(row) for row in rows]
            except BaseException:
                self.connection.rollback()
                raise
            finally:
                cursor.close()

    def execute_many(self, statements: Iterable[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """Run several batched statements in one transaction."""
        with self.lock:
            cursor = self.connection.cursor()
            try:
                for sql, rows in statements:
                    if rows:
                        cursor.executemany(self._sql(sql), [tuple(r) for r in rows])
                self.connection.commit()
            except BaseException:
                self.connection.rollback()
                raise
            finally:
                cursor.close()

    def insert_rows(
        self,
        table: str,
        columns: str,
        rows: Sequence[Sequence[Any]],
        extra: tuple[str, str, Sequence[Sequence[Any]]] | None = None,
    ) -> None:
        """Insert many rows (and optionally rows of a second table) in one transaction,
        with multi-row ``VALUES`` statements: few statements, one commit."""
        with self.lock:
            cursor = self.connection.cursor()
            try:
                self._insert(cursor, table, columns, rows)
                if extra is not None:
                    self._insert(cursor, *extra)
                self.connection.commit()
            except BaseException:
                self.connection.rollback()
                raise
            finally:
                cursor.close()

    def _insert(self, cursor: Any, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        width = len(rows[0])
        chunk = max(1, 30000 // width)  # below SQLite's limit on bound parameters
        one = "(" + ", ".join([self.dialect.placeholder] * width) + ")"
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            sql = f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([one] * len(part))
            cursor.execute(sql, [value for row in part for value in row])

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.connection.close()

    def columns(self, table: str) -> set[str]:
        """The names of ``table``'s columns."""
        with self.lock:
            cursor = self.connection.cursor()
            try:
                cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")
                names = {str(column[0]).lower() for column in cursor.description or ()}
                if cursor.description:
                    cursor.fetchall()
                self.connection.commit()
                return names
            except BaseException:
                self.connection.rollback()
                raise
            finally:
                cursor.close()

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

    connection = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")
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
    """Open (and migrate) the history database at ``url``."""
    import os

    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        dialect, connection = _DIALECTS["postgresql"], _postgres(url)
    elif url.startswith("duckdb://"):
        path = url.removeprefix("duckdb:///")
        dialect, connection = _DIALECTS["duckdb"], _duckdb(path or ":memory:")
    else:
        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        dialect, connection = _DIALECTS["sqlite"], _sqlite(path)
    database = Database(url, connection, dialect)
    try:
        database.migrate()
    except BaseException:
        database.close()
        raise
    return database
