"""The bounded queries behind the UI's pages.

Design. Every page costs a fixed number of statements, each with a ``LIMIT``: the listing
of runs is one ``COUNT ... GROUP BY status`` and one page of rows (``LIMIT``/``OFFSET``,
filtered and sorted in SQL), never all runs in memory; a step across runs is one page of
its executions plus two small aggregates; lineage walks at most :data:`LINEAGE_QUERIES`
producer lookups. Queries are portable SQL over :attr:`plait.history.History.db` (SQLite,
PostgreSQL, DuckDB alike): ``?`` placeholders, ``LOWER(...) LIKE ? ESCAPE '!'`` for text
search, sort columns from a fixed table (never from the request).

These read the history's tables through its public ``db`` and its records' public
``COLUMNS``/``from_row``; the paged listing and search belong in
:class:`~plait.history.History` itself in time (see docs/ui.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from plait.errors import UsageError
from plait.history import History, RunRecord, StepRecord

__all__ = [
    "LINEAGE_QUERIES",
    "SORTS",
    "Lineage",
    "RunPage",
    "RunQuery",
    "RunView",
    "StepPage",
    "compare_rows",
    "lineage",
    "list_runs",
    "page_number",
    "pipelines",
    "resumed_by",
    "run_view",
    "step_page",
]

SORTS = {
    "started": "started_at",
    "duration": "duration",
    "pipeline": "pipeline",
    "status": "status",
}
STATUSES = ("running", "succeeded", "failed", "cancelled")
PER_PAGE = 50
MAX_PER_PAGE = 500
LINEAGE_QUERIES = 40
LINEAGE_ROWS = 100


def _one(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    return value or None


def _number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = _one(params, name)
    if text is None:
        return default
    try:
        return min(max(int(text), low), high)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a whole number") from None


def _day(params: Mapping[str, str], name: str) -> date | None:
    text = _one(params, name)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a date (write YYYY-MM-DD)") from None


def page_number(params: Mapping[str, str]) -> int:
    """The ``page`` of a query string (1 when absent).

    Raises:
        UsageError: When it is not a whole number.
    """
    return _number(params, "page", 1, 1, 10**9)


@dataclass(frozen=True, slots=True)
class RunQuery:
    """What the runs page shows: filters, search text, sort, page."""

    pipeline: str | None = None
    status: str | None = None
    tag: str | None = None
    since: date | None = None
    until: date | None = None
    text: str | None = None
    sort: str = "started"
    descending: bool = True
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> RunQuery:
        """Parse the page's query string.

        Raises:
            UsageError: For an unknown sort or status, a date that is not ``YYYY-MM-DD``
                or a page that is not a number.
        """
        sort = _one(params, "sort") or "started"
        if sort not in SORTS:
            raise UsageError(f"sort={sort!r} is not one of {', '.join(SORTS)}")
        status = _one(params, "status")
        if status is not None and status not in STATUSES:
            raise UsageError(f"status={status!r} is not one of {', '.join(STATUSES)}")
        order = _one(params, "order") or "desc"
        if order not in ("asc", "desc"):
            raise UsageError(f"order={order!r} is not asc or desc")
        return cls(
            pipeline=_one(params, "pipeline"),
            status=status,
            tag=_one(params, "tag"),
            since=_day(params, "since"),
            until=_day(params, "until"),
            text=_one(params, "q"),
            sort=sort,
            descending=order == "desc",
            page=_number(params, "page", 1, 1, 10**9),
            per_page=_number(params, "per_page", PER_PAGE, 1, MAX_PER_PAGE),
        )

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The query string of this query with ``changes`` (defaults left out)."""
        query = replace(self, **changes)
        pairs = [
            ("pipeline", query.pipeline),
            ("status", query.status),
            ("tag", query.tag),
            ("since", query.since.isoformat() if query.since else None),
            ("until", query.until.isoformat() if query.until else None),
            ("q", query.text),
            ("sort", None if query.sort == "started" else query.sort),
            ("order", None if query.descending else "asc"),
            ("per_page", None if query.per_page == PER_PAGE else str(query.per_page)),
            ("page", None if query.page == 1 else str(query.page)),
        ]
        return [(key, value) for key, value in pairs if value is not None]

    def where(self) -> tuple[str, list[Any]]:
        """The ``WHERE`` clause (or ``""``) and its arguments."""
        clauses: list[str] = []
        args: list[Any] = []
        if self.pipeline is not None:
            clauses.append("pipeline = ?")
            args.append(self.pipeline)
        if self.status is not None:
            clauses.append("status = ?")
            args.append(self.status)
        if self.tag is not None:  # tags are a JSON list: look for the JSON string
            clauses.append("tags LIKE ? ESCAPE '!'")
            args.append(f"%{_like(json.dumps(self.tag))}%")
        if self.since is not None:
            clauses.append("started_at >= ?")
            args.append(_epoch(self.since))
        if self.until is not None:  # the whole day
            clauses.append("started_at < ?")
            args.append(_epoch(self.until + timedelta(days=1)))
        if self.text is not None:
            pattern = f"%{_like(self.text.lower())}%"
            columns = ("run_id", "pipeline", "tags", "params", "error")
            clauses.append(
                "("
                + " OR ".join(f"LOWER(COALESCE({c}, '')) LIKE ? ESCAPE '!'" for c in columns)
                + ")"
            )
            args.extend([pattern] * len(columns))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _like(text: str) -> str:
    """``text`` as a literal inside a ``LIKE ... ESCAPE '!'`` pattern."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _epoch(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _loader(history: History, run_id: str) -> Any:
    def load() -> Any:
        record = history.run(run_id)
        return record.steps, record.structure

    return load


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of the runs listing with the totals of the whole selection."""

    query: RunQuery
    runs: list[RunRecord]
    total: int
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        """How many pages the selection has (at least 1)."""
        return max(1, -(-self.total // self.query.per_page))


def list_runs(history: History, query: RunQuery) -> RunPage:
    """One page of runs (2 statements, plus settling runs whose process died)."""
    history.settle()
    where, args = query.where()
    counts = history.db.execute(f"SELECT status, COUNT(*) FROM runs{where} GROUP BY status", args)
    by_status = {str(status): int(count) for status, count in counts}
    column = SORTS[query.sort]
    direction = "DESC" if query.descending else "ASC"
    offset = (query.page - 1) * query.per_page
    rows = history.db.execute(
        f"SELECT {RunRecord.COLUMNS} FROM runs{where} "
        f"ORDER BY {column} {direction}, started_at {direction}, run_id {direction} "
        f"LIMIT {int(query.per_page)} OFFSET {int(offset)}",
        args,
    )
    runs = [RunRecord.from_row(row, load=_loader(history, str(row[0]))) for row in rows]
    return RunPage(query, runs, sum(by_status.values()), by_status)


def pipelines(history: History, limit: int = 500) -> list[str]:
    """The pipeline names in the history (for the filter)."""
    rows = history.db.execute(
        f"SELECT DISTINCT pipeline FROM runs ORDER BY pipeline LIMIT {int(limit)}"
    )
    return [str(row[0]) for row in rows if row[0] is not None]


def resumed_by(history: History, run_id: str, limit: int = 20) -> list[tuple[str, str]]:
    """The runs resumed or rerun from ``run_id``: (run id, status), newest first."""
    rows = history.db.execute(
        "SELECT run_id, status FROM runs WHERE origin_run_id = ? "
        f"ORDER BY started_at DESC LIMIT {int(limit)}",
        [run_id],
    )
    return [(str(a), str(b)) for a, b in rows]


# -- one run ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunView:
    """One run as its page shows it: the record, one page of its steps, their total.

    ``complete`` is True when the run is small enough that every step (and the
    structure) was loaded, through :meth:`History.run`; a larger run has a page of steps
    and ``first``, its first :data:`DRAWN_STEPS` steps by start time, for the timeline.
    """

    record: RunRecord
    steps: dict[str, StepRecord]
    total: int
    page: int
    per_page: int
    complete: bool
    first: dict[str, StepRecord] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        """How many pages the steps have (at least 1)."""
        return max(1, -(-self.total // self.per_page))


DRAWN_STEPS = 400
STEPS_PER_PAGE = 500


def run_view(history: History, run_id: str, page: int = 1) -> RunView:
    """A run with a page of its steps: at most 5 statements and
    :data:`STEPS_PER_PAGE` step rows, however many steps the run has.

    Raises:
        KeyError: When no run, or more than one, matches ``run_id`` (a prefix).
    """
    full = history.resolve(run_id)
    counted = history.db.execute("SELECT COUNT(*) FROM steps WHERE run_id = ?", [full])
    total = int(counted[0][0]) if counted else 0
    if total <= DRAWN_STEPS:
        record = history.run(full)
        return RunView(record, record.steps, total, 1, STEPS_PER_PAGE, True)
    history.settle(full)
    rows = history.db.execute(f"SELECT {RunRecord.COLUMNS} FROM runs WHERE run_id = ?", [full])
    record = RunRecord.from_row(rows[0], load=_loader(history, full))
    sql = f"SELECT {StepRecord.COLUMNS} FROM steps WHERE run_id = ? ORDER BY started_at, name"
    offset = (page - 1) * STEPS_PER_PAGE
    shown = history.db.execute(f"{sql} LIMIT {STEPS_PER_PAGE} OFFSET {int(offset)}", [full])
    first = history.db.execute(f"{sql} LIMIT {DRAWN_STEPS}", [full])
    return RunView(
        record,
        {row[1]: StepRecord.from_row(row) for row in shown},
        total,
        page,
        STEPS_PER_PAGE,
        False,
        {row[1]: StepRecord.from_row(row) for row in first},
    )


# -- one step across runs --------------------------------------------------------------------
_STEP_COLUMNS = ", ".join("s." + c.strip() for c in StepRecord.COLUMNS.split(","))
_STEP_FROM = "FROM steps s JOIN runs r ON r.run_id = s.run_id WHERE s.name = ? AND r.pipeline = ?"


@dataclass(frozen=True, slots=True)
class StepPage:
    """One step of one pipeline across runs: a page of executions and the totals."""

    pipeline: str
    name: str
    executions: list[StepRecord]
    total: int
    outcomes: dict[str, int]
    reasons: list[tuple[str, int]]
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the executions have (at least 1)."""
        return max(1, -(-self.total // self.per_page))


def step_page(
    history: History, pipeline: str, name: str, page: int = 1, per_page: int = 100
) -> StepPage:
    """A step's executions across runs, newest first (3 statements)."""
    args = [name, pipeline]
    counts = history.db.execute(
        f"SELECT s.status, s.cached, COUNT(*) {_STEP_FROM} GROUP BY s.status, s.cached", args
    )
    outcomes: dict[str, int] = {}
    for status, cached, count in counts:
        key = "cached" if status == "ok" and cached else str(status)
        outcomes[key] = outcomes.get(key, 0) + int(count)
    reasons = history.db.execute(
        f"SELECT s.reason, COUNT(*) {_STEP_FROM} GROUP BY s.reason ORDER BY COUNT(*) DESC LIMIT 10",
        args,
    )
    rows = history.db.execute(
        f"SELECT {_STEP_COLUMNS} {_STEP_FROM} ORDER BY s.started_at DESC "
        f"LIMIT {int(per_page)} OFFSET {int((page - 1) * per_page)}",
        args,
    )
    return StepPage(
        pipeline,
        name,
        [StepRecord.from_row(row) for row in rows],
        sum(outcomes.values()),
        outcomes,
        [(str(reason or ""), int(count)) for reason, count in reasons],
        page,
        per_page,
    )


# -- lineage ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Lineage:
    """Around one data version: who produced it, who read it, and what lies upstream."""

    version: str
    producers: list[StepRecord]
    consumers: list[StepRecord]
    upstream: list[StepRecord]
    more_consumers: bool
    cut: bool  # the upstream walk stopped at its query bound


def _by_data(history: History, version: str, role: str, limit: int) -> list[StepRecord]:
    rows = history.db.execute(
        f"SELECT DISTINCT {_STEP_COLUMNS} FROM data d JOIN steps s "
        "ON s.run_id = d.run_id AND s.name = d.step WHERE d.version = ? AND d.role = ? "
        f"ORDER BY s.started_at DESC LIMIT {int(limit)}",
        [version, role],
    )
    return [StepRecord.from_row(row) for row in rows]


def lineage(history: History, version: str) -> Lineage:
    """The lineage of ``version``, in at most :data:`LINEAGE_QUERIES` + 2 statements."""
    producers = _by_data(history, version, "out", LINEAGE_ROWS)
    consumers = _by_data(history, version, "in", LINEAGE_ROWS + 1)
    upstream: dict[tuple[str, str], StepRecord] = {}
    frontier = [v for record in producers[:1] for v in record.input_versions.values()]
    seen = {version, *frontier}
    queries = 0
    while frontier and queries < LINEAGE_QUERIES:
        next_frontier: list[str] = []
        for upstream_version in frontier:
            if queries >= LINEAGE_QUERIES:
                break
            queries += 1
            for record in _by_data(history, upstream_version, "out", 1):
                upstream.setdefault((record.run_id, record.name), record)
                fresh = [v for v in record.input_versions.values() if v not in seen]
                seen.update(fresh)
                next_frontier.extend(fresh)
        frontier = next_frontier
    return Lineage(
        version,
        producers,
        consumers[:LINEAGE_ROWS],
        list(upstream.values()),
        len(consumers) > LINEAGE_ROWS,
        bool(frontier),
    )


def compare_rows(records: Sequence[RunRecord], attribute: str) -> list[tuple[str, list[Any], bool]]:
    """For ``params`` or ``config``: each key with its value per run, and whether they differ."""
    keys: dict[str, None] = {}
    for record in records:
        keys.update((key, None) for key in getattr(record, attribute))
    missing = object()
    rows = []
    for key in keys:
        values = [getattr(record, attribute).get(key, missing) for record in records]
        differ = any(v != values[0] for v in values[1:])
        rows.append((key, [None if v is missing else v for v in values], differ))
    return rows
