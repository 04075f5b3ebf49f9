"""Running a pipeline: validate, plan, drive, and gather the result.

``run_pipeline`` (sync) and ``run_pipeline_async`` share :func:`_prepare` and
:func:`_conclude`; only the driving differs. A sync run of a pipeline with ``async def``
steps drives the same async loop with :func:`asyncio.run`, or, when the calling thread
already runs an event loop (a notebook), in a helper thread. A large run freezes the heap
that was there before it, for the garbage collector (:mod:`plait.run.collector`).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from plait.errors import PipelineValidationError, RunFailed, UsageError, suggest
from plait.observe.hooks import HookSet, RunInfo
from plait.results import RunResult, RunStatus
from plait.run.collector import run_collection
from plait.run.drivers import drive_async, drive_sync
from plait.run.executors import Executor, make_executor
from plait.run.finishing import Records
from plait.run.state import RunState
from plait.steps import Step

if TYPE_CHECKING:
    from plait.history.history import RunRecorder
    from plait.pipeline import Pipeline
    from plait.store.cache import RunCache

__all__ = ["RunGraph", "run_pipeline", "run_pipeline_async"]


def new_run_id() -> str:
    """A sortable, unique run id: milliseconds since the epoch then 8 random hex digits."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class RunGraph:
    """The steps a run actually had (pruned, with dynamic expansions), for presentation."""

    name: str
    order: list[Step]
    producers: Mapping[str, str]


@dataclass(slots=True)
class _Run:
    pipeline: Pipeline
    state: RunState
    executor: Executor
    owned: bool
    hooks: HookSet
    info: RunInfo
    start: float
    started: float
    limit: int | None
    on_error: str
    recorder: RunRecorder | None = None


def _prepare(
    pipeline: Pipeline,
    *,
    params: Mapping[str, Any] | None,
    outputs: Sequence[str] | None,
    executor: Any,
    store: Any,
    force: bool | Sequence[str],
    on_error: str,
    tags: Sequence[str] | Mapping[str, str] | None,
    hooks: Sequence[Any],
    config: Any,
    max_concurrency: int | None,
    progress: bool = False,
    origin: str | None = None,
    reuse_runs: frozenset[str] = frozenset(),
    target: str | None = None,
    trigger: Mapping[str, str] | None = None,
    run_id: str | None = None,
    history: Any = None,
) -> _Run:
    if on_error not in ("raise", "continue"):
        raise UsageError(f"on_error must be 'raise' or 'continue', got {on_error!r}")
    if isinstance(outputs, str):
        outputs = [outputs]
    merged = pipeline.run_params(params)
    plan = pipeline.plan(params, outputs, config)
    problems = [*plan.problems, *pipeline._param_problems(merged, plan)]
    if origin is not None:  # a resume: params the pipeline no longer reads are no error
        problems = [p for p in problems if p.kind != "unused_param"]
    if problems:
        raise PipelineValidationError(problems, pipeline.name)
    run_id = run_id or new_run_id()
    cache = _run_cache(pipeline, store, force, run_id, plan.order, reuse_runs, history)
    exe, owned = make_executor(executor)
    hook_set = HookSet([*pipeline.hooks, *hooks, *_built_in_hooks(plan.order, progress)])
    tag_tuple = tuple(tags.items() if isinstance(tags, Mapping) else tags or ())
    info = RunInfo(run_id, pipeline.name, merged, tuple(map(str, tag_tuple)), exe.name)
    state = RunState(
        plan,
        run_id=run_id,
        params=merged,
        config=pipeline.config if config is None else config,
        on_error=on_error,
        on_step_start=_step_start(hook_set, info),
        on_step_end=_step_end(hook_set, info),
        cache=cache,
    )
    if getattr(exe, "remote", False):
        state.fetch = exe.fetch  # type: ignore[attr-defined]
    recorder = None
    if cache is not None:
        from plait.run.recording import start_recording

        cache.store.check_secret()  # before the run is recorded as started

        recorder = start_recording(
            pipeline,
            state,
            cache,
            executor=exe.name,
            tags=info.tags,
            outputs=outputs,
            origin=origin,
            target=target,
            trigger=trigger,
        )
    hook_set.emit("on_run_start", run=info)
    return _Run(
        pipeline,
        state,
        exe,
        owned,
        hook_set,
        info,
        time.time(),
        time.perf_counter(),
        max_concurrency,
        on_error,
        recorder,
    )


def _built_in_hooks(steps: Sequence[Step], progress: bool) -> list[Any]:
    """``progress=True``: a progress display; steps with ``profile=True``: their profile."""
    added: list[Any] = []
    if progress:
        from plait.observe.progress import ProgressHook

        added.append(ProgressHook(total=len(steps)))
    if any(item.options.profile for item in steps):
        from plait.observe.profile import ProfileHook

        added.append(ProfileHook(only_flagged=True))
    return added


def _run_cache(
    pipeline: Pipeline,
    store: Any,
    force: bool | Sequence[str],
    run_id: str,
    steps: Sequence[Step],
    reuse_runs: frozenset[str] = frozenset(),
    history: Any = None,
) -> RunCache | None:
    """The run's cache, when a store is given (argument, pipeline or ``PLAIT_STORE``), or
    a history without one (:mod:`plait.run.history_only`)."""
    from plait.store.store import as_store

    if history is not None:
        if store is not None:
            raise UsageError(
                "run(history=...) records a run that has no store; with a store, give the "
                "store its history: Store(url, history=...)"
            )
        from plait.run.history_only import history_only_cache

        return history_only_cache(history, pipeline.name, run_id)
    chosen = as_store(store if store is not None else pipeline.store)
    if isinstance(force, str):
        force = [force]
    if force is not True and force:
        names = {s.name for s in steps}
        unknown = [f for f in force if f not in names]
        if unknown:
            raise UsageError(
                f"force= names {unknown[0]!r}, which is not a step of this run"
                f"{suggest(unknown[0], names)}"
            )
    if chosen is None:
        return None
    from plait.store.cache import RunCache

    forced: bool | frozenset[str] = True if force is True else frozenset(force or ())
    return RunCache(chosen, pipeline.name, run_id, forced, reuse_runs)


def _step_start(hooks: HookSet, info: RunInfo) -> Any:
    if not hooks.wants("on_step_start"):
        return None
    return lambda step: hooks.emit("on_step_start", step=step, run=info)


def _step_end(hooks: HookSet, info: RunInfo) -> Any:
    if not hooks.wants("on_step_end"):
        return None
    return lambda record: hooks.emit("on_step_end", step_result=record, run=info)


def _conclude(run: _Run, status: RunStatus | None = None) -> RunResult:
    state = run.state
    try:  # requested values come back (from remote workers too) before workers go away
        outputs = state.outputs() if status != "cancelled" else {}
        steps: Records = state.finish()
    finally:
        if run.owned:
            run.executor.shutdown(wait=status != "cancelled")
        if state.agent is not None:
            state.agent.cache.flush_parts()
    if status is None:
        status = "failed" if state.first_failure is not None else "succeeded"
    result = RunResult(
        run_id=state.run_id,
        pipeline=run.pipeline.name,
        status=status,
        outputs=outputs,
        steps=steps,
        # the run's producers, then the pipeline's (pruned steps too): looked up, not copied
        producers=ChainMap(state.producers, cast("dict[str, str]", run.pipeline.producers)),
        requested=state.requested,
        start_time=run.start,
        duration=time.perf_counter() - run.started,
        params=run.info.params,
    )
    # the plan's own producers, read-only (a dynamic run's are its state's own copy)
    result.graph = RunGraph(run.pipeline.name, list(state.order), MappingProxyType(state.producers))
    if run.recorder is not None:
        failure = state.first_failure
        error = None if failure is None else f"{failure[0]}: {failure[1]!r}"
        run.recorder.finish(status, time.time(), result.duration, error)
    run.hooks.emit("on_run_end", result=result)
    return result


def _abandon(run: _Run, exc: BaseException) -> None:
    """Record a run that ends by an exception escaping the scheduler as failed."""
    if run.state.agent is not None:
        run.state.agent.cache.flush_parts()
    if run.recorder is not None:
        duration = time.perf_counter() - run.started
        run.recorder.finish("failed", time.time(), duration, f"{type(exc).__name__}: {exc!r}")


def _raise_if_failed(run: _Run, result: RunResult) -> RunResult:
    failure = run.state.first_failure
    if failure is not None and run.on_error == "raise":
        name, error = failure
        raise RunFailed(result, name, error) from error
    return result


def run_pipeline(pipeline: Pipeline, **options: Any) -> RunResult:
    """Run ``pipeline`` to completion in the calling thread (see ``Pipeline.run``)."""
    from plait.pipeline import _BUILDER

    token = _BUILDER.set(None)  # a step called inside a running step is a plain call
    try:
        run = _prepare(pipeline, **options)
        with run_collection(len(run.state.order)):  # full collections skip the old heap
            try:
                if _needs_loop(run):
                    _drive_in_loop(run)
                else:
                    drive_sync(run.state, run.executor, run.limit)
            except KeyboardInterrupt:
                _conclude(run, "cancelled")
                raise
            except BaseException as exc:  # SystemExit from a step, a bug: never left running
                _abandon(run, exc)
                raise
            result = _conclude(run)
        return _raise_if_failed(run, result)
    finally:
        _BUILDER.reset(token)


async def run_pipeline_async(pipeline: Pipeline, **options: Any) -> RunResult:
    """Run ``pipeline`` on the running event loop (see ``Pipeline.run_async``)."""
    from plait.pipeline import _BUILDER

    token = _BUILDER.set(None)
    try:
        run = _prepare(pipeline, **options)
        with run_collection(len(run.state.order)):
            try:
                await drive_async(run.state, run.executor, run.limit)
            except (asyncio.CancelledError, KeyboardInterrupt):
                _conclude(run, "cancelled")
                raise
            except BaseException as exc:
                _abandon(run, exc)
                raise
            result = _conclude(run)
        return _raise_if_failed(run, result)
    finally:
        _BUILDER.reset(token)


def _needs_loop(run: _Run) -> bool:
    return run.state.has_async


def _drive_in_loop(run: _Run) -> None:
    """Drive with an event loop: our own, or a helper thread's if one already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(drive_async(run.state, run.executor, run.limit))
        return
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            asyncio.run(drive_async(run.state, run.executor, run.limit))
        except BaseException as exc:  # handed to the calling thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="plait-run", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
