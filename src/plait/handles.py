"""Handle-style wiring: the ``with Pipeline() as p:`` builder, ``param`` and step calls.

Inside a ``with Pipeline()`` block the pipeline is the active builder (a context
variable, so threads and tasks each see their own). Calling a step there does not run it:
:func:`wire_call` turns the call into a rewired copy of the step, where each
:class:`~plait.steps.Handle` argument wires the parameter to that handle's data name and
any other argument becomes a bound constant; :func:`ordered_after` is the ``>>`` edge.
:func:`param` declares a run-time param (:class:`ParamSpec`) and returns its handle;
:func:`param_problems` checks a run's values against the declared params.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plait.errors import Problem, StepDefinitionError, suggest
from plait.steps import MISSING, Handle, Step

if TYPE_CHECKING:
    from plait.pipeline import Pipeline

__all__ = [
    "ParamSpec",
    "active_builder",
    "ordered_after",
    "param",
    "param_problems",
    "wire_call",
]

_BUILDER: contextvars.ContextVar[Pipeline | None] = contextvars.ContextVar(
    "plait_builder", default=None
)


def active_builder() -> Pipeline | None:
    """The pipeline of the innermost ``with Pipeline()`` block, if any."""
    return _BUILDER.get()


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """A param declared with :func:`param`: its type and default."""

    name: str
    type: Any = None
    default: Any = MISSING


def param(name: str, type: Any = None, default: Any = MISSING) -> Handle:
    """Declare a run-time param inside a ``with Pipeline()`` block and return its handle.

    Args:
        name: The param's name (what ``run(params={name: ...})`` sets).
        type: Its expected type, checked when the run starts (None: any).
        default: The value used when the run does not give one.

    Raises:
        StepDefinitionError: When called outside a ``with Pipeline()`` block.
    """
    builder = active_builder()
    if builder is None:
        raise StepDefinitionError(
            f"param({name!r}) declares a param of a pipeline: call it inside "
            "'with Pipeline() as p:'"
        )
    builder._declare(ParamSpec(name, type, default))
    return Handle(builder, None, name)


def wire_call(item: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Step:
    """``item`` rewired for a call inside a block: handles wire, other values bind.

    Raises:
        StepDefinitionError: For too many positional arguments, an argument given twice,
            an unknown parameter, or a handle of a step with no output.
    """
    given = _arguments(item, args, kwargs)
    inputs, extra, bound = dict(item.inputs), dict(item.extra_inputs), dict(item.bound)
    for key, value in given.items():
        target = inputs if key in inputs else extra
        if isinstance(value, Handle):
            if value.data is None:
                raise StepDefinitionError(
                    f"step {item.name!r}: {key!r} is wired to step {value.step_name!r}, "
                    f"which has no output; use '>>' for an ordering-only dependency"
                )
            target[key] = value.data
            bound.pop(key, None)
        else:
            target[key] = key
            bound[key] = value
    return item._rewired(
        name=item.name,
        inputs=inputs,
        extra_inputs=extra,
        outputs=item.outputs,
        after=tuple(item.after),
        bound=bound,
    )


def ordered_after(item: Step, before: str) -> Step:
    """``item`` also waiting for step ``before`` (what ``before >> item`` adds)."""
    return item._rewired(
        name=item.name,
        inputs=item.inputs,
        extra_inputs=item.extra_inputs,
        outputs=item.outputs,
        after=(*item.after, before),
        bound=item.bound,
    )


def _arguments(item: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, checked against the step's signature."""
    params = item.signature.params
    if len(args) > len(params):
        raise StepDefinitionError(
            f"step {item.name!r} takes {len(params)} parameters {list(params)}, "
            f"got {len(args)} positional arguments"
        )
    given = dict(zip(params, args, strict=False))
    for key, value in kwargs.items():
        if key in given:
            raise StepDefinitionError(f"step {item.name!r}: {key!r} given twice")
        if key not in params and item.signature.var_keyword is None:
            raise StepDefinitionError(
                f"step {item.name!r} has no parameter {key!r}{suggest(key, params)}"
            )
        given[key] = value
    return given


def param_problems(
    declared: Mapping[str, ParamSpec], params: Mapping[str, Any], consumed: Iterable[str]
) -> list[Problem]:
    """A problem for each consumed declared param without a value or of the wrong type."""
    if not declared:
        return []
    used = consumed if isinstance(consumed, AbstractSet) else set(consumed)
    problems = []
    for name, spec in declared.items():
        if name not in used:
            continue
        if name not in params:
            problems.append(
                Problem(
                    "missing_param",
                    f"param {name!r} has no value and no default; pass params={{{name!r}: ...}}",
                )
            )
        elif (
            spec.type is not None
            and isinstance(spec.type, type)
            and not isinstance(params[name], spec.type)
        ):
            problems.append(
                Problem(
                    "param_type",
                    f"param {name!r} expects {spec.type.__name__}, got "
                    f"{params[name]!r} ({type(params[name]).__name__})",
                )
            )
    return problems
