"""The Dask executor: each step runs as a task on a ``distributed`` cluster.

Design note
-----------
A step is **one** Dask task (see :mod:`plait.run.remote` for the shared parts):

- Its inputs: upstream outputs are Dask futures passed as top-level arguments, so Dask
  moves the data worker to worker, never through the driver.
- Its result, held by the worker: the step's value (for a step with several outputs,
  their tuple, split by one tiny ``pick`` task per output). That future is what the
  scheduler keeps and passes to later steps.
- Its outcome: the small description (status, error and its traceback, attempts, timings,
  metrics, artifacts; no values) is *pushed* to the driver as a Dask event on the topic
  ``"plait-outcomes"`` just before the task returns. A second task per step to carry it,
  gathered by the driver, would double Dask's per-task work and add a round trip per
  step; the event rides on messages Dask sends anyway. The scheduler keeps the last
  ``distributed.admin.low-level-log-length`` events of a topic (1,000 by default, a few
  hundred bytes each).

The driver hands the scheduler a :class:`concurrent.futures.Future` resolved by the event
(a token per task pairs them). Dask delivers a worker's event before it reports the task
finished, so the future's own completion is only watched for what the step could not
report: a worker that died (``KilledWorker``, raised at once on the local cluster started
here, whose ``allowed-failures`` is 0), inputs that could not travel, a cancelled task.
A dead worker's step runs again if its ``retries`` and ``retry_on`` allow, else it fails
with a :class:`~plait.errors.WorkerError` whose type name is ``KilledWorker``.

Worker setup: the user's ``setup`` function and the hashers and serializers registered in
the driver reach every worker as a ``WorkerPlugin`` (:mod:`plait.run.worker_setup`), which
the scheduler also hands to workers that join later; it is registered again before the
next task whenever the driver's registrations change.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    pick,
    resolve,
    run_task,
    shape_values,
)
from plait.run.task import Task, TaskResult
from plait.run.worker_setup import Setup, bundle, resolve_setup

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

__all__ = ["Dask"]

_HINT = "pip install 'plait[dask]'"
TOPIC = "plait-outcomes"
_LOST_EVENT_SECONDS = 60.0  # a finished task whose outcome event never came: give up


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise UsageError(
            f"the Dask executor needs the 'distributed' package ({exc}); install it with {_HINT}"
        ) from exc
    return distributed


def run_on_dask(
    token: str,
    count: int,
    item: Any,
    run_id: str,
    element: Any,
    ticket: Any,
    template: dict[str, Any],
    *values: Any,
) -> Any:
    """Worker side: run the task, push its description, keep its value(s) here."""
    import cloudpickle
    from distributed import get_worker

    result = run_task(item, run_id, element, ticket, template, *values)
    outcome = bytes(cloudpickle.dumps(describe(result)))
    get_worker().log_event(TOPIC, {"token": token, "outcome": outcome})
    if not result.ok or count == 0:
        return None
    return result.values[0] if count == 1 else result.values


@dataclass(slots=True)
class _Flight:
    """One submitted task: the future given to the scheduler and the Dask futures behind
    it (held only until the outcome is known, so the cluster can release what nobody
    uses)."""

    task: Task
    outer: cf.Future[TaskResult]
    started: float
    token: str = ""
    deaths: int = 0
    futures: list[Any] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    launched: bool = False  # the futures above are set (an outcome may arrive before)
    early: bytes | None = None  # an outcome that arrived before that


_FLIGHTS: dict[str, _Flight] = {}  # token -> flight, for every Dask executor of the process
_FLIGHTS_LOCK = threading.Lock()
_SUBSCRIBED: set[str] = set()  # ids of the clients whose outcome events reach _on_outcome
_SUBSCRIBING = threading.Lock()


def _deliver(flight: _Flight, result: TaskResult) -> None:
    flight.futures, flight.values = [], []
    if flight.outer.set_running_or_notify_cancel():
        flight.outer.set_result(result)


def _on_outcome(event: tuple[float, Any]) -> None:
    """The client's event loop: a step reported its outcome (maybe another process's)."""
    message = event[1]
    if not isinstance(message, dict):
        return
    with _FLIGHTS_LOCK:
        flight = _FLIGHTS.pop(message.get("token", ""), None)
        if flight is not None and not flight.launched:  # a very fast task: finish later
            flight.early = message["outcome"]
            return
    if flight is not None:
        _report(flight, message["outcome"])


def _mark_launched(flight: _Flight) -> bytes | None:
    """Let outcomes through; return one that came while the task was being submitted."""
    with _FLIGHTS_LOCK:
        flight.launched = True
        return flight.early


def _report(flight: _Flight, outcome: bytes) -> None:
    import cloudpickle

    try:
        result: TaskResult = cloudpickle.loads(outcome)
    except Exception as exc:  # an error type this process cannot import, say
        _deliver(flight, failed(exc, flight.started, flight.deaths + 1))
        return
    result.attempts += flight.deaths
    if result.ok:
        result.values = shape_values(flight.task, flight.values)
    _deliver(flight, result)


class Dask:
    """Run steps on a Dask cluster; their outputs stay on the workers.

    Upstream outputs reach a step as Dask futures, so data moves worker to worker; only
    requested outputs (and values the scheduler must see, such as the list a map step maps
    over) travel to the driver. With a store, workers write the artifacts themselves: use
    a store every worker can reach (a shared directory or an fsspec URL) on a cluster of
    several machines.

    Args:
        client_or_address: A ``distributed.Client``, a scheduler address such as
            ``"tcp://10.0.0.5:8786"``, or None: start a local cluster on first use (one
            worker process per CPU, one thread each, no dashboard) and close it on
            :meth:`shutdown`. A given client or cluster is never closed.
        setup: A function of no argument run once on every worker (those that join later
            too) before it runs a step, or ``"module:function"``. The hashers and
            serializers registered in this process reach the workers the same way.

    Raises:
        UsageError: When ``distributed`` is not installed, for another kind of argument,
            or a ``setup`` string that does not name a function.
    """

    name = "dask"
    inline = False
    remote = True

    def __init__(
        self, client_or_address: Client | str | None = None, *, setup: Setup | str | None = None
    ) -> None:
        distributed = _distributed()
        given = client_or_address
        if given is not None and not isinstance(given, str | distributed.Client):
            raise UsageError(
                "Dask(client_or_address) takes a distributed.Client, a scheduler address "
                f"like 'tcp://host:8786' or None, got {given!r}"
            )
        if isinstance(given, distributed.Client) and given.asynchronous:
            raise UsageError(
                "Dask(client) needs a synchronous distributed.Client (plait drives it from "
                "its own threads); pass Client(address) without asynchronous=True"
            )
        self._given = given
        self._future_type: type = distributed.Future
        self._client: Client | None = given if isinstance(given, distributed.Client) else None
        self._cluster: LocalCluster | None = None
        self._lock = threading.Lock()
        self._pickled = PickledSteps()
        self.setup = resolve_setup(setup)
        self._installed: tuple[str, str | None] | None = None  # (client id, bundle token)

    # -- connection ------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The ``distributed.Client`` in use (connecting, or starting the local cluster,
        on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            client = self._client
        _subscribe(client)
        self._install(client)
        return client

    def _install(self, client: Any) -> None:
        """Hand the cluster the worker setup plugin when it has not this bundle yet."""
        made = bundle(self.setup)
        token = None if made is None else made.token
        if self._installed == (client.id, token):
            return
        with self._lock:
            if self._installed == (client.id, token):
                return
            if made is not None or self._installed is not None:
                from plait.run._dask_plugin import SetupPlugin

                try:
                    client.register_plugin(SetupPlugin(made))
                except Exception as exc:
                    raise PlaitError(
                        f"the worker setup of the Dask executor failed on a worker: {exc}"
                    ) from exc
            self._installed = (client.id, token)

    def _connect(self) -> Client:
        import dask

        distributed: Any = _distributed()  # partly typed: its calls are untyped
        if isinstance(self._given, str):
            client: Client = distributed.Client(self._given, set_as_default=False)
            return client
        # A worker that dies fails its task at once (KilledWorker); plait decides on retries.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = distributed.LocalCluster(
                n_workers=cpu_count(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # The scheduler's small HTTP server (health, metrics) still starts: on a
                # free loopback port, so a second cluster never warns that 8787 is taken.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )
        self._cluster = cluster
        client = distributed.Client(cluster, set_as_default=False)
        return client

    def _is_ref(self, value: Any) -> bool:
        return isinstance(value, self._future_type)

    # -- the executor protocol ---------------------------------------------------------
    def submit(self, task: Task) -> cf.Future[TaskResult]:
        """Start ``task`` on the cluster; the future resolves with its description and one
        Dask future per output."""
        client: Any = self.client
        outer: cf.Future[TaskResult] = cf.Future()
        flight = _Flight(task, outer, time.time())
        try:
            self._launch(client, flight)
        except Exception as exc:  # Dask serialises the task here
            raise explain(task, exc, self._is_ref) from exc
        outer.add_done_callback(functools.partial(self._on_cancel, flight))
        return outer

    def _launch(self, client: Any, flight: _Flight) -> None:
        task = flight.task
        template, refs = detach(task.kwargs, self._is_ref)
        token = uuid.uuid4().hex
        name = task.step.name
        count = output_count(task)
        flight.token, flight.launched, flight.early = token, False, None
        _FLIGHTS[token] = flight
        try:
            run = client.submit(
                run_on_dask,
                token,
                count,
                self._pickled(task.step),
                task.run_id,
                task.element,
                task.ticket,
                template,
                *refs,
                key=f"{name}-{token}",
                pure=False,
            )
        except BaseException:
            _FLIGHTS.pop(token, None)
            raise
        if count > 1:
            flight.values = [
                client.submit(pick, run, index, key=f"{name}-{index}-{token}", pure=False)
                for index in range(count)
            ]
        else:
            flight.values = [run] if count else []
        flight.futures = [run, *flight.values] if count > 1 else [run]
        _send_now(client)
        early = _mark_launched(flight)
        if early is not None:
            _report(flight, early)
        run.add_done_callback(functools.partial(self._on_done, flight, token))

    def _on_done(self, flight: _Flight, token: str, run: Any) -> None:
        """Dask's callback thread: the task ended; act only if its outcome did not come."""
        if run.status == "finished":
            if token in _FLIGHTS:  # not expected: Dask sends the event first
                timer = threading.Timer(_LOST_EVENT_SECONDS, self._lost_event, (flight, token))
                timer.daemon = True
                timer.start()
            return
        if _FLIGHTS.pop(token, None) is None:
            return  # reported already, or cancelled by the scheduler
        try:
            error = run.exception()
        except Exception as exc:  # a cancelled future raises instead
            error = exc
        try:
            result = self._failure(flight, error)
        except Exception as exc:  # relaunching failed: the cluster is gone
            result = failed(exc, flight.started, flight.deaths + 1)
        if result is not None:
            _deliver(flight, result)

    def _failure(self, flight: _Flight, error: BaseException) -> TaskResult | None:
        """The result of a task Dask could not run; None when it was launched again."""
        from distributed import KilledWorker

        if not isinstance(error, KilledWorker):
            error = explain(flight.task, error, self._is_ref)
            return failed(error, flight.started, flight.deaths + 1)
        lost = lost_worker(flight.task, error, "Dask", flight.started)
        options = flight.task.step.options
        if flight.deaths < options.retries and isinstance(lost.error, options.retry_on):
            flight.deaths += 1
            self._launch(self.client, flight)
            return None
        lost.attempts = flight.deaths + 1
        return lost

    def _lost_event(self, flight: _Flight, token: str) -> None:
        if _FLIGHTS.pop(token, None) is not None:
            error = PlaitError(
                f"step {flight.task.label!r} finished on the Dask cluster but its outcome "
                f"(an event on topic {TOPIC!r}) never reached this process"
            )
            _deliver(flight, failed(error, flight.started, flight.deaths + 1))

    def _on_cancel(self, flight: _Flight, outer: cf.Future[TaskResult]) -> None:
        client: Any = self._client
        if outer.cancelled() and _FLIGHTS.pop(flight.token, None) is not None:
            futures, flight.futures, flight.values = flight.futures, [], []
            if client is not None and futures:
                client.cancel(futures)

    def fetch(self, value: Any) -> Any:
        """``value`` with every Dask future in it (inside lists, tuples, dicts too) replaced
        by its result, gathered in one call.

        Raises:
            PlaitError: When the cluster cannot hand the value back.
        """
        client: Any = self._client
        if client is None:
            return resolve(value, self._is_ref, self._closed)
        try:
            return resolve(value, self._is_ref, client.gather)
        except Exception as exc:
            raise PlaitError(f"could not fetch a value from the Dask cluster: {exc}") from exc

    @staticmethod
    def _closed(refs: list[Any]) -> list[Any]:
        raise PlaitError(
            "cannot fetch values from a Dask executor that was shut down; fetch the "
            "outputs before shutting it down"
        )

    def shutdown(self, wait: bool = True) -> None:
        """Close the local cluster this executor started (or the client it opened to an
        address); a client that was passed in stays open."""
        with self._lock:
            client: Any = self._client
            cluster: Any = self._cluster
            if cluster is None and not isinstance(self._given, str):
                return
            self._client = self._cluster = None
        if client is not None:
            _SUBSCRIBED.discard(client.id)
            client.close()
        if cluster is not None:
            cluster.close()

    def __repr__(self) -> str:
        return "Dask()" if self._given is None else f"Dask({self._given!r})"


def _subscribe(client: Any) -> None:
    """Route the client's outcome events to :func:`_on_outcome` (once per client)."""
    if client.id in _SUBSCRIBED:
        return
    with _SUBSCRIBING:
        if client.id not in _SUBSCRIBED:
            client.subscribe_topic(TOPIC, _on_outcome)
            _SUBSCRIBED.add(client.id)


def _send_now(client: Any) -> None:
    """Have the client send the task just submitted at once (see :func:`_flush`)."""
    try:
        client.loop.add_callback(_flush, client)
    except Exception:  # a client closing: its messages go, or fail, the usual way
        return


def _flush(client: Any) -> None:
    """The client's event loop, right after the submission queued before this call: send
    the client's batch of messages to the scheduler now.

    A ``distributed`` client batches what it sends the scheduler and waits 10 ms after a
    message before the next batch; for a chain, where the driver submits each step when
    the previous one's outcome arrives, that wait was most of plait's time per step (10.7
    ms against 5.9 for the whole graph handed to Dask at once). Waking the batch here
    touches ``BatchedSend``'s private state, so a ``distributed`` without it is left alone
    (slower, never wrong).
    """
    comm = getattr(client, "scheduler_comm", None)
    try:
        if comm is not None and comm.buffer and comm.next_deadline is not None:
            comm.next_deadline = None
            comm.waker.set()
    except AttributeError:
        return
