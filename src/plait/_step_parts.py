"""The small parts a :class:`~plait.steps.Step` is made of: the ``MISSING`` sentinel, the
shared empty mapping of a step's bound and extra inputs, the descriptors that serve a
step's ``__module__`` and ``__doc__`` from its function, and a function's
:class:`Signature` (read once per function).

Each object here that a pickled step may hold pickles by reference (``MISSING``,
``NO_ENTRIES``) or as plain text (the descriptors), so a step sent with ``pickle``,
``copy`` or cloudpickle comes back sharing them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from plait.errors import StepDefinitionError

__all__ = [
    "FROM_FUNCTION",
    "MISSING",
    "NO_ENTRIES",
    "DocText",
    "ModuleText",
    "Signature",
    "signature_of",
]


class _Missing:
    """Sentinel for "no value" where None is a valid value."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# Shared by every step that has no such entries (most of them): one object, never mutated;
# a step's ``bound`` or ``extra_inputs`` is this object or not empty (plait.graph checks
# ``is NO_ENTRIES`` for its fast path).
class _NoEntries(Mapping[str, Any]):
    """The empty, read-only mapping behind :data:`NO_ENTRIES`; pickled and copied by
    reference, so a step sent with ``pickle`` or ``copy.deepcopy`` keeps sharing it."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"

    def __reduce__(self) -> str:
        return "NO_ENTRIES"


NO_ENTRIES: Mapping[str, Any] = _NoEntries()
# What functools.update_wrapper would copy; served from the function by ``__getattr__``
# (``__module__`` and ``__doc__`` also live on the class: see _FunctionText).
FROM_FUNCTION = frozenset({"__name__", "__qualname__", "__wrapped__"})


class _FunctionText(str):
    """``Step.__module__`` and ``Step.__doc__``: the class's own text, and on a step the
    same attribute of its function (as ``functools.wraps`` would copy it), without a dict
    per step (a dict a step is 88 bytes and a tracked object: a tenth of a built chain).

    ``type`` reads a class's ``__module__`` as it is stored (so it must be a ``str``) and
    calls ``__get__(None, cls)`` for ``__doc__``; an instance finds this non-data
    descriptor after its own ``__dict__``, so assigning ``step.__doc__`` still works.
    Pickled as the plain text (pickle writes a class's module name as a ``str``).
    """

    __slots__ = ()
    attribute = ""

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = getattr(getattr(instance, "func", None), self.attribute, None)
        return str(self) if value is None else value

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (str(self),))


class ModuleText(_FunctionText):
    __slots__ = ()
    attribute = "__module__"


class DocText(_FunctionText):
    __slots__ = ()
    attribute = "__doc__"


@dataclass(frozen=True, slots=True)
class Signature:
    """What the runner needs to know about a function's parameters."""

    params: tuple[str, ...]  # named parameters, in order (no *args / **kwargs)
    defaults: Mapping[str, Any]  # parameter -> default value
    annotations: Mapping[str, Any]  # parameter -> annotation (also "return")
    var_keyword: str | None  # name of the **kwargs parameter
    is_async: bool


def _resolve_annotations(func: Callable[..., Any]) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(func)
    except Exception:  # an unresolvable forward reference: treat as unannotated
        return {}


@functools.lru_cache(maxsize=4096)
def signature_of(func: Callable[..., Any]) -> Signature:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise StepDefinitionError(f"cannot read the parameters of {func!r}: {exc}") from exc
    params: list[str] = []
    defaults: dict[str, Any] = {}
    var_keyword = None
    for parameter in sig.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = parameter.name
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        else:
            params.append(parameter.name)
            if parameter.default is not inspect.Parameter.empty:
                defaults[parameter.name] = parameter.default
    target = inspect.unwrap(func)
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - async callable objects
    )
    return Signature(tuple(params), defaults, _resolve_annotations(func), var_keyword, is_async)
