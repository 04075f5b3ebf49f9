"""Drawings of pipelines and runs: text, Mermaid, Graphviz DOT and self-contained HTML.

Every renderer works from one drawing model (:mod:`plait.viz._model`), so they all show
the same steps, inputs, edges and sub-pipeline namespaces. They read pipelines and results
through small protocols and never import :mod:`plait.pipeline`, so the core can import
this package lazily (``Pipeline.to_mermaid()``, ``RunResult.to_html()`` ...).

The core calls them for you: ``pipeline.to_ascii()``, ``pipeline.to_mermaid()``,
``pipeline.to_dot()``, ``pipeline._repr_html_()``, ``result.to_mermaid()``,
``result.to_html()`` and ``result._repr_html_()``.
"""

from __future__ import annotations

from plait.viz._protocols import ErrorLike, PipelineLike, RunLike, StepLike, StepResultLike
from plait.viz.ascii import pipeline_to_ascii
from plait.viz.dot import pipeline_to_dot
from plait.viz.html import pipeline_to_html, run_to_html
from plait.viz.mermaid import pipeline_to_mermaid, run_to_mermaid

__all__ = [
    "ErrorLike",
    "PipelineLike",
    "RunLike",
    "StepLike",
    "StepResultLike",
    "pipeline_to_ascii",
    "pipeline_to_dot",
    "pipeline_to_html",
    "pipeline_to_mermaid",
    "run_to_html",
    "run_to_mermaid",
]
