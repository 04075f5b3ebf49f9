"""Runs that start from a recorded run: resume, rerun, and debugging one step.

A resume is an ordinary run with the recorded run's params and config, allowed to reuse
that run's own checkpoints (entries written by the run, even for ``cache=False`` or
``expire.on_complete()`` steps); a rerun also forces the named steps and all their
descendants. Both are new runs linked to their origin (``origin_run_id``).

The recorded params and config are read back by ``History.load_inputs``: JSON where they
round-tripped, a pickle otherwise, whose signature is checked first when the store has a
secret (nothing planted in a shared history is unpickled). A run whose process is still
alive is not resumed: both runs would compute the same steps at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from plait.errors import PlaitError, UsageError, suggest
from plait.store.store import Store, as_store

if TYPE_CHECKING:
    from plait.history.history import History
    from plait.pipeline import Pipeline
    from plait.results import RunResult

__all__ = ["debug_step", "rerun", "resume"]


def _store(pipeline: Pipeline, store: Any) -> Store:
    chosen = as_store(store if store is not None else pipeline.store)
    if chosen is None:
        raise UsageError(
            "resume, rerun and debug read the run's record from a store: pass store=... "
            "(the one the run used) or set PLAIT_STORE"
        )
    return chosen


def _origin(history: History, run_id: str) -> tuple[str, dict[str, Any], frozenset[str]]:
    full = history.resolve(run_id)
    inputs = history.load_inputs(full)
    if inputs is None:
        raise PlaitError(f"run {full} recorded no params/config to resume from")
    chain, current = {full}, history.run(full).origin_run_id
    while current and current not in chain:  # a resume of a resume may reuse them all
        chain.add(current)
        current = history.run(current).origin_run_id
    return full, inputs, frozenset(chain)


def resume(pipeline: Pipeline, run_id: str, store: Any = None, **options: Any) -> RunResult:
    """Re-run what failed, was skipped or never ran in ``run_id``; reuse what succeeded."""
    from plait.run.runner import run_pipeline

    chosen = _store(pipeline, store)
    full, inputs, chain = _origin(chosen.history, run_id)
    _refuse_live(chosen.history, full)
    options.setdefault("outputs", inputs.get("outputs"))
    return run_pipeline(
        pipeline,
        params=inputs["params"],
        config=inputs["config"],
        store=chosen,
        origin=full,
        reuse_runs=chain,
        **_defaults(options),
    )


def _refuse_live(history: History, run_id: str) -> None:
    """A run still running (its process alive) is not resumed."""
    record = history.run(run_id)
    if record.status == "running" and record.pid is not None:
        raise UsageError(
            f"run {run_id} is still running (pid {record.pid} on {record.host}): wait for it "
            "to end, or stop it, then resume it"
        )


def rerun(
    pipeline: Pipeline, run_id: str, steps: Sequence[str], store: Any = None, **options: Any
) -> RunResult:
    """Re-run ``steps`` and all their descendants; reuse the rest of ``run_id``."""
    from plait.run.runner import run_pipeline

    if isinstance(steps, str):
        steps = [steps]
    graph = pipeline.graph
    unknown = [s for s in steps if s not in graph.steps]
    if unknown:
        raise UsageError(
            f"rerun: {unknown[0]!r} is not a step of pipeline {pipeline.name!r}"
            f"{suggest(unknown[0], graph.steps)}"
        )
    chosen = _store(pipeline, store)
    full, inputs, chain = _origin(chosen.history, run_id)
    options.setdefault("outputs", inputs.get("outputs"))
    forced = sorted(graph.descendants(steps))
    return run_pipeline(
        pipeline,
        params=inputs["params"],
        config=inputs["config"],
        store=chosen,
        origin=full,
        reuse_runs=chain,
        **_defaults({**options, "force": forced}),
    )


def _defaults(options: dict[str, Any]) -> dict[str, Any]:
    merged = {
        "outputs": None,
        "executor": "sequential",
        "force": False,
        "on_error": "raise",
        "tags": None,
        "hooks": (),
        "max_concurrency": None,
    }
    merged.update(options)
    return merged


def debug_step(pipeline: Pipeline, run_id: str, step: str, store: Any = None) -> Any:
    """Call ``step`` in-process on the exact inputs it had in ``run_id``; return its value.

    Set a breakpoint in the step (or run under ``pdb``) to step through it.
    """
    chosen = _store(pipeline, store)
    history = chosen.history
    full, inputs, _ = _origin(history, run_id)
    item = pipeline.graph.steps.get(step)
    if item is None:
        raise UsageError(
            f"debug: {step!r} is not a step of pipeline {pipeline.name!r}"
            f"{suggest(step, pipeline.graph.steps)}"
        )
    record = history.run(full)
    plan = pipeline.plan(inputs["params"], None, inputs["config"], check_params=False)
    kwargs = dict(item.bound)
    from plait.graph import FROM_DEFAULT, FROM_STEP
    from plait.run.state import RunState

    state = RunState(
        plan,
        run_id=full,
        params=pipeline.run_params(inputs["params"]),
        config=inputs["config"],
        on_error="continue",
    )
    for source in plan.sources[step]:
        if source.kind == FROM_DEFAULT:
            continue  # the function's own default applies
        if source.kind == FROM_STEP:
            kwargs[source.param] = _recorded_value(
                chosen, record.steps, source.producer or "", source.data
            )
        else:
            kwargs[source.param] = state._static_value(source)
    from plait.run.context import StepContext, reset_context, set_context

    token = set_context(StepContext(full, step))  # current() works in the debugged step
    try:
        return item.func(**kwargs)
    finally:
        reset_context(token)


def _recorded_value(store: Store, steps: dict[str, Any], producer: str, data: str) -> Any:
    record = steps.get(producer)
    if record is None or record.cache_key is None:
        raise PlaitError(
            f"the run has no stored value for {data!r} (step {producer!r} did "
            "not finish in that run)"
        )
    entry = store.lookup(record.cache_key)
    if entry is None or data not in entry.outputs:
        raise PlaitError(
            f"the value of {data!r} from step {producer!r} is no longer in the "
            f"store {store.url} (collected by gc?)"
        )
    return store.get(entry.outputs[data])
