"""The run-independent skeleton of a plan, compiled once and shared by its runs.

Each node also says whether its step may take the inline driver's lean lane
(:mod:`plait.run.inline`): ``lean`` is the step's position in the plan's order when it is
a plain synchronous function of one output with no option that needs the general path
(retries, timeout, fallback, ``when``, map, dynamic, receiving outcomes, assets,
datasets), else -1. The position indexes the run's compact per-step arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plait._step_parts import NO_ENTRIES
from plait.assets._types import _plan as asset_plan
from plait.graph import (
    FROM_DATASET,
    FROM_DEFAULT,
    FROM_STEP,
    Source,
    Sourced,
    paused_collection,
)
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
    downstream: list[str] | tuple[str, ...]  # a tuple while it has at most one step
    dynamic_parent: str | None = None
    lean: int = -1  # the step's position in the plan when it may run in the lean lane


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
    """The nodes, initial counters and ready steps of a plan, in one pass over it.

    A step fed by one upstream value only (a chain's link) takes a short path; nodes share
    one empty tuple wherever they have no statics, inputs or upstream steps.
    """
    with paused_collection(len(order)):
        return _compile(order, sources, upstream, dynamic_parent)


def _compile(
    order: list[Step],
    sources: Mapping[str, tuple[Source, ...]],
    upstream: Mapping[str, tuple[str, ...]],
    dynamic_parent: str | None,
) -> Compiled:
    nodes: dict[str, Node] = {}
    waiting: dict[str, int] = {}
    refs: dict[str, int] = {}
    producers: dict[str, str] = {}
    ready: list[str] = []
    has_async = False
    plains = {key: plain for key, (_, plain) in _PLAIN_OPTIONS.items()}
    # the graph's own sources: a link's feed is read off the step, no Source made
    linked = sources.producers.get if type(sources) is Sourced else None
    no_parent = dynamic_parent is None
    new = Node.__new__  # object's: no frame
    for index, item in enumerate(order):
        name = item.name
        ups = upstream[name]
        signature = item.signature
        statics: tuple[Source, ...] = ()
        feeds = item._feeds
        if (
            linked is not None
            and len(feeds) == 1
            and item.bound is NO_ENTRIES
            and item.extra_inputs is NO_ENTRIES
            and (producer := linked(feeds[0])) is not None
            and not feeds[0].startswith("config")
        ):  # what ``Sourced[name]`` is: one source, fed by ``producer``; the graph has
            # made a link's one-name tuple its producer's ``outputs`` (shared)
            fed: tuple[tuple[str, str, str], ...] = ((signature.params[0], feeds[0], producer),)
            consumed: tuple[str, ...] = feeds
        else:
            fed, statics, consumed = _fed(sources[name], nodes)
        options = item.options
        plain = plains.get(id(options))
        if plain is None:
            plain = plains[id(options)] = _plain_options(options)
        if signature.is_async:
            has_async = True
            lean = -1
        elif (
            plain
            and no_parent
            and item.single_output
            and ((not statics and not signature.annotations) or _plain(item, statics))
        ):
            lean = index
        else:
            lean = -1
        # a Node without its Python-level __init__ (a frame per step): the same fields
        nodes[name] = node = new(Node)
        node.step, node.statics, node.inputs, node.consumed = item, statics, fed, consumed
        node.upstream, node.downstream, node.dynamic_parent, node.lean = (
            ups,
            (),
            dynamic_parent,
            lean,
        )
        for output in item.outputs:
            producers[output] = name
            if output not in refs:
                refs[output] = 0
        for data in consumed:
            refs[data] = refs.get(data, 0) + 1
        for up in ups:
            before = nodes[up]
            children = before.downstream
            if type(children) is list:
                children.append(name)
            elif children:  # one child: a 1-tuple (a chain's link), a list from the second on
                before.downstream = [*children, name]
            else:  # the step's own one-name outputs tuple when it is that: shared
                alone = item.outputs
                before.downstream = alone if len(alone) == 1 and alone[0] == name else (name,)
        waiting[name] = len(ups)
        if not ups:
            ready.append(name)
    return Compiled(nodes, waiting, refs, ready, producers, list(order), has_async)


_PLAIN_OPTIONS: dict[int, tuple[Any, bool]] = {}  # id(options) -> (options, plain?)


def _plain_options(options: Any) -> bool:
    """True when a step's options need nothing but a call (kept per options object: most
    steps share the default one)."""
    plain = not (
        options.retries
        or options.timeout is not None
        or options.on_failure is not None
        or options.when is not None
        or options.map is not None
        or options.dynamic
        or options.on_upstream == "receive"
    )
    if len(_PLAIN_OPTIONS) >= 1024:
        _PLAIN_OPTIONS.clear()
    _PLAIN_OPTIONS[id(options)] = (options, plain)  # kept alive: its id is not reused
    return plain


def _plain(item: Step, statics: tuple[Source, ...]) -> bool:
    """True when ``item`` itself (its options aside) needs nothing but a call."""
    if item.signature.is_async:
        return False
    if statics and any(source.kind == FROM_DATASET for source in statics):
        return False
    if not item.signature.annotations:  # no annotation, no asset (and no plan kept)
        return True
    declared, params = asset_plan(item)
    return not params and not any(declared)


def _fed(
    found: tuple[Source, ...], nodes: dict[str, Node]
) -> tuple[tuple[tuple[str, str, str], ...], tuple[Source, ...], tuple[str, ...]]:
    """(inputs fed by steps, statics read at the start, distinct data names from steps)."""
    if len(found) == 1 and found[0].kind == FROM_STEP:
        source = found[0]
        producer = source.producer
        if producer is None:
            return (), (), ()
        made = nodes[producer].step.outputs if producer in nodes else ()
        # the producer's own one-name tuple when it is that (a chain's link): shared
        return (
            ((source.param, source.data, producer),),
            (),
            (made if made == (source.data,) else (source.data,)),
        )
    if found:
        return _split(found)
    return (), (), ()


def _split(
    found: tuple[Source, ...],
) -> tuple[tuple[tuple[str, str, str], ...], tuple[Source, ...], tuple[str, ...]]:
    """(inputs fed by steps, statics read at the start, distinct data names from steps)."""
    fed = tuple(
        (src.param, src.data, src.producer)
        for src in found
        if src.kind == FROM_STEP and src.producer is not None
    )
    statics = tuple(src for src in found if src.kind not in (FROM_STEP, FROM_DEFAULT))
    consumed = tuple(dict.fromkeys(data for _, data, _ in fed))
    return fed, statics, consumed
