"""Mermaid flowcharts of a pipeline and of a run.

A ``flowchart LR`` with one node per step (rounded box), one stadium-shaped node per
external input (params, config), data edges labelled by the names they carry, dashed
edges for ``after=`` ordering, and a ``subgraph`` per sub-pipeline namespace. A run's
chart also colours each step by outcome with ``classDef``.

Labels are always quoted and escaped with Mermaid's entity codes (``#quot;``, ``#35;``
...), so any step name is safe; node ids come from :func:`plait.viz._model.safe_id`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from plait.viz._model import Graph, Node, build_graph, build_run_graph, walk_namespaces
from plait.viz._protocols import (
    OUTCOME_STYLES,
    PipelineLike,
    RunLike,
    format_seconds,
    outcome_class,
)

__all__ = ["pipeline_to_mermaid", "run_to_mermaid"]

_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;"}
_INPUT_STYLE = "fill:#f6f8fa,stroke:#8c959f,color:#24292f"
_OPTIONAL_STYLE = "stroke-dasharray:5 3"

Labeller = Callable[[Node], str]


def escape_label(text: str) -> str:
    """Escape text for a quoted Mermaid label.

    >>> escape_label('say "hi" #1')
    'say #quot;hi#quot; #35;1'
    """
    escaped = "".join(_ENTITIES.get(char, char) for char in text)
    return " ".join(escaped.split())  # newlines and tabs would end the statement


def pipeline_to_mermaid(pipeline: PipelineLike) -> str:
    """Draw ``pipeline`` as a Mermaid ``flowchart LR``.

    Args:
        pipeline: The pipeline to draw.

    Returns:
        Mermaid source, one statement per line.
    """
    graph = build_graph(pipeline)
    lines = _chart(graph, _step_label)
    lines.append(f"    classDef input {_INPUT_STYLE}")
    optional = [node.id for node in graph.steps.values() if "optional" in node.tags]
    if optional:
        lines.append(f"    classDef optional {_OPTIONAL_STYLE}")
        lines.append(f"    class {','.join(optional)} optional")
    return "\n".join(lines)


def run_to_mermaid(result: RunLike) -> str:
    """Draw a run as a Mermaid flowchart, each step coloured by its outcome.

    Outcome classes: ``ok`` (green), ``cached`` (blue), ``fallback`` (orange), ``failed``
    (red), ``skipped`` (grey), ``not_run`` (white, dashed). Each label also names the
    outcome and duration, so the chart reads without colour.

    Args:
        result: The run to draw; its ``graph`` (the pipeline that ran) gives the edges.

    Returns:
        Mermaid source, one statement per line.
    """
    graph = build_run_graph(result)
    classes = {node.id: outcome_class(result.steps.get(name)) for name, node in graph.steps.items()}

    def label(node: Node) -> str:
        record = result.steps.get(node.name)
        status = classes[node.id].replace("_", " ")
        if record is not None and record.status != "not_run":
            status += f" · {format_seconds(record.duration)}"
        return f"{escape_label(node.name)}<br/><small>{escape_label(status)}</small>"

    lines = _chart(graph, label)
    lines.append(f"    classDef input {_INPUT_STYLE}")
    lines.extend(_outcome_classes(classes))
    return "\n".join(lines)


def _outcome_classes(classes: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    for outcome, style in OUTCOME_STYLES.items():
        members = [node_id for node_id, cls in classes.items() if cls == outcome]
        if not members:
            continue
        dash = ",stroke-dasharray:5 3" if style.dashed else ""
        lines.append(
            f"    classDef {outcome} fill:{style.fill},stroke:{style.stroke},"
            f"color:{style.text}{dash}"
        )
        lines.append(f"    class {','.join(members)} {outcome}")
    return lines


def _step_label(node: Node) -> str:
    label = escape_label(node.name)
    if node.tags:
        label += f"<br/><small>{escape_label(', '.join(node.tags))}</small>"
    return label


def _chart(graph: Graph, label: Labeller) -> list[str]:
    lines = ["flowchart LR"]
    for node in graph.inputs.values():
        lines.append(f'    {node.id}(["{escape_label(node.name)}"]):::input')
    lines.extend(_namespaced_steps(graph, label))
    for edge in graph.edges:
        if edge.order_only:
            lines.append(f"    {edge.source} -.-> {edge.target}")
        elif edge.label:
            lines.append(f'    {edge.source} -->|"{escape_label(edge.label)}"| {edge.target}')
        else:
            lines.append(f"    {edge.source} --> {edge.target}")
    return lines


def _namespaced_steps(graph: Graph, label: Labeller) -> list[str]:
    """Step declarations, nested in one ``subgraph`` per namespace."""
    lines: list[str] = []
    for event in walk_namespaces(graph):
        indent = "    " * event.depth
        if event.kind == "open":
            sub_id = graph.new_id("ns", event.namespace)
            title = escape_label(event.namespace.rpartition(".")[2])
            lines.append(f'{indent}subgraph {sub_id}["{title}"]')
        elif event.kind == "close":
            lines.append(f"{indent}end")
        elif event.node is not None:
            lines.append(f'{indent}    {event.node.id}("{label(event.node)}")')
    return lines
