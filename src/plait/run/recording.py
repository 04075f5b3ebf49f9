"""Recording a run in the store's history: the run record at start, step records as
steps end, the final status at the end.

What a record says a step received is what it received: the params it read, and the
defaults of the parameters nothing fed (``def f(seed=42)`` run without ``seed`` records
``seed=42``, for the run and for the step). The pipeline's structure goes with the run
record, so its report draws the edges without the pipeline's code.

Assets a step returned (:mod:`plait.assets`) come back with its metrics; they are
written to the catalog with the step's record, under the output's data version, the
run's pipeline, experiment and the store's project.

Recording never fails a run: a value the history cannot show is shown by its type (see
:mod:`plait.history.values`), and a write that fails is a logged warning. Only a history
that cannot be opened at all (damaged: :class:`~plait.history.db.DamagedHistoryError`;
a newer schema; an unreachable server) fails the run, before any step runs.
"""

from __future__ import annotations

import logging
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plait.graph import FROM_CONFIG, FROM_CONFIG_PATH, FROM_PARAM
from plait.history.db import DamagedHistoryError
from plait.history.recorder import step_rows
from plait.history.records import structure_json, structure_row
from plait.history.values import shown
from plait.results import StepResult
from plait.run.context import logs_of
from plait.store.fingerprint import pipeline_fingerprint

if TYPE_CHECKING:
    from plait.graph import Graph
    from plait.history.history import RunRecorder
    from plait.pipeline import Pipeline
    from plait.run.compiled import Node
    from plait.run.state import RunState
    from plait.store.cache import RunCache

__all__ = ["start_recording"]

_log = logging.getLogger("plait.history")


def _config_read(state: RunState) -> dict[str, Any]:
    """The config values the run's steps read, by their data names."""
    read: dict[str, Any] = {}
    for node in state.nodes.values():
        for source in node.statics:
            if source.kind in (FROM_CONFIG, FROM_CONFIG_PATH) and source.data != "config":
                read[source.data] = state._static_value(source)
            elif source.data == "config":
                read["config"] = shown(state.config)
    return read


def _defaulted(node: Node) -> dict[str, Any]:
    """The parameters of a step that nothing feeds, with the defaults they run with."""
    item = node.step
    if not item.signature.defaults:  # most steps: nothing to look at
        return {}
    fed = set(item.bound)
    fed.update(source.param for source in node.statics)
    fed.update(param for param, _, _ in node.inputs)
    return {p: v for p, v in item.signature.defaults.items() if p not in fed}


def step_params(state: RunState, node: Node) -> dict[str, Any]:
    """The values a step receives from params and from its own defaults, by parameter."""
    received = {
        source.param: state._static_value(source)
        for source in node.statics
        if source.kind == FROM_PARAM
    }
    received.update(_defaulted(node))
    return received


def run_params(state: RunState) -> dict[str, Any]:
    """The run's params and the defaults its steps ran with (``"step.param"`` where steps
    default one name to different values)."""
    shown = dict(state.params)
    defaults: dict[str, dict[str, Any]] = {}
    for name, node in state.nodes.items():
        for param, value in _defaulted(node).items():
            defaults.setdefault(param, {})[name] = value
    for param, by_step in defaults.items():
        values = list(by_step.values())
        if param not in shown and all(_same(v, values[0]) for v in values):
            shown[param] = values[0]
        else:
            shown.update({f"{name}.{param}": v for name, v in by_step.items()})
    return shown


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or (type(a) is type(b) and a == b))
    except Exception:  # an object whose == does not give a truth value (arrays)
        return False


_STRUCTURES: weakref.WeakKeyDictionary[Graph, tuple[str, str]] = weakref.WeakKeyDictionary()


def structure(pipeline: Pipeline) -> str:
    """The JSON text of the pipeline's steps and wiring, as kept with each run.

    Computed once per graph (a pipeline builds a new graph when it changes), so repeated
    runs of a large pipeline do not pay for it again.
    """
    graph = pipeline.graph
    known = _STRUCTURES.get(graph)
    if known is not None and known[0] == pipeline.name:
        return known[1]
    rows = [
        structure_row(
            item.name,
            item.data_inputs,
            item.outputs,
            item.after,
            item.is_async,
            item.options.map,
            item.options.dynamic,
            item.options.optional,
        )
        for item in pipeline.order
    ]
    text = structure_json(pipeline.name, rows)
    _STRUCTURES[graph] = (pipeline.name, text)
    return text


def start_recording(
    pipeline: Pipeline,
    state: RunState,
    cache: RunCache,
    *,
    executor: str,
    tags: Sequence[str],
    outputs: Sequence[str] | None,
    origin: str | None,
    target: str | None = None,
    trigger: Mapping[str, str] | None = None,
) -> RunRecorder | None:
    """Record the run as started; return the recorder of its steps (None without history).

    ``target`` (the code that runs, for a later resume) defaults, for a resume or rerun,
    to its origin's target, else to :func:`global_target`. ``trigger`` is what started
    the run (see :attr:`plait.history.RunRecord.trigger`); the experiment and version come
    from the pipeline, the project from the store.
    """
    store = cache.store
    if not store.has_history:
        return None
    history = store.history
    _ = history.db  # opened here: a history that cannot be opened fails the run now
    try:
        recorder = history.start_run(
            run_id=state.run_id,
            pipeline=pipeline.name,
            fingerprint=pipeline_fingerprint(pipeline.graph.steps.values(), cache.code),
            params=run_params(state),
            config=_config_read(state),
            tags=tags,
            started_at=time.time(),
            executor=executor,
            origin_run_id=origin,
            inputs={
                "params": dict(state.params),
                "config": state.config,
                "outputs": None if outputs is None else list(outputs),
            },
            structure=structure(pipeline),
            target=target or _origin_target(history, origin) or global_target(pipeline),
            trigger=trigger,
            experiment=pipeline.experiment or pipeline.name,
            version=pipeline.version,
            project=store.project,
        )
    except DamagedHistoryError:
        raise
    except Exception as exc:
        _log.warning(
            "could not record run %s in %s (it runs unrecorded): %s", state.run_id, history.url, exc
        )
        return None
    # The record goes first; when on_step_end hooks listen, it is committed before they
    # see the step (what a hook was told is in the history, even after a kill -9), and
    # written again after them if they added metrics (ProfileHook's peak memory).
    hooked = bool(state.listeners)
    catalog = _catalog_writer(pipeline, state, store)
    state.listeners.insert(0, _listener(state, recorder, revised=False, catalog=catalog))
    if hooked:
        barrier = _HookBarrier(recorder, _listener(state, recorder, revised=True))
        state.listeners.insert(1, barrier.before_hooks)
        state.listeners.append(barrier.after_hooks)
    state.revised.append(_listener(state, recorder, revised=True))
    # and before a step executes (it may kill the process): what finished before it is
    # in the history; a chain of cache hits executes nothing and commits in batches
    state.before_execute = recorder.flush
    return recorder


class _HookBarrier:
    """Commits the buffered records before the hooks are told of a step, and records the
    step again after them when they changed its metrics."""

    def __init__(self, recorder: RunRecorder, again: Any) -> None:
        self.recorder = recorder
        self.again = again
        self.metrics: dict[str, Any] = {}

    def before_hooks(self, result: StepResult) -> None:
        self.recorder.flush()
        self.metrics = dict(result.metrics)

    def after_hooks(self, result: StepResult) -> None:
        if not _same_metrics(self.metrics, result.metrics):
            self.again(result)


def _same_metrics(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    if before.keys() != after.keys():
        return False
    return all(before[k] is after[k] or _same(before[k], after[k]) for k in before)


def global_target(pipeline: Pipeline) -> str | None:
    """``module:name`` when ``pipeline`` is the global ``name`` of an importable module.

    Cheap: only the modules of the first steps' functions are looked in (a pipeline is
    most often defined next to its steps), each a dict scan, not every loaded module.
    ``__main__`` and the modules ``plait run`` makes of files it cannot import by name do
    not count: nothing else could import them.
    """
    names: dict[str, None] = {}
    for item in list(pipeline.steps.values())[:8]:
        module = getattr(getattr(item, "func", None), "__module__", None)
        if isinstance(module, str):
            names[module] = None
    for name in names:
        module = sys.modules.get(name)
        if module is None or name == "__main__" or name.startswith("_plait_target_"):
            continue
        for attribute, value in list(vars(module).items()):
            if value is pipeline and not attribute.startswith("_"):
                return f"{name}:{attribute}"
    return None


def _origin_target(history: Any, origin: str | None) -> str | None:
    """The target recorded with run ``origin`` (None without one)."""
    if origin is None:
        return None
    rows = history.db.execute("SELECT target FROM runs WHERE run_id = ?", [origin])
    return str(rows[0][0]) if rows and rows[0][0] else None


def _catalog_writer(pipeline: Pipeline, state: RunState, store: Any) -> Any:
    """What writes the assets of a finished step to the catalog."""
    from plait.assets._catalog import record_assets
    from plait.assets._metrics import assets_of

    def write(result: StepResult) -> None:
        found = assets_of(result.metrics)
        if not found or result.status != "ok":
            return
        record_assets(
            store.history,
            found,
            result.data_versions,
            run_id=state.run_id,
            step=result.name,
            pipeline=pipeline.name,
            experiment=pipeline.experiment or pipeline.name,
            project=store.project,
        )

    return write


def _listener(state: RunState, recorder: RunRecorder, *, revised: bool, catalog: Any = None) -> Any:
    """What hands a finished (or revised) step's record to the recorder (and its assets
    to the catalog): its rows, built here from what the scheduler has (see
    :func:`~plait.history.recorder.step_rows`), appended to the recorder's buffer."""
    key_parts = state.key_parts
    nodes = state.nodes
    add = recorder.add
    run_id = recorder.run_id

    def record(result: StepResult) -> None:
        name = result.name
        try:
            parts = key_parts.get(name)
            by_data: dict[str, str] = {}
            code = None
            if parts:
                code = parts.get("code")
                inputs = parts.get("inputs")
                if inputs:
                    sources = parts.get("sources")
                    by_data = (
                        {sources.get(p, p): v for p, v in inputs.items()}
                        if sources
                        else dict(inputs)
                    )
            metrics = result.metrics
            logs = logs_of(metrics)  # Metrics carries them, even when it has no entries
            peak = None
            if metrics:
                found = metrics.get("peak_memory_bytes")  # from ProfileHook, which runs first
                peak = found if isinstance(found, int) else None
            node = nodes.get(name)
            params = None if node is None else step_params(state, node)
            row, lineage = step_rows(run_id, result, by_data, code, peak, params, logs)
            add(name, row, lineage, revised)
        except Exception as exc:
            _log.warning(
                "could not record step %r of run %s (the run goes on): %s",
                name,
                state.run_id,
                exc,
            )
        if catalog is not None:
            try:
                catalog(result)
            except Exception as exc:
                _log.warning(
                    "could not record the assets of step %r of run %s in the catalog: %s",
                    name,
                    state.run_id,
                    exc,
                )

    return record
