"""The actions: resume a run, rerun steps of a run. Each is a confirmation page (GET) and
a POST form carrying the CSRF token (checked by the guard before the endpoint runs).

Design. The history does not record a run's target yet, so the pipeline that runs is the
one the UI was started with (``plait ui --target flow.py:pipeline``, or ``target=`` of
:func:`plait.ui.app`); a run of another pipeline is refused (409), as is any action
without a target. The run happens in the server process, in Starlette's thread pool, one
action at a time (a lock), and the answer is a redirect to the new run's page: the POST
lasts as long as the run. A run that fails still made a new run, and the redirect shows it.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from plait.errors import PlaitError, UsageError
from plait.history import RunRecord
from plait.ui._context import UI, Conflict, render
from plait.ui._pages import find_run

__all__ = ["confirm_rerun", "confirm_resume", "rerun", "resume"]


def _ui(request: Request) -> UI:
    ui: UI = request.app.state.ui
    return ui


def _problem(ui: UI, record: RunRecord) -> str | None:
    """Why the action cannot run here, or None."""
    if ui.target is None:
        return (
            "the history does not record which code ran, so give it: start the UI with "
            "plait ui --target FILE.py:NAME (or MODULE:NAME)"
        )
    if ui.target.name != record.pipeline:
        return (
            f"the target {ui.target_label or ui.target.name!r} is pipeline "
            f"{ui.target.name!r}, but run {record.run_id} is of pipeline {record.pipeline!r}: "
            "start the UI with --target naming that pipeline"
        )
    return None


def _steps(values: list[str], record: RunRecord) -> list[str]:
    steps = list(dict.fromkeys(v for value in values for v in value.split(",") if v))
    if not steps:
        raise UsageError("choose one or more steps to rerun (tick them in the run's step table)")
    return steps


def confirm_resume(request: Request) -> Response:
    """The confirmation page of a resume."""
    ui = _ui(request)
    record = find_run(ui.store.history, request.path_params["run_id"])
    return render(
        request, "confirm.html", run=record, action="resume", steps=[], problem=_problem(ui, record)
    )


def confirm_rerun(request: Request) -> Response:
    """The confirmation page of a rerun of the chosen steps."""
    ui = _ui(request)
    record = find_run(ui.store.history, request.path_params["run_id"])
    steps = _steps(request.query_params.getlist("steps"), record)
    return render(
        request,
        "confirm.html",
        run=record,
        action="rerun",
        steps=steps,
        problem=_problem(ui, record),
    )


async def resume(request: Request) -> Response:
    """Resume the run: a new run linked to it; redirects to the new run."""
    return await _act(request, rerun_steps=False)


async def rerun(request: Request) -> Response:
    """Rerun the chosen steps of the run; redirects to the new run."""
    return await _act(request, rerun_steps=True)


async def _act(request: Request, *, rerun_steps: bool) -> Response:
    ui = _ui(request)
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    record = await run_in_threadpool(find_run, ui.store.history, request.path_params["run_id"])
    problem = _problem(ui, record)
    if problem is not None:
        raise Conflict(problem)
    steps = _steps(form.get("steps", []), record) if rerun_steps else None
    new_id = await run_in_threadpool(_replay, ui, record.run_id, steps)
    return RedirectResponse(f"/runs/{new_id}", status_code=303)


def _replay(ui: UI, run_id: str, steps: list[str] | None) -> str:
    """Run the resume or rerun; the new run's id (also when one of its steps failed)."""
    pipeline = ui.target
    if pipeline is None:  # checked by the caller
        raise Conflict("no target")
    with ui.lock:
        try:
            if steps is None:
                result = pipeline.resume(run_id, store=ui.store)
            else:
                result = pipeline.rerun(run_id, steps, store=ui.store)
        except PlaitError as exc:
            failed = getattr(exc, "result", None)
            if failed is None:
                raise UsageError(str(exc)) from exc
            result = failed
    return str(result.run_id)
