"""Resolution: where each input of each planned step comes from, and every problem.

The work behind :func:`plait.graph.resolve` and :func:`plait.graph.narrow` (the graph
module keeps the model: steps, producers, upstream steps, order). Input sources, in the
order a bare data name is looked up: the whole config (``"config"``), a path into it
(``"config.a.b"``), a step's output, a source dataset, a param, a top-level config key,
the function parameter's default. Sources never shadow each other: ambiguity is a
problem. Inputs fed by other steps were resolved with the graph (``Graph.sourced``) and
are taken as they are; the rest is resolved here, per plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from plait.errors import Problem, suggest
from plait.graph import (
    FROM_CONFIG,
    FROM_CONFIG_PATH,
    FROM_DATASET,
    FROM_DEFAULT,
    FROM_PARAM,
    FROM_STEP,
    Graph,
    Plan,
    Source,
    config_keys,
    config_lookup,
)
from plait.steps import MISSING, Step

__all__ = ["narrow_plan", "resolve_plan"]


def resolve_plan(
    graph: Graph,
    params: Mapping[str, Any],
    config: Any,
    outputs: Sequence[str] | None,
    left_out: Mapping[str, str] | None,
    outside_inputs: Iterable[str],
    datasets: Iterable[str],
) -> Plan:
    """See :func:`plait.graph.resolve` (which pauses the garbage collector around this)."""
    problems = list(graph.problems)
    order, requested = _prune(graph, outputs, problems, params)
    keys = config_keys(config)
    producers, sourced = graph.producers, graph.sourced
    sources: Mapping[str, tuple[Source, ...]]
    whole = len(order) == len(graph.steps)  # nothing pruned: every step reads its inputs
    if whole and not keys and len(sourced) == len(order):
        # every input of every step is another step's output: the graph's own resolution
        sources, consumed = sourced, graph.read
    else:
        read = graph.read if whole else None
        sources, consumed = _sources(
            graph, order, params, config, keys, left_out, frozenset(datasets), problems, read
        )
    for name in params:
        if name in producers:
            problems.append(
                Problem(
                    "param_shadows_output",
                    f"param {name!r} has the name of an output of step "
                    f"{producers[name]!r}; rename the param or the output",
                )
            )
    unused = [name for name in params if name not in consumed and name not in producers]
    if unused:
        problems.extend(_unused_params(graph, order, unused, consumed, outside_inputs))
    if len(order) == len(graph.upstream):  # nothing pruned: the graph's own mapping
        upstream: Mapping[str, tuple[str, ...]] = graph.upstream
    else:
        upstream = {item.name: graph.upstream[item.name] for item in order}
    return Plan(order, sources, upstream, requested, problems, consumed=consumed)


def _sources(
    graph: Graph,
    order: list[Step],
    params: Mapping[str, Any],
    config: Any,
    keys: set[str],
    left_out: Mapping[str, str] | None,
    dataset_names: frozenset[str],
    problems: list[Problem],
    read: AbstractSet[str] | None,
) -> tuple[dict[str, tuple[Source, ...]], AbstractSet[str]]:
    """Each planned step's sources (the graph's own where no config key is in the way),
    and every data name they read (``read`` when it is known already: the graph's, when
    nothing is pruned); problems are appended to ``problems``."""
    sources: dict[str, tuple[Source, ...]] = {}
    collected: set[str] = set()
    collect = read is None
    sourced = graph.sourced
    for item in order:
        known = sourced.get(item.name)
        if known is not None and (not keys or all(s.data not in keys for s in known)):
            sources[item.name] = known  # every input is another step's output
            if collect:
                for known_source in known:
                    collected.add(known_source.data)
            continue
        found: list[Source] = []
        for param, data in item.data_inputs.items():
            producer = graph.producers.get(data)
            if data in dataset_names and producer is None:
                source = _dataset_source(item, param, data, params, keys, problems)
            else:
                source = _source(item, param, data, graph, params, config, keys, problems)
            if (
                source is None
                and left_out
                and data in left_out
                and problems[-1].kind == "missing_input"  # made only outside the selection
            ):
                problems[-1] = _left_out_problem(item, data, left_out[data])
            if collect:
                collected.add(data)  # even when unresolved: one problem per name is enough
            if source is not None:
                found.append(source)
        sources[item.name] = tuple(found)
    return sources, collected if read is None else read


def _unused_params(
    graph: Graph,
    order: list[Step],
    unused: list[str],
    consumed: AbstractSet[str],
    outside_inputs: Iterable[str],
) -> list[Problem]:
    """Params no step reads, except those read by steps pruned away or left out."""
    pruned_inputs = set(outside_inputs)
    if len(order) != len(graph.steps):
        kept = {item.name for item in order}
        for name, item in graph.steps.items():
            if name not in kept:
                pruned_inputs.update(item.data_inputs.values())
    candidates = sorted(consumed | {d for s in order for d in s.data_inputs.values()})
    return [
        Problem(
            "unused_param",
            f"param {name!r} is not an input of any step{suggest(name, candidates)}",
        )
        for name in unused
        if name not in pruned_inputs
    ]


def narrow_plan(
    graph: Graph, plan: Plan, outputs: Sequence[str], params: Mapping[str, Any]
) -> Plan:
    """See :func:`plait.graph.narrow`."""
    problems: list[Problem] = []
    order, requested = _prune(graph, outputs, problems, params)
    if len(order) == len(plan.order):
        sources, upstream, consumed = plan.sources, plan.upstream, plan.consumed
    else:
        sources = {item.name: plan.sources[item.name] for item in order}
        upstream = {item.name: plan.upstream[item.name] for item in order}
        consumed = frozenset(data for item in order for data in item.data_inputs.values())
    return Plan(order, sources, upstream, requested, problems, consumed=consumed)


def _prune(
    graph: Graph, outputs: Sequence[str] | None, problems: list[Problem], params: Mapping[str, Any]
) -> tuple[list[Step], frozenset[str] | None]:
    """The steps needed for ``outputs``, in order, and the requested names."""
    if outputs is None:
        return graph.order, None
    wanted: list[str] = []
    for name in outputs:
        if name in graph.producers:
            wanted.append(graph.producers[name])
        elif name in graph.steps:
            wanted.append(name)  # a sink step named directly
        elif name not in params:
            problems.append(
                Problem(
                    "unknown_output",
                    f"outputs= asks for {name!r}, which no step produces"
                    f"{suggest(name, list(graph.producers) + list(graph.steps))}",
                )
            )
    if graph.needs_all(wanted):
        return graph.order, frozenset(outputs)
    needed = graph.ancestors(wanted)
    if len(needed) == len(graph.steps):
        return graph.order, frozenset(outputs)
    return [s for s in graph.order if s.name in needed], frozenset(outputs)


def _source(
    item: Step,
    param: str,
    data: str,
    graph: Graph,
    params: Mapping[str, Any],
    config: Any,
    keys: set[str],
    problems: list[Problem],
) -> Source | None:
    if data == "config":
        return Source(param, data, FROM_CONFIG)
    if data.startswith("config."):
        path = data.split(".")[1:]
        if config_lookup(config, path) is MISSING:
            problems.append(_config_path_problem(item, data, config, path))
            return None
        return Source(param, data, FROM_CONFIG_PATH)
    producer = graph.producers.get(data)
    in_config = data in keys
    if producer is not None or data in params:
        if in_config:
            where = f"the output of step {producer!r}" if producer else "a param"
            problems.append(
                Problem(
                    "ambiguous_input",
                    f"step {item.name!r}: input {data!r} is both {where} and a config key; "
                    f"rename one, or read the config value as 'config.{data}'",
                    item.name,
                )
            )
            return None
        if producer is not None:
            return Source(param, data, FROM_STEP, producer)
        return Source(param, data, FROM_PARAM)
    if in_config:
        return Source(param, data, FROM_CONFIG)
    if param in item.signature.defaults and param == data:
        return Source(param, data, FROM_DEFAULT)
    candidates = list(graph.producers) + list(params) + sorted(keys)
    what = f"parameter {param!r}" if param == data else f"parameter {param!r} (input {data!r})"
    problems.append(
        Problem(
            "missing_input",
            f"step {item.name!r}: {what} has no source: no step produces {data!r}, and it is "
            f"neither a param nor a config key{suggest(data, candidates)}; pass it with "
            f"params={{{data!r}: ...}} or add a step that produces it",
            item.name,
        )
    )
    return None


def _dataset_source(
    item: Step,
    param: str,
    data: str,
    params: Mapping[str, Any],
    keys: set[str],
    problems: list[Problem],
) -> Source | None:
    """A source dataset feeds ``param``, unless a param or config key has the name too."""
    clash = "a param" if data in params else "a config key" if data in keys else None
    if clash is None:
        return Source(param, data, FROM_DATASET)
    problems.append(
        Problem(
            "ambiguous_input",
            f"step {item.name!r}: input {data!r} is both {clash} and a dataset; rename one",
            item.name,
        )
    )
    return None


def _left_out_problem(item: Step, data: str, producer: str) -> Problem:
    return Problem(
        "missing_input",
        f"step {item.name!r}: input {data!r} comes from step {producer!r}, which is outside "
        f"the selection; give the value as a param (params={{{data!r}: ...}}, on the "
        f"command line --param {data}=...) or select step {producer!r} too",
        item.name,
    )


def _config_path_problem(item: Step, data: str, config: Any, path: list[str]) -> Problem:
    value, known = config, config_keys(config)
    for depth, part in enumerate(path):
        next_value = config_lookup(value, [part])
        if next_value is MISSING:
            where = "config" + "".join(f".{p}" for p in path[:depth])
            return Problem(
                "missing_config",
                f"step {item.name!r}: {data!r} does not exist: {where} has no {part!r}"
                f"{suggest(part, known)}",
                item.name,
            )
        value, known = next_value, config_keys(next_value)
    return Problem("missing_config", f"step {item.name!r}: {data!r} does not exist", item.name)
