"""Executing one task: a step (or one map element) on its inputs.

This is the code that runs where the work runs: inline, in a worker thread, in a worker
process or on a cluster. It owns the attempt loop (retries with exponential backoff and
jitter, ``retry_on`` filtering, per-attempt timeouts), the ``on_failure`` fallback and the
splitting of a return value into the step's declared outputs. It never raises for a
failure of user code: the failure is data in the :class:`TaskResult`.

Inputs are read-only: the step is called with its inputs guarded by
:mod:`plait.run.protect` (numpy arrays as read-only views, pandas objects as
copy-on-write copies, other changeable values hashed before and after each attempt), here
where it runs, so the rule holds on every executor. A
:class:`~plait.errors.MutatedInputError` is neither retried nor replaced by a fallback.

Timeouts: an ``async def`` attempt is cancelled. A sync attempt runs in a daemon thread
that the caller stops waiting for; Python cannot kill a thread, so a timed-out attempt is
*abandoned*: it may finish in the background, and its result is discarded.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plait.assets._types import Asset, unwrap_outputs, wrap_inputs
from plait.errors import MutatedInputError, OutputArityError, StepTimeoutError
from plait.run.context import StepContext, reset_context, set_context
from plait.run.protect import Guard, guard, refusal, release, verdict
from plait.steps import MISSING, Step

if TYPE_CHECKING:
    from plait.store.cache import Ticket
    from plait.store.store import ArtifactRef

__all__ = ["Cursor", "Task", "TaskResult", "execute", "execute_async", "split_outputs", "wall"]


@dataclass(slots=True)
class Task:
    """One unit of work: a step on its inputs, or one element of a map step.

    While it runs, the task itself is what ``current()`` finds (a
    :class:`~plait.run.context.LazyContext`): the step's :class:`StepContext` is made only
    if the step asks for it.
    """

    step: Step
    kwargs: dict[str, Any]
    run_id: str
    element: Any = MISSING  # index or key of a map element
    ticket: Ticket | None = None  # where to store the outputs, with a store
    attempt: int = 1  # the attempt running now
    made: StepContext | None = None  # the step's context, once it asked for it

    @property
    def label(self) -> str:
        """The step's name, with the element for map elements."""
        if self.element is MISSING:
            return self.step.name
        return f"{self.step.name}[{self.element!r}]"

    def context(self) -> StepContext:
        """The step's context (``current()``), made the first time it is asked for."""
        made = self.made
        if made is None:
            element = None if self.element is MISSING else self.element
            made = self.made = StepContext(self.run_id, self.step.name, self.attempt, element)
        return made

    def _begin(self) -> None:
        """Start an execution afresh (a task may be executed again: a recomputed hit)."""
        self.attempt = 1
        self.made = None

    def _next_attempt(self, attempt: int) -> None:
        self.attempt = attempt
        if self.made is not None:
            self.made.attempt = attempt

    def _metrics(self) -> dict[str, Any]:
        """What the step logged: its context's metrics, or a new empty dict."""
        made = self.made
        return {} if made is None else made.metrics


class Cursor:
    """The context holder of the inline driver (``run/inline.py``): one per run, pointed at
    each step as it starts, so a step that never calls ``current()`` costs two attribute
    writes instead of a task object and a context variable switch."""

    __slots__ = ("made", "name", "run_id")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.name = ""
        self.made: StepContext | None = None

    def context(self) -> StepContext:
        """The running step's context, made the first time it is asked for."""
        made = self.made
        if made is None:
            made = self.made = StepContext(self.run_id, self.name)
        return made


@dataclass(slots=True)
class TaskResult:
    """What a task produced: output values (aligned with the step's outputs) or an error."""

    ok: bool
    values: tuple[Any, ...] = ()
    error: BaseException | None = None
    attempts: int = 0
    start: float = 0.0
    end: float = 0.0
    duration: float = 0.0
    fallback: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, ArtifactRef] | None = None  # with a store
    traceback: str | None = None  # formatted where the error happened (survives pickling)


def split_outputs(item: Step, value: Any) -> tuple[Any, ...]:
    """Split a return value into the step's outputs, checking the arity.

    Raises:
        OutputArityError: When the value does not match the declared outputs.
    """
    outputs = item.outputs
    if item.single_output or item.options.dynamic:
        return (value,)
    if not outputs:
        return ()
    if isinstance(value, Mapping):
        missing = [o for o in outputs if o not in value]
        if missing:
            raise OutputArityError(
                f"step {item.name!r} returned a dict without {missing} (keys: "
                f"{list(value)[:10]}); it declares outputs {list(outputs)}",
                step=item.name,
            )
        return tuple(value[o] for o in outputs)
    if isinstance(value, tuple | list) and len(value) == len(outputs):
        return tuple(value)
    got = (
        f"a {type(value).__name__} of {len(value)} values"
        if isinstance(value, tuple | list)
        else f"one {type(value).__name__}"
    )
    raise OutputArityError(
        f"step {item.name!r} declares {len(outputs)} outputs {list(outputs)} but returned "
        f"{got}; return a tuple of {len(outputs)} values or a dict keyed by output name",
        step=item.name,
    )


_CLOCK = [time.time() - time.perf_counter(), time.perf_counter()]  # offset, when measured


def wall(moment: float) -> float:
    """The wall-clock time (``time.time()``) of a ``time.perf_counter()`` reading: one clock
    read per boundary. The offset between the clocks is measured again after a minute, so
    a change of the system clock is followed."""
    if moment - _CLOCK[1] > 60.0:
        _CLOCK[0], _CLOCK[1] = time.time() - time.perf_counter(), moment
    return _CLOCK[0] + moment


def _delay(item: Step, attempt: int) -> float:
    return float(item.options.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))


def _retryable(item: Step, exc: BaseException, attempt: int) -> bool:
    return (
        attempt <= item.options.retries
        and isinstance(exc, item.options.retry_on)
        and not isinstance(exc, MutatedInputError)  # the same code fails the same way
    )


def _attempt(task: Task, shield: Guard, timeout: float | None) -> tuple[Any, Exception | None]:
    """One call of the step on its guarded inputs: its value, or the error it ends with."""
    if shield.tainted:
        return None, refusal(shield, task.step.name)
    try:
        if timeout is None:
            value = task.step.func(**shield.kwargs)
        else:
            value = _call_in_thread(task, shield.kwargs, timeout)
    except StepTimeoutError as exc:
        return None, exc  # abandoned: it may still run, its inputs cannot be checked now
    except Exception as exc:
        return None, verdict(shield, task.label, task.step.name, exc)
    if shield.watched:
        return value, verdict(shield, task.label, task.step.name, None)
    return value, None


def _call_in_thread(task: Task, kwargs: dict[str, Any], timeout: float) -> Any:
    """Run the step's function in a daemon thread; give up waiting after ``timeout``."""
    context = contextvars.copy_context()
    box: dict[str, Any] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            box["value"] = context.run(task.step.func, **kwargs)
        except BaseException as exc:  # handed back to the waiting thread
            box["error"] = exc
        finally:
            finished.set()

    thread = threading.Thread(target=target, name=f"plait:{task.label}", daemon=True)
    thread.start()
    if not finished.wait(timeout):
        raise StepTimeoutError(
            f"step {task.label!r} timed out after {timeout:g} s (the attempt was abandoned "
            "and may still finish in the background)",
            step=task.step.name,
            timeout=timeout,
        )
    if "error" in box:
        raise box["error"]
    return box["value"]


def _finish(
    task: Task, shield: Guard, result: TaskResult, value: Any, error: BaseException | None
) -> None:
    item = task.step
    fallback = item.options.on_failure
    if error is not None and fallback is not None and not isinstance(error, MutatedInputError):
        try:
            value = fallback(error, **shield.kwargs)
            result.fallback, error = True, None
        except Exception as fallback_error:
            fallback_error.__cause__ = error
            error = fallback_error
        else:
            error = verdict(shield, task.label, item.name, None) if shield.watched else None
            result.fallback = error is None
    if error is None:
        try:
            values = (value,) if task.element is not MISSING else split_outputs(item, value)
            if task.element is MISSING:  # assets: plain values on, descriptors to the catalog
                values, result.metrics = unwrap_outputs(item, values, result.metrics)
            elif isinstance(value, Asset):  # a map element's asset: not catalogued
                values = (value.value,)
            result.values = release(shield, values)
            result.ok = True
        except OutputArityError as arity_error:
            error = arity_error
    result.error = error
    if error is not None:
        result.traceback = "".join(traceback.format_exception(error))
    if result.ok and task.ticket is not None and not result.fallback:
        from plait.store.cache import persist

        result.artifacts = persist(task.ticket, item, result.values, task.element)


def execute(task: Task) -> TaskResult:
    """Run a task with its retries, timeout and fallback; never raises for user errors.

    An ``async def`` step gets an event loop of its own here (a worker thread or process).
    """
    item = task.step
    if item.signature.is_async:
        return asyncio.run(execute_async(task))
    timeout = item.options.timeout
    started = time.perf_counter()
    result = TaskResult(False, start=wall(started))
    element = task.element
    task._begin()
    token = set_context(task)
    try:
        shield = guard(task.kwargs)
        shield.kwargs = wrap_inputs(item, shield.kwargs)
        value, error = _attempt(task, shield, timeout)
        attempt = 1
        while error is not None and _retryable(item, error, attempt):
            time.sleep(_delay(item, attempt))
            attempt += 1
            task._next_attempt(attempt)
            value, error = _attempt(task, shield, timeout)
    finally:
        reset_context(token)
    result.attempts = attempt
    result.metrics = task._metrics()
    if error is None and task.ticket is None and element is MISSING and item.single_output:
        values, result.metrics = unwrap_outputs(item, (value,), result.metrics)
        result.ok, result.values = True, release(shield, values)  # fast path of _finish
        result.duration = time.perf_counter() - started
        result.end = result.start + result.duration
        return result
    _finish(task, shield, result, value, error)
    result.duration = time.perf_counter() - started
    result.end = result.start + result.duration
    return result


async def execute_async(task: Task) -> TaskResult:
    """Run an ``async def`` task; cancellation of the caller propagates into the step."""
    item = task.step
    timeout = item.options.timeout
    started = time.perf_counter()
    result = TaskResult(ok=False, start=wall(started))
    task._begin()
    value: Any = None
    error: BaseException | None = None
    attempt = 0
    shield = guard(task.kwargs)
    shield.kwargs = wrap_inputs(item, shield.kwargs)
    while True:
        attempt += 1
        if shield.tainted:
            error = refusal(shield, item.name)
            break
        if attempt > 1:
            task._next_attempt(attempt)
        token = set_context(task)
        try:
            if timeout is None:
                value = await item.func(**shield.kwargs)
            else:
                try:
                    value = await asyncio.wait_for(item.func(**shield.kwargs), timeout)
                except TimeoutError:
                    raise StepTimeoutError(
                        f"step {task.label!r} timed out after {timeout:g} s",
                        step=item.name,
                        timeout=timeout,
                    ) from None
            error = verdict(shield, task.label, item.name, None) if shield.watched else None
        except StepTimeoutError as exc:
            error = exc  # cancelled; its inputs are checked with the next attempt's
        except Exception as exc:
            error = verdict(shield, task.label, item.name, exc)
        finally:
            reset_context(token)
        if error is None or not _retryable(item, error, attempt):
            break
        await asyncio.sleep(_delay(item, attempt))
    result.attempts = attempt
    result.metrics = task._metrics()
    _finish(task, shield, result, value, error)
    result.duration = time.perf_counter() - started
    result.end = result.start + result.duration
    return result
