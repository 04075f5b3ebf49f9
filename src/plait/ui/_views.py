"""Drawings and formats for the pages: the run's DAG and timeline, a step's durations.

Design. The DAG and the timeline are :mod:`plait.viz`'s own SVG (the drawings of
``RunResult.to_html()`` and ``plait runs show --html``), fed a recorded run through the
adapter of :mod:`plait.viz.recorded`, which the command line's report uses too. They
use SVG presentation attributes only (``fill=``, ``stroke=``), never ``style=``, so they
pass a CSP without ``'unsafe-inline'``; every piece of user text in them is escaped by the
drawing code, which is why the templates may mark them safe. The durations chart of the
step page is drawn here, in the same manner.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.history import RunRecord, StepRecord
from plait.viz._model import Node, build_run_graph
from plait.viz._protocols import OUTCOME_STYLES, OutcomeStyle, format_seconds, outcome_class
from plait.viz._svg import MAX_DRAWN_NODES, draw_graph, draw_timeline
from plait.viz.recorded import as_run

__all__ = [
    "RunDrawing",
    "draw_run",
    "draw_timeline_only",
    "durations_chart",
    "outcome",
    "short",
    "value_text",
]

_INPUT_STYLE = OutcomeStyle("#f6f8fa", "#8c959f", text="#424a53")


def outcome(record: StepRecord | None) -> str:
    """The outcome class of a recorded step (``ok``, ``cached``, ``failed``...)."""
    if record is None:
        return "not_run"
    if record.status == "ok":
        return "cached" if record.cached else "ok"
    return record.status if record.status in OUTCOME_STYLES else "not_run"


def value_text(value: Any) -> str:
    """A recorded value as one line of text (recorded values are JSON-ready already)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def short(value: Any, limit: int = 80) -> str:
    """:func:`value_text` on one line, cut to ``limit`` characters."""
    text = " ".join(value_text(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def draw_timeline_only(
    record: RunRecord, first: Mapping[str, StepRecord], total: int
) -> RunDrawing:
    """For a run too large to draw: a note instead of the DAG, and the timeline of its
    ``first`` steps (by start time), which is all a timeline shows."""
    note = (
        f'<p class="note">The run has {total:,} steps; graphs are drawn up to '
        f"{MAX_DRAWN_NODES} nodes.</p>"
    )
    return RunDrawing(note, draw_timeline(as_run(record, steps=first)), {}, False)


@dataclass(frozen=True, slots=True)
class RunDrawing:
    """A run's DAG and timeline as SVG, and each step's anchor on the page."""

    graph: str
    timeline: str
    anchors: dict[str, str]
    drawn: bool


def draw_run(record: RunRecord) -> RunDrawing:
    """The DAG (coloured by outcome; a node links to its row) and the timeline of a run
    whose steps are all loaded."""
    run = as_run(record)
    graph = build_run_graph(run)
    anchors = {name: f"step-{node.id}" for name, node in graph.steps.items()}

    def subtitle(node: Node) -> str:
        if node.kind == "input":
            return ""
        step = run.steps.get(node.name)
        text = outcome_class(step).replace("_", " ")
        return text + (f" · {format_seconds(step.duration)}" if step is not None else "")

    def style_of(node: Node) -> OutcomeStyle:
        if node.kind == "input":
            return _INPUT_STYLE
        return OUTCOME_STYLES[outcome_class(run.steps.get(node.name))]

    def link_of(node: Node) -> str | None:
        return anchors[node.name] if node.name in run.steps else None

    svg = draw_graph(graph, id_prefix="g", style_of=style_of, subtitle=subtitle, link_of=link_of)
    return RunDrawing(svg, draw_timeline(run), anchors, len(graph.nodes) <= MAX_DRAWN_NODES)


_CHART_WIDTH, _CHART_HEIGHT, _LEFT, _BOTTOM = 720.0, 160.0, 64.0, 18.0


def durations_chart(executions: Sequence[StepRecord]) -> str:
    """Bars of a step's durations, oldest to newest, coloured by outcome; each bar links
    to its run."""
    if not executions:
        return '<p class="note">No executions.</p>'
    ordered = list(reversed(executions))
    longest = max([record.duration for record in ordered] + [1e-6])
    slot = (_CHART_WIDTH - _LEFT) / len(ordered)
    plot = _CHART_HEIGHT - _BOTTOM - 8
    parts = [
        f'<svg class="chart" width="{_CHART_WIDTH:.0f}" height="{_CHART_HEIGHT:.0f}" '
        f'viewBox="0 0 {_CHART_WIDTH:.0f} {_CHART_HEIGHT:.0f}" role="img" '
        'aria-label="durations across runs" font-family="ui-monospace, monospace">',
        f'<line x1="{_LEFT:.0f}" y1="{8 + plot:.1f}" x2="{_CHART_WIDTH:.0f}" y2="{8 + plot:.1f}" '
        'stroke="#8c959f"/>',
        f'<text x="{_LEFT - 6:.0f}" y="14" text-anchor="end" font-size="10" fill="#57606a">'
        f"{html.escape(format_seconds(longest))}</text>",
        f'<text x="{_LEFT - 6:.0f}" y="{8 + plot:.1f}" text-anchor="end" font-size="10" '
        'fill="#57606a">0</text>',
    ]
    for index, record in enumerate(ordered):
        style = OUTCOME_STYLES[outcome(record)]
        height = max(record.duration / longest * plot, 1.0)
        x = _LEFT + index * slot + slot * 0.15
        title = (
            f"run {record.run_id}: {outcome(record).replace('_', ' ')}, "
            f"{format_seconds(record.duration)}"
        )
        parts.append(
            f'<a href="/runs/{html.escape(record.run_id)}"><g><title>{html.escape(title)}</title>'
            f'<rect x="{x:.1f}" y="{8 + plot - height:.1f}" width="{max(slot * 0.7, 1.0):.1f}" '
            f'height="{height:.1f}" fill="{style.fill}" stroke="{style.stroke}"/></g></a>'
        )
    parts.append(
        f'<text x="{_LEFT:.0f}" y="{_CHART_HEIGHT - 3:.0f}" font-size="10" fill="#57606a">'
        f"oldest</text>"
        f'<text x="{_CHART_WIDTH:.0f}" y="{_CHART_HEIGHT - 3:.0f}" text-anchor="end" '
        'font-size="10" fill="#57606a">newest</text></svg>'
    )
    return "".join(parts)
