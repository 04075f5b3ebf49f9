"""The history: every run and step execution, queryable, with lineage across runs.

Writing. A run's record is written when the run starts (status ``running``) and updated
when it ends. Step records are written as steps end, in small batches by a background
thread that commits at most ``flush_delay`` seconds (10 ms) after a step ends: a fast
chain of steps costs one transaction per batch, and a killed run still keeps every step
that finished more than a few milliseconds before the kill (what it computed is in the
store in any case, so resume loses nothing).

Lineage. Each step execution adds one row per output (role ``out``) and per input (role
``in``) to the ``data`` table, keyed by data version, so "who produced this value", "who
consumed it" and "how did it come to be" are index lookups, across runs.
"""

from __future__ import annotations

import json
import platform
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from plait.errors import PlaitError, suggest
from plait.history.db import Database, connect
from plait.history.records import RunRecord, StepRecord

__all__ = ["History", "RunRecorder"]

_STEP_SQL = (
    f"INSERT INTO steps ({StepRecord.COLUMNS}) VALUES ({', '.join(['?'] * 18)}) "
    "ON CONFLICT (run_id, name) DO UPDATE SET status = excluded.status, "
    "cached = excluded.cached, reason = excluded.reason, attempts = excluded.attempts, "
    "started_at = excluded.started_at, finished_at = excluded.finished_at, "
    "duration = excluded.duration, cache_key = excluded.cache_key, "
    "input_versions = excluded.input_versions, data_versions = excluded.data_versions, "
    "error_type = excluded.error_type, error_message = excluded.error_message, "
    "error_traceback = excluded.error_traceback, metrics = excluded.metrics, "
    "peak_memory = excluded.peak_memory, fingerprint = excluded.fingerprint"
)
_DATA_SQL = "INSERT INTO data (version, run_id, step, name, role) VALUES (?, ?, ?, ?, ?)"


_ENCODER = json.JSONEncoder(default=repr, separators=(",", ":"))


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value) if value else ("{}" if isinstance(value, dict) else "[]")


def display(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values as JSON-friendly data for display (exact values are kept pickled apart)."""
    shown: dict[str, Any] = {}
    for key, value in values.items():
        try:
            json.dumps(value)
            shown[key] = value
        except (TypeError, ValueError):
            shown[key] = repr(value)
    return shown


class History:
    """Run records in a database (SQLite by default; PostgreSQL, DuckDB).

    Args:
        url: A path (SQLite), ``sqlite:///...``, ``duckdb:///...`` or ``postgresql://...``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._db: Database | None = None
        self._lock = threading.Lock()

    @property
    def db(self) -> Database:
        """The open database (connected and migrated on first use)."""
        if self._db is None:
            with self._lock:
                if self._db is None:
                    self._db = connect(self.url)
        return self._db

    def close(self) -> None:
        """Close the connection (it reopens on next use)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __repr__(self) -> str:
        return f"History({self.url!r})"

    # -- writing ------------------------------------------------------------------
    def start_run(
        self,
        *,
        run_id: str,
        pipeline: str,
        fingerprint: str,
        params: Mapping[str, Any],
        config: Mapping[str, Any],
        tags: Sequence[str],
        started_at: float,
        executor: str,
        origin_run_id: str | None,
        inputs: bytes | None,
    ) -> RunRecorder:
        """Record a run as started and return the recorder of its steps."""
        from plait import __version__

        self.db.execute(
            f"INSERT INTO runs ({RunRecord.COLUMNS}, inputs) VALUES ({', '.join(['?'] * 17)})",
            [
                run_id,
                pipeline,
                fingerprint,
                "running",
                _dumps(display(params)),
                _dumps(display(config)),
                _dumps(list(tags)),
                started_at,
                None,
                None,
                platform.node(),
                __version__,
                sys.version.split()[0],
                origin_run_id,
                executor,
                None,
                inputs,
            ],
        )
        return RunRecorder(self.db, run_id)

    # -- reading ------------------------------------------------------------------
    def resolve(self, run_id: str) -> str:
        """The full id of the run whose id starts with ``run_id`` (a unique prefix).

        Raises:
            KeyError: When no run, or more than one, matches.
        """
        rows = self.db.execute(
            "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 2",
            [run_id, run_id + "\uffff"],
        )
        if len(rows) == 1:
            return str(rows[0][0])
        if rows:
            raise KeyError(f"run id prefix {run_id!r} is ambiguous: give more characters")
        recent = [r.run_id for r in self.runs(limit=20)]
        raise KeyError(f"no run {run_id!r} in {self.url}{suggest(run_id, recent)}")

    def runs(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = 50,
        *,
        since: float | datetime | None = None,
        tags: Iterable[str] = (),
    ) -> list[RunRecord]:
        """Run records, newest first, filtered by pipeline, status, start time and tags."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("pipeline", pipeline), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("started_at >= ?")
            args.append(since.timestamp() if isinstance(since, datetime) else since)
        wanted = list(tags)
        sql = f"SELECT {RunRecord.COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, run_id DESC"
        if limit is not None and not wanted:
            sql += f" LIMIT {int(limit)}"
        records = [RunRecord.from_row(row) for row in self.db.execute(sql, args)]
        if wanted:
            records = [r for r in records if all(t in r.tags for t in wanted)][:limit]
        return records

    def run(self, run_id: str) -> RunRecord:
        """One run with its step records (``run_id`` may be a unique prefix)."""
        full = self.resolve(run_id)
        rows = self.db.execute(f"SELECT {RunRecord.COLUMNS} FROM runs WHERE run_id = ?", [full])
        steps = self.db.execute(
            f"SELECT {StepRecord.COLUMNS} FROM steps WHERE run_id = ? ORDER BY started_at, name",
            [full],
        )
        records = {row[1]: StepRecord.from_row(row) for row in steps}
        return RunRecord.from_row(rows[0], records)

    def run_inputs(self, run_id: str) -> bytes | None:
        """The pickled params and config a run was started with (for resume)."""
        rows = self.db.execute("SELECT inputs FROM runs WHERE run_id = ?", [self.resolve(run_id)])
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def step_history(
        self, name: str, pipeline: str | None = None, limit: int = 50
    ) -> list[StepRecord]:
        """The executions of one step across runs, newest first."""
        sql = f"SELECT {', '.join('s.' + c.strip() for c in StepRecord.COLUMNS.split(','))} "
        sql += "FROM steps s JOIN runs r ON r.run_id = s.run_id WHERE s.name = ?"
        args: list[Any] = [name]
        if pipeline is not None:
            sql += " AND r.pipeline = ?"
            args.append(pipeline)
        sql += f" ORDER BY s.started_at DESC LIMIT {int(limit)}"
        return [StepRecord.from_row(row) for row in self.db.execute(sql, args)]

    def _steps_by_data(self, version: str, role: str) -> list[StepRecord]:
        prefixed = "s." + ", s.".join(c.strip() for c in StepRecord.COLUMNS.split(","))
        rows = self.db.execute(
            f"SELECT DISTINCT {prefixed} FROM data d JOIN steps s "
            "ON s.run_id = d.run_id AND s.name = d.step WHERE d.version = ? AND d.role = ? "
            "ORDER BY s.started_at DESC",
            [version, role],
        )
        return [StepRecord.from_row(row) for row in rows]

    def producers(self, data_version: str) -> list[StepRecord]:
        """Step executions whose output had this data version, newest first."""
        return self._steps_by_data(data_version, "out")

    def consumers(self, data_version: str) -> list[StepRecord]:
        """Step executions that read a value with this data version, newest first."""
        return self._steps_by_data(data_version, "in")

    def lineage(self, data_version: str, depth: int = 100) -> list[StepRecord]:
        """The step executions upstream of a value, across runs (nearest first)."""
        found: dict[tuple[str, str], StepRecord] = {}
        frontier, seen = [data_version], {data_version}
        for _ in range(depth):
            next_frontier = []
            for version in frontier:
                for record in self.producers(version):
                    if (record.run_id, record.name) in found:
                        continue
                    found[(record.run_id, record.name)] = record
                    for upstream in record.input_versions.values():
                        if upstream not in seen:
                            seen.add(upstream)
                            next_frontier.append(upstream)
            if not next_frontier:
                break
            frontier = next_frontier
        return list(found.values())

    def compare(self, run_a: str, run_b: str) -> dict[str, Any]:
        """What differs between two runs: params, fingerprints and each step."""
        a, b = self.run(run_a), self.run(run_b)
        steps = {}
        for name in sorted(set(a.steps) | set(b.steps)):
            left, right = a.steps.get(name), b.steps.get(name)
            steps[name] = {
                "status": (left and left.status, right and right.status),
                "cached": (left and left.cached, right and right.cached),
                "duration": (left and left.duration, right and right.duration),
                "data_versions": (left and left.data_versions, right and right.data_versions),
                "metrics": (left and left.metrics, right and right.metrics),
                "same_output": bool(left and right and left.data_versions == right.data_versions),
            }
        changed = {
            k: (a.params.get(k), b.params.get(k))
            for k in sorted(set(a.params) | set(b.params))
            if a.params.get(k) != b.params.get(k)
        }
        return {
            "runs": (a.run_id, b.run_id),
            "params": changed,
            "fingerprint": (a.fingerprint, b.fingerprint),
            "status": (a.status, b.status),
            "steps": steps,
        }

    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete run records (and their step and lineage rows); return how many."""
        ids = list(run_ids)
        self.db.execute_many(
            [
                (f"DELETE FROM {table} WHERE run_id = ?", [[i] for i in ids])
                for table in ("data", "steps", "runs")
            ]
        )
        return len(ids)

    def referenced_keys(self) -> set[str]:
        """Cache keys of every recorded step execution."""
        rows = self.db.execute("SELECT DISTINCT cache_key FROM steps WHERE cache_key IS NOT NULL")
        return {str(row[0]) for row in rows}


class RunRecorder:
    """Records one run's steps: buffered, and committed before the next step executes.

    Step records wait in a buffer that is written (one transaction, multi-row inserts)
    whenever a step is about to execute (:meth:`flush`, called by the scheduler) and when
    the run ends. Cache hits and skips, which execute nothing, are batched; and whatever
    finished before a step started executing is on disk by then, so a run killed in that
    step keeps every finished step's record.
    """

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self._buffer: list[tuple[Any, dict[str, str], str | None, int | None]] = []
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """True when step records wait to be written."""
        return bool(self._buffer)

    def step(
        self,
        record: Any,
        input_versions: Mapping[str, str],
        fingerprint: str | None = None,
        peak_memory: int | None = None,
    ) -> None:
        """Buffer a finished step's record (a :class:`~plait.StepResult`)."""
        self._buffer.append((record, dict(input_versions), fingerprint, peak_memory))

    def _rows(
        self, item: tuple[Any, dict[str, str], str | None, int | None]
    ) -> tuple[list[Any], list[list[Any]]]:
        record, input_versions, fingerprint, peak_memory = item
        error = record.error
        row = [
            self.run_id,
            record.name,
            record.status,
            int(record.cached),
            record.reason,
            record.attempts,
            record.start_time,
            record.end_time,
            record.duration,
            record.cache_key,
            _dumps(dict(input_versions)),
            _dumps(record.data_versions),
            error.type if error else None,
            error.message if error else None,
            error.traceback if error else None,
            _dumps(display(record.metrics)) if record.metrics else "{}",
            peak_memory,
            fingerprint,
        ]
        lineage = [[v, self.run_id, record.name, n, "out"] for n, v in record.data_versions.items()]
        lineage += [[v, self.run_id, record.name, n, "in"] for n, v in input_versions.items()]
        return row, lineage

    def flush(self) -> None:
        """Write every buffered step record in one transaction."""
        with self._lock:
            batch, self._buffer = self._buffer, []
            if not batch:
                return
            rows = [self._rows(item) for item in batch]
            self.db.insert_rows(
                "steps",
                StepRecord.COLUMNS,
                [r[0] for r in rows],
                extra=(
                    "data",
                    "version, run_id, step, name, role",
                    [line for r in rows for line in r[1]],
                ),
            )

    def finish(self, status: str, finished_at: float, duration: float, error: str | None) -> None:
        """Write the last step records and the run's end."""
        try:
            self.flush()
        except Exception as exc:
            raise PlaitError(
                f"could not record the steps of run {self.run_id} in {self.db.url}: {exc}"
            ) from exc
        self.db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, duration = ?, error = ? WHERE run_id = ?",
            [status, finished_at, duration, error, self.run_id],
        )
