"""The scheduler's state machine: which steps are ready, what each one receives, and
what its outcome does to the rest of the run.

Design note
-----------
Like :class:`graphlib.TopologicalSorter`, the state never runs anything: a driver asks it
for ready work (:meth:`RunState.next_tasks`), runs the tasks however its executor does,
and reports each result back (:meth:`RunState.complete`). All policy lives here, once, for
every executor: ``on_upstream`` (skip / receive / fail), ``when`` predicates, optional
steps, ``on_error`` (stop scheduling on the first failure, or continue), map elements and
their success ratio, dynamic steps that add a pipeline mid-run, and memory release. The
map and dynamic parts live in :mod:`plait.run.mapping` and :mod:`plait.run.dynamic`, and
making a finished step's record in :mod:`plait.run.finishing`; all work on this state.

Glossary of the state:

- ``waiting[s]``: how many upstream steps of ``s`` have not finished; ``s`` is ready at 0.
- ``ready``: steps whose upstream all finished, in the order they became ready (FIFO),
  so a fast chain never waits for a slow sibling.
- ``seen[s]``: what consumers of ``s`` see: ``True`` for success, or an ``Err`` /
  ``Skipped`` (an optional step's failure is seen as ``Skipped``). A step that finished in
  the lean lane (:mod:`plait.run.inline`) is not written there: it is seen as ``True``
  through ``done``, one byte per step of the plan.
- ``refs[d]``: how many steps that consume data ``d`` have not finished; when it reaches 0
  and ``d`` was not requested, the value is dropped (memory is released as early as
  possible).
- ``results[s]``: the records made while the run goes, for whoever needs them then
  (hooks, the history, the store). When nothing does (:meth:`RunState.can_defer`), a
  success is kept compactly instead: its ``TaskResult`` in ``deferred``, or, in the lean
  lane, a byte in ``done`` and two clock readings in ``times``;
  :class:`~plait.run.finishing.Records` makes every record when ``RunResult.steps`` is
  first read.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from plait.errors import (
    MutatedInputError,
    UpstreamFailed,
)
from plait.graph import (
    FROM_CONFIG,
    FROM_DATASET,
    FROM_PARAM,
    Plan,
    Source,
    config_lookup,
)
from plait.io._base import DatasetError
from plait.results import (
    RELEASED,
    Err,
    ErrorInfo,
    Ok,
    Outcome,
    Skipped,
    StepResult,
    StepStatus,
)
from plait.run import dynamic, finishing, mapping
from plait.run.caching import CacheAgent
from plait.run.compiled import Compiled, Node, compile_plan
from plait.run.dynamic import Expansion
from plait.run.finishing import Records
from plait.run.mapping import MapState
from plait.run.task import Task, TaskResult
from plait.steps import MISSING, Step

if TYPE_CHECKING:
    from plait.run.datasets import RunDatasets
    from plait.store.cache import RunCache, Ticket

__all__ = ["RunState"]


class RunState:
    """The progress of one run over a :class:`~plait.graph.Plan`."""

    def __init__(
        self,
        plan: Plan,
        *,
        run_id: str,
        params: Mapping[str, Any],
        config: Any,
        on_error: str,
        on_step_start: Callable[[Step], None] | None = None,
        on_step_end: Callable[[StepResult], None] | None = None,
        cache: RunCache | None = None,
    ) -> None:
        self.run_id = run_id
        self.params = params
        self.config = config
        self.stop_on_error = on_error == "raise"
        self.requested = plan.requested
        self.on_step_start = on_step_start
        self.listeners: list[Callable[[StepResult], None]] = []
        if on_step_end is not None:
            self.listeners.append(on_step_end)
        # told when a finished step's record changes (a hit recomputed: artifact damaged)
        self.revised: list[Callable[[StepResult], None]] = []
        compiled = getattr(plan, "compiled", None)
        if compiled is None:
            compiled = compile_plan(plan.order, plan.sources, plan.upstream)
            plan.compiled = compiled
        # shared with the compiled plan until a dynamic step adds to them (_add_dynamic)
        self.nodes: dict[str, Node] = compiled.nodes
        self.producers: dict[str, str] = compiled.producers
        self.order: list[Step] = compiled.order
        self._shared = True
        self.has_async = compiled.has_async
        self.waiting: dict[str, int] = dict(compiled.waiting)
        self.refs: dict[str, int] = dict(compiled.refs)
        self.ready: deque[str] = deque(compiled.ready)
        self.values: dict[str, Any] = {}
        self.seen: dict[str, bool | Err | Skipped] = _Seen(self)
        self.results: dict[str, StepResult] = {}
        # the lean lane (run/inline.py): which steps of the plan finished there, their
        # perf_counter readings (start, end) and the metrics of those that asked for them
        self.done = bytearray()
        self.times: array[float] = array("d")
        self.lean_metrics: dict[str, dict[str, Any]] = {}
        # successes recorded compactly by the other drivers when records can wait
        self.deferring = False
        self.deferred: dict[str, TaskResult] = {}
        self.offset = time.time() - time.perf_counter()  # perf_counter -> wall clock
        self.running: set[str] = set()
        self.maps: dict[str, MapState] = {}
        self.expansions: dict[str, Expansion] = {}  # namespace -> a dynamic pipeline running
        self.first_failure: tuple[str, BaseException] | None = None
        self.stopped = False
        self.reasons: dict[str, str] = {}
        self.key_parts: dict[str, dict[str, Any]] = {}  # what each step's key was made of
        self.agent = CacheAgent(cache, self) if cache is not None else None
        self.fetch: Callable[[Any], Any] | None = None  # set for a remote executor
        self.before_execute: Callable[[], None] | None = None  # e.g. commit step records
        self.changed: dict[str, str] = {}  # data a failed step changed in place -> that step
        self.datasets = _datasets_of(plan, cache, run_id)  # sources and sinks (plait.io)

    def _static_value(self, source: Source) -> Any:
        if source.kind == FROM_PARAM:
            return self.params[source.data]
        if source.kind == FROM_DATASET and self.datasets is not None:
            return self.datasets.load(source.data)
        if source.data == "config":
            return self.config
        if source.kind == FROM_CONFIG:
            return config_lookup(self.config, [source.data])
        return config_lookup(self.config, source.data.split(".")[1:])

    def _add_dynamic(self, compiled: Compiled) -> None:
        if self._shared:  # the plan's own tables are never written
            self.nodes, self.producers = dict(self.nodes), dict(self.producers)
            self.order = list(self.order)
            self._shared = False
        self.nodes.update(compiled.nodes)
        self.waiting.update(compiled.waiting)
        for data, count in compiled.refs.items():
            self.refs[data] = self.refs.get(data, 0) + count
        self.ready.extend(compiled.ready)
        self.producers.update(compiled.producers)
        self.order.extend(compiled.order)

    # -- the driver's protocol -----------------------------------------------------
    @property
    def active(self) -> bool:
        """True while anything is ready, running or waiting on map elements."""
        return bool(self.ready or self.running)

    def next_tasks(self, limit: int | None = None) -> list[Task]:
        """Ready work to dispatch now (at most ``limit`` tasks); decisions that need no
        execution (skips, upstream failures) are taken here and cascade immediately."""
        tasks: list[Task] = []
        if self.maps:
            for name in list(self.maps):
                self._map_tasks(name, tasks, limit)
        while self.ready and (limit is None or len(tasks) < limit):
            name = self.ready.popleft()
            if self.stopped:
                continue
            task = self._start(name)
            if task is None:
                continue
            if task.step.options.map is not None and task.element is MISSING:
                self._map_tasks(name, tasks, limit)
            else:
                tasks.append(task)
        if tasks and self.before_execute is not None:
            self.before_execute()
        return tasks

    def next_task(self) -> Task | None:
        """The next task to run, for a driver that runs one at a time (the fast path)."""
        if self.maps:
            tasks = self.next_tasks(1)
            return tasks[0] if tasks else None
        ready = self.ready
        while ready and not self.stopped:
            task = self.task_for(ready.popleft())
            if task is not None:
                return task
        return None

    def task_for(self, name: str) -> Task | None:
        """Start the ready step ``name``: its task (a map step's first element's), or None
        when it ended without one (skipped, failed upstream, a cache hit, no element)."""
        task = self._start(name)
        if task is None:
            return None
        if task.step.options.map is not None and task.element is MISSING:
            tasks: list[Task] = []
            self._map_tasks(name, tasks, 1)
            if not tasks:
                return None
            task = tasks[0]
        if self.before_execute is not None:
            self.before_execute()
        return task

    def complete(self, task: Task, result: TaskResult) -> None:
        """Record the result of a dispatched task and release what it unblocks."""
        name = task.step.name
        if isinstance(result.error, MutatedInputError) and result.error.changed:
            finishing.note_changed(self, name, result.error.input)
        if result.ok and task.step.options.dynamic and self._expand_dynamic(name, task, result):
            return  # it ends when the pipeline it returned does (run/dynamic.py)
        if task.element is not MISSING:
            self._complete_element(name, task, result)
            return
        self._finish_step(name, result, ticket=task.ticket)

    def stop(self) -> None:
        """Stop scheduling: nothing new starts (a failure under on_error="raise", or Ctrl-C)."""
        self.stopped = True

    # -- starting a step -----------------------------------------------------------
    def _start(self, name: str) -> Task | None:
        node = self.nodes[name]
        item = node.step
        policy = item.options.on_upstream
        seen = self.seen
        bad = None
        for up in node.upstream:
            if seen[up] is not True:
                bad = (up, seen[up])
                break
        if bad is not None and policy != "receive":
            up, outcome = bad
            failed = isinstance(outcome, Err) or self.results[up].status == "failed"
            what = "failed" if failed else "was skipped"
            reason = f"upstream step {up!r} {what}"
            if policy == "skip":
                self._decide(name, Skipped(reason), "skipped", reason)
            else:
                self._decide(
                    name,
                    Err(UpstreamFailed(f"step {name!r} failed: {reason}", step=name)),
                    "failed",
                    reason,
                )
            return None
        if self.changed and finishing.refuse_changed(self, node):
            return None
        kwargs = None
        if item.options.when is not None:
            kwargs = self._kwargs(node, policy, local=True)
            try:
                go = _call_predicate(item.options.when, kwargs)
            except Exception as exc:
                self._decide(name, Err(exc), "failed", "when= predicate raised")
                return None
            if not go:
                self._decide(
                    name, Skipped("when= predicate is false"), "skipped", "when= predicate is false"
                )
                return None
        ticket = None
        if self.agent is not None and not item.options.dynamic:
            try:
                entry, reason, ticket = self.agent.check(node)
            except DatasetError as exc:  # a source's file went missing since validation
                self._decide(name, Err(exc), "failed", "reading a dataset failed")
                return None
            self.reasons[name] = reason
            if ticket is not None:
                self.key_parts[name] = ticket.parts
            if entry is not None and ticket is not None:
                finishing.record_hit(self, name, node, entry, ticket.key)
                return None
        self.running.add(name)
        if self.on_step_start is not None:
            self.on_step_start(item)
        if kwargs is None or self.fetch is not None:
            try:
                kwargs = self._kwargs(node, policy, local=item.is_async)  # async: on the driver
            except DatasetError as exc:  # a source that cannot be loaded fails its readers
                self.running.discard(name)
                self._decide(name, Err(exc), "failed", "loading a dataset failed")
                return None
        task = Task(item, kwargs, self.run_id, ticket=ticket)
        if item.options.map is not None:
            return self._begin_map(name, task)
        return task

    def _kwargs(self, node: Node, policy: str, local: bool = False) -> dict[str, Any]:
        """The arguments of a step that is about to execute (lazy values are loaded).

        With a remote executor, values are the engine's references and stay remote,
        except when ``local`` (a ``when`` predicate, an ``async def`` step, which runs on
        the driver's event loop) or for a receiving step, whose outcome objects the engine
        cannot look into.
        """
        item = node.step
        kwargs = dict(item.bound) if item.bound else {}
        if self.fetch is not None and local and kwargs:  # a dynamic step's inner bindings
            kwargs = {param: self.fetch(value) for param, value in kwargs.items()}
        for source in node.statics:
            kwargs[source.param] = self._static_value(source)
        load = self.agent.load if self.agent is not None else self.values.__getitem__
        if self.fetch is not None and (local or policy == "receive"):
            remote_load = load
            fetch = self.fetch

            def load(data: str) -> Any:
                return fetch(remote_load(data))

        if policy == "receive":
            for param, data, producer in node.inputs:
                seen = self.seen[producer]
                kwargs[param] = Ok(load(data)) if seen is True else seen
        else:
            for param, data, _ in node.inputs:
                kwargs[param] = load(data)
        return kwargs

    def _decide(self, name: str, outcome: Outcome, status: StepStatus, reason: str) -> None:
        """Record an outcome reached without running the step."""
        error = outcome.error if isinstance(outcome, Err) else None
        record = StepResult(
            name,
            status,
            outcome,
            reason=reason,
            error=None if error is None else ErrorInfo.from_exception(error),
        )
        self._record(name, record, error)

    # -- map steps (run/mapping.py) and dynamic steps (run/dynamic.py) --------------------
    def _begin_map(self, name: str, task: Task) -> Task | None:
        return mapping.begin(self, name, task)

    def _map_tasks(self, name: str, tasks: list[Task], limit: int | None) -> None:
        mapping.dispatch(self, name, tasks, limit)

    def _complete_element(self, name: str, task: Task, result: TaskResult) -> None:
        mapping.complete_element(self, name, task, result)

    def _expand_dynamic(self, name: str, task: Task, result: TaskResult) -> bool:
        return dynamic.expand(self, name, task, result)

    def _finish_dynamic(self, prefix: str) -> None:
        dynamic.finish(self, prefix)

    # -- finishing (run/finishing.py) ---------------------------------------------------
    def _finish_step(
        self,
        name: str,
        result: TaskResult,
        failed: dict[Any, ErrorInfo] | None = None,
        ticket: Ticket | None = None,
        *,
        element_attempts: dict[Any, int] | None = None,
        cached: bool = False,
    ) -> None:
        finishing.finish_step(
            self, name, result, failed, ticket, element_attempts=element_attempts, cached=cached
        )

    def _record(self, name: str, record: StepResult, error: BaseException | None) -> None:
        node = self.nodes[name]
        self.results[name] = record
        for listener in self.listeners:
            listener(record)
        if record.status == "ok":
            self.seen[name] = True
        elif record.status == "failed" and node.step.options.optional:
            self.seen[name] = Skipped(f"optional step {name!r} failed")
        elif isinstance(record.outcome, Err | Skipped):
            self.seen[name] = record.outcome
        parent = node.dynamic_parent
        expansion = self.expansions.get(parent) if parent is not None else None
        if record.status == "failed" and expansion is not None:
            expansion.failed.append(record)
        tolerated = node.step.options.optional or (expansion is not None and expansion.tolerant)
        if record.status == "failed" and not tolerated:  # tolerant: a map element's failure
            if self.first_failure is None and error is not None:
                self.first_failure = (name, error)
            if self.stop_on_error:
                self.stop()
        self._advance(name, node, expansion)

    def _advance(self, name: str, node: Node, expansion: Expansion | None) -> None:
        """Step ``name`` ended: release what it read, ready its consumers."""
        for data in node.consumed:
            self._release(data)
        waiting, ready = self.waiting, self.ready
        for child in node.downstream:
            count = waiting[child] - 1
            waiting[child] = count
            if count == 0:
                ready.append(child)
        parent = node.dynamic_parent
        if expansion is not None and parent is not None:
            expansion.waiting.discard(name)
            if not expansion.waiting:
                self._finish_dynamic(parent)

    def can_defer(self) -> bool:
        """True when nothing needs a step's record before the run ends (no store, no
        hook, no history, no datasets, no remote values): successes can be recorded
        compactly (``deferred``, the lean lane's arrays) and their records made when
        ``RunResult.steps`` is first read."""
        return (
            self.agent is None
            and not self.listeners
            and not self.revised
            and self.on_step_start is None
            and self.before_execute is None
            and self.datasets is None
            and self.fetch is None
        )

    def _release(self, data: str) -> None:
        count = self.refs.get(data, 0) - 1
        self.refs[data] = count
        if count <= 0 and self.requested is not None and data not in self.requested:
            self.values.pop(data, None)
            producer = self.producers.get(data)
            record = self.results.get(producer) if producer is not None else None
            if record is not None and isinstance(record.outcome, Ok):
                value = record.outcome.value
                record.outcome = Ok(
                    {**value, data: RELEASED}
                    if isinstance(value, dict) and len(self.nodes[record.name].step.outputs) > 1
                    else RELEASED
                )

    def finish(self) -> Records:
        """What makes every step's record, in plan order, when first asked for; steps
        that never started are ``not_run``.

        Call after :meth:`outputs`, which loads the kept values of cache hits.
        """
        return Records(self)

    def _local(self, value: Any) -> Any:
        """A value here, in this process (fetched from a remote executor if need be)."""
        return value if self.fetch is None else self.fetch(value)

    def outputs(self) -> dict[str, Any]:
        """The values to hand back: all of them, or those requested (loaded, fetched)."""
        names = [k for k in self.values if self.requested is None or k in self.requested]
        for name in names:
            value = self.agent.load(name) if self.agent is not None else self.values[name]
            self.values[name] = self._local(value)
        return {k: self.values[k] for k in names}


class _Seen(dict[str, "bool | Err | Skipped"]):
    """``seen``: a step that finished in the lean lane is ``True`` without an entry."""

    __slots__ = ("run",)

    def __init__(self, run: RunState) -> None:
        super().__init__()
        self.run = run

    def __missing__(self, name: str) -> bool:
        run = self.run
        node = run.nodes.get(name)
        index = -1 if node is None else node.lean
        if 0 <= index < len(run.done) and run.done[index]:
            return True
        raise KeyError(name)


def _datasets_of(plan: Plan, cache: RunCache | None, run_id: str) -> RunDatasets | None:
    if not plan.datasets:
        return None
    from plait.run.datasets import RunDatasets

    return RunDatasets.for_plan(plan, cache, run_id)


_PREDICATE_PARAMS: dict[Any, tuple[tuple[str, ...], bool]] = {}


def _call_predicate(predicate: Callable[..., Any], kwargs: dict[str, Any]) -> bool:
    import inspect

    spec = _PREDICATE_PARAMS.get(predicate)
    if spec is None:
        parameters = inspect.signature(predicate).parameters.values()
        names = tuple(p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        spec = (names, any(p.kind is p.VAR_KEYWORD for p in parameters))
        _PREDICATE_PARAMS[predicate] = spec
    names, takes_all = spec
    given = kwargs if takes_all else {k: v for k, v in kwargs.items() if k in names}
    return bool(predicate(**given))
