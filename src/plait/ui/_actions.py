"""The actions: resume a run, rerun steps of a run. Each is a confirmation page (GET) and
a POST form carrying the CSRF token (checked by the guard before the endpoint runs).

Design. The pipeline that runs is the UI's ``--target`` when it was started with one
(``plait ui --target flow.py:pipeline``, or ``target=`` of :func:`plait.ui.app`), else the
target recorded with the run (:attr:`~plait.history.RunRecord.target`: what ``plait run``
loaded, or ``module:name`` of a pipeline defined at module level), loaded when the action
is posted, never by a GET, and kept for the next action. A run with neither, a target that
cannot be loaded, or a pipeline of another name is refused (409) with what to do. The run
happens in the server process, in Starlette's thread pool, one action at a time (a lock),
and the answer is a redirect to the new run's page: the POST lasts as long as the run. A
run that fails still made a new run, and the redirect shows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from plait.errors import PlaitError, UsageError
from plait.history import RunRecord
from plait.ui._context import UI, Conflict, render, target_of
from plait.ui._pages import find_run

if TYPE_CHECKING:
    from plait.pipeline import Pipeline

__all__ = ["confirm_rerun", "confirm_resume", "rerun", "resume"]


def _ui(request: Request) -> UI:
    ui: UI = request.app.state.ui
    return ui


def _problem(ui: UI, record: RunRecord) -> str | None:
    """Why the action cannot run here (as far as is known without loading code), or None."""
    if ui.target is None:
        if record.target is None:
            return (
                f"run {record.run_id} records no target (it was not started by plait run, "
                "nor from a pipeline defined at module level), so give it: start the UI with "
                "plait ui --target FILE.py:NAME (or MODULE:NAME)"
            )
        return None
    if ui.target.name != record.pipeline:
        return (
            f"the target {ui.target_label or ui.target.name!r} is pipeline "
            f"{ui.target.name!r}, but run {record.run_id} is of pipeline {record.pipeline!r}: "
            "start the UI with --target naming that pipeline"
        )
    return None


def _pipeline_for(ui: UI, record: RunRecord) -> Pipeline:
    """The pipeline to run for ``record`` (the caller holds ``ui.lock``).

    Raises:
        Conflict: When the recorded target cannot be loaded or is another pipeline.
    """
    if ui.target is not None:
        return ui.target
    target = record.target
    if target is None:  # checked by the caller
        raise Conflict(f"run {record.run_id} records no target")
    pipeline = ui.loaded.get(target)
    if pipeline is None:
        from plait.cli._errors import CommandError
        from plait.cli._target import load_pipeline

        try:
            pipeline = load_pipeline(target)
        except (CommandError, PlaitError) as exc:
            text = exc.format_message() if isinstance(exc, CommandError) else str(exc)
            raise Conflict(
                f"cannot load the recorded target {target!r} of run {record.run_id}: {text}; "
                "start the UI with plait ui --target FILE.py:NAME naming the pipeline's code"
            ) from exc
        ui.loaded[target] = pipeline
    if pipeline.name != record.pipeline:
        raise Conflict(
            f"the recorded target {target!r} is now pipeline {pipeline.name!r}, but run "
            f"{record.run_id} is of pipeline {record.pipeline!r}: start the UI with "
            "--target naming that pipeline"
        )
    return pipeline


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
        request,
        "confirm.html",
        run=record,
        action="resume",
        steps=[],
        problem=_problem(ui, record),
        target=target_of(ui, record),
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
        target=target_of(ui, record),
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
    new_id = await run_in_threadpool(_replay, ui, record, steps)
    return RedirectResponse(f"/runs/{new_id}", status_code=303)


def _replay(ui: UI, record: RunRecord, steps: list[str] | None) -> str:
    """Run the resume or rerun; the new run's id (also when one of its steps failed)."""
    with ui.lock:
        pipeline = _pipeline_for(ui, record)
        try:
            if steps is None:
                result = pipeline.resume(record.run_id, store=ui.store)
            else:
                result = pipeline.rerun(record.run_id, steps, store=ui.store)
        except PlaitError as exc:
            failed = getattr(exc, "result", None)
            if failed is None:
                raise UsageError(str(exc)) from exc
            result = failed
    return str(result.run_id)
