"""Type compatibility: can an annotated output ever be valid for an annotated input?

Validation reports an output annotated with a concrete type feeding an input annotated
with an incompatible one. Unannotated, ``Any``, ``object``, type variables, literals,
protocols and anything else that cannot be analysed are always compatible: the check
never raises a false alarm. Numeric widening follows the numeric tower (``int`` feeds
``float`` and ``complex``). Part of the graph model: it never imports the run, store or
cli layers.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import TYPE_CHECKING, Any

from plait.errors import Problem
from plait.steps import Step

if TYPE_CHECKING:
    from plait.graph import Graph

__all__ = ["compatible", "type_problems"]


def _output_types(item: Step) -> dict[str, Any]:
    hints = item.signature.annotations
    if "return" not in hints or item.options.map or item.options.dynamic:
        return {}
    ret = hints["return"]
    if item.single_output:
        return {item.outputs[0]: ret}
    if typing.get_origin(ret) is tuple:
        args = typing.get_args(ret)
        if len(args) == len(item.outputs) and Ellipsis not in args:
            return dict(zip(item.outputs, args, strict=True))
    return {}


def type_problems(graph: Graph) -> list[Problem]:
    """One ``type_mismatch`` problem per input fed an output of an incompatible type."""
    problems = []
    out_types: dict[str, Any] = {}
    for item in graph.steps.values():
        hints = item.signature.annotations
        if "return" not in hints:
            continue
        options = item.options
        if item.single_output and not options.map and not options.dynamic:
            out_types[item.outputs[0]] = hints["return"]  # the usual step: no dict
        else:
            out_types.update(_output_types(item))
    for item in graph.steps.values():
        hints = item.signature.annotations
        if not hints or item.options.on_upstream == "receive":
            continue
        for param, data in item._data_pairs():
            if data not in out_types or param not in hints or param == item.options.map:
                continue
            produced, expected = out_types[data], hints[param]
            if not compatible(produced, expected):
                problems.append(
                    Problem(
                        "type_mismatch",
                        f"step {item.name!r}: parameter {param!r} expects "
                        f"{_type_name(expected)} but {data!r} from step "
                        f"{graph.producers[data]!r} is {_type_name(produced)}; fix one "
                        "annotation or convert the value in a step between them",
                        item.name,
                    )
                )
    return problems


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else repr(tp)


def _members(tp: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    return (tp,)


def compatible(produced: Any, expected: Any) -> bool:
    """Could a value annotated ``produced`` ever be valid for ``expected``?

    Unknown or unanalysable annotations are always compatible (no false alarms).

    >>> compatible(int, float), compatible(int, str), compatible(int | None, int)
    (True, False, True)
    """
    if produced is expected:
        return True
    try:
        return _compatible_cached(produced, expected)
    except TypeError:  # an unhashable annotation
        return _compatible(produced, expected)


def _compatible(produced: Any, expected: Any) -> bool:
    return any(_compatible_one(p, e) for p in _members(produced) for e in _members(expected))


_compatible_cached = functools.lru_cache(maxsize=1024)(_compatible)


_NUMERIC = {int: (float, complex), float: (complex,), bool: (int, float, complex)}


def _compatible_one(produced: Any, expected: Any) -> bool:
    if produced is Any or expected is Any or produced is object or expected is object:
        return True
    p_origin, e_origin = typing.get_origin(produced) or produced, typing.get_origin(expected)
    e_origin = e_origin or expected
    if not isinstance(p_origin, type) or not isinstance(e_origin, type):
        return True  # TypeVar, Literal, Annotated, protocols...: do not guess
    if getattr(e_origin, "_is_protocol", False) or getattr(p_origin, "_is_protocol", False):
        return True
    if getattr(p_origin, "__plait_asset__", False) or getattr(e_origin, "__plait_asset__", False):
        return True  # an asset is unwrapped for its consumers (plait.assets): any type fits
    if not (
        issubclass(p_origin, e_origin)
        or issubclass(e_origin, p_origin)
        or e_origin in _NUMERIC.get(p_origin, ())
    ):
        return False
    p_args, e_args = typing.get_args(produced), typing.get_args(expected)
    if not p_args or not e_args or len(p_args) != len(e_args) or Ellipsis in p_args + e_args:
        return True
    return all(compatible(p, e) for p, e in zip(p_args, e_args, strict=True))
