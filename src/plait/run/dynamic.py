"""Dynamic steps: a step that returns a Pipeline, which joins the running run.

The returned pipeline's steps are renamed into the step's namespace (``"<step>.<inner>"``)
and added to the run's state, on the same executor. Their free inputs resolve from the
dynamic step's own inputs, the run's params and config and the values still held. When
the last of them finishes, the dynamic step's value becomes a dict of the inner sinks'
outputs, and its own consumers are released.

A map step with ``dynamic=True`` does this once per element: each element's pipeline is
an *expansion* of its own, namespaced ``"<step>[<index>].<inner>"`` (``"<step>['key']"``
for a dict), whose free inputs see the element under the mapped name. Its inner steps are
cached and recorded like any step. When an element's expansion ends, its dict of sink
outputs (or its first failure) is the element's result, and the map goes on as with plain
elements: values in input order, ``failed_elements``, ``min_success_ratio``. A failure
inside an element's pipeline is the element's, so it never stops the run by itself (the
map does, if its success ratio says it failed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plait.errors import PipelineValidationError, Problem, suggest
from plait.graph import FROM_CONFIG, FROM_CONFIG_PATH, FROM_STEP, Graph, Source
from plait.results import Err, StepResult
from plait.run.compiled import compile_plan
from plait.run.task import Task, TaskResult
from plait.steps import MISSING, Step

if TYPE_CHECKING:
    from plait.run.state import RunState

__all__ = ["Expansion", "expand", "finish", "namespace"]


@dataclass(slots=True)
class Expansion:
    """A dynamic step's pipeline (or one map element's) while its inner steps run.

    Attributes:
        step: The dynamic step's name.
        task: The task that returned the pipeline (an element's, for a map step).
        built: Its result: timing, attempts and metrics of building the pipeline.
        sinks: The inner sinks' data names, whose values make the expansion's value.
        waiting: Inner steps not finished yet.
        tolerant: True when a failure inside is an element's, not the run's.
        failed: The inner steps that failed.
    """

    step: str
    task: Task
    built: TaskResult
    sinks: list[str]
    waiting: set[str]
    tolerant: bool
    failed: list[StepResult] = field(default_factory=list)


def namespace(task: Task) -> str:
    """``"<step>"``, or ``"<step>[<index>]"`` / ``"<step>['key']"`` for a map element."""
    if task.element is MISSING:
        return task.step.name
    return f"{task.step.name}[{task.element!r}]"


def expand(state: RunState, name: str, task: Task, result: TaskResult) -> bool:
    """Add the pipeline ``result`` holds to the run; False (and ``result`` failed) if it
    is not a valid pipeline."""
    from plait.pipeline import Pipeline, namespaced

    inner = state._local(result.values[0])
    prefix = namespace(task)
    if not isinstance(inner, Pipeline):
        result.ok = False
        result.error = TypeError(
            f"step {prefix!r} is dynamic=True and must return a Pipeline, "
            f"got {type(inner).__name__}"
        )
        return False
    graph = Graph(namespaced(inner, prefix, {}, {}))
    env = dict(inner.run_params(None))
    env.update({d: task.kwargs[p] for p, d in task.step.data_inputs.items() if p in task.kwargs})
    sources, problems = _wire(state, graph, env, prefix)
    if problems:
        result.ok = False
        result.error = PipelineValidationError(problems, f"{prefix} (dynamic)")
        return False
    inner_consumed = {d for s in graph.order for d in s.data_inputs.values()}
    sinks = [o for s in graph.order for o in s.outputs if o not in inner_consumed]
    outer = state.expansions.get(state.nodes[name].dynamic_parent or "")
    state.expansions[prefix] = Expansion(
        name,
        task,
        result,
        sinks,
        {s.name for s in graph.order},
        tolerant=task.element is not MISSING or (outer is not None and outer.tolerant),
    )
    upstream = {s.name: graph.upstream[s.name] for s in graph.order}
    state._add_dynamic(compile_plan(graph.order, sources, upstream, prefix))
    for sink in sinks:
        state.refs[sink] = state.refs.get(sink, 0) + 1  # held for the dynamic step's value
    if not graph.order:
        finish(state, prefix)
    return True


def _wire(
    state: RunState, graph: Graph, env: dict[str, Any], prefix: str
) -> tuple[dict[str, tuple[Source, ...]], list[Problem]]:
    """Each inner step's sources (inner outputs, config), binding the rest; the problems."""
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
            elif param not in item.signature.defaults:
                known = [*env, *state.values, *graph.producers]
                problems.append(_missing(item, prefix, data, known))
        sources[item.name] = tuple(found)
    return sources, problems


def _missing(item: Step, prefix: str, data: str, known: list[str]) -> Problem:
    return Problem(
        "missing_input",
        f"step {item.name!r} (inside dynamic step {prefix!r}): no value for "
        f"{data!r}{suggest(data, known)}",
        item.name,
    )


def finish(state: RunState, prefix: str) -> None:
    """The last inner step of an expansion ended: give the dynamic step (or the map
    element) its value, a dict of the inner sinks' outputs, or the first inner failure."""
    expansion = state.expansions.pop(prefix)
    start = len(prefix) + 1
    load = state.agent.load if state.agent is not None else state.values.get
    value = {s[start:]: (load(s) if s in state.values else None) for s in expansion.sinks}
    for sink in expansion.sinks:
        state._release(sink)
    built = expansion.built
    result = TaskResult(
        ok=not expansion.failed,
        start=built.start or time.time(),
        end=time.time(),
        duration=built.duration,
        attempts=built.attempts,
        metrics=built.metrics,
    )
    if expansion.failed:
        first = expansion.failed[0]
        result.error = (
            first.outcome.error
            if isinstance(first.outcome, Err)
            else RuntimeError(f"dynamic step {prefix!r}: step {first.name!r} inside failed")
        )
    else:
        result.values = (value,)
    if expansion.task.element is MISSING:
        state._finish_step(expansion.step, result)
    else:
        state._complete_element(expansion.step, expansion.task, result)
