"""Map steps: one task per element, collected back into a list or dict in input order.

The mapped parameter's collection is split into elements; each element is its own task
(cached on its own with a store, retried on its own, at most ``concurrency`` in flight).
When every element has finished, the step's value is assembled (``None`` in the slot of
a failed element) and ``min_success_ratio`` decides whether the step as a whole failed.

The step's metrics gather its elements' metrics, and its logs their log lines, each line
prefixed by its element's index or key (``[0] INFO ...``, ``['a'] INFO ...``) in the order
the elements finished.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plait.errors import MapFailed, UnhashableValueError
from plait.results import Err, ErrorInfo
from plait.run.context import Metrics, StepLogs, logs_of
from plait.run.task import Task, TaskResult, split_outputs
from plait.steps import MISSING, Step

if TYPE_CHECKING:
    from plait.run.state import RunState
    from plait.store.cache import Ticket

__all__ = ["MapState", "begin", "complete_element", "dispatch", "finish"]


@dataclass(slots=True)
class MapState:
    """The progress of one map step's elements."""

    keys: list[Any]
    is_dict: bool
    pending: deque[tuple[int, Any, Any]]
    kwargs: dict[str, Any]
    inflight: int = 0
    done: int = 0
    results: list[Any] = field(default_factory=list)
    errors: dict[Any, BaseException] = field(default_factory=dict)
    attempts: dict[Any, int] = field(default_factory=dict)  # element -> calls (0: cached)
    start: float = 0.0
    duration: float = 0.0
    metrics: Metrics = field(default_factory=Metrics)  # with the elements' log lines
    base_versions: dict[str, str] | None = None  # the shared inputs' versions (with a store)
    cached: int = 0
    ticket: Ticket | None = None  # the step's own entry, written when every element is in


def begin(run: RunState, name: str, task: Task) -> Task | None:
    item = task.step
    mapped = item.options.map
    assert mapped is not None
    collection = run._local(task.kwargs[mapped])
    if isinstance(collection, Mapping):
        keys, items, is_dict = list(collection), list(collection.values()), True
    elif isinstance(collection, list | tuple):
        keys, items, is_dict = list(range(len(collection))), list(collection), False
    else:
        run.running.discard(name)
        error = TypeError(
            f"step {name!r} maps over {mapped!r}, which must be a list, tuple or dict; "
            f"got {type(collection).__name__}"
        )
        run._decide(name, Err(error), "failed", "cannot map")
        return None
    pending = deque(zip(range(len(keys)), keys, items, strict=True))
    run.maps[name] = MapState(
        keys, is_dict, pending, task.kwargs, results=[None] * len(keys), start=time.time()
    )
    agent = run.agent
    if agent is not None and not item.options.dynamic:  # dynamic: inner steps cache
        node = run.nodes[name]
        try:  # shared inputs with no data version: no element can be cached
            if agent.unversioned_input(node, skip=mapped) is None:
                run.maps[name].base_versions = agent.input_versions(node, skip=mapped)
        except UnhashableValueError:
            pass
        run.maps[name].ticket = task.ticket
    if not keys:
        finish(run, name)
        return None
    return task


def dispatch(run: RunState, name: str, tasks: list[Task], limit: int | None) -> None:
    state = run.maps.get(name)
    if state is None or run.stopped:
        return
    node = run.nodes[name]
    cap = node.step.options.concurrency
    mapped = node.step.options.map
    while state.pending and (cap is None or state.inflight < cap):
        if limit is not None and len(tasks) >= limit:
            return
        index, key, element = state.pending.popleft()
        ticket = None
        if run.agent is not None and state.base_versions is not None:
            value, ticket = run.agent.check_element(node, state.base_versions, element)
            if value is not MISSING:
                state.results[index] = value
                state.attempts[key if state.is_dict else index] = 0
                state.done += 1
                state.cached += 1
                if state.done == len(state.keys):
                    finish(run, name)
                    return
                continue
        kwargs = dict(state.kwargs)
        kwargs[mapped] = element  # type: ignore[index]
        state.inflight += 1
        tasks.append(Task(node.step, kwargs, run.run_id, key if state.is_dict else index, ticket))


def complete_element(run: RunState, name: str, task: Task, result: TaskResult) -> None:
    state = run.maps[name]
    state.inflight -= 1
    state.done += 1
    state.attempts[task.element] = result.attempts
    state.duration += result.duration
    state.metrics.update(result.metrics)
    logs = logs_of(result.metrics)
    if logs is not None:
        _add_element_logs(state.metrics.logs, task.element, logs)
    index = state.keys.index(task.element) if state.is_dict else task.element
    if result.ok:
        state.results[index] = result.values[0]
    else:
        state.errors[task.element] = result.error or RuntimeError("element failed")
    if state.done == len(state.keys):
        finish(run, name)


def finish(run: RunState, name: str) -> None:
    state = run.maps.pop(name)
    item = run.nodes[name].step
    total = len(state.keys)
    ratio = 1.0 if total == 0 else (total - len(state.errors)) / total
    cached = bool(total) and state.cached == total
    record = TaskResult(
        ok=True,
        attempts=0 if cached else 1,  # the step as a whole; its elements are counted apart
        start=state.start,
        end=time.time(),
        duration=state.duration,
        metrics=state.metrics,
    )
    failed = {k: ErrorInfo.from_exception(e) for k, e in state.errors.items()}
    if ratio < item.options.min_success_ratio:
        record.ok = False
        record.error = MapFailed(
            f"step {name!r}: {len(state.errors)} of {total} elements failed "
            f"(success ratio {ratio:.2f} < min_success_ratio "
            f"{item.options.min_success_ratio}); first: "
            f"{next(iter(failed.items()))[0]!r}: {next(iter(failed.values()))}",
            step=name,
            failed=dict(state.errors),
        )
    else:
        value: Any = (
            dict(zip(state.keys, state.results, strict=True)) if state.is_dict else state.results
        )
        try:
            record.values = _split_map(item, value, state.keys, state.is_dict)
        except Exception as exc:
            record.ok, record.error = False, exc
    if run.agent is not None and item.options.dynamic:
        run.reasons[name] = f"{total} element pipelines built (their steps are cached apart)"
    elif run.agent is not None:
        run.reasons[name] = _reason(run, item, state.cached, total)
        if record.ok and state.ticket is not None and not failed:
            from plait.store.cache import persist

            values = tuple(run._local(v) for v in record.values)  # a remote executor's refs
            record.artifacts = persist(state.ticket, item, values, MISSING)
    keys = state.keys if state.is_dict else range(total)
    attempts = {k: state.attempts[k] for k in keys if k in state.attempts}
    run._finish_step(
        name, record, failed, ticket=state.ticket, element_attempts=attempts, cached=cached
    )


def _add_element_logs(logs: StepLogs, element: Any, lines: StepLogs) -> None:
    """Add an element's log lines to its step's, each prefixed by ``[index or key]``."""
    for line in list(lines.lines):
        logs.add(f"[{element!r}] {line}")
    logs.dropped += lines.dropped


def _reason(run: RunState, item: Step, cached: int, total: int) -> str:
    """How many elements came from the cache, and why the others did not, if known."""
    assert run.agent is not None
    reason = f"{cached} of {total} elements from the cache"
    damaged = run.agent.damaged_elements.pop(item.name, 0)
    if damaged:
        reason += f"; {damaged} damaged, recomputed"
    note = run.agent.cache.index_note(item) if cached < total else ""
    return f"{reason} ({note})" if note else reason


def assemble(item: Step, keys: list[Any], results: list[Any], is_dict: bool) -> tuple[Any, ...]:
    """A map step's outputs from its elements' results, in input order."""
    value: Any = dict(zip(keys, results, strict=True)) if is_dict else results
    return _split_map(item, value, keys, is_dict)


def _split_map(item: Step, value: Any, keys: list[Any], is_dict: bool) -> tuple[Any, ...]:
    """Outputs of a map step: one list (or dict) per declared output."""
    if item.single_output or item.options.dynamic or not item.outputs:
        return (value,) if item.outputs else ()
    elements = value.values() if is_dict else value
    columns: list[list[Any]] = [[] for _ in item.outputs]
    for element in elements:
        parts = split_outputs(item, element) if element is not None else (None,) * len(columns)
        for column, part in zip(columns, parts, strict=True):
            column.append(part)
    if is_dict:
        return tuple(dict(zip(keys, column, strict=True)) for column in columns)
    return tuple(columns)
