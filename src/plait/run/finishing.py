"""Finishing a step: its record, the values the run keeps, and their data versions.

When a task comes back (:meth:`RunState.complete <plait.run.state.RunState.complete>`),
the step's values are kept only while a consumer still needs them or the caller asked
for them (:data:`~plait.results.RELEASED` stands in for the rest), a
:class:`~plait.results.StepResult` is made (``ok`` or ``failed``), and with a store the
record gets its cache key, data versions and reason. The record then goes to
``RunState._record``, which updates what the rest of the run sees. Like
:mod:`plait.run.mapping` and :mod:`plait.run.dynamic`, these functions work on the
:class:`~plait.run.state.RunState` they are given.

A step that ran in the inline driver's lean lane (:mod:`plait.run.inline`) gets no record
while the run goes on: its two clock readings sit in the run's compact arrays and its
outcome is the value the run kept. :class:`Records` makes every step's
:class:`~plait.results.StepResult` the first time someone reads ``RunResult.steps``.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

from plait.errors import MutatedInputError
from plait.results import RELEASED, Err, ErrorInfo, Ok, Outcome, Skipped, StepResult

if TYPE_CHECKING:
    from plait.run.compiled import Node
    from plait.run.state import RunState
    from plait.run.task import TaskResult
    from plait.steps import Step
    from plait.store.cache import Ticket
    from plait.store.store import Entry

__all__ = [
    "Records",
    "defer",
    "finish_step",
    "note_changed",
    "outcome_value",
    "record_hit",
    "refuse_changed",
    "store_values",
]


def outcome_value(item: Step, kept: tuple[Any, ...]) -> Any:
    """A step's outcome value from its kept outputs: the one value, or a dict by name."""
    if item.single_output or item.options.dynamic:
        return kept[0]
    return dict(zip(item.outputs, kept, strict=True)) if item.outputs else None


def _versions(
    run: RunState, name: str, record: StepResult, result: TaskResult, ticket: Ticket | None
) -> None:
    """Fill a record's data versions, cache key and reason (with a store)."""
    if run.agent is None:
        return
    node = run.nodes[name]
    record.reason = run.reasons.pop(name, record.reason)
    if ticket is not None:
        record.cache_key = ticket.key
    if result.artifacts:
        record.data_versions = run.agent.executed(node, result, ticket)
    else:  # computed on the driver: a map's list, a dynamic step's dict, no cache key
        for output, value in zip(node.step.outputs, result.values, strict=False):
            local = run._local(value)  # a remote executor's references: hash the data
            record.data_versions[output] = run.agent.version_value(output, local)
    unversioned = run.agent.unversioned_outputs(node)
    if unversioned is not None and not record.reason.startswith("not cached"):
        record.reason = unversioned
    if record.fallback:
        record.reason += "; fallback value (not cached)"


def finish_step(
    run: RunState,
    name: str,
    result: TaskResult,
    failed: dict[Any, ErrorInfo] | None = None,
    ticket: Ticket | None = None,
    *,
    element_attempts: dict[Any, int] | None = None,
    cached: bool = False,
) -> None:
    """Record a step's end (a map step's: with its elements' attempts, ``cached`` when
    every element came from the cache)."""
    run.running.discard(name)
    item = run.nodes[name].step
    if result.ok and run.datasets is not None and run.datasets.saves(name):
        result = run.datasets.save_executed(item, result, run._local)
    if result.ok and run.deferring and failed is None and not cached and ticket is None:
        defer(run, name, result)  # its record is made when someone reads it (Records)
        return
    if result.ok:
        kept = store_values(run, item, result.values)
        record = _ok_record(name, Ok(outcome_value(item, kept)), result)
        record.cached = cached
        record.failed_elements = failed or {}
        record.element_attempts = element_attempts or {}
        _versions(run, name, record, result, ticket)
        run._record(name, record, None)
    else:
        error = result.error or RuntimeError("step failed")
        if run.agent is not None and ticket is not None:
            run.agent.cache.remember(item, ticket.parts)
        record = StepResult(
            name,
            "failed",
            Err(error),
            reason="raised",
            duration=result.duration,
            start_time=result.start,
            end_time=result.end,
            attempts=result.attempts,
            error=ErrorInfo.from_exception(error, result.traceback),
            metrics=result.metrics,
            failed_elements=failed or {},
            element_attempts=element_attempts or {},
        )
        run._record(name, record, error)


def record_hit(run: RunState, name: str, node: Node, entry: Entry, key: str) -> None:
    """Record a cache hit: its outputs enter the run lazily, with their versions."""
    assert run.agent is not None
    versions = run.agent.hit(node, entry)
    if run.datasets is not None and run.datasets.saves(name):  # files missing/changed
        try:
            run.datasets.after_hit(node.step, versions, run.agent.load)
        except Exception as exc:
            run._decide(name, Err(exc), "failed", "saving a dataset failed")
            return
    values = run.agent.lazy_values(node, entry)
    item = node.step
    kept = store_values(run, item, values)
    record = StepResult(
        name,
        "ok",
        Ok(outcome_value(item, kept)),
        cached=True,
        reason="cache hit",
        cache_key=key,
        data_versions=versions,
        start_time=entry.created,
    )
    run._record(name, record, None)


def defer(run: RunState, name: str, result: TaskResult) -> None:
    """Record a plain success compactly: its values kept, its record made later."""
    item = run.nodes[name].step
    requested, refs, values = run.requested, run.refs, run.values
    for output, value in zip(item.outputs, result.values, strict=False):
        if requested is None or refs.get(output, 0) > 0 or output in requested:
            values[output] = value
    result.values = ()  # the run's values dict holds what is kept
    run.deferred[name] = result
    run.seen[name] = True
    node = run.nodes[name]
    parent = node.dynamic_parent
    run._advance(name, node, run.expansions.get(parent) if parent is not None else None)


def note_changed(run: RunState, name: str, param: str) -> None:
    """Step ``name`` changed its input ``param`` in place (run/protect.py): no step may
    read that data for the rest of the run (on_error="continue")."""
    node = run.nodes[name]
    for data in [d for p, d, _ in node.inputs if p == param] + [
        s.data for s in node.statics if s.param == param
    ]:
        run.changed.setdefault(data, name)


def refuse_changed(run: RunState, node: Node) -> bool:
    """Fail a step that reads data another step changed in place; True if it did."""
    reads = [(p, d) for p, d, _ in node.inputs] + [(s.param, s.data) for s in node.statics]
    for param, data in reads:
        culprit = run.changed.get(data)
        if culprit is not None:
            name = node.step.name
            reason = f"input {param!r} ({data!r}) was changed in place by step {culprit!r}"
            error = MutatedInputError(
                f"step {name!r} cannot run: its {reason}, which failed for it; fix that "
                "step (inputs are read-only)",
                step=name,
                input=param,
            )
            run._decide(name, Err(error), "failed", reason)
            return True
    return False


def store_values(run: RunState, item: Step, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Keep the values someone still needs; return them with RELEASED for the rest."""
    requested = run.requested
    kept = []
    for output, value in zip(item.outputs, values, strict=False):
        if run.refs.get(output, 0) > 0 or requested is None or output in requested:
            run.values[output] = value
            kept.append(value)
        else:
            kept.append(RELEASED)
    return tuple(kept)


_NOT_RUN = "the run stopped before this step started"


class Records:
    """Every step's record in plan order, made when first asked for (``RunResult.steps``).

    It keeps what the records are made of, not the run's state: the plan's steps, the
    records made during the run, the lean lane's arrays (which steps ran there, their
    clock readings) and the values the run kept (a lean step's outcome is its kept value,
    or ``RELEASED``).
    """

    __slots__ = (
        "deferred",
        "done",
        "made",
        "metrics",
        "offset",
        "order",
        "reload",
        "times",
        "values",
    )

    def __init__(self, run: RunState) -> None:
        self.order = run.order
        self.made = run.results
        self.deferred = run.deferred
        self.done = run.done
        self.times = run.times
        self.metrics = run.lean_metrics
        self.offset = run.offset
        self.values = run.values
        self.reload = run.fetch is not None

    def __call__(self) -> dict[str, StepResult]:
        records: dict[str, StepResult] = {}
        made, done, values, times = self.made, self.done, self.values, self.times
        deferred = self.deferred
        lean = len(done)
        for index, item in enumerate(self.order):
            name = item.name
            record = made.get(name)
            if record is None and index < lean and done[index]:
                record = _lean_record(self, index, item, times)
            elif record is None and name in deferred:
                record = _deferred_record(self, item, deferred[name])
            elif record is None:
                record = StepResult(name, "not_run", Skipped(_NOT_RUN), reason=_NOT_RUN)
            elif (record.cached or self.reload) and isinstance(record.outcome, Ok):
                kept = tuple(values.get(o, RELEASED) for o in item.outputs)
                record.outcome = Ok(outcome_value(item, kept))
            records[name] = record
        return records


def _deferred_record(records: Records, item: Step, result: TaskResult) -> StepResult:
    kept = tuple(records.values.get(o, RELEASED) for o in item.outputs)
    return _ok_record(item.name, Ok(outcome_value(item, kept)), result)


def _ok_record(name: str, outcome: Outcome, result: TaskResult) -> StepResult:
    """The record of a step that executed and succeeded, from its task's result."""
    return StepResult(
        name,
        "ok",
        outcome,
        reason="executed",
        fallback=result.fallback,
        duration=result.duration,
        start_time=result.start,
        end_time=result.end,
        attempts=result.attempts,
        metrics=result.metrics,
    )


def _lean_record(records: Records, index: int, item: Step, times: array[float]) -> StepResult:
    start, end = times[2 * index], times[2 * index + 1]
    metrics = records.metrics.get(item.name)
    return StepResult(
        item.name,
        "ok",
        Ok(records.values.get(item.outputs[0], RELEASED)),
        reason="executed",
        duration=end - start,
        start_time=records.offset + start,
        end_time=records.offset + end,
        attempts=1,
        metrics={} if metrics is None else metrics,
    )
