"""What the Dask and Ray executors share: the worker side of a remote task and the
driver side of its outcome.

Design note
-----------
A remote executor runs each task as a task of the engine, next to its data:

- **Inputs.** The scheduler hands over a task whose inputs are the engine's references
  (Dask futures, Ray object refs) mixed with plain values (params, config, map elements).
  :func:`detach` replaces every reference, at the top level or inside a list, tuple or
  dict (a map step's output is a list of references), by a :class:`Slot` and returns the
  references separately, so they can be passed as *top-level* arguments of the engine's
  task: that is what makes the engine move the data worker to worker (Ray does not look
  inside containers). :func:`attach` puts the values back on the worker.
- **Running.** :func:`run_task` is :func:`~plait.run.task.execute` on the worker: attempts,
  retries, timeouts, fallback and, with a store, writing the outputs' artifacts from where
  they are. Its values stay on the worker.
- **Outcome.** Only :func:`describe`'s small copy (status, error and its formatted
  traceback, attempts, timings, metrics, artifacts; no values) travels to the driver; each
  output stays on the worker as its own engine object (the task's result, one of a Ray
  task's returns, or :func:`pick` of several), and the driver's TaskResult carries the
  references to them.

Glossary: a *reference* is an engine object standing for a value held by the cluster; to
*fetch* is to bring its value to the driver.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plait.errors import OutputArityError, SerializationError, WorkerError
from plait.run.task import Task, TaskResult, execute, split_outputs
from plait.steps import MISSING, Step

__all__ = [
    "PickledSteps",
    "Slot",
    "attach",
    "cpu_count",
    "describe",
    "detach",
    "explain",
    "failed",
    "lost_worker",
    "output_count",
    "pick",
    "resolve",
    "run_task",
    "shape_values",
]


@dataclass(frozen=True, slots=True)
class Slot:
    """Stands in a task's arguments for the ``index``-th reference passed beside them."""

    index: int


def _replace(value: Any, is_ref: Callable[[Any], bool], swap: Callable[[Any], Any]) -> Any:
    """``value`` with ``swap(r)`` for every ``r`` where ``is_ref(r)``, looking inside lists,
    tuples and dicts (not their subclasses); unchanged containers are returned as is."""
    if is_ref(value):
        return swap(value)
    kind = type(value)
    if kind is list or kind is tuple:
        items = [_replace(item, is_ref, swap) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if kind is list else tuple(items)
    if kind is dict:
        entries = {key: _replace(item, is_ref, swap) for key, item in value.items()}
        if all(entries[key] is item for key, item in value.items()):
            return value
        return entries
    return value


def detach(
    kwargs: dict[str, Any], is_ref: Callable[[Any], bool]
) -> tuple[dict[str, Any], list[Any]]:
    """Split a task's arguments into a template (references replaced by :class:`Slot`) and
    the references, in slot order."""
    refs: list[Any] = []

    def swap(ref: Any) -> Slot:
        refs.append(ref)
        return Slot(len(refs) - 1)

    template = {name: _replace(value, is_ref, swap) for name, value in kwargs.items()}
    return template, refs


def attach(template: dict[str, Any], values: tuple[Any, ...]) -> dict[str, Any]:
    """The arguments again, with the referenced values in place of their slots."""
    if not values:
        return template

    def is_slot(value: Any) -> bool:
        return type(value) is Slot

    return {
        name: _replace(value, is_slot, lambda slot: values[slot.index])
        for name, value in template.items()
    }


def resolve(
    value: Any, is_ref: Callable[[Any], bool], get: Callable[[list[Any]], list[Any]]
) -> Any:
    """``value`` with every reference in it fetched by one call of ``get(references)``."""
    template, refs = detach({"value": value}, is_ref)
    if not refs:
        return value
    return attach(template, tuple(get(refs)))["value"]


class PickledSteps:
    """Each step pickled once, not once per task (a map step sends it with every element).

    Keyed by identity, holding the step so that its id is not reused while cached; a
    step is not changed once a run has started.
    """

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._cache: dict[int, tuple[Step, bytes]] = {}

    def __call__(self, item: Step) -> bytes:
        """``item`` pickled (cloudpickle: closures and lambdas travel by value, with the
        file names and lines of their code, so a worker's traceback names them)."""
        found = self._cache.get(id(item))
        if found is not None and found[0] is item:
            return found[1]
        from plait.run.pickling import dumps

        data = dumps(item)
        if len(self._cache) >= self.limit:
            self._cache.clear()
        self._cache[id(item)] = (item, data)
        return data


# -- the worker side ---------------------------------------------------------------------


def _splits_elements(item: Step) -> bool:
    """True when each element of a map step returns several outputs."""
    return not item.single_output and bool(item.outputs) and not item.options.dynamic


def output_count(task: Task) -> int:
    """How many values the task leaves on the worker (one reference each)."""
    item = task.step
    if task.element is not MISSING:
        return len(item.outputs) if _splits_elements(item) else 1
    if item.options.dynamic:
        return 1
    return len(item.outputs)


def run_task(
    item: Step | bytes,
    run_id: str,
    element: Any,
    ticket: Any,
    template: dict[str, Any],
    *values: Any,
) -> TaskResult:
    """Run a task on a worker; its inputs arrive as ``values`` for the template's slots.

    ``item`` may come pickled (see :class:`PickledSteps`). One element of a map step with
    several outputs is split here, so each part stays on the worker as an object of its own.
    """
    if isinstance(item, bytes):
        item = _unpickle_step(item)
    kwargs = attach(template, values)
    result = execute(Task(item, kwargs, run_id, element, ticket))
    if result.ok and element is not MISSING and _splits_elements(item):
        try:
            result.values = split_outputs(item, result.values[0])
        except OutputArityError as exc:
            result.ok, result.values, result.error = False, (), exc
            result.traceback = "".join(traceback.format_exception(exc))
    return result


def _unpickle_step(data: bytes) -> Step:
    """A fresh copy per task, as with worker processes: nothing a task does to its step
    (a closure's state, a bound constant) leaks into the next one."""
    import cloudpickle

    item: Step = cloudpickle.loads(data)
    return item


def describe(result: TaskResult) -> TaskResult:
    """The small part of a result that travels to the driver: everything but the values.

    An error that would not survive the trip is replaced by a :class:`WorkerError` with
    its type name and message (the traceback was formatted on the worker).
    """
    return TaskResult(
        ok=result.ok,
        error=None if result.error is None else _portable(result.error),
        attempts=result.attempts,
        start=result.start,
        end=result.end,
        duration=result.duration,
        fallback=result.fallback,
        metrics=result.metrics,
        artifacts=result.artifacts,
        traceback=result.traceback,
    )


def pick(values: tuple[Any, ...] | None, index: int) -> Any:
    """The ``index``-th of a task's values (None after a failure: nothing reads it)."""
    return None if values is None else values[index]


def _portable(error: BaseException) -> BaseException:
    import cloudpickle

    try:
        cloudpickle.loads(cloudpickle.dumps(error))
    except Exception:
        return WorkerError(str(error), type_name=type(error).__name__)
    return error


# -- the driver side ---------------------------------------------------------------------


def shape_values(task: Task, refs: list[Any]) -> tuple[Any, ...]:
    """The driver's ``TaskResult.values`` from the references to a task's values.

    The scheduler treats a map element's result as one value and splits it into the
    step's outputs itself, so a split element's parts go back as one tuple.
    """
    if task.element is not MISSING and _splits_elements(task.step):
        return (tuple(refs),)
    return tuple(refs)


def explain(task: Task, error: BaseException, is_ref: Callable[[Any], bool]) -> BaseException:
    """A :class:`SerializationError` naming the input that could not be pickled to reach
    a worker, when that is why the engine refused the task; else ``error`` itself."""
    import cloudpickle

    template, _ = detach(task.kwargs, is_ref)
    for name, value in template.items():
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            failure = SerializationError(
                f"step {task.label!r}: input {name!r} (a {type(value).__name__}) cannot be "
                f"pickled to reach a worker: {exc}; pass something picklable",
                step=task.step.name,
            )
            failure.__cause__ = error
            return failure
    return error


def lost_worker(task: Task, error: BaseException, engine: str, started: float) -> TaskResult:
    """The failed result of a task whose worker died (or that the engine gave up on)."""
    failure = WorkerError(
        f"step {task.label!r}: the {engine} worker running it died or was lost "
        f"({type(error).__name__}: {error})",
        type_name=type(error).__name__,
    )
    failure.__cause__ = error
    return failed(failure, started)


def failed(error: BaseException, started: float, attempts: int = 1) -> TaskResult:
    """A failed result for an error raised by the engine rather than by the step."""
    return TaskResult(
        ok=False,
        error=error,
        attempts=attempts,
        start=started,
        end=time.time(),
        duration=max(0.0, time.time() - started),
        traceback="".join(traceback.format_exception(error)),
    )


def cpu_count() -> int:
    """The CPUs this process may use (the size of a local cluster started for it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
