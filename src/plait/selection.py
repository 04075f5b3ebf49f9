"""Step selection: the steps a ``Pipeline.select`` call picks, and what they leave out.

Design note
-----------
Each selector picks a set of step names from a :class:`~plait.graph.Graph`: ``from_steps``
the given steps and their descendants, ``to_steps`` the given steps and their ancestors,
``tags`` the steps carrying any of the tags, ``outputs`` the ancestors of the steps making
those data names. The selection is the intersection of the picks (every step when no
selector is given). Every unknown name and every contradiction is collected first, then
raised once as a :class:`~plait.errors.UsageError`.

A :class:`Selection` also records what the chosen steps lose: the data they read from
left-out steps (which become params of the selected pipeline) and the inputs of left-out
steps (so params only those read are not reported as unused). This module is part of the
graph model: it imports :mod:`plait.graph` and never the run, store or cli layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from plait.errors import UsageError, suggest
from plait.graph import Graph
from plait.steps import Step

__all__ = ["Selection", "as_names", "select", "select_steps"]


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of a selection over one graph.

    Attributes:
        steps: The chosen steps in declaration order, ``after=`` references to left-out
            steps removed.
        left_out: Data name a chosen step reads -> the left-out step that makes it.
        outside: Every data name a left-out step reads.
    """

    steps: tuple[Step, ...]
    left_out: dict[str, str]
    outside: frozenset[str]


def as_names(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """One name or several, as a tuple; None stays None.

    >>> as_names("a"), as_names(["a", "b"]), as_names(None)
    (('a',), ('a', 'b'), None)
    """
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def select(
    graph: Graph,
    *,
    from_steps: Sequence[str] | None = None,
    to_steps: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    pipeline: str = "pipeline",
) -> Selection:
    """Select steps of ``graph`` (see ``Pipeline.select``) and what the choice leaves out.

    Raises:
        UsageError: As :func:`select_steps`.
    """
    names = select_steps(
        graph,
        from_steps=from_steps,
        to_steps=to_steps,
        tags=tags,
        outputs=outputs,
        pipeline=pipeline,
    )
    chosen = [item for item in graph.steps.values() if item.name in names]
    left = [item for item in graph.steps.values() if item.name not in names]
    needed = {data for item in chosen for data in item.data_inputs.values()}
    producers = graph.producers
    return Selection(
        steps=tuple(_without_after(item, names) for item in chosen),
        left_out={
            data: producers[data]
            for data in needed
            if data in producers and producers[data] not in names
        },
        outside=frozenset(data for item in left for data in item.data_inputs.values()),
    )


def select_steps(
    graph: Graph,
    *,
    from_steps: Sequence[str] | None,
    to_steps: Sequence[str] | None,
    tags: Sequence[str] | None,
    outputs: Sequence[str] | None,
    pipeline: str = "pipeline",
) -> set[str]:
    """The names of the steps every given selector picks (see ``Pipeline.select``).

    Raises:
        UsageError: Listing every unknown step, tag or output, an empty selection, and
            each output whose step the other selectors leave out.
    """
    errors: list[str] = []
    picks: list[set[str]] = []
    if from_steps is not None:
        picks.append(graph.descendants(_known_steps(graph, from_steps, errors)))
    if to_steps is not None:
        picks.append(graph.ancestors(_known_steps(graph, to_steps, errors)))
    if tags is not None:
        picks.append(_tagged(graph, tags, errors))
    makers: dict[str, str] = {}
    if outputs is not None:
        for name in outputs:
            maker = graph.producers.get(name, name if name in graph.steps else None)
            if maker is None:
                known = dict.fromkeys([*graph.producers, *graph.steps])
                errors.append(f"no step produces {name!r}{suggest(name, known)}")
            else:
                makers[name] = maker
        picks.append(graph.ancestors(makers.values()))
    chosen = set.intersection(*picks) if picks else set(graph.steps)
    if not errors:
        for name, maker in makers.items():
            if maker not in chosen:
                errors.append(
                    f"output {name!r} is made by step {maker!r}, which the other selectors "
                    "leave out; widen the selection or ask for another output"
                )
        if not chosen:
            errors.append(f"the selection selects no step of pipeline {pipeline!r}")
    if errors:
        raise UsageError("; ".join(errors))
    return chosen


def _known_steps(graph: Graph, names: Sequence[str], errors: list[str]) -> list[str]:
    for name in names:
        if name not in graph.steps:
            listed = f"; the steps are {', '.join(graph.steps)}" if len(graph.steps) <= 20 else ""
            errors.append(f"no step named {name!r}{suggest(name, graph.steps)}{listed}")
    return [name for name in names if name in graph.steps]


def _tagged(graph: Graph, tags: Sequence[str], errors: list[str]) -> set[str]:
    used = sorted({tag for item in graph.steps.values() for tag in item.options.tags})
    for tag in tags:
        if tag not in used:
            where = "tags in use: " + ", ".join(used) if used else "no step has a tag"
            errors.append(
                f"no step is tagged {tag!r}{suggest(tag, used)}; {where} "
                "(tag a step with @step(tags=[...]))"
            )
    wanted = set(tags)
    return {item.name for item in graph.steps.values() if wanted.intersection(item.options.tags)}


def _without_after(item: Step, kept: Iterable[str]) -> Step:
    """``item`` without ``after=`` references to steps a selection left out."""
    after = tuple(name for name in item.after if name in kept)
    if after == item.after:
        return item
    return item._rewired(
        name=item.name,
        inputs=item.inputs,
        extra_inputs=item.extra_inputs,
        outputs=item.outputs,
        after=after,
        bound=item.bound,
    )
