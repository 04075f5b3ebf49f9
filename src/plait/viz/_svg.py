"""Inline SVG drawings for the HTML views: the DAG and a run's timeline.

Layout of the DAG (a small Sugiyama-style layering, no dependency):

1. *Layers* by longest path from the sources: a node sits one column right of its
   furthest predecessor, so every edge points right. An input node (param, config) then
   moves right to sit just before its first consumer, which keeps its edges short.
2. *Rows*, left to right: a node wants the mean height of its predecessors; each column is
   sorted by that wish and packed top-down without overlaps, so chains stay straight and
   most crossings disappear. A right-to-left pass then moves sources (inputs) level with
   their consumers.
3. *Coordinates*: columns as wide as their widest node; edges are cubic curves from a
   node's right side to the next node's left side.

Text widths are estimated for a monospace font, so nothing depends on a browser's metrics.
All text goes through :func:`html.escape`; no external resource is ever referenced.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from plait.viz._model import Edge, Graph, Node
from plait.viz._protocols import (
    OUTCOME_STYLES,
    OutcomeStyle,
    RunLike,
    StepResultLike,
    format_seconds,
    outcome_class,
)

__all__ = ["MAX_DRAWN_NODES", "draw_graph", "draw_timeline"]

MAX_DRAWN_NODES = 400
MAX_TIMELINE_ROWS = 400
_FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"
_CHAR = 7.3  # width of one 12px monospace character
_SMALL_CHAR = 6.1  # at 10px
_NODE_HEIGHT = 40
_MIN_WIDTH, _MAX_WIDTH = 72.0, 240.0
_H_GAP, _V_GAP, _MARGIN = 64.0, 16.0, 12.0
_EDGE_COLOUR = "#57606a"

Subtitle = Callable[[Node], str]
StyleOf = Callable[[Node], OutcomeStyle]
LinkOf = Callable[[Node], str | None]


@dataclass(slots=True)
class Box:
    """Where a node is drawn."""

    node: Node
    x: float
    y: float
    width: float
    height: float = _NODE_HEIGHT


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fit(text: str, room: float, char: float) -> str:
    """``text``, cut with an ellipsis to fit ``room`` pixels."""
    limit = max(int(room / char), 2)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- layout -----------------------------------------------------------------------------------
_ROW_STEP = _NODE_HEIGHT + _V_GAP
Links = dict[str, list[str]]


def _links(graph: Graph) -> tuple[Links, Links]:
    predecessors: Links = {node.id: [] for node in graph.nodes}
    successors: Links = {node.id: [] for node in graph.nodes}
    for edge in graph.edges:
        predecessors[edge.target].append(edge.source)
        successors[edge.source].append(edge.target)
    return predecessors, successors


def _layers(graph: Graph, predecessors: Links, successors: Links) -> list[list[Node]]:
    ordered = graph.topological_nodes()
    layer: dict[str, int] = {}
    for node in ordered:
        layer[node.id] = max((layer[p] + 1 for p in predecessors[node.id] if p in layer), default=0)
    for node in ordered:  # an input sits just left of its first consumer: shorter edges
        if node.kind == "input" and successors[node.id]:
            layer[node.id] = min(layer[s] for s in successors[node.id]) - 1
    columns: list[list[Node]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node in ordered:
        columns[layer[node.id]].append(node)
    return columns


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _sweep(column: list[Node], wanted: Mapping[str, float | None], top: dict[str, float]) -> None:
    """Sort a column by wanted row position and place it top-down without overlaps.

    Nodes with no wish (sources, before the backward pass) go last, in their order.
    """

    def wish(node: Node) -> float:
        value = wanted[node.id]
        return math.inf if value is None else value

    column.sort(key=wish)
    floor = _MARGIN
    for node in column:
        top[node.id] = floor if math.isinf(wish(node)) else max(wish(node), floor)
        floor = top[node.id] + _ROW_STEP


def _rows(columns: list[list[Node]], predecessors: Links, successors: Links) -> dict[str, float]:
    """Each node's top edge: level with its predecessors, sources level with successors."""
    top: dict[str, float] = {}
    for column in columns:
        _sweep(column, {n.id: _mean([top[p] for p in predecessors[n.id]]) for n in column}, top)
    for column in reversed(columns):
        wanted: dict[str, float | None] = {}
        for node in column:
            after = [top[s] for s in successors[node.id]]
            wanted[node.id] = top[node.id] if predecessors[node.id] or not after else _mean(after)
        _sweep(column, wanted, top)
    return top


def _width(node: Node, subtitle: str) -> float:
    wanted = max(len(node.name) * _CHAR, len(subtitle) * _SMALL_CHAR) + 22
    return min(max(wanted, _MIN_WIDTH), _MAX_WIDTH)


def layout(graph: Graph, subtitle: Subtitle) -> tuple[dict[str, Box], float, float]:
    """Place every node; returns the boxes by node id and the drawing's width and height."""
    predecessors, successors = _links(graph)
    columns = _layers(graph, predecessors, successors)
    top = _rows(columns, predecessors, successors)
    boxes: dict[str, Box] = {}
    x = _MARGIN
    for column in columns:
        widths = [_width(node, subtitle(node)) for node in column]
        column_width = max(widths)
        for node, width in zip(column, widths, strict=True):
            boxes[node.id] = Box(node, x + (column_width - width) / 2, top[node.id], width)
        x += column_width + _H_GAP
    total_width = x - _H_GAP + _MARGIN if columns else 2 * _MARGIN
    total_height = max((box.y for box in boxes.values()), default=0) + _NODE_HEIGHT + _MARGIN
    return boxes, total_width, total_height


# -- drawing the graph -----------------------------------------------------------------------
def draw_graph(
    graph: Graph,
    *,
    id_prefix: str,
    style_of: StyleOf,
    subtitle: Subtitle,
    link_of: LinkOf | None = None,
) -> str:
    """An inline ``<svg>`` of the graph (or a note when it is too large to draw)."""
    if len(graph.nodes) > MAX_DRAWN_NODES:
        return (
            f'<p class="plait-note">The graph has {len(graph.nodes)} nodes; drawings stop at '
            f"{MAX_DRAWN_NODES}. Use to_mermaid() or to_dot() for the full graph.</p>"
        )
    if not graph.nodes:
        return '<p class="plait-note">No steps.</p>'
    boxes, width, height = layout(graph, subtitle)
    marker = f"{id_prefix}-arrow"
    parts = [
        f'<svg class="plait-graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{_esc("graph of " + graph.name)}" font-family="{_esc(_FONT)}">',
        f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{_EDGE_COLOUR}"/></marker></defs>',
    ]
    parts.extend(_edge(boxes, edge, marker) for edge in graph.edges)
    parts.extend(
        _node(box, style_of(box.node), subtitle(box.node), link_of) for box in boxes.values()
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _edge(boxes: Mapping[str, Box], edge: Edge, marker: str) -> str:
    start, end = boxes[edge.source], boxes[edge.target]
    label, dashed = edge.label, edge.order_only
    x1, y1 = start.x + start.width, start.y + start.height / 2
    x2, y2 = end.x - 1, end.y + end.height / 2
    bend = max((x2 - x1) / 2, 20.0)
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    title = f"{start.node.name} → {end.node.name}" + (f": {label}" if label else "")
    if dashed:
        title += " (order only)"
    text = ""
    if label:
        text = (
            f'<text x="{(x1 + x2) / 2:.1f}" y="{(y1 + y2) / 2 - 5:.1f}" text-anchor="middle" '
            f'font-size="10" fill="#424a53" stroke="#ffffff" stroke-width="3" '
            f'paint-order="stroke">{_esc(_fit(label, _H_GAP + 40, _SMALL_CHAR))}</text>'
        )
    return (
        f'<g class="plait-edge"><title>{_esc(title)}</title>'
        f'<path d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
        f'{x2:.1f},{y2:.1f}" fill="none" stroke="{_EDGE_COLOUR}" stroke-width="1.3"{dash} '
        f'marker-end="url(#{marker})"/>{text}</g>'
    )


def _node(box: Box, style: OutcomeStyle, subtitle: str, link_of: LinkOf | None) -> str:
    node = box.node
    radius = box.height / 2 if node.kind == "input" else 8
    dash = ' stroke-dasharray="5 3"' if style.dashed else ""
    centre_x = box.x + box.width / 2
    name_y = box.y + (16 if subtitle else 25)
    room = box.width - 14
    parts = [
        f'<g class="plait-node plait-{node.kind}"><title>{_esc(node.name)}</title>',
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
        f'height="{box.height:.1f}" rx="{radius:.1f}" fill="{style.fill}" '
        f'stroke="{style.stroke}" stroke-width="1.5"{dash}/>',
        f'<text x="{centre_x:.1f}" y="{name_y:.1f}" text-anchor="middle" font-size="12" '
        f'fill="{style.text}">{_esc(_fit(node.name, room, _CHAR))}</text>',
    ]
    if subtitle:
        parts.append(
            f'<text x="{centre_x:.1f}" y="{box.y + 31:.1f}" text-anchor="middle" '
            f'font-size="10" fill="{style.text}">{_esc(_fit(subtitle, room, _SMALL_CHAR))}</text>'
        )
    parts.append("</g>")
    body = "".join(parts)
    href = link_of(node) if link_of is not None else None
    return f'<a href="#{_esc(href)}">{body}</a>' if href else body


# -- the timeline -------------------------------------------------------------------------------
_LABEL_WIDTH, _CHART_WIDTH, _TAIL = 210.0, 600.0, 80.0
_ROW, _BAR, _AXIS = 22.0, 14.0, 26.0


_Row = tuple[str, StepResultLike, float, float]  # name, record, start, duration


def _timed(result: RunLike) -> list[_Row]:
    # a bar is as long as the step's measured ``duration``, the very number the step table
    # shows: ``end_time`` is taken before the outputs are stored, so it may fall short
    rows = [
        (name, record, record.start_time, record.duration)
        for name, record in result.steps.items()
        if record.start_time is not None
    ]
    rows.sort(key=lambda row: (row[2], row[3]))
    return rows


def draw_timeline(result: RunLike) -> str:
    """A Gantt chart of the steps: each starts at its start time, relative to the run's
    start, and lasts its ``duration`` (the same number the step table shows)."""
    rows = _timed(result)
    if not rows:
        return '<p class="plait-note">No step timing was recorded.</p>'
    note = ""
    if len(rows) > MAX_TIMELINE_ROWS:
        note = f'<p class="plait-note">The first {MAX_TIMELINE_ROWS} of {len(rows)} steps.</p>'
        rows = rows[:MAX_TIMELINE_ROWS]
    origin = result.start_time
    span = max(max(start + took for _, _, start, took in rows) - origin, result.duration, 1e-6)
    width = _LABEL_WIDTH + _CHART_WIDTH + _TAIL
    height = _AXIS + len(rows) * _ROW + 6
    parts = [
        f'<svg class="plait-timeline" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="timeline of the steps" '
        f'font-family="{_esc(_FONT)}">',
        *_axis(span, height),
    ]
    parts.extend(_bar(index, row, origin, span) for index, row in enumerate(rows))
    parts.append("</svg>")
    return note + "\n".join(parts)


def _axis(span: float, height: float) -> list[str]:
    parts = []
    for tick in range(5):
        x = _LABEL_WIDTH + _CHART_WIDTH * tick / 4
        anchor = "start" if tick == 0 else "middle"
        parts.append(
            f'<line x1="{x:.1f}" y1="{_AXIS - 6:.1f}" x2="{x:.1f}" y2="{height:.1f}" '
            'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{x:.1f}" y="{_AXIS - 10:.1f}" text-anchor="{anchor}" font-size="10" '
            f'fill="#57606a">{_esc(format_seconds(span * tick / 4) if tick else "0")}</text>'
        )
    return parts


def _bar(index: int, row: _Row, origin: float, span: float) -> str:
    name, record, start, took = row
    offset = start - origin
    outcome = outcome_class(record)
    style = OUTCOME_STYLES[outcome]
    top = _AXIS + index * _ROW
    x = _LABEL_WIDTH + max(offset, 0.0) / span * _CHART_WIDTH
    bar_width = max(took / span * _CHART_WIDTH, 2.0)
    title = (
        f"{name}: {outcome.replace('_', ' ')}, started at +{format_seconds(max(offset, 0.0))}, "
        f"took {format_seconds(took)}"
    )
    return (
        f'<g class="plait-bar"><title>{_esc(title)}</title>'
        f'<text x="{_LABEL_WIDTH - 8:.1f}" y="{top + 15:.1f}" text-anchor="end" font-size="11" '
        f'fill="#1f2328">{_esc(_fit(name, _LABEL_WIDTH - 12, 6.7))}</text>'
        f'<rect x="{x:.1f}" y="{top + (_ROW - _BAR) / 2:.1f}" width="{bar_width:.1f}" '
        f'height="{_BAR:.1f}" rx="3" fill="{style.fill}" stroke="{style.stroke}"/>'
        f'<text x="{x + bar_width + 4:.1f}" y="{top + 15:.1f}" font-size="10" '
        f'fill="#57606a">{_esc(format_seconds(took))}</text></g>'
    )
