"""Graphviz DOT source of a pipeline.

The same content as the Mermaid chart: rounded boxes for steps, ellipses for external
inputs (params, config), data edges labelled by the names they carry, dashed edges for
``after=`` ordering, and a ``subgraph cluster_…`` per sub-pipeline namespace. Every id
and label is a double-quoted DOT string with backslashes and quotes escaped, so any step
name is safe. Render it with ``dot -Tsvg``.
"""

from __future__ import annotations

from plait.viz._model import Graph, Node, build_graph, walk_namespaces
from plait.viz._protocols import PipelineLike

__all__ = ["pipeline_to_dot"]

_HEADER = (
    "    rankdir=LR;",
    '    graph [fontname="Helvetica", fontsize=11];',
    '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica",'
    " fontsize=11];",
    '    edge [fontname="Helvetica", fontsize=9, color="#57606a"];',
)


def quote(text: str) -> str:
    """A double-quoted DOT string for ``text``.

    >>> print(quote('say "hi"'))
    "say \\"hi\\""
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{escaped}"'


def pipeline_to_dot(pipeline: PipelineLike) -> str:
    """Describe ``pipeline`` as a Graphviz ``digraph``.

    Args:
        pipeline: The pipeline to draw.

    Returns:
        DOT source, one statement per line.
    """
    return graph_to_dot(build_graph(pipeline))


def graph_to_dot(graph: Graph) -> str:
    """DOT source for an already built drawing model."""
    lines = [f"digraph {quote(graph.name)} {{", *_HEADER]
    for node in graph.inputs.values():
        lines.append(
            f"    {quote(node.id)} [label={quote(node.name)}, shape=ellipse, "
            'style=filled, fillcolor="#f6f8fa", color="#8c959f"];'
        )
    lines.extend(_steps(graph))
    for edge in graph.edges:
        attributes = ["style=dashed"] if edge.order_only else []
        if edge.label:
            attributes.append(f"label={quote(edge.label)}")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"    {quote(edge.source)} -> {quote(edge.target)}{suffix};")
    lines.append("}")
    return "\n".join(lines)


def _steps(graph: Graph) -> list[str]:
    lines: list[str] = []
    for event in walk_namespaces(graph):
        indent = "    " * (event.depth + 1)
        if event.kind == "open":
            cluster = graph.new_id("cluster", event.namespace)
            title = event.namespace.rpartition(".")[2]
            lines.append(f"{'    ' * event.depth}subgraph {quote(cluster)} {{")
            lines.append(f'{indent}label={quote(title)}; style="rounded,dashed"; color="#8c959f";')
        elif event.kind == "close":
            lines.append(f"{'    ' * event.depth}}}")
        elif event.node is not None:
            lines.append(f"{indent}{_step(event.node)}")
    return lines


def _step(node: Node) -> str:
    label = node.name + ("\n" + ", ".join(node.tags) if node.tags else "")
    attributes = [f"label={quote(label)}"]
    if "optional" in node.tags:
        attributes.append('style="rounded,dashed"')
    return f"{quote(node.id)} [{', '.join(attributes)}];"
