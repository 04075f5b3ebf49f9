"""What a function's code reads from outside its arguments, and what those values are.

Design note
-----------
:func:`reads_of` scans a code object's bytecode (and that of the functions, lambdas and
comprehensions nested in it) once and caches the answer per code object: which names it
loads as globals, which ``name.attribute`` pairs it loads (``config.LIMIT`` where
``config`` is a module), which globals and closure variables it assigns, and which
globals it mutates: calls a mutating method on (``SEEN.append(x)``), or assigns an item
on a line that loads them (``COUNTS[k] += 1``; every global on that line counts, to be
safe). Reading the bytecode rather than ``co_names`` keeps attribute names (``df.data``)
from passing for globals.

:func:`constant_text` decides whether a value is *plain data* that a fingerprint can
include by value, and returns its canonical text: ``None``, booleans, numbers, strings,
bytes, enum members, paths, compiled regular expressions, dates and times, and tuples,
frozensets, lists and dicts of those, up to :data:`MAX_ELEMENTS` elements in all. Lists
and dicts count only where the caller allows them (module globals, not closure cells,
which are how counters and accumulators are usually kept); sets never do: a mutable set
is a registry of state far more often than a setting. The text never holds
a module name or an ``id``: the same value gives the same text in every process and
however its module was loaded.

:func:`is_code_like` says which other values are code or harmless machinery (modules,
classes, functions and other routines, ``functools.partial``, typing constructs,
loggers, numpy ufuncs): they are followed as code or ignored, never warned about.
"""

from __future__ import annotations

import datetime
import decimal
import dis
import enum
import functools
import inspect
import logging
import pathlib
import re
import types
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["MAX_ELEMENTS", "Reads", "constant_text", "is_code_like", "reads_of"]

MAX_ELEMENTS = 1_000
"""The most elements (counted through nested containers) a constant may have."""

_MAX_DEPTH = 32
_MUTATORS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "sort",
        "reverse",
        "__setitem__",
        "__delitem__",
    }
)
_LOAD_GLOBAL = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_LOAD_ATTRIBUTE = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_STORE_GLOBAL = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})
_STORE_CELL = frozenset({"STORE_DEREF", "DELETE_DEREF"})
_STORE_ITEM = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR", "STORE_SLICE"})
_SCALARS: tuple[type, ...] = (int, float, complex, str, bytes, bool, type(None))
_VALUE_TYPES: tuple[type, ...] = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    decimal.Decimal,
)


@dataclass(frozen=True, slots=True)
class Reads:
    """The free names a code object uses.

    Attributes:
        names: Names loaded as globals, sorted.
        attributes: ``(global, attribute)`` pairs loaded as ``global.attribute``, sorted.
        assigned: Globals and closure variables the code assigns or deletes.
        mutated: Globals the code calls a mutating method on (``append``, ``update``...)
            or may assign an item of (``TABLE[k] = v``).
    """

    names: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]
    assigned: frozenset[str]
    mutated: frozenset[str]


_READS: weakref.WeakKeyDictionary[types.CodeType, Reads] = weakref.WeakKeyDictionary()


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    stack = [code]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))


def reads_of(code: types.CodeType) -> Reads:
    """The free names ``code`` (with its nested code) uses; cached per code object."""
    found = _READS.get(code)
    if found is None:
        found = _scan(code)
        _READS[code] = found
    return found


def _scan(code: types.CodeType) -> Reads:
    names: set[str] = set()
    attributes: set[tuple[str, str]] = set()
    assigned: set[str] = set()
    mutated: set[str] = set()
    for current in _codes(code):
        previous: str | None = None  # the global loaded by the previous instruction
        on_line: list[str] = []  # globals loaded on the current line, for ``TABLE[k] = v``
        for instruction in dis.get_instructions(current):
            operation, value = instruction.opname, instruction.argval
            if instruction.starts_line:
                on_line.clear()
            if operation in _LOAD_ATTRIBUTE and previous is not None and isinstance(value, str):
                attributes.add((previous, value))
                if value in _MUTATORS:
                    mutated.add(previous)
            elif operation in _STORE_GLOBAL or operation in _STORE_CELL:
                assigned.add(str(value))
            elif operation in _STORE_ITEM:
                mutated.update(on_line)  # over-approximates: any container on the line
            if operation == "EXTENDED_ARG":
                continue  # a prefix of the next instruction: keep ``previous``
            previous = None
            if operation in _LOAD_GLOBAL and isinstance(value, str):
                names.add(value)
                on_line.append(value)
                previous = value
    return Reads(
        tuple(sorted(names)), tuple(sorted(attributes)), frozenset(assigned), frozenset(mutated)
    )


def constant_text(value: object, *, mutable: bool) -> str | None:
    """The canonical text of a plain-data value, or None when it is not one.

    Args:
        value: The value read by a function.
        mutable: Whether lists and dicts count (they do for module globals).

    >>> constant_text((1, "a", None), mutable=False)
    "tuple(int:1,str:'a',NoneType:None)"
    >>> constant_text([1, 2], mutable=False) is None
    True
    """
    budget = [MAX_ELEMENTS]
    try:
        return _text(value, mutable, budget, 0)
    except _NotPlain:
        return None


class _NotPlain(Exception):
    """Raised inside :func:`_text` to abandon a value that is not plain data."""


def _text(value: object, mutable: bool, budget: list[int], depth: int) -> str:
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_DEPTH:
        raise _NotPlain
    kind = type(value)
    if kind in _SCALARS:
        return f"{kind.__name__}:{value!r}"
    if isinstance(value, enum.Enum):
        return f"enum:{kind.__qualname__}.{value.name}"
    if isinstance(value, pathlib.PurePath):
        return f"{kind.__name__}:{value.as_posix()}"
    if isinstance(value, re.Pattern):
        return f"re:{_text(value.pattern, mutable, budget, depth + 1)}:{value.flags}"
    if kind in _VALUE_TYPES:
        return f"{kind.__name__}:{value!r}"
    if isinstance(value, tuple) and (kind is tuple or hasattr(value, "_fields")):
        items = ",".join(_text(item, mutable, budget, depth + 1) for item in value)
        return f"{kind.__qualname__}({items})"
    if kind is frozenset and isinstance(value, frozenset):
        members = sorted(_text(item, mutable, budget, depth + 1) for item in value)
        return f"frozenset({','.join(members)})"
    if mutable and kind is list and isinstance(value, list):
        return "list(" + ",".join(_text(item, mutable, budget, depth + 1) for item in value) + ")"
    if mutable and kind is dict and isinstance(value, dict):
        pairs = [
            _text(k, mutable, budget, depth + 1) + ":" + _text(v, mutable, budget, depth + 1)
            for k, v in value.items()
        ]
        return "dict(" + ",".join(pairs) + ")"
    raise _NotPlain


def is_code_like(value: object) -> bool:
    """Whether a value is code or machinery rather than data a step computes with.

    >>> import math
    >>> is_code_like(math), is_code_like(math.sqrt), is_code_like(int), is_code_like([1])
    (True, True, True, False)
    """
    if isinstance(value, type | types.ModuleType | functools.partial):
        return True
    if inspect.isroutine(value) or isinstance(value, logging.Logger | logging.LoggerAdapter):
        return True
    if isinstance(value, types.GenericAlias | types.UnionType):
        return True
    module = getattr(type(value), "__module__", "")
    if module in ("typing", "typing_extensions"):
        return True
    return module == "numpy" and type(value).__name__ == "ufunc"
