"""Dynamic steps: a step that returns a Pipeline, which joins the running run.

The returned pipeline's steps are renamed into the step's namespace (``"<step>.<inner>"``)
and added to the run's state, on the same executor. Their free inputs resolve from the
dynamic step's own inputs, the run's params and config and the values still held. When
the last of them finishes, the dynamic step's value becomes a dict of the inner sinks'
outputs, and its own consumers are released.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from plait.errors import PipelineValidationError, Problem, suggest
from plait.graph import FROM_CONFIG, FROM_CONFIG_PATH, FROM_STEP, Graph, Source
from plait.results import Err, Ok, StepResult
from plait.run.compiled import compile_plan
from plait.run.task import Task, TaskResult

if TYPE_CHECKING:
    from plait.run.state import RunState

__all__ = ["expand", "finish"]


def expand(state: RunState, name: str, task: Task, result: TaskResult) -> bool:
    from plait.pipeline import Pipeline, namespaced

    inner = state._local(result.values[0])
    if not isinstance(inner, Pipeline):
        result.ok = False
        result.error = TypeError(
            f"step {name!r} is dynamic=True and must return a Pipeline, got {type(inner).__name__}"
        )
        return False
    steps = namespaced(inner, name, {}, {})
    graph = Graph(steps)
    env = dict(inner.run_params(None))
    env.update({d: task.kwargs[p] for p, d in task.step.data_inputs.items() if p in task.kwargs})
    problems = list(graph.problems)
    sources: dict[str, tuple[Source, ...]] = {}
    for item in graph.order:
        found = []
        for param, data in item.data_inputs.items():
            if data in graph.producers:
                found.append(Source(param, data, FROM_STEP, graph.producers[data]))
            elif data in env or data in state.values or data in state.params:
                item._bind(param, env.get(data, state.values.get(data, state.params.get(data))))
            elif data == "config" or data.startswith("config."):
                found.append(
                    Source(param, data, FROM_CONFIG if data == "config" else FROM_CONFIG_PATH)
                )
            elif param in item.signature.defaults:
                continue
            else:
                known = list(env) + list(state.values) + list(graph.producers)
                problems.append(
                    Problem(
                        "missing_input",
                        f"step {item.name!r} (inside dynamic step {name!r}): no value for "
                        f"{data!r}{suggest(data, known)}",
                        item.name,
                    )
                )
        sources[item.name] = tuple(found)
    if problems:
        result.ok = False
        result.error = PipelineValidationError(problems, f"{name} (dynamic)")
        return False
    state.dynamic_waiting[name] = {s.name for s in graph.order}
    state.dynamic_value[name] = StepResult(
        name,
        "ok",
        Ok(None),
        reason="dynamic pipeline ran",
        duration=result.duration,
        start_time=result.start,
        attempts=result.attempts,
        metrics=result.metrics,
    )
    inner_consumed = {d for s in graph.order for d in s.data_inputs.values()}
    sinks = [o for s in graph.order for o in s.outputs if o not in inner_consumed]
    state.dynamic_value[name].data_versions = {o: "" for o in sinks}  # sink names
    upstream = {s.name: graph.upstream[s.name] for s in graph.order}
    state._add_dynamic(compile_plan(graph.order, sources, upstream, name))
    for sink in sinks:
        state.refs[sink] = state.refs.get(sink, 0) + 1  # held for the dynamic step's value
    if not graph.order:
        finish(state, name)
    return True


def finish(state: RunState, name: str) -> None:
    record = state.dynamic_value.pop(name)
    del state.dynamic_waiting[name]
    prefix = f"{name}."
    sinks = list(record.data_versions)
    record.data_versions = {}
    failed = [r for n, r in state.results.items() if n.startswith(prefix) and r.status == "failed"]
    load = state.agent.load if state.agent is not None else state.values.get
    value = {s[len(prefix) :]: (load(s) if s in state.values else None) for s in sinks}
    for sink in sinks:
        state._release(sink)
    result = TaskResult(
        ok=not failed,
        start=record.start_time or time.time(),
        end=time.time(),
        duration=record.duration,
        attempts=record.attempts,
        metrics=record.metrics,
    )
    if failed:
        result.error = (
            failed[0].outcome.error
            if isinstance(failed[0].outcome, Err)
            else RuntimeError(f"dynamic step {name!r}: a step inside failed")
        )
    else:
        result.values = (value,)
    state._finish_step(name, result)
