"""The Ray executor: each step runs as a Ray task.

Design note
-----------
A step is one Ray task with ``1 + n`` returns (see :mod:`plait.run.remote`): the first is
the small description of the outcome (status, error, traceback, attempts, timings,
metrics, artifacts; no values), the others are the step's ``n`` outputs, each an object
of its own in Ray's object store. Upstream outputs are passed as top-level ``ObjectRef``
arguments, which Ray resolves on the worker (it does not look inside containers, so refs
inside a map step's list are lifted to the top level too). The driver waits on the
description only (``ref.future()``) and hands the scheduler the output refs; only
:meth:`Ray.fetch` brings values back. Ray returns small objects (under ~100 KiB) inline
to the driver as part of the task's reply; large ones stay in the object store.

Ray's own retries of system failures are off (``max_retries=0``): a worker that dies
mid-step fails the step with a :class:`~plait.errors.WorkerError` (type name
``WorkerCrashedError``, ``NodeDiedError`` or ``OutOfMemoryError``), or runs it again when
the step's ``retries`` and ``retry_on`` allow.

Worker setup: the user's ``setup`` function and the hashers and serializers registered in
the driver travel with each task as a small bundle (:mod:`plait.run.worker_setup`), which
a worker process installs before its first task. Unlike Ray's ``worker_process_setup_hook``
(a ``runtime_env`` fixed when Ray is initialised) this works on a Ray someone else started,
and follows registrations made after it started.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from plait.errors import PlaitError, UsageError
from plait.run.remote import (
    PickledSteps,
    cpu_count,
    describe,
    detach,
    explain,
    failed,
    lost_worker,
    output_count,
    resolve,
    run_task,
    shape_values,
)
from plait.run.task import Task, TaskResult
from plait.run.worker_setup import Setup, bundle, install, resolve_setup

__all__ = ["Ray"]

_HINT = "pip install 'plait[ray]'"


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError(
            f"the Ray executor needs the 'ray' package ({exc}); install it with {_HINT}"
        ) from exc
    return ray


def run_on_ray(payload: tuple[Any, ...], *values: Any) -> Any:
    """Worker side: run the task; return its description, then its ``count`` values.

    ``payload`` is ``(count, step, run_id, element, ticket, template, setup)``: one
    argument, so Ray serialises it once; ``values`` are the references' values, resolved
    by Ray.
    """
    count, item, run_id, element, ticket, template, setup = payload
    install(setup)
    result = run_task(item, run_id, element, ticket, template, *values)
    meta = describe(result)
    if count == 0:
        return meta
    outputs = result.values if result.ok else (None,) * count
    return (meta, *outputs)


@dataclass(slots=True)
class _Flight:
    """One submitted task: the future given to the scheduler and the refs behind it."""

    task: Task
    outer: cf.Future[TaskResult]
    started: float
    deaths: int = 0
    meta: Any = None
    values: list[Any] = field(default_factory=list)


class Ray:
    """Run steps as Ray tasks; their outputs stay in Ray's object store.

    Upstream outputs reach a step as ``ObjectRef`` arguments, so data moves between
    workers without passing through the driver; only requested outputs (and values the
    scheduler must see, such as the list a map step maps over) are fetched. With a store,
    workers write the artifacts themselves: use a store every node can reach.

    Args:
        address: A Ray cluster address (``"auto"``, ``"ray://head:10001"``, ...), or None:
            use Ray if it is already initialised in this process, else start a local Ray
            (one CPU slot per CPU, no dashboard). :meth:`shutdown` shuts Ray down only if
            this executor initialised it.
        setup: A function of no argument run once in every Ray worker process before its
            first step, or ``"module:function"``. The hashers and serializers registered
            in this process reach the workers the same way.

    Raises:
        UsageError: When ``ray`` is not installed, or a ``setup`` string that does not
            name a function.
    """

    name = "ray"
    inline = False
    remote = True

    def __init__(self, address: str | None = None, *, setup: Setup | str | None = None) -> None:
        _ray()
        self.address = address
        self.setup = resolve_setup(setup)
        self._function: Any = None
        self._variants: dict[int, Any] = {}  # number of outputs -> the function's options
        self._pickled = PickledSteps()
        self._started = False
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        """The remote function, initialising Ray first if nobody did."""
        ray = _ray()
        with self._lock:
            if not ray.is_initialized():  # never, or shut down since by someone else
                if self.address is None:
                    ray.init(num_cpus=cpu_count(), include_dashboard=False)
                else:
                    ray.init(address=self.address)
                self._started = True
                self._function = None
            if self._function is None:
                self._function = ray.remote(run_on_ray)
                self._variants = {}
            return self._function

    @staticmethod
    def _is_ref(value: Any) -> bool:
        import ray

        return isinstance(value, ray.ObjectRef)

    # -- the executor protocol ---------------------------------------------------------
    def submit(self, task: Task) -> cf.Future[TaskResult]:
        """Start ``task`` as a Ray task; the future resolves with its description and one
        ``ObjectRef`` per output."""
        function = self._connect()
        outer: cf.Future[TaskResult] = cf.Future()
        flight = _Flight(task, outer, time.time())
        try:
            self._launch(function, flight)
        except Exception as exc:  # Ray serialises the arguments here
            raise explain(task, exc, self._is_ref) from exc
        outer.add_done_callback(functools.partial(self._on_cancel, flight))
        return outer

    def _launch(self, function: Any, flight: _Flight) -> None:
        task = flight.task
        template, refs = detach(task.kwargs, self._is_ref)
        count = output_count(task)
        variant = self._variants.get(count)
        if variant is None:  # made once: options() costs more than a submission
            variant = function.options(num_returns=1 + count, max_retries=0)
            self._variants[count] = variant
        payload = (
            count,
            self._pickled(task.step),
            task.run_id,
            task.element,
            task.ticket,
            template,
            bundle(self.setup),
        )
        returned = variant.remote(payload, *refs)
        if count == 0:
            flight.meta, flight.values = returned, []
        else:
            flight.meta, flight.values = returned[0], list(returned[1:])
        flight.meta.future().add_done_callback(functools.partial(self._relay, function, flight))

    def _relay(self, function: Any, flight: _Flight, done: cf.Future[TaskResult]) -> None:
        """Ray's callback: turn the finished description into the outcome."""
        if flight.outer.done():
            return
        try:
            result = self._outcome(function, flight, done)
        except Exception as exc:  # never leave the scheduler waiting
            result = failed(exc, flight.started, flight.deaths + 1)
        if result is None:  # launched again after a worker died
            return
        values, flight.meta, flight.values = flight.values, None, []
        if result.ok:
            result.values = shape_values(flight.task, values)
        if flight.outer.set_running_or_notify_cancel():
            flight.outer.set_result(result)

    def _outcome(self, function: Any, flight: _Flight, done: cf.Future[Any]) -> TaskResult | None:
        from ray.exceptions import NodeDiedError, OutOfMemoryError, WorkerCrashedError

        try:
            result: TaskResult = done.result()
        except (WorkerCrashedError, NodeDiedError, OutOfMemoryError) as exc:
            lost = lost_worker(flight.task, exc, "Ray", flight.started)
            options = flight.task.step.options
            if flight.deaths < options.retries and isinstance(lost.error, options.retry_on):
                flight.deaths += 1
                # Not from Ray's callback thread: submitting there could block it.
                threading.Thread(
                    target=self._relaunch, args=(function, flight), daemon=True
                ).start()
                return None
            lost.attempts = flight.deaths + 1
            return lost
        except Exception as exc:  # cancelled, an input that could not be deserialised
            return failed(exc, flight.started, flight.deaths + 1)
        result.attempts += flight.deaths
        return result

    def _relaunch(self, function: Any, flight: _Flight) -> None:
        try:
            self._launch(function, flight)
        except Exception as exc:  # Ray went away: fail the step rather than wait forever
            if flight.outer.set_running_or_notify_cancel():
                flight.outer.set_result(failed(exc, flight.started, flight.deaths + 1))

    def _on_cancel(self, flight: _Flight, outer: cf.Future[TaskResult]) -> None:
        if outer.cancelled() and flight.meta is not None:
            import ray

            meta, flight.meta, flight.values = flight.meta, None, []
            ray.cancel(meta)

    def fetch(self, value: Any) -> Any:
        """``value`` with every ``ObjectRef`` in it (inside lists, tuples, dicts too)
        replaced by its value, fetched with one ``ray.get``.

        Raises:
            PlaitError: When Ray cannot hand the value back.
        """
        ray = _ray()
        try:
            return resolve(value, self._is_ref, ray.get)
        except Exception as exc:
            raise PlaitError(f"could not fetch a value from Ray: {exc}") from exc

    def shutdown(self, wait: bool = True) -> None:
        """Shut Ray down if this executor initialised it; otherwise leave it running."""
        with self._lock:
            started, self._started = self._started, False
            if started:
                self._function = None
        if started:
            _ray().shutdown()

    def __repr__(self) -> str:
        return "Ray()" if self.address is None else f"Ray({self.address!r})"
