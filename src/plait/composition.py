"""Composition: pipelines combined with ``+``, and a pipeline used as a part of another.

:func:`combine` is ``a + b``: a new pipeline with the steps of both (a step name or an
output in both is an error), ``a``'s settings winning where both have one.
``Pipeline.as_step`` returns a :class:`SubPipeline`; adding it to a pipeline inlines the
inner steps as ``"<namespace>.<step>"`` (each cached and recorded on its own) through
:func:`namespaced`, which the dynamic steps of the run layer use too. Inner outputs are
published under the names ``outputs=`` maps them to (else ``"<namespace>.<name>"``); inner
inputs no inner step produces are fed by the outer names ``inputs=`` maps them to (else
they resolve in the parent by their own names). The inner pipeline's constants and config
values are bound to its steps, so the parent's own params and config never leak in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plait.errors import PipelineValidationError, StepDefinitionError, suggest
from plait.graph import config_keys, config_lookup
from plait.steps import Step

if TYPE_CHECKING:
    from plait.pipeline import Pipeline

__all__ = ["SubPipeline", "combine", "namespaced"]


def combine(first: Pipeline, other: Pipeline) -> Pipeline:
    """``first + other``: the steps of both; ``first``'s name, config and store win.

    Raises:
        StepDefinitionError: When both have a step of the same name.
        PipelineValidationError: When both produce an output of the same name.
    """
    combined = type(first)(
        name=first.name if first.name == other.name else f"{first.name}+{other.name}",
        config=first.config if first.config is not None else other.config,
        params={**other.params, **first.params},
        hooks=[*first.hooks, *other.hooks],
        store=first.store if first.store is not None else other.store,
    )
    combined._declared = {**other._declared, **first._declared}
    combined._steps = dict(first._steps)
    for item in other._steps.values():
        if item.name in combined._steps:
            raise StepDefinitionError(
                f"cannot combine pipelines {first.name!r} and {other.name!r}: both have a "
                f"step named {item.name!r}; rename one with .with_options(name='...')"
            )
        combined._steps[item.name] = item
    clashes = [p for p in combined.graph.problems if p.kind == "duplicate_output"]
    if clashes:
        raise PipelineValidationError(clashes, combined.name)
    return combined


@dataclass(frozen=True, slots=True)
class SubPipeline:
    """A pipeline used as a part of another (see :meth:`Pipeline.as_step`)."""

    pipeline: Pipeline
    name: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    namespace: str

    def expand(self) -> list[Step]:
        """The inner steps renamed into the namespace and rewired to outer names."""
        return namespaced(self.pipeline, self.namespace, self.inputs, self.outputs)


def namespaced(
    inner: Pipeline,
    namespace: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    free: Mapping[str, str] | None = None,
) -> list[Step]:
    """Rename ``inner``'s steps into ``namespace`` and map its data names to outer ones.

    Inner outputs become ``outputs[name]`` or ``"<namespace>.<name>"``; inner inputs that no
    inner step produces become ``inputs[name]`` (or ``free[name]``, or stay as they are, to
    resolve in the parent). Inner constants and config values are bound to the steps.
    """
    produced = set(inner.graph.producers)
    unknown = [n for n in outputs if n not in produced]
    unknown += [n for n in inputs if n in produced]
    if unknown:
        raise StepDefinitionError(
            f"sub-pipeline {namespace!r}: cannot map {unknown[0]!r}: inputs= maps names the "
            f"inner pipeline consumes but does not produce; outputs= maps names it produces"
            f"{suggest(unknown[0], produced)}"
        )
    constants = inner.run_params(None)

    def outer(data: str) -> str:
        if data in produced:
            return outputs.get(data, f"{namespace}.{data}")
        if data in inputs:
            return inputs[data]
        if free is not None and data in free:
            return free[data]
        return data

    expanded = []
    for item in inner.steps.values():
        bound = dict(item.bound)
        wiring: dict[str, dict[str, str]] = {"inputs": {}, "extra": {}}
        for key, mapping in (("inputs", item.inputs), ("extra", item.extra_inputs)):
            for param_name, data in mapping.items():
                if param_name in bound:
                    wiring[key][param_name] = data
                    continue
                if data not in produced and data not in inputs and data in constants:
                    bound[param_name] = constants[data]
                elif inner.config is not None and _reads_config(data, inner):
                    bound[param_name] = _config_value(inner.config, data)
                wiring[key][param_name] = outer(data)
        expanded.append(
            item._rewired(
                name=f"{namespace}.{item.name}",
                inputs=wiring["inputs"],
                extra_inputs=wiring["extra"],
                outputs=tuple(outer(o) for o in item.outputs),
                after=tuple(f"{namespace}.{a}" for a in item.after),
                bound=bound,
            )
        )
    return expanded


def _reads_config(data: str, inner: Pipeline) -> bool:
    return (
        data == "config"
        or data.startswith("config.")
        or (data not in inner.graph.producers and data in config_keys(inner.config))
    )


def _config_value(config: Any, data: str) -> Any:
    if data == "config":
        return config
    path = data.split(".")[1:] if data.startswith("config.") else [data]
    return config_lookup(config, path)
