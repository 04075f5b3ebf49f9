"""The Celery executor: each step runs as a Celery task on the workers of a broker.

Design note
-----------
Celery moves *messages*; a broker is no place for data frames. So a step is one Celery
task whose message carries only the step (cloudpickled once per step), its plain inputs
and *references* to its upstream values, and values travel through a shared byte store:

- **Values.** The worker runs the task (:func:`~plait.run.remote.run_task`: attempts,
  retries, timeouts, fallback, the run's store written from where the values are), then
  writes each output, pickled, to the *transport* at ``values/<executor>/<token>/<i>``
  and hands back a :class:`Stored` reference. A later task reads its inputs from there;
  the driver reads only what it must see (:meth:`Celery.fetch`). The transport is the
  backend of ``store=`` (a shared directory, an fsspec URL, ``redis://``), or by default
  the broker's own Redis database (keys ``plait-values:…`` with a TTL, see
  :mod:`plait.store.redis_backend`). With another broker and no ``store=``, the executor
  is refused with the fix.
- **Outcomes.** The small description of the outcome (status, error, traceback,
  attempts, timings, metrics, artifacts; no values) is pushed by the worker onto a Redis
  list of the executor (``plait-outcomes:<executor>``); one thread of the driver waits on
  it (``BLPOP``) and resolves the task's future. No Celery result backend is needed.
- **Cancellation.** A cancelled step's task is revoked with ``terminate=True``: a running
  attempt is stopped by killing the pool process that runs it (Celery starts another).
- **Trust.** With ``PLAIT_SECRET`` set, the driver signs each task message and each
  value it writes; a worker with ``PLAIT_SECRET`` refuses a message whose signature does
  not match, and values are checked wherever they are read. Without a secret, whoever can
  publish on the broker can run code on the workers (as with any pickled Celery task).

Workers: ``celery -A plait.run.celery_executor worker -b redis://host:6379/0`` runs a
worker that knows plait's task (``plait.run_step``); an application of one's own gets it
with :func:`register`. Workers need the project's code importable, as with Dask and Ray.

A worker *process* that dies mid-step (``os._exit``, the OOM killer) cannot report: the
worker's main process sees ``WorkerLostError`` and fires Celery's ``task_failure`` signal,
on which plait's handler (connected by :func:`register`) pushes a failed outcome naming the
step, from the plain ``route`` the task carries. The step fails with a
:class:`~plait.errors.WorkerError` of type ``WorkerLostError``, or runs again when its
``retries`` and ``retry_on`` allow.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import contextlib
import functools
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from plait.errors import PlaitError, UsageError
from plait.run._celery_worker import (
    TASK_NAME,
    VALUES_TTL,
    Stored,
    app_for,
    celery_module,
    is_redis,
    read_value,
    redis_scheme,
    register,
    run_on_celery,
    sign,
    unsign,
)
from plait.run.remote import (
    PickledSteps,
    detach,
    explain,
    failed,
    output_count,
    resolve,
    shape_values,
)
from plait.run.task import Task, TaskResult
from plait.run.worker_setup import Setup, bundle, resolve_setup

__all__ = ["TASK_NAME", "Celery", "Stored", "register", "run_on_celery"]


def __getattr__(name: str) -> Any:
    """``app``: the application ``celery -A plait.run.celery_executor worker -b URL``
    runs (its broker from ``-b`` or ``PLAIT_CELERY_BROKER``)."""
    if name == "app":
        made = app_for(os.environ.get("PLAIT_CELERY_BROKER", ""))
        globals()["app"] = made
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the driver side ---------------------------------------------------------------------


@dataclass(slots=True)
class _Flight:
    task: Task
    outer: cf.Future[TaskResult]
    started: float
    token: str = ""
    deaths: int = 0


class Celery:
    """Run steps as Celery tasks; their values travel through a shared store.

    Args:
        app_or_broker_url: A ``celery.Celery`` application (plait's task is added to it),
            or a broker URL such as ``"redis://host:6379/0"``.
        store: Where values travel between steps: a :class:`~plait.Store`, a shared
            directory, or a URL (``s3://…``, ``redis://…``) every worker can reach.
            Default: the broker's Redis (values expire after a day).
        setup: A function of no argument run once in every worker process before its
            first step, or ``"module:function"``. The hashers and serializers registered
            in this process reach the workers the same way.
        queue: The Celery queue to send steps to (default: the application's).
        outcomes: The Redis URL where workers push outcomes (default: the broker's, or a
            Redis ``store``'s).

    Raises:
        UsageError: When ``celery`` is not installed, or neither a shared store nor a
            Redis broker is given.
    """

    name = "celery"
    inline = False
    remote = True

    def __init__(
        self,
        app_or_broker_url: Any,
        *,
        store: Any = None,
        setup: Setup | str | None = None,
        queue: str | None = None,
        outcomes: str | None = None,
    ) -> None:
        celery = celery_module()
        given = app_or_broker_url
        if isinstance(given, str):
            self.app = app_for(given)
        elif isinstance(given, celery.Celery):
            self.app = given
            register(given)
        else:
            raise UsageError(
                "Celery(app_or_broker_url) takes a celery.Celery application or a broker "
                f"URL like 'redis://host:6379/0', got {given!r}"
            )
        self._given = given
        self.broker = str(self.app.conf.broker_url or "")
        self.transport = self._transport(store)
        self.outcomes = outcomes or self._outcome_url(store)
        self.setup = resolve_setup(setup)
        self.queue = queue
        self.id = uuid.uuid4().hex
        self._prefix = f"values/{self.id}"
        self._pickled = PickledSteps()
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self._producer: Any = None
        self._send_lock = threading.Lock()

    def _transport(self, store: Any) -> Any:
        if store is None:
            if not is_redis(self.broker):
                raise UsageError(
                    f"the Celery executor moves values through a shared store, and its "
                    f"broker {self.broker!r} is not Redis: give it one every worker can "
                    "reach, e.g. Celery(app, store='s3://bucket/plait') or "
                    "store='/shared/dir' or store='redis://host:6379/1'"
                )
            from plait.store.redis_backend import RedisBackend

            joiner = "&" if "?" in self.broker else "?"  # options in the URL travel with it
            return RedisBackend(f"{self.broker}{joiner}prefix=plait-values&ttl={VALUES_TTL}")
        from plait.store.store import Store, as_store

        chosen = as_store(store) if not isinstance(store, Store) else store
        if chosen is None:
            raise UsageError(f"Celery(store=...) got {store!r}: give a path or URL")
        return chosen.backend

    def _outcome_url(self, store: Any) -> str:
        if is_redis(self.broker):
            return self.broker
        url = getattr(store, "url", store)
        if isinstance(url, str) and is_redis(url):
            return url.partition("?")[0]
        raise UsageError(
            f"the Celery executor's workers push outcomes to Redis, and neither its broker "
            f"{self.broker!r} nor its store is Redis: give Celery(app, outcomes="
            "'redis://host:6379/0')"
        )

    @staticmethod
    def _is_ref(value: Any) -> bool:
        return type(value) is Stored

    # -- the executor protocol ---------------------------------------------------------
    def submit(self, task: Task) -> cf.Future[TaskResult]:
        """Send ``task`` to the workers; the future resolves with its description and one
        :class:`Stored` reference per output."""
        self._listen()
        outer: cf.Future[TaskResult] = cf.Future()
        flight = _Flight(task, outer, time.time())
        self._send(flight)
        outer.add_done_callback(functools.partial(self._on_cancel, flight))
        return outer

    def _relaunch(self, flight: _Flight) -> None:
        """Send a step whose worker process died again (its retries allow it)."""
        try:
            self._send(flight)
        except Exception as exc:  # the broker went away: fail the step, never wait
            if flight.outer.set_running_or_notify_cancel():
                flight.outer.set_result(failed(exc, flight.started, flight.deaths + 1))

    def _send(self, flight: _Flight) -> None:
        import cloudpickle

        task = flight.task
        token = flight.token = uuid.uuid4().hex
        template, refs = detach(task.kwargs, self._is_ref)
        payload = (
            token,
            output_count(task),
            self._pickled(task.step),
            task.run_id,
            task.element,
            task.ticket,
            template,
            refs,
            bundle(self.setup),
            self.transport,
            (self.outcomes, self._queue_key, self._prefix),
        )
        try:
            data = bytes(cloudpickle.dumps(payload))
        except Exception as exc:
            raise explain(task, exc, self._is_ref) from exc
        message = base64.b64encode(sign("task", data)).decode("ascii")
        with self._lock:
            self._flights[token] = flight
        try:
            route = [self.outcomes, self._queue_key, token, task.label]
            with self._send_lock:  # one producer, kept: acquiring one per task costs ~1 ms
                if self._producer is None:
                    self._producer = self.app.producer_pool.acquire(block=True)
                self.app.send_task(
                    TASK_NAME,
                    args=[message],
                    kwargs={"route": route},
                    task_id=token,
                    queue=self.queue,
                    producer=self._producer,
                )
        except Exception as exc:
            self._release_producer()
            with self._lock:
                self._flights.pop(token, None)
            raise PlaitError(
                f"step {task.label!r}: could not send it to the Celery broker "
                f"{self.broker!r}: {exc}"
            ) from exc

    def _release_producer(self) -> None:
        with self._send_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):  # a broken connection: just let it go
                producer.release()

    @property
    def _queue_key(self) -> str:
        return f"plait-outcomes:{self.id}"

    def _listen(self) -> None:
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            self._stop = threading.Event()
            self._listener = threading.Thread(
                target=self._receive,
                args=(self._stop,),
                name=f"plait-celery-{self.id[:6]}",
                daemon=True,
            )
            self._listener.start()

    def _receive(self, stop: threading.Event) -> None:
        """The listener thread: resolve each flight whose outcome a worker pushed."""
        import redis

        client = redis.Redis.from_url(redis_scheme(self.outcomes))
        try:
            while not stop.is_set():
                try:
                    item = client.blpop([self._queue_key], timeout=1)
                except redis.RedisError:
                    if stop.wait(0.5):
                        return
                    continue
                if item is not None:
                    raw: Any = item[1]
                    self._deliver(bytes(raw))
        finally:
            client.close()

    def _deliver(self, raw: bytes) -> None:
        import cloudpickle

        token, _, outcome = raw.partition(b":")
        with self._lock:
            flight = self._flights.pop(token.decode(), None)
        if flight is None:
            return  # cancelled meanwhile
        try:
            result, stored, lost = cloudpickle.loads(unsign(f"outcome {flight.token}", outcome))
        except Exception as exc:  # an error type this process cannot import, say
            result, stored, lost = failed(exc, flight.started), [], False
        options = flight.task.step.options
        if lost and flight.deaths < options.retries and isinstance(result.error, options.retry_on):
            flight.deaths += 1
            self._relaunch(flight)
            return
        result.attempts += flight.deaths
        if result.ok:
            result.values = shape_values(flight.task, list(stored))
        if flight.outer.set_running_or_notify_cancel():
            flight.outer.set_result(result)

    def _on_cancel(self, flight: _Flight, outer: cf.Future[TaskResult]) -> None:
        if not outer.cancelled():
            return
        with self._lock:
            gone = self._flights.pop(flight.token, None)
        if gone is not None:
            self.app.control.revoke(flight.token, terminate=True)

    def fetch(self, value: Any) -> Any:
        """``value`` with every :class:`Stored` reference in it replaced by its value.

        Raises:
            PlaitError: When the shared store cannot hand a value back.
        """
        try:
            return resolve(value, self._is_ref, self._read_all)
        except PlaitError:
            raise
        except Exception as exc:
            raise PlaitError(f"could not fetch a value from the Celery store: {exc}") from exc

    def _read_all(self, refs: list[Any]) -> list[Any]:
        return [read_value(self.transport, ref) for ref in refs]

    def shutdown(self, wait: bool = True) -> None:
        """Stop listening for outcomes and delete the values this executor's steps left
        in the shared store (the next submit starts again)."""
        self._stop.set()
        with self._lock:
            pending, self._flights = list(self._flights.values()), {}
        for flight in pending:
            self.app.control.revoke(flight.token, terminate=True)
        for path in list(self.transport.list(self._prefix)):
            self.transport.delete(path)
        self._release_producer()

    def __repr__(self) -> str:
        return f"Celery({self._given!r})"
