"""The bounded reads behind the UI's pages, through :class:`~plait.history.History`.

Design. Every page costs a fixed number of history calls, each bounded: the listing of
runs is :meth:`History.run_counts` (one ``COUNT ... GROUP BY status``) and one page of
:meth:`History.runs` (filtered, searched, sorted and paged in the database), never all
runs in memory; a run shows one page of :meth:`History.steps`; a step across runs is one
page of :meth:`History.step_history` plus two small aggregates; lineage is bounded by
``limit``. The UI holds no SQL of its own, so it reads every history backend (SQLite,
DuckDB, PostgreSQL) alike. Request values are parsed here, at the boundary
(:meth:`RunQuery.parse`), into frozen values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from plait.errors import UsageError
from plait.history import History, RunRecord, StepRecord
from plait.history.browse import SORTS

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

    def filters(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`History.runs` and :meth:`History.run_counts`
        that select this query's runs (dates as whole UTC days)."""
        return {
            "pipeline": self.pipeline,
            "status": self.status,
            "tags": () if self.tag is None else (self.tag,),
            "since": None if self.since is None else _epoch(self.since),
            "until": None if self.until is None else _epoch(self.until + timedelta(days=1)) - 1e-6,
            "text": self.text,
        }


def _epoch(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


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
    filters = query.filters()
    by_status = history.run_counts(**filters)
    runs = history.runs(
        **filters,
        sort=query.sort,
        descending=query.descending,
        limit=query.per_page,
        offset=(query.page - 1) * query.per_page,
    )
    return RunPage(query, runs, sum(by_status.values()), by_status)


def pipelines(history: History, limit: int = 500) -> list[str]:
    """The pipeline names in the history (for the filter)."""
    return history.pipelines(limit)


def resumed_by(history: History, run_id: str, limit: int = 20) -> list[tuple[str, str]]:
    """The runs resumed or rerun from ``run_id``: (run id, status), newest first."""
    return [(r.run_id, r.status) for r in history.runs(origin=run_id, limit=limit)]


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
    total = history.step_count(full)
    if total <= DRAWN_STEPS:
        record = history.run(full)
        return RunView(record, record.steps, total, 1, STEPS_PER_PAGE, True)
    record = history.run(full, steps=False)
    shown = history.steps(full, limit=STEPS_PER_PAGE, offset=(page - 1) * STEPS_PER_PAGE)
    first = history.steps(full, limit=DRAWN_STEPS)
    return RunView(
        record,
        {step.name: step for step in shown},
        total,
        page,
        STEPS_PER_PAGE,
        False,
        {step.name: step for step in first},
    )


# -- one step across runs --------------------------------------------------------------------
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
    outcomes = history.step_counts(name, pipeline)
    reasons = history.step_reasons(name, pipeline, limit=10)
    executions = history.step_history(name, pipeline, limit=per_page, offset=(page - 1) * per_page)
    return StepPage(
        pipeline, name, executions, sum(outcomes.values()), outcomes, reasons, page, per_page
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


def lineage(history: History, version: str) -> Lineage:
    """The lineage of ``version``, in at most :data:`LINEAGE_QUERIES` + 2 statements."""
    producers = history.producers(version, limit=LINEAGE_ROWS)
    consumers = history.consumers(version, limit=LINEAGE_ROWS + 1)
    walked = history.lineage(version, limit=LINEAGE_QUERIES) if producers else []
    own = {(record.run_id, record.name) for record in producers}
    upstream = [record for record in walked if (record.run_id, record.name) not in own]
    return Lineage(
        version,
        producers,
        consumers[:LINEAGE_ROWS],
        upstream,
        len(consumers) > LINEAGE_ROWS,
        len(walked) >= LINEAGE_QUERIES,
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
