"""A plain-text listing of a pipeline, readable in a terminal.

One line per step in topological order: its number, name, the data names it consumes and
the outputs it produces, then markers (``async``, ``map over items``, ``dynamic``,
``optional``) and its ordering-only ``after`` dependencies::

    pipeline 'training': 3 steps; inputs: config.test_size, raw
    [1] clean  (raw) -> clean
    [2] split  (clean, config.test_size) -> X_train, X_test
    [3] train  (X_train) -> model  [async; after: clean]
"""

from __future__ import annotations

from plait.viz._model import step_tags
from plait.viz._protocols import PipelineLike, StepLike

__all__ = ["pipeline_to_ascii"]


def pipeline_to_ascii(pipeline: PipelineLike) -> str:
    """List the steps of ``pipeline`` in topological order with their inputs and outputs.

    Args:
        pipeline: The pipeline to describe.

    Returns:
        The text, one line per step after a header line, without a trailing newline.
    """
    order = list(pipeline.order)
    if not order:
        return f"pipeline {pipeline.name!r}: no steps"
    lines = [_header(pipeline, order)]
    number_width = len(str(len(order)))
    name_width = min(max(len(step.name) for step in order), 40)
    for number, step in enumerate(order, start=1):
        label = f"[{number}]".rjust(number_width + 2)
        lines.append(f"{label} {step.name.ljust(name_width)}  {_describe(step)}")
    return "\n".join(lines)


def _header(pipeline: PipelineLike, order: list[StepLike]) -> str:
    count = len(order)
    text = f"pipeline {pipeline.name!r}: {count} step{'s' if count != 1 else ''}"
    names = {step.name for step in order}
    producers = pipeline.producers  # read once: a pipeline may build it on each access
    external = sorted(
        {
            data
            for step in order
            for data in step.data_inputs.values()
            if producers.get(data) not in names
        }
    )
    if external:
        text += "; inputs: " + ", ".join(external)
    return text


def _describe(step: StepLike) -> str:
    inputs = ", ".join(step.data_inputs.values())
    outputs = ", ".join(step.outputs) if step.outputs else "(no outputs)"
    text = f"({inputs}) -> {outputs}"
    markers = list(step_tags(step))
    if step.after:
        markers.append("after: " + ", ".join(step.after))
    if markers:
        text += "  [" + "; ".join(markers) + "]"
    return text
