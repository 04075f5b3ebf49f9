"""A recorded run as the drawings read runs: the adapter from a history record to ``RunLike``.

A :class:`~plait.history.RunRecord` is not a :class:`~plait.RunResult`, but the drawings
read runs through small protocols (:class:`~plait.viz.RunLike`); :func:`as_run` wraps a
record in frozen objects with the attributes they read, so a recorded run gets the same
report as ``RunResult.to_html()`` (``plait runs show --html``) and the same DAG and timeline
in ``plait ui``. The history types are imported for type checking only, so this module
adds nothing to ``import plait`` and no import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.history import RunRecord, StepRecord
    from plait.viz._protocols import PipelineLike, RunLike

__all__ = ["as_run"]


@dataclass(frozen=True, slots=True)
class _Error:
    type: str
    message: str
    traceback: str


@dataclass(frozen=True, slots=True)
class _Step:
    status: str
    cached: bool
    duration: float
    start_time: float | None
    end_time: float | None
    attempts: int
    reason: str
    error: _Error | None
    data_versions: Mapping[str, str]
    metrics: Mapping[str, Any]
    fallback: bool = False
    failed_elements: Mapping[Any, _Error] = field(default_factory=dict)
    logs: tuple[str, ...] = ()
    logs_dropped: int = 0


@dataclass(frozen=True, slots=True)
class _Run:
    run_id: str
    pipeline: str
    status: str
    duration: float
    start_time: float
    steps: Mapping[str, _Step]
    params: Mapping[str, Any]
    graph: Any = None  # a pipeline or a recorded structure, to draw the edges


def _step(step: StepRecord) -> _Step:
    error = None
    if step.error:
        error = _Error(
            step.error.get("type", ""),
            step.error.get("message", ""),
            step.error.get("traceback", ""),
        )
    return _Step(
        status=step.status,
        cached=step.cached,
        duration=step.duration,
        start_time=step.start_time,
        end_time=step.end_time,
        attempts=step.attempts,
        reason=step.reason,
        error=error,
        data_versions=step.data_versions,
        metrics=step.metrics,
        fallback="fallback" in step.reason,
        logs=step.logs,
        logs_dropped=step.logs_dropped,
    )


def as_run(
    record: RunRecord,
    structure: PipelineLike | None = None,
    *,
    steps: Mapping[str, StepRecord] | None = None,
) -> RunLike:
    """A recorded run as :mod:`plait.viz` reads runs.

    Args:
        record: The run, as the history keeps it.
        structure: The pipeline whose edges are drawn (a :class:`plait.Pipeline` or a
            recorded structure). Without it, the structure recorded with the run is used
            when all the run's steps are shown, and no edges are drawn when ``steps`` is
            given.
        steps: The steps to show, when not all of ``record.steps`` (a page of a big run).

    Returns:
        An object fitting :class:`~plait.viz.RunLike`, with the run's ``params`` and each
        step's ``logs``, which the HTML report also shows.
    """
    shown = record.steps if steps is None else steps
    if structure is None and steps is None:
        structure = record.structure
    return _Run(
        record.run_id,
        record.pipeline,
        record.status,
        record.duration or 0.0,
        record.start_time,
        {name: _step(step) for name, step in shown.items()},
        record.params,
        structure,
    )
