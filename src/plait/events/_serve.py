"""``serve``: run a pipeline whenever one of its triggers fires, until stopped.

Design. One asyncio loop hosts everything: each trigger is a task that hands
:class:`~plait.events.Event`\\ s to :meth:`Server.submit`, and each run is a task driving
``run_pipeline_async`` (sync steps go to a helper thread, so the loop, and a webhook on
it, stay responsive). ``submit`` applies the overlap policy at once and returns a
:class:`Submission` whose run id is chosen before the run starts (the webhook answers
with it):

- ``overlap="skip"``: an event that comes while ``max_concurrent_runs`` (default 1) runs
  are running is dropped (logged, counted);
- ``overlap="queue"``: it waits, first in first out, in a queue of ``queue_size``;
- ``overlap="allow"``: runs overlap, up to ``max_concurrent_runs`` (default 32); more wait.

A run that fails, or whose params are invalid, is logged and counted: it never stops the
server. ``stop()`` (SIGTERM/SIGINT under :func:`serve`) stops the triggers, drops what
is queued, lets running runs finish for ``grace`` seconds, then cancels the rest, which
the runner records as ``cancelled``; a second signal cancels at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from plait.errors import PlaitError, UsageError
from plait.events._checkpoint import Checkpoints
from plait.events._triggers import Event, Trigger

if TYPE_CHECKING:
    from plait.pipeline import Pipeline
    from plait.store.store import Store

__all__ = ["Server", "Submission", "params_problems", "serve"]

_log = logging.getLogger("plait.events")
OVERLAPS = ("skip", "queue", "allow")
_KEPT = 10_000  # submissions remembered for GET /runs/{id}


@dataclass(slots=True, eq=False)
class Submission:
    """An event handed to the server, and what became of it.

    ``status``: ``queued``, ``running``, ``succeeded``, ``failed``, ``cancelled``,
    ``skipped`` (overlap policy or shutdown) or ``rejected`` (invalid params).
    """

    event: Event
    run_id: str
    status: str = "queued"
    error: str | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def accepted(self) -> bool:
        """Whether the event became (or will become) a run."""
        return self.status not in ("skipped", "rejected")

    @property
    def finished(self) -> bool:
        """Whether nothing more will happen to it."""
        return self._done.is_set()

    async def wait(self) -> str:
        """Wait until the run ended (or the event was dropped); its final status."""
        await self._done.wait()
        return self.status

    def _end(self, status: str, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self._done.set()


def params_problems(
    pipeline: Pipeline, params: Mapping[str, Any], config: Any = None
) -> list[dict[str, Any]]:
    """What is wrong with running ``pipeline`` with ``params`` (empty: nothing)."""
    merged = pipeline.run_params(params)
    plan = pipeline.plan(params, None, config)
    problems = [*plan.problems, *pipeline._param_problems(merged, plan)]
    return [{"kind": p.kind, "message": p.message, "step": p.step} for p in problems]


class Server:
    """Runs ``pipeline`` on its triggers' events (see :func:`serve` for the arguments)."""

    def __init__(
        self,
        pipeline: Pipeline,
        triggers: Sequence[Trigger],
        *,
        store: Any = None,
        overlap: str = "skip",
        max_concurrent_runs: int | None = None,
        catchup: bool = False,
        max_catchup: int = 100,
        grace: float = 30.0,
        queue_size: int = 1000,
        executor: Any = "sequential",
        hooks: Sequence[Any] = (),
        target: str | None = None,
        announce: Callable[[str], None] | None = None,
        params: Mapping[str, Any] | None = None,
        config: Any = None,
    ) -> None:
        from plait.store.store import as_store

        if overlap not in OVERLAPS:
            raise UsageError(f"overlap must be one of {OVERLAPS}, got {overlap!r}")
        if not triggers:
            raise UsageError("serve() needs at least one trigger, e.g. [Cron('0 * * * *')]")
        if max_concurrent_runs is not None and max_concurrent_runs < 1:
            raise UsageError(f"max_concurrent_runs must be at least 1, got {max_concurrent_runs}")
        names = [t.name for t in triggers]
        if len(set(names)) != len(names):
            raise UsageError(f"two triggers have the same name in {names}: pass name=")
        self.pipeline = pipeline
        self.triggers = list(triggers)
        self.store: Store | None = as_store(store if store is not None else pipeline.store)
        self.checkpoints = Checkpoints(self.store)
        self.overlap = overlap
        default = 32 if overlap == "allow" else 1
        self.max_concurrent_runs = max_concurrent_runs or default
        self.catchup = catchup
        self.max_catchup = max_catchup
        self.grace = grace
        self.queue_size = queue_size
        self.executor = executor
        self.hooks = list(hooks)
        self.target = target
        self.params = dict(params or {})
        self.config = config
        self.announce = announce or (lambda message: _log.warning("%s", message))
        self.counts: collections.Counter[str] = collections.Counter()
        self.ready = threading.Event()  # set once every trigger is listening
        self.stopped = threading.Event()
        self._submissions: collections.OrderedDict[str, Submission] = collections.OrderedDict()
        self._waiting: collections.deque[Submission] = collections.deque()
        self._running: dict[Submission, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._force = False
        self._pending_ready = {id(t) for t in self.triggers}
        self._after_stop: list[Callable[[], Awaitable[None]]] = []

    # -- events -> runs -------------------------------------------------------------
    def submit(self, event: Event) -> Submission:
        """Turn ``event`` into a run now, later, or never (by the overlap policy).

        Call it on the server's loop (triggers do); from another thread use
        :meth:`submit_threadsafe`.
        """
        from plait.run.runner import new_run_id

        if self.params:
            event = replace(event, params={**self.params, **event.params})
        submission = Submission(event, new_run_id())
        self._remember(submission)
        self.counts["events"] += 1
        busy = len(self._running) >= self.max_concurrent_runs
        if self._stopping:
            self._drop(submission, "the server is stopping")
        elif busy and self.overlap == "skip":
            self._drop(submission, "a run is already running (overlap='skip')")
        elif busy and len(self._waiting) >= self.queue_size:
            self._drop(submission, f"the queue is full ({self.queue_size} waiting)")
        elif busy:
            self._waiting.append(submission)
        else:
            self._start(submission)
        return submission

    def submit_threadsafe(self, event: Event) -> Submission:
        """:meth:`submit` from another thread (waits for the loop to take it)."""
        import concurrent.futures as cf

        if self._loop is None:
            raise UsageError("the server is not running")
        future: cf.Future[Submission] = cf.Future()

        def call() -> None:
            future.set_result(self.submit(event))

        self._loop.call_soon_threadsafe(call)
        return future.result()

    def status(self, run_id: str) -> dict[str, Any] | None:
        """What the server knows of ``run_id``, else what the history does, else None."""
        found = self._submissions.get(run_id)
        if found is not None:
            return {
                "run_id": run_id,
                "status": found.status,
                "error": found.error,
                "trigger": found.event.trigger,
            }
        if self.store is None:
            return None
        try:
            record = self.store.history.run(run_id)
        except (KeyError, PlaitError, OSError):
            return None
        return {
            "run_id": record.run_id,
            "status": record.status,
            "error": getattr(record, "error", None),
            "trigger": getattr(record, "trigger", None),
        }

    def _remember(self, submission: Submission) -> None:
        self._submissions[submission.run_id] = submission
        while len(self._submissions) > _KEPT:
            self._submissions.popitem(last=False)

    def _drop(self, submission: Submission, why: str) -> None:
        status = "cancelled" if self._stopping else "skipped"  # cancelled: may come again
        self.counts[status] += 1
        _log.info("%s %s: not run, %s", submission.event.kind, submission.event.name, why)
        submission._end(status, why)

    def _start(self, submission: Submission) -> None:
        submission.status = "running"
        self.counts["started"] += 1
        task = asyncio.get_running_loop().create_task(self._execute(submission))
        self._running[submission] = task

    def _pump(self) -> None:
        while self._waiting and len(self._running) < self.max_concurrent_runs:
            if self._stopping:
                self._drop(self._waiting.popleft(), "the server is stopping")
            else:
                self._start(self._waiting.popleft())

    async def _execute(self, submission: Submission) -> None:
        from plait.errors import PipelineValidationError
        from plait.run.runner import run_pipeline_async

        event = submission.event
        try:
            result = await run_pipeline_async(
                self.pipeline,
                params=event.params,
                outputs=None,
                executor=self.executor,
                store=self.store,
                force=False,
                on_error="continue",
                tags=None,
                hooks=self.hooks,
                config=self.config,
                max_concurrency=None,
                target=self.target,
                trigger=event.trigger,
                run_id=submission.run_id,
            )
            submission._end(result.status)
        except asyncio.CancelledError:
            submission._end("cancelled", "stopped by the server's shutdown")
        except PipelineValidationError as exc:
            _log.error("%s %s: run not started: %s", event.kind, event.name, exc)
            submission._end("rejected", str(exc))
        except Exception as exc:  # a failing run never stops the server
            _log.exception("%s %s: run %s failed", event.kind, event.name, submission.run_id)
            submission._end("failed", f"{type(exc).__name__}: {exc}")
        finally:
            self.counts[submission.status] += 1
            self._running.pop(submission, None)
            self._pump()

    # -- lifecycle ------------------------------------------------------------------
    def trigger_ready(self, trigger: Trigger) -> None:
        """Triggers that listen (the webhook) call this once they do."""
        self._pending_ready.discard(id(trigger))
        if not self._pending_ready:
            self.ready.set()

    def after_stop(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Await ``cleanup`` once the last run has ended (triggers close connections)."""
        self._after_stop.append(cleanup)

    def stop(self, force: bool = False) -> None:
        """Stop: no new runs; running ones get ``grace`` seconds (none if ``force``).

        Safe to call from any thread or a signal handler.
        """
        loop, stop = self._loop, self._stop
        if loop is None or stop is None:
            return

        def request() -> None:
            self._force = self._force or force
            self._stopping = True
            stop.set()
            if self._force:
                for task in list(self._running.values()):
                    task.cancel()

        if self.stopped.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: stopped
            loop.call_soon_threadsafe(request)

    async def run(self, *, handle_signals: bool = False) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT with ``handle_signals``)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for trigger in self.triggers:
            if not hasattr(trigger, "listening"):
                self.trigger_ready(trigger)
        watching = [asyncio.ensure_future(t.run(self)) for t in self.triggers]
        signals = self._install_signals() if handle_signals else []
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait([stopper, *watching], return_when=asyncio.FIRST_COMPLETED)
            failed = [t for t in done if t is not stopper and not t.cancelled() and t.exception()]
            self._stopping = True
            for task in [stopper, *watching]:
                task.cancel()
            await asyncio.gather(*watching, return_exceptions=True)
            await self._drain()
            for cleanup in self._after_stop:
                try:
                    await cleanup()
                except Exception:
                    _log.exception("a trigger's cleanup failed")
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
        finally:
            for sig in signals:
                self._loop.remove_signal_handler(sig)
            self.stopped.set()

    async def _drain(self) -> None:
        self._pump()  # drops what waits
        running = list(self._running.values())
        if running and not self._force:
            _log.warning("stopping: waiting up to %g s for %d run(s)", self.grace, len(running))
            await asyncio.wait(running, timeout=self.grace)
        for task in self._running.values():
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _signalled(self) -> None:
        """The first SIGTERM/SIGINT stops gracefully; a second cancels running runs."""
        self.stop(force=self._stopping)

    def _install_signals(self) -> list[int]:
        if threading.current_thread() is not threading.main_thread() or self._loop is None:
            return []
        installed: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._signalled)
            installed.append(sig)
        return installed


@runtime_checkable
class _OneTrigger(Protocol):
    kind: str
    name: str


def serve(
    pipeline: Pipeline,
    triggers: Sequence[Trigger] | Trigger,
    *,
    store: Any = None,
    overlap: str = "skip",
    max_concurrent_runs: int | None = None,
    catchup: bool = False,
    max_catchup: int = 100,
    grace: float = 30.0,
    executor: Any = "sequential",
    hooks: Sequence[Any] = (),
    announce: Callable[[str], None] | None = None,
    target: str | None = None,
    params: Mapping[str, Any] | None = None,
    config: Any = None,
) -> Server:
    """Run ``pipeline`` on each event of ``triggers`` until SIGTERM/SIGINT.

    Each run is recorded with ``RunRecord.trigger`` = ``{"kind", "name", "event_id"}``.

    Args:
        pipeline: The pipeline to run.
        triggers: :class:`Cron`, :class:`Every`, :class:`Webhook`, :class:`FileWatch`,
            :class:`RedisStream` objects (one or a list).
        store: Where runs are recorded (and cron/stream checkpoints kept).
        overlap: ``"skip"``, ``"queue"`` or ``"allow"`` (see :mod:`plait.events`).
        max_concurrent_runs: Runs at once (default 1; 32 with ``overlap="allow"``).
        catchup: Run once per cron tick missed while down (at most ``max_catchup``).
        max_catchup: The most missed ticks run on restart.
        grace: Seconds running runs get to finish on stop before being cancelled.
        executor: The executor of each run.
        hooks: Hooks of each run (emitters, logging...).
        announce: Where start-up messages (a generated webhook token) go; default the
            ``plait.events`` logger.
        target: The target recorded with each run (the CLI sets it).
        params: Params of every run (an event's own params win).
        config: The config of every run (see ``Pipeline.run``).

    Returns:
        The stopped :class:`Server` (its ``counts`` say what happened).

    Raises:
        UsageError: For bad options, or a trigger that cannot start (a busy port).
    """
    chosen: list[Trigger] = [triggers] if isinstance(triggers, _OneTrigger) else list(triggers)
    server = Server(
        pipeline,
        chosen,
        store=store,
        overlap=overlap,
        max_concurrent_runs=max_concurrent_runs,
        catchup=catchup,
        max_catchup=max_catchup,
        grace=grace,
        executor=executor,
        hooks=hooks,
        announce=announce,
        target=target,
        params=params,
        config=config,
    )
    asyncio.run(server.run(handle_signals=True))
    return server
