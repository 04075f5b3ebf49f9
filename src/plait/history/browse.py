"""Reading a big history a page at a time: the queries behind ``plait ui`` and the CLI.

Design. Every method here is a fixed number of statements, each bounded by a ``LIMIT``
when the caller gives one, filtered and sorted in the database (never all runs in memory),
in portable SQL: ``?`` placeholders, ``LOWER(...) LIKE ? ESCAPE '!'`` for text search and
tags, sort columns from a fixed table (:data:`SORTS`, never from the caller's text). So
they answer alike on SQLite, DuckDB and PostgreSQL. The indexes of schema version 4 keep
them quick on a history of 100,000 runs: runs by start time, pipeline, status and origin;
steps by name; lineage rows by data version.

:class:`Browsing` is mixed into :class:`~plait.history.History`, which gives it ``db``,
``settle``, ``resolve`` and the loading of a listed run's details.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from plait.errors import suggest
from plait.history.db import Database
from plait.history.records import RecordedPipeline, RunRecord, StepRecord

__all__ = ["SORTS", "Browsing"]

SORTS = {
    "started": "started_at",
    "duration": "duration",
    "pipeline": "pipeline",
    "status": "status",
}
_STEP_COLUMNS = ", ".join("s." + c.strip() for c in StepRecord.COLUMNS.split(","))
_TEXT_COLUMNS = ("run_id", "pipeline", "tags", "params", "error")
_ALL = 2**62  # "no limit" where an OFFSET needs one (portable: no LIMIT ALL / LIMIT -1)


class _Reader(Protocol):
    """What :class:`Browsing` needs of the history it is mixed into."""

    @property
    def db(self) -> Database: ...

    def settle(self, run_id: str | None = None) -> list[str]: ...

    def resolve(self, run_id: str) -> str: ...

    def _details(self, run_id: str) -> tuple[dict[str, StepRecord], RecordedPipeline | None]: ...

    def _steps_by_data(self, version: str, role: str, limit: int | None) -> list[StepRecord]: ...


def _like(text: str) -> str:
    """``text`` as a literal inside a ``LIKE ... ESCAPE '!'`` pattern.

    >>> _like("100%_!")
    '100!%!_!!'
    """
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _seconds(moment: float | datetime) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def _where(
    *,
    pipeline: str | None,
    status: str | None,
    since: float | datetime | None,
    until: float | datetime | None,
    tags: Iterable[str],
    text: str | None,
    origin: str | None,
    trigger: str | None = None,
    experiment: str | None = None,
    version: str | None = None,
    project: str | None = None,
) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (or ``""``) of a selection of runs, and its arguments."""
    clauses: list[str] = []
    args: list[Any] = []
    equal = (
        ("pipeline", pipeline),
        ("status", status),
        ("origin_run_id", origin),
        ("experiment", experiment),
        ("version", version),
        ("project", project),
    )
    for column, value in equal:
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if trigger is not None:  # a JSON object written with sorted keys and no spaces
        clauses.append("(trigger LIKE ? ESCAPE '!' OR trigger LIKE ? ESCAPE '!')")
        for key in ("name", "kind"):
            args.append(f"%{_like(json.dumps({key: trigger}, separators=(',', ':'))[1:-1])}%")
    if since is not None:
        clauses.append("started_at >= ?")
        args.append(_seconds(since))
    if until is not None:
        clauses.append("started_at <= ?")
        args.append(_seconds(until))
    for tag in dict.fromkeys(tags):  # tags are a JSON list: look for the JSON string
        clauses.append("tags LIKE ? ESCAPE '!'")
        args.append(f"%{_like(json.dumps(tag, separators=(',', ':')))}%")
    if text:
        pattern = f"%{_like(text.lower())}%"
        matches = [f"LOWER(COALESCE({c}, '')) LIKE ? ESCAPE '!'" for c in _TEXT_COLUMNS]
        clauses.append("(" + " OR ".join(matches) + ")")
        args.extend([pattern] * len(_TEXT_COLUMNS))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class Browsing:
    """Paged, filtered and counted reading of runs, steps and lineage (see the module
    docstring); a part of :class:`~plait.history.History`."""

    def runs(
        self: _Reader,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = 50,
        *,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        tags: Iterable[str] = (),
        text: str | None = None,
        origin: str | None = None,
        trigger: str | None = None,
        experiment: str | None = None,
        version: str | None = None,
        project: str | None = None,
        sort: str = "started",
        descending: bool = True,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Run records, newest first, filtered, searched, sorted and paged in the database.

        A ``running`` run whose process is known to be dead is reported, and written
        back, as ``failed`` ("process died").

        Args:
            pipeline: Only this pipeline's runs.
            status: Only runs with this status (``running``, ``succeeded``, ``failed``,
                ``cancelled``).
            limit: At most this many (None: all).
            since: Only runs started at or after this moment (epoch seconds or datetime).
            until: Only runs started at or before this moment.
            tags: Only runs with every one of these tags.
            text: Only runs whose id, pipeline, tags, params or error contain this text
                (case-insensitive).
            origin: Only the runs resumed or rerun from this run id.
            trigger: Only the runs started by the trigger of this name or kind
                (``RunRecord.trigger``).
            experiment: Only the runs of this experiment.
            version: Only the runs of this pipeline version.
            project: Only the runs of this project.
            sort: ``started``, ``duration``, ``pipeline`` or ``status`` (ties by start time).
            descending: Largest (newest) first.
            offset: Skip this many (for pages).

        Raises:
            ValueError: For an unknown ``sort``.
        """
        if sort not in SORTS:
            raise ValueError(
                f"sort={sort!r} is not one of {', '.join(SORTS)}{suggest(sort, list(SORTS))}"
            )
        self.settle()
        where, args = _where(
            pipeline=pipeline,
            status=status,
            since=since,
            until=until,
            tags=tags,
            text=text,
            origin=origin,
            trigger=trigger,
            experiment=experiment,
            version=version,
            project=project,
        )
        direction = "DESC" if descending else "ASC"
        order = f"started_at {direction}, run_id {direction}"
        if sort != "started":
            order = f"{SORTS[sort]} {direction}, {order}"
        sql = f"SELECT {RunRecord.COLUMNS} FROM runs{where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        elif offset:
            sql += f" LIMIT {_ALL}"
        if offset:
            sql += f" OFFSET {int(offset)}"
        return [
            RunRecord.from_row(row, load=functools.partial(self._details, str(row[0])))
            for row in self.db.execute(sql, args)
        ]

    def run_counts(
        self: _Reader,
        pipeline: str | None = None,
        status: str | None = None,
        *,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        tags: Iterable[str] = (),
        text: str | None = None,
        origin: str | None = None,
        trigger: str | None = None,
        experiment: str | None = None,
        version: str | None = None,
        project: str | None = None,
    ) -> dict[str, int]:
        """How many runs :meth:`runs` selects with these filters, by status (one query)."""
        self.settle()
        where, args = _where(
            pipeline=pipeline,
            status=status,
            since=since,
            until=until,
            tags=tags,
            text=text,
            origin=origin,
            trigger=trigger,
            experiment=experiment,
            version=version,
            project=project,
        )
        rows = self.db.execute(f"SELECT status, COUNT(*) FROM runs{where} GROUP BY status", args)
        return {str(state): int(count) for state, count in rows}

    def pipelines(self: _Reader, limit: int = 500) -> list[str]:
        """The names of the pipelines with recorded runs, sorted (at most ``limit``)."""
        rows = self.db.execute(
            "SELECT DISTINCT pipeline FROM runs WHERE pipeline IS NOT NULL "
            f"ORDER BY pipeline LIMIT {int(limit)}"
        )
        return [str(row[0]) for row in rows]

    # -- one run's steps ------------------------------------------------------------------
    def step_count(self: _Reader, run_id: str) -> int:
        """How many step records a run has (``run_id`` may be a unique prefix).

        Raises:
            KeyError: When no run, or more than one, matches ``run_id``.
        """
        rows = self.db.execute(
            "SELECT COUNT(*) FROM steps WHERE run_id = ?", [self.resolve(run_id)]
        )
        return int(rows[0][0]) if rows else 0

    def steps(
        self: _Reader, run_id: str, *, limit: int | None = None, offset: int = 0
    ) -> list[StepRecord]:
        """A run's step records in the order they started, a page at a time.

        Raises:
            KeyError: When no run, or more than one, matches ``run_id``.
        """
        sql = f"SELECT {StepRecord.COLUMNS} FROM steps WHERE run_id = ? ORDER BY started_at, name"
        if limit is not None or offset:
            sql += f" LIMIT {_ALL if limit is None else int(limit)} OFFSET {int(offset)}"
        return [StepRecord.from_row(row) for row in self.db.execute(sql, [self.resolve(run_id)])]

    # -- one step across runs -------------------------------------------------------------
    def step_history(
        self: _Reader, name: str, pipeline: str | None = None, limit: int = 50, *, offset: int = 0
    ) -> list[StepRecord]:
        """The executions of one step across runs, newest first (``offset``: for pages)."""
        sql, args = _step_from(name, pipeline)
        rows = self.db.execute(
            f"SELECT {_STEP_COLUMNS} {sql} ORDER BY s.started_at DESC "
            f"LIMIT {int(limit)} OFFSET {int(offset)}",
            args,
        )
        return [StepRecord.from_row(row) for row in rows]

    def step_counts(self: _Reader, name: str, pipeline: str | None = None) -> dict[str, int]:
        """How many executions of a step across runs had each outcome: its status, or
        ``cached`` for a cache hit (one query)."""
        sql, args = _step_from(name, pipeline, whole=True)
        rows = self.db.execute(
            f"SELECT s.status, s.cached, COUNT(*) {sql} GROUP BY s.status, s.cached", args
        )
        outcomes: dict[str, int] = {}
        for state, cached, count in rows:
            key = "cached" if state == "ok" and cached else str(state)
            outcomes[key] = outcomes.get(key, 0) + int(count)
        return outcomes

    def step_reasons(
        self: _Reader, name: str, pipeline: str | None = None, limit: int = 10
    ) -> list[tuple[str, int]]:
        """The most common reasons a step ran or was reused, with their counts."""
        sql, args = _step_from(name, pipeline, whole=True)
        rows = self.db.execute(
            f"SELECT s.reason, COUNT(*) {sql} GROUP BY s.reason "
            f"ORDER BY COUNT(*) DESC, s.reason LIMIT {int(limit)}",
            args,
        )
        return [(str(reason or ""), int(count)) for reason, count in rows]

    # -- lineage --------------------------------------------------------------------------
    def _steps_by_data(
        self: _Reader, version: str, role: str, limit: int | None
    ) -> list[StepRecord]:
        rows = self.db.execute(
            f"SELECT DISTINCT {_STEP_COLUMNS} FROM data d JOIN steps s "
            "ON s.run_id = d.run_id AND s.name = d.step WHERE d.version = ? AND d.role = ? "
            "ORDER BY s.started_at DESC" + ("" if limit is None else f" LIMIT {int(limit)}"),
            [version, role],
        )
        return [StepRecord.from_row(row) for row in rows]

    def producers(self: _Reader, data_version: str, limit: int | None = None) -> list[StepRecord]:
        """Step executions whose output had this data version, newest first (at most
        ``limit``)."""
        self.settle()  # a killed run's last lineage rows are written again first
        return self._steps_by_data(data_version, "out", limit)

    def consumers(self: _Reader, data_version: str, limit: int | None = None) -> list[StepRecord]:
        """Step executions that read a value with this data version, newest first (at most
        ``limit``)."""
        self.settle()
        return self._steps_by_data(data_version, "in", limit)

    def lineage(
        self: _Reader, data_version: str, depth: int = 100, *, limit: int | None = None
    ) -> list[StepRecord]:
        """The step executions upstream of a value, across runs (nearest first).

        Without ``limit``, every execution that produced each value upstream (a value
        reused by many runs has many). With ``limit``, only the newest producer of each
        value, and at most ``limit`` lookups (so at most ``limit`` statements and records):
        what a page can show of a long history.
        """
        self.settle()
        found: dict[tuple[str, str], StepRecord] = {}
        frontier, seen = [data_version], {data_version}
        lookups = 0
        for _ in range(depth):
            next_frontier = []
            for version in frontier:
                if limit is not None and lookups >= limit:
                    return list(found.values())
                lookups += 1
                for record in self._steps_by_data(version, "out", None if limit is None else 1):
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


def _step_from(name: str, pipeline: str | None, *, whole: bool = False) -> tuple[str, list[Any]]:
    """The ``FROM ... WHERE`` of one step's executions (of one pipeline's runs).

    ``whole``: for aggregates over every execution, which read the pipeline's runs first
    (``runs_by_pipeline``) and look each step up by ``(run_id, name)`` (the primary key
    of ``steps``), rather than every execution of a step name shared by many pipelines
    (twice as fast on 100,000 runs).
    A page of the newest executions keeps the join, which walks ``steps_by_name`` from
    the newest and stops at the page's end.
    """
    if pipeline is None:
        return "FROM steps s WHERE s.name = ?", [name]
    if whole:
        return (
            "FROM steps s WHERE s.run_id IN (SELECT run_id FROM runs WHERE pipeline = ?) "
            "AND s.name = ?",
            [pipeline, name],
        )
    return (
        "FROM steps s JOIN runs r ON r.run_id = s.run_id WHERE s.name = ? AND r.pipeline = ?",
        [name, pipeline],
    )
