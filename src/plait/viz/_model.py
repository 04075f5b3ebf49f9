"""The drawing model every renderer shares: nodes, edges and namespaces of a pipeline.

Renderers (ASCII, Mermaid, DOT, HTML) never walk a pipeline themselves; they receive a
:class:`Graph` built here once, so they all show the same content:

* one *step node* per step, in the pipeline's topological order;
* one *input node* per data name no step produces (a param, a top-level config key, a
  parameter default), and a single ``config`` input node for ``"config"`` and every
  ``"config.a.b"`` path, the path becoming the edge label;
* one *data edge* per (producer, consumer) pair, labelled by every data name it carries,
  and one dashed *order edge* per ``after=`` dependency that does not also pass data, and
  from a dynamic step to each of its inner steps (``"<step>.<inner>"``);
* a *namespace* for every step named ``"ns.inner"`` (the part before the last dot), so
  sub-pipelines can be drawn as clusters.

Node ids are safe in every output format (ASCII letters, digits and underscores, never a
keyword) and unique within a graph; labels keep the original names and are escaped by each
renderer.

The module only relies on the protocols of :mod:`plait.viz._protocols`.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from plait.viz._protocols import PipelineLike, RunLike, StepLike

__all__ = [
    "ClusterEvent",
    "Edge",
    "Graph",
    "Node",
    "build_graph",
    "build_run_graph",
    "input_source",
    "run_graph_source",
    "safe_id",
    "step_tags",
    "walk_namespaces",
]


# -- the graph -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Node:
    """A step or an external input, as drawn.

    Attributes:
        id: A safe, unique identifier (``[A-Za-z_][A-Za-z0-9_]*``).
        name: The step name or input data name shown to the user.
        kind: ``"step"`` or ``"input"``.
        tags: Short markers such as ``"async"`` or ``"map over items"``.
    """

    id: str
    name: str
    kind: Literal["step", "input"]
    tags: tuple[str, ...] = ()

    @property
    def namespace(self) -> str:
        """The sub-pipeline namespace of a step (``"a.b"`` for ``"a.b.c"``), or ``""``."""
        return self.name.rpartition(".")[0] if self.kind == "step" else ""


@dataclass(slots=True)
class Edge:
    """A dependency between two nodes, with the data names it carries."""

    source: str
    target: str
    labels: list[str] = field(default_factory=list)
    order_only: bool = False

    @property
    def label(self) -> str:
        """The data names joined by commas (empty for order-only and input edges)."""
        return ", ".join(self.labels)


@dataclass(slots=True)
class Graph:
    """Nodes (sources first, then steps in topological order) and edges of a pipeline."""

    name: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    steps: dict[str, Node] = field(default_factory=dict)
    inputs: dict[str, Node] = field(default_factory=dict)
    _ids: set[str] = field(default_factory=set)
    _edge_index: dict[tuple[str, str, bool], Edge] = field(default_factory=dict)

    def new_id(self, prefix: str, name: str) -> str:
        """A fresh safe id for ``name``; see :func:`safe_id`."""
        base = safe_id(prefix, name)
        candidate, counter = base, 1
        while candidate in self._ids:
            counter += 1
            candidate = f"{base}_{counter}"
        self._ids.add(candidate)
        return candidate

    def add_step(self, name: str, tags: tuple[str, ...] = ()) -> Node:
        """Add a step node (once per name) and return it."""
        if name not in self.steps:
            node = Node(self.new_id("s", name), name, "step", tags)
            self.steps[name] = node
            self.nodes.append(node)
        return self.steps[name]

    def add_input(self, name: str) -> Node:
        """Add an input node (once per name) and return it."""
        if name not in self.inputs:
            node = Node(self.new_id("in", name), name, "input")
            self.inputs[name] = node
            self.nodes.append(node)
        return self.inputs[name]

    def connect(
        self, source: Node, target: Node, label: str = "", *, order_only: bool = False
    ) -> None:
        """Add an edge, or add ``label`` to the existing edge between the two nodes."""
        key = (source.id, target.id, order_only)
        edge = self._edge_index.get(key)
        if edge is None:
            edge = Edge(source.id, target.id, order_only=order_only)
            self._edge_index[key] = edge
            self.edges.append(edge)
        if label and label not in edge.labels:
            edge.labels.append(label)

    def has_data_edge(self, source: Node, target: Node) -> bool:
        """True when data already flows from ``source`` to ``target``."""
        return (source.id, target.id, False) in self._edge_index

    def namespaces(self) -> list[str]:
        """Every namespace and enclosing namespace of the step nodes, parents first."""
        found: dict[str, None] = {}
        for node in self.steps.values():
            parts = node.namespace.split(".") if node.namespace else []
            for depth in range(1, len(parts) + 1):
                found.setdefault(".".join(parts[:depth]), None)
        return sorted(found, key=lambda ns: (ns.count("."), ns))

    def topological_nodes(self) -> list[Node]:
        """The nodes in an order where every edge points forward (node order on a cycle)."""
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for node in self.nodes:
            sorter.add(node.id)
        for edge in self.edges:
            sorter.add(edge.target, edge.source)
        by_id = {node.id: node for node in self.nodes}
        try:
            return [by_id[node_id] for node_id in sorter.static_order()]
        except graphlib.CycleError:
            return list(self.nodes)


_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def safe_id(prefix: str, name: str) -> str:
    """An identifier safe in Mermaid, DOT and HTML ids (not yet unique).

    >>> safe_id("s", "prep.clean-up")
    's_prep_clean_up'
    >>> safe_id("s", "café")
    's_caf_'
    """
    return f"{prefix}_{_UNSAFE.sub('_', name)}"


def step_tags(step: StepLike) -> tuple[str, ...]:
    """The markers shown next to a step: async, map, dynamic, optional."""
    tags: list[str] = []
    if step.is_async:
        tags.append("async")
    if step.options.map is not None:
        tags.append(f"map over {step.options.map}")
    if step.options.dynamic:
        tags.append("dynamic")
    if step.options.optional:
        tags.append("optional")
    return tuple(tags)


def input_source(data: str) -> tuple[str, str]:
    """The input node name and edge label of a data name no step produces.

    >>> input_source("config.model.depth")
    ('config', 'model.depth')
    >>> input_source("seed")
    ('seed', '')
    """
    if data == "config":
        return "config", ""
    if data.startswith("config."):
        return "config", data.removeprefix("config.")
    return data, ""


def build_graph(pipeline: PipelineLike) -> Graph:
    """The drawing model of ``pipeline``: its steps, inputs and dependencies."""
    order = list(pipeline.order)
    producers = pipeline.producers
    graph = Graph(pipeline.name)
    step_names = {step.name for step in order}
    for step in order:  # inputs first, so sources lead the node list
        for data in step.data_inputs.values():
            if producers.get(data) not in step_names:
                graph.add_input(input_source(data)[0])
    for step in order:
        graph.add_step(step.name, step_tags(step))
    for step in order:
        _connect_step(graph, step, producers)
    dynamic = {step.name for step in order if step.options.dynamic}
    for step in order:  # a dynamic step's inner steps run once it has returned
        parent = graph.steps.get(step.name.rpartition(".")[0])
        if parent is not None and parent.name in dynamic:
            _follow(graph, parent, graph.steps[step.name])
    return graph


def _follow(graph: Graph, source: Node, target: Node) -> None:
    """An order-only edge, unless data already flows between the two nodes."""
    if not graph.has_data_edge(source, target):
        graph.connect(source, target, order_only=True)


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    """One step of a walk over the namespace tree: open or close a cluster, or a node.

    ``depth`` is the nesting level: 0 outside every namespace, 1 for a top-level namespace
    (its ``open``/``close`` and its own nodes), 2 inside a nested one, and so on.
    """

    kind: Literal["open", "close", "node"]
    depth: int
    namespace: str = ""
    node: Node | None = None


def walk_namespaces(graph: Graph) -> Iterator[ClusterEvent]:
    """Walk the step nodes depth-first through the namespace tree.

    Steps outside any namespace come first (depth 0); each namespace yields ``open``, its
    own steps, its child namespaces, then ``close``. Uses an explicit stack, not recursion.
    """
    members: dict[str, list[Node]] = {}
    for node in graph.steps.values():
        members.setdefault(node.namespace, []).append(node)
    children: dict[str, list[str]] = {}
    for namespace in graph.namespaces():
        children.setdefault(namespace.rpartition(".")[0], []).append(namespace)
    stack: list[ClusterEvent] = [ClusterEvent("open", 0)]
    while stack:
        event = stack.pop()
        if event.kind == "close":
            yield event
            continue
        namespace, depth = event.namespace, event.depth
        if namespace:
            yield event
            stack.append(ClusterEvent("close", depth, namespace))
        for node in members.get(namespace, []):
            yield ClusterEvent("node", depth, namespace, node)
        stack.extend(
            ClusterEvent("open", depth + 1, c) for c in reversed(children.get(namespace, []))
        )


def _connect_step(graph: Graph, step: StepLike, producers: Mapping[str, str]) -> None:
    target = graph.steps[step.name]
    for data in step.data_inputs.values():
        producer = graph.steps.get(producers.get(data, ""))
        if producer is not None:
            graph.connect(producer, target, data)
        else:
            name, label = input_source(data)
            graph.connect(graph.inputs[name], target, label)
    for before in step.after:
        source = graph.steps.get(before)
        if source is not None:
            _follow(graph, source, target)


def run_graph_source(result: RunLike) -> PipelineLike | None:
    """The pipeline a run executed (``result.graph``), or None when it is not known."""
    graph: PipelineLike | None = getattr(result, "graph", None)
    return graph


def build_run_graph(result: RunLike) -> Graph:
    """The drawing model of a run: its pipeline's graph plus any step only the run has.

    Steps that only the run knows are added too: the inner steps ``"<step>.<inner>"`` of a
    dynamic step, joined to it by an order-only edge, or every step, without edges, when
    the pipeline is unknown.
    """
    source = run_graph_source(result)
    graph = build_graph(source) if source is not None else Graph(result.pipeline)
    known = set(graph.steps)
    for name in result.steps:
        if name in known:
            continue
        node = graph.add_step(name)
        parent = graph.steps.get(node.namespace)
        if source is not None and parent is not None:  # a dynamic step runs its inner steps
            _follow(graph, parent, node)
    return graph
