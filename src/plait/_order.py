"""Kahn's algorithm over a graph's steps in declaration order, and the cycle it leaves.

The order :class:`plait.graph.Graph` computes when the declaration order is not already
a topological one (see ``Graph._upstreams``): iterative, over integer indices (in-degrees
in a list, each step's downstream steps as one flat list sliced by offsets), with a FIFO
ready queue seeded in declaration order, so the order is stable. Nodes left over lie on
or behind a cycle; one cycle is extracted by an iterative walk and reported in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plait.steps import Step

__all__ = ["topological_order"]


def topological_order(
    steps: Mapping[str, Step], upstream: Mapping[str, tuple[str, ...]], index: Mapping[str, int]
) -> tuple[list[Step], list[str]]:
    """Kahn's algorithm in declaration order; returns (order, a cycle or []).

    Over integer indices: in-degrees in a list, and each step's downstream steps as one
    flat list sliced by offsets (compressed rows), not a list per step.
    """
    names = list(steps)
    waiting = [0] * len(names)
    starts = [0] * (len(names) + 1)
    for position, name in enumerate(names):
        ups = upstream[name]
        waiting[position] = len(ups)
        for up in ups:
            starts[index[up] + 1] += 1
    for position in range(len(names)):
        starts[position + 1] += starts[position]
    children = [0] * starts[-1]
    filled = starts[:-1]
    for position, name in enumerate(names):
        for up in upstream[name]:
            parent = index[up]
            children[filled[parent]] = position
            filled[parent] += 1
    del filled
    ready = deque(position for position, count in enumerate(waiting) if count == 0)
    order: list[Step] = []
    values = list(steps.values())
    while ready:
        position = ready.popleft()
        order.append(values[position])
        for child in children[starts[position] : starts[position + 1]]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) == len(steps):
        return order, []
    left = {names[position] for position, count in enumerate(waiting) if count > 0}
    return order, _find_cycle(left, upstream)


def _find_cycle(left: set[str], upstream: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Walk upstream edges among the left-over nodes until a node repeats."""
    start = min(left)
    path: list[str] = []
    position: dict[str, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(up for up in sorted(upstream[node]) if up in left)
    cycle = path[position[node] :]
    cycle.reverse()  # upstream walk -> data-flow order
    return [*cycle, cycle[0]]
