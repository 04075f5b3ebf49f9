"""The run-independent skeleton of a plan, compiled once and shared by its runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from plait.graph import FROM_DEFAULT, FROM_STEP, Source
from plait.steps import Step

__all__ = ["Compiled", "Node", "compile_plan"]


@dataclass(slots=True)
class Node:
    """How one step is fed; built once per plan and shared by its runs (read-only)."""

    step: Step
    statics: tuple[Source, ...]  # params and config values, read at the start
    inputs: tuple[tuple[str, str, str], ...]  # (param, data, producer) fed by steps
    consumed: tuple[str, ...]  # distinct data names read from steps
    upstream: tuple[str, ...]
    downstream: list[str] = field(default_factory=list)
    dynamic_parent: str | None = None


@dataclass(slots=True)
class Compiled:
    """The run-independent skeleton of a plan: nodes, initial counts, ready steps."""

    nodes: dict[str, Node]
    waiting: dict[str, int]
    refs: dict[str, int]
    ready: list[str]
    producers: dict[str, str]
    order: list[Step]
    has_async: bool = False


def compile_plan(
    order: list[Step],
    sources: Mapping[str, tuple[Source, ...]],
    upstream: Mapping[str, tuple[str, ...]],
    dynamic_parent: str | None = None,
) -> Compiled:
    nodes: dict[str, Node] = {}
    waiting: dict[str, int] = {}
    refs: dict[str, int] = {}
    producers: dict[str, str] = {}
    ready: list[str] = []
    for item in order:
        fed = tuple(
            (src.param, src.data, src.producer)
            for src in sources[item.name]
            if src.kind == FROM_STEP and src.producer is not None
        )
        statics = tuple(
            src for src in sources[item.name] if src.kind not in (FROM_STEP, FROM_DEFAULT)
        )
        consumed = tuple(dict.fromkeys(data for _, data, _ in fed))
        name = item.name
        nodes[name] = Node(item, statics, fed, consumed, upstream[name], [], dynamic_parent)
        for output in item.outputs:
            producers[output] = name
            refs.setdefault(output, 0)
        for data in consumed:
            refs[data] = refs.get(data, 0) + 1
        for up in upstream[name]:
            nodes[up].downstream.append(name)
        waiting[name] = len(upstream[name])
        if not upstream[name]:
            ready.append(name)
    has_async = any(item.is_async for item in order)
    return Compiled(nodes, waiting, refs, ready, producers, list(order), has_async)
