"""A registry of named functions and steps, for pipelines written as data (YAML).

``reg.register(fn, "data.fetch")`` (or ``@reg.register("data.fetch")``) files a function
or a :class:`~plait.Step` under a dotted name; ``reg["data.fetch"]`` and
``reg.data.fetch`` look it up; ``reg.list()`` names every entry. Registering returns the
object itself, so a registered function is still the plain function and a registered step
still the step.

Design note: names are unique. Registering a second, different object under a name is a
:class:`DuplicateNameError` naming both definitions' files and lines, because a YAML
pipeline that silently picked one of two functions would be a bug nobody sees. The one
exception is a notebook cell run again: an object with the same qualified name defined in
the same file replaces the entry. A name is either an entry or a namespace of entries
(``data`` and ``data.fetch`` cannot both be entries), so attribute lookup is never
ambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from plait.errors import PlaitError, suggest

__all__ = ["DuplicateNameError", "Registry"]

F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class DuplicateNameError(PlaitError, ValueError):
    """A registry name given to two different definitions.

    Attributes:
        name: The registry name.
        first: Where the registered definition is (``file:line``).
        second: Where the refused one is.
    """

    def __init__(self, message: str, name: str, first: str, second: str) -> None:
        super().__init__(message)
        self.name = name
        self.first = first
        self.second = second


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a definition comes from: its qualified name, file and first line."""

    qualname: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.qualname} ({self.file}:{self.line})"


def _origin(obj: Any) -> _Origin:
    func = getattr(obj, "func", obj)  # a Step wraps its function
    func = getattr(func, "__wrapped__", func)
    code = getattr(func, "__code__", None)
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    module = getattr(func, "__module__", None) or "?"
    if code is None:
        return _Origin(f"{module}.{qualname}", "<unknown>", 0)
    return _Origin(f"{module}.{qualname}", code.co_filename, code.co_firstlineno)


class Registry:
    """Functions and steps by dotted name (``"data.fetch"``).

    Example:
        >>> reg = Registry()
        >>> @reg.register("math.double")
        ... def double(x):
        ...     return 2 * x
        >>> reg["math.double"](4), reg.math.double is double, reg.list()
        (8, True, ['math.double'])
    """

    def __init__(self) -> None:
        self._entries: dict[str, Any] = {}
        self._origins: dict[str, _Origin] = {}

    @overload
    def register(self, obj: F, name: str | None = None) -> F: ...

    @overload
    def register(self, obj: str, name: None = None) -> Callable[[F], F]: ...

    def register(self, obj: Any, name: str | None = None) -> Any:
        """File ``obj`` under ``name`` (default: its ``__name__``); return ``obj``.

        Used as ``reg.register(fn, "a.b")``, ``@reg.register("a.b")`` or ``@reg.register``.

        Raises:
            DuplicateNameError: When ``name`` holds another definition (other than an
                earlier version of the same one, from the same file), or is a namespace.
            ValueError: When ``name`` is not dotted identifiers.
            TypeError: When ``obj`` is not callable.
        """
        if isinstance(obj, str) and name is None:
            chosen = obj

            def decorate(func: F) -> F:
                return self.register(func, chosen)

            return decorate
        if not callable(obj) or isinstance(obj, type):
            raise TypeError(f"a Registry registers functions or steps, got {obj!r:.60}")
        key = name if name is not None else getattr(obj, "name", None) or obj.__name__
        self._check_name(key)
        origin = _origin(obj)
        self._check_free(key, obj, origin)
        self._entries[key] = obj
        self._origins[key] = origin
        return obj

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"registry name {name!r} is not dotted identifiers; write e.g. 'data.fetch'"
            )

    def _check_free(self, name: str, obj: Any, origin: _Origin) -> None:
        old = self._entries.get(name)
        if old is not None:
            first = self._origins[name]
            if old is obj or (first.qualname, first.file) == (origin.qualname, origin.file):
                return  # the same definition, or a notebook cell run again
            raise DuplicateNameError(
                f"{name!r} is already registered: {first}; refused {origin}: "
                f"register it under another name, or drop one of the two definitions",
                name,
                f"{first.file}:{first.line}",
                f"{origin.file}:{origin.line}",
            )
        parts = name.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            if prefix in self._entries:
                raise self._clash(name, prefix, origin)
        below = next((key for key in self._entries if key.startswith(name + ".")), None)
        if below is not None:
            raise self._clash(below, name, origin)

    def _clash(self, inner: str, outer: str, origin: _Origin) -> DuplicateNameError:
        first = self._origins.get(outer) or self._origins[inner]
        return DuplicateNameError(
            f"{outer!r} is an entry ({first}) and would also be the namespace of "
            f"{inner!r} ({origin}); a name is one or the other: rename one of them",
            outer,
            f"{first.file}:{first.line}",
            f"{origin.file}:{origin.line}",
        )

    def __getitem__(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(self._missing(name)) from None

    def _missing(self, name: str) -> str:
        hint = suggest(name, self._entries)
        if not hint:
            hint = f" (it has {', '.join(sorted(self._entries)) or 'no entries'})"
        return f"no entry {name!r} in the registry{hint}"

    def get(self, name: str, default: Any = None) -> Any:
        """The entry ``name``, or ``default``."""
        return self._entries.get(name, default)

    def where(self, name: str) -> str:
        """``file:line`` of the entry ``name``'s definition."""
        origin = self._origins[name]
        return f"{origin.file}:{origin.line}"

    def list(self, prefix: str = "") -> list[str]:
        """Every entry's name (under ``prefix``, e.g. ``"data"``), sorted."""
        if not prefix:
            return sorted(self._entries)
        return sorted(k for k in self._entries if k == prefix or k.startswith(prefix + "."))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)

    def __getattr__(self, part: str) -> Any:
        if part.startswith("_"):
            raise AttributeError(part)
        return _lookup(self, part)

    def __repr__(self) -> str:
        return f"<Registry: {len(self._entries)} entries>"


class _Namespace:
    """``reg.data``: the entries under a prefix, looked up by attribute."""

    __slots__ = ("_prefix", "_registry")

    def __init__(self, registry: Registry, prefix: str) -> None:
        self._registry = registry
        self._prefix = prefix

    def __getattr__(self, part: str) -> Any:
        return _lookup(self._registry, f"{self._prefix}.{part}")

    def __dir__(self) -> list[str]:
        size = len(self._prefix) + 1
        return sorted({k[size:].split(".")[0] for k in self._registry.list(self._prefix)})

    def __repr__(self) -> str:
        return f"<Registry namespace {self._prefix!r}: {', '.join(self.__dir__())}>"


def _lookup(registry: Registry, name: str) -> Any:
    if name in registry:
        return registry[name]
    if registry.list(name):
        return _Namespace(registry, name)
    raise AttributeError(registry._missing(name))
