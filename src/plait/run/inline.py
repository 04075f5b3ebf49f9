"""The inline driver: a sequential run in the caller's thread, with a lean lane.

Design note
-----------
A sequential run of plain steps is the case where plait's own bookkeeping is all there
is to measure: a chain of ``v + 1`` steps spends microseconds in the scheduler for each
nanosecond in the step. So when nothing needs a step's record while the run goes on (no
store, no history, no hooks, no datasets), a step whose node is *lean* (a plain
synchronous function of one output, see :mod:`plait.run.compiled`) whose inputs are all
of immutable types and whose upstream steps all succeeded is run here directly:

- its arguments are built from the run's values, and it is called;
- ``current()`` finds the run's :class:`~plait.run.task.Cursor` (set once for the run),
  pointed at the step: a context is made only if the step asks for it;
- one ``perf_counter`` reading at each boundary goes into the run's compact arrays
  (``RunState.times``; ``done`` marks the step); no task, result or record object is
  made: the records are made when someone reads ``RunResult.steps``
  (:class:`~plait.run.finishing.Records`);
- its value is kept or released, and its consumers become ready, as
  ``RunState._record`` does.

Anything else (a failure, an input that must be guarded, an asset returned, a step with
options, map and dynamic steps, a run with hooks or a store) takes the general path,
``RunState.task_for`` -> :func:`~plait.run.task.execute` -> ``RunState.complete``, with
the same outcome; the lean lane changes how fast a step is recorded, never what.
"""

from __future__ import annotations

import time
import traceback
from array import array
from typing import TYPE_CHECKING, Any

from plait.assets._types import Asset
from plait.run.context import reset_context, set_context
from plait.run.protect import plain
from plait.run.task import Cursor, TaskResult, execute

if TYPE_CHECKING:
    from plait.run.state import RunState

__all__ = ["drive_inline"]


def drive_inline(state: RunState) -> None:
    """Run every ready step in this thread, one at a time, until none is left."""
    if not state.can_defer():
        next_task, complete = state.next_task, state.complete
        while (task := next_task()) is not None:
            complete(task, execute(task))
        return
    state.deferring = True  # the general path's successes too (finishing.defer)
    size = len(state.order)
    state.done = bytearray(size)
    state.times = array("d", bytes(16 * size))
    cursor = Cursor(state.run_id)
    token = set_context(cursor)
    try:
        _loop(state, cursor)
    finally:
        reset_context(token)


def _general(state: RunState, name: str) -> None:
    """Run the ready step ``name`` the general way (and a map step's elements)."""
    task = state.task_for(name)
    while task is not None:
        state.complete(task, execute(task))
        task = state.next_task() if state.maps else None


def _loop(state: RunState, cursor: Cursor) -> None:
    ready, values, refs, waiting = state.ready, state.values, state.refs, state.waiting
    seen, results, requested = state.seen, state.results, state.requested
    done, times, clock = state.done, state.times, time.perf_counter
    nodes = state.nodes
    while ready and not state.stopped:
        name = ready.popleft()
        node = nodes[name]
        index = node.lean
        if index < 0 or state.changed or (len(seen) and _upstream_bad(seen, node.upstream)):
            _general(state, name)
            nodes = state.nodes  # a dynamic step adds its pipeline's to a copy
            continue
        item = node.step
        kwargs: dict[str, Any] = dict(item.bound) if item.bound else {}
        for source in node.statics:
            kwargs[source.param] = state._static_value(source)
        for param, data, _ in node.inputs:
            kwargs[param] = values[data]
        if not plain(kwargs):  # an input that must be guarded (run/protect.py)
            _general(state, name)
            continue
        cursor.name = name  # cursor.made is None: reset after each step
        start = clock()
        try:
            value = item.func(**kwargs)
        except Exception as exc:
            _failed(state, cursor, name, exc, start, clock())
            continue
        end = clock()
        unusual = cursor.made is not None or isinstance(value, Asset)
        if unusual and _unusual(state, cursor, name, value, start, end):
            continue
        output = item.outputs[0]
        if requested is None or refs.get(output, 0) > 0 or output in requested:
            values[output] = value
        del value, kwargs  # hold no value past its release
        times[2 * index] = start
        times[2 * index + 1] = end
        done[index] = 1
        for data in node.consumed:
            count = refs[data] - 1
            refs[data] = count
            if count <= 0 and requested is not None and data not in requested:
                if results:
                    state._release(data)
                else:
                    values.pop(data, None)
        for child in node.downstream:
            count = waiting[child] - 1
            waiting[child] = count
            if count == 0:
                ready.append(child)


def _unusual(
    state: RunState, cursor: Cursor, name: str, value: Any, start: float, end: float
) -> bool:
    """A lean step that asked for its context (its metrics are kept), or returned an
    asset (recorded the general way: True)."""
    if isinstance(value, Asset):
        _asset(state, cursor, name, value, start, end)
        return True
    made = cursor.made
    if made is not None:
        state.lean_metrics[name] = made.metrics
        cursor.made = None
    return False


def _upstream_bad(seen: dict[str, Any], upstream: tuple[str, ...]) -> bool:
    """True when an upstream step did not succeed (only steps that did not are in
    ``seen`` besides those recorded the general way, which are ``True``)."""
    return any(dict.get(seen, up, True) is not True for up in upstream)


def _result(cursor: Cursor, state: RunState, start: float, end: float) -> TaskResult:
    made, cursor.made = cursor.made, None
    return TaskResult(
        False,
        attempts=1,
        start=state.offset + start,
        end=state.offset + end,
        duration=end - start,
        metrics={} if made is None else made.metrics,
    )


def _failed(
    state: RunState, cursor: Cursor, name: str, error: Exception, start: float, end: float
) -> None:
    """The step raised: its record is made now, as ``execute`` would have reported it."""
    result = _result(cursor, state, start, end)
    result.error = error
    result.traceback = "".join(traceback.format_exception(error))
    state._finish_step(name, result)


def _asset(
    state: RunState, cursor: Cursor, name: str, value: Any, start: float, end: float
) -> None:
    """The step returned an asset: unwrapped and recorded as ``execute`` does."""
    from plait.assets._types import unwrap_outputs

    item = state.nodes[name].step
    result = _result(cursor, state, start, end)
    result.values, result.metrics = unwrap_outputs(item, (value,), result.metrics)
    result.ok = True
    state._finish_step(name, result)
