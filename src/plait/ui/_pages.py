"""The read-only pages: runs, one run, one step across runs, lineage, compare.

Design. Each endpoint parses its request at the boundary (:class:`RunQuery.parse`, run id
prefixes through :meth:`History.resolve`), asks :mod:`plait.ui._queries` or the history for
a bounded set of rows, and renders one template. A missing run, step or data version is a
:class:`NotFound` (404 page); a malformed filter a :class:`~plait.errors.UsageError` (400).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from plait.errors import UsageError
from plait.history import History, RunRecord
from plait.ui import _queries
from plait.ui._context import UI, NotFound, render, safe, target_of
from plait.ui._views import draw_run, draw_timeline_only, durations_chart

__all__ = ["compare_page", "find_run", "lineage_page", "run_page", "runs_page", "step_page"]

MAX_COMPARED = 8


def _ui(request: Request) -> UI:
    ui: UI = request.app.state.ui
    return ui


def _history(request: Request) -> History:
    return _ui(request).store.history


def find_run(history: History, run_id: str) -> RunRecord:
    """The run ``run_id`` names (a unique prefix is enough).

    Raises:
        NotFound: When no run, or more than one, matches.
    """
    try:
        return history.run(run_id)
    except KeyError as exc:
        raise NotFound(exc.args[0] if exc.args else f"no run {run_id!r}") from None


def runs_page(request: Request) -> Response:
    """``/runs``: filters, search, sort, pagination, totals."""
    history = _history(request)
    query = _queries.RunQuery.parse(request.query_params)
    page = _queries.list_runs(history, query)

    def link(**changes: Any) -> str:
        return (
            "/runs?" + urlencode(query.params(**changes)) if changes or query.params() else "/runs"
        )

    return render(
        request,
        "runs.html",
        page=page,
        query=query,
        link=link,
        pipelines=_queries.pipelines(history),
        sorts=list(_queries.SORTS),
    )


def run_page(request: Request) -> Response:
    """``/runs/{id}``: the DAG, the timeline, the steps with errors and logs (a page of
    them for a large run)."""
    ui = _ui(request)
    history = ui.store.history
    try:
        view = _queries.run_view(
            history, request.path_params["run_id"], _queries.page_number(request.query_params)
        )
    except KeyError as exc:
        raise NotFound(exc.args[0] if exc.args else "no such run") from None
    record = view.record
    if view.complete:
        drawing = draw_run(record)
    else:
        drawing = draw_timeline_only(record, view.first, view.total)
    return render(
        request,
        "run.html",
        run=record,
        view=view,
        graph=safe(drawing.graph),
        timeline=safe(drawing.timeline),
        anchors=drawing.anchors,
        resumed_by=_queries.resumed_by(history, record.run_id),
        can_resume=record.status in ("failed", "cancelled"),
        target=target_of(ui, record),
    )


def step_page(request: Request) -> Response:
    """``/steps/{pipeline}/{step}``: one step across runs."""
    pipeline, name = request.path_params["pipeline"], request.path_params["step"]
    number = _queries.page_number(request.query_params)
    page = _queries.step_page(_history(request), pipeline, name, page=number)
    if page.total == 0:
        raise NotFound(f"no execution of step {name!r} in pipeline {pipeline!r}")
    return render(
        request,
        "step.html",
        page=page,
        chart=safe(durations_chart(page.executions)),
    )


def lineage_page(request: Request) -> Response:
    """``/lineage/{version}``: producers upstream, consumers downstream."""
    version = request.path_params["version"]
    found = _queries.lineage(_history(request), version)
    if not found.producers and not found.consumers:
        raise NotFound(f"no step produced or read data version {version!r}")
    return render(request, "lineage.html", lineage=found)


def _compared_ids(request: Request) -> list[str]:
    ids: list[str] = []
    for value in request.query_params.getlist("runs"):
        ids.extend(part.strip() for part in value.split(",") if part.strip())
    return list(dict.fromkeys(ids))


def compare_page(request: Request) -> Response:
    """``/compare?runs=a,b``: params, config and each step, side by side."""
    ids = _compared_ids(request)
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise UsageError(
            f"choose 2 to {MAX_COMPARED} runs to compare (got {len(ids)}): tick them on the "
            "runs page, or write /compare?runs=A,B"
        )
    history = _history(request)
    records = [find_run(history, run_id) for run_id in ids]
    names: dict[str, None] = {}
    for record in records:
        structure = record.structure
        if structure is not None:
            names.update((step.name, None) for step in structure.order)
    for record in records:
        names.update((name, None) for name in record.steps)
    steps = []
    for name in names:
        cells = [record.steps.get(name) for record in records]
        versions = [cell.data_versions if cell else None for cell in cells]
        steps.append((name, cells, any(v != versions[0] for v in versions[1:])))
    return render(
        request,
        "compare.html",
        runs=records,
        params=_queries.compare_rows(records, "params"),
        config=_queries.compare_rows(records, "config"),
        steps=steps,
    )
