"""Canonical content hashing: the *data version* of a value.

A data version is a 128-bit xxh3 digest (32 hex digits) of a canonical, type-tagged
encoding of the value, so it is the same in every process and under every
``PYTHONHASHSEED``. The contract: two values get the same data version exactly when they
are *the same value* — the same exact type (``1``, ``1.0`` and ``True`` differ; so do a
``list`` and its subclass) and equal, including everything that makes them behave
differently although ``==`` may ignore it:

- scalars by type and exact content (floats bit for bit: ``0.0`` and ``-0.0`` differ,
  a NaN equals itself);
- lists and tuples ordered; plain dicts and sets order-free (``{'a': 1, 'b': 2} ==
  {'b': 2, 'a': 1}`` in Python, so they share a version); ``OrderedDict`` ordered (its
  ``==`` is); ``defaultdict`` with its ``default_factory``; subclasses by exact type;
- datetimes and times with their ``tzinfo`` (``UTC`` differs from ``Europe/London`` in
  winter, at the same offset) and ``fold``;
- numpy arrays by exact type (``matrix``, ``recarray``, masked arrays with their mask and
  fill value), dtype, shape and bytes — large buffers go straight to xxh3, at memory
  speed; pandas objects by type, index and column names and levels, dtypes, categories,
  timezones and the kind of each null in object columns; pyarrow tables and polars frames
  by schema and content, dictionaries, lists and structs included;
- enums, paths, decimals, UUIDs, dataclasses and pydantic models by their own encodings;
  functions by value: their cloudpickle bytes (code, defaults, closure values, referenced
  globals), never their address;
- anything else: a registered hasher (:func:`register_hasher`), else its pickle state
  (``__reduce_ex__``) hashed structurally, else its cloudpickle bytes. A value that has
  none of these raises :class:`~plait.errors.UnhashableValueError`: plait never falls back
  to ``repr`` or ``id``, which would collide once an address is reused.

Where the encoding errs, it errs towards a spurious cache miss, never a collision: equal
values may still differ when their bytes do (two NaNs with different payloads, padding
bytes of aligned structured dtypes, a function moved to another line or file, pickles of
sets whose order depends on the process). Classes (as values, and as the type of every
value) count by qualified name: two distinct classes of the same module and qualified
name are the same type to the hash.

Design note: values are walked depth-first with an explicit stack of encoders (see
:mod:`plait.store._hash_core`; the encoders of plain Python values are in
:mod:`plait.store._hash_std`, those of array libraries in :mod:`plait.store._hash_arrays`),
so nesting up to :data:`MAX_DEPTH` levels costs no Python stack. An object met again while
it is still being encoded (a reference cycle) is hashed as a back-reference marker with its
distance up the stack, so equal cyclic structures share a version. Optional libraries are
only imported when a value of theirs is hashed.

Structural hashing walks every reference, and an object graph that shares its parts
(a matplotlib ``Figure``: transforms, fonts, callbacks reached along many paths) would be
walked once per path. So a value whose walk meets more than :data:`OBJECT_BUDGET` generic
objects (those hashed by their ``__reduce_ex__`` recipe) is hashed instead as a whole by
its cloudpickle bytes (which keep sharing and cycles, in one pass), under a tag of its
own; when pickle gives up too (a graph deeper than its recursion limit), the walk runs
again without a budget. The choice depends only on the value's structure, so it is the same in every
process; pickle bytes are faithful, so the fallback can cause a spurious miss (a set's
order in another process) but never a collision.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import pathlib
import threading
import types
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from plait.errors import UnhashableValueError
from plait.store._hash_arrays import LIBRARIES
from plait.store._hash_core import (
    LEAF,
    Encoder,
    Hasher,
    Into,
    new_hasher,
    qualified_name,
    size,
    tag,
)
from plait.store._hash_std import (
    SIMPLE,
    encode_dataclass,
    encode_datetime,
    encode_enum,
    encode_mapping,
    encode_ordered_mapping,
    encode_path,
    encode_pydantic,
    encode_timezone,
    encode_type,
    sequence_encoder,
    subclassed_container,
    unordered_encoder,
    write_flat,
)

__all__ = ["data_version", "file_version", "register_hasher"]

MAX_DEPTH = 100_000
OBJECT_BUDGET = 1_000  # generic objects walked before a value is hashed by its pickle


class _OverBudget(Exception):
    """Raised inside a walk that met more than OBJECT_BUDGET generic objects."""


_walk = threading.local()  # .left: generic objects this walk may still meet
"""Nesting deeper than this is refused (an object graph that unfolds without end)."""

_CUSTOM: dict[type, Callable[[Any], Any]] = {}


def register_hasher(cls: type, function: Callable[[Any], Any] | None = None) -> Any:
    """Teach plait to hash values of ``cls``: ``function(value)`` returns what to hash
    instead (bytes, or any value plait can hash). Usable as a decorator.

    Example:
        >>> class Point:
        ...     def __init__(self, x, y): self.x, self.y = x, y
        >>> register_hasher(Point, lambda p: (p.x, p.y))  # doctest: +ELLIPSIS
        <function <lambda> at ...>
        >>> data_version(Point(1, 2)) == data_version(Point(1, 2))
        True
    """

    def register(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _CUSTOM[cls] = fn
        return fn

    return register(function) if function is not None else register


def data_version(value: Any) -> str:
    """The content hash of ``value`` (32 hex digits), stable across processes.

    Raises:
        UnhashableValueError: A part of ``value`` has no canonical hash, no registered
            hasher and cannot be pickled (a lock, a generator, an open socket...).
    """
    hasher = new_hasher()
    outer = getattr(_walk, "left", None)  # a hasher registered by a user may recurse
    _walk.left = OBJECT_BUDGET
    try:
        try:
            _encode(hasher, value)
        except _OverBudget:
            hasher = _whole_pickle(value)
    except UnhashableValueError as error:
        if error.value_type is type(value):
            raise
        raise UnhashableValueError(
            f"{error} (inside a {qualified_name(type(value))})",
            value_type=error.value_type,
            cause=error.cause,
        ) from error.cause
    finally:
        _walk.left = outer
    return str(hasher.hexdigest())


def _whole_pickle(value: Any) -> Hasher:
    """The fallback past the budget: the value's pickle, else (pickle gives up on graphs
    deeper than its recursion limit) the structural walk without a budget."""
    hasher = new_hasher()
    try:
        pickled = _pickled(value, type(value))
    except UnhashableValueError:
        _walk.left = None
        hasher = new_hasher()
        _encode(hasher, value)
        return hasher
    tag(hasher, b"W", qualified_name(type(value)).encode())
    tag(hasher, b"Y", pickled)
    return hasher


def file_version(path: str | pathlib.Path) -> str:
    """The content hash of a file's bytes (read in 8 MiB blocks)."""
    hasher = new_hasher()
    with open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            hasher.update(block)
    return str(hasher.hexdigest())


# -- the traversal ---------------------------------------------------------------------------

# operations, their hasher, id of the value, the value (alive while its id is on the path)
_Frame = tuple[Iterator[Any], Hasher, int, Any]


def _encode(hasher: Hasher, root: Any) -> None:
    """Feed ``root``'s encoding to ``hasher``: depth-first, with an explicit stack."""
    stack: list[_Frame] = []
    on_path: dict[int, int] = {}  # id of each value being encoded -> its depth
    simple = SIMPLE
    if not _enter(root, hasher, stack, on_path):
        return
    while stack:
        operations, own, key, _ = stack[-1]
        for operation in operations:  # until one needs a frame of its own
            target, value = own, operation
            if type(operation) is Into:
                target, value = operation.hasher, operation.value
            writer = simple.get(type(value))
            if writer is not None:
                writer(target, value)
            elif _enter(value, target, stack, on_path):
                break  # resumed here, where it left off, once the new frame is done
        else:
            stack.pop()
            del on_path[key]


def _enter(value: Any, hasher: Hasher, stack: list[_Frame], on_path: dict[int, int]) -> bool:
    """Encode ``value`` at once if it can be (True when a frame was pushed instead)."""
    simple = SIMPLE.get(type(value))
    if simple is not None:
        simple(hasher, value)
        return False
    if write_flat(hasher, value):
        return False
    key = id(value)
    depth = on_path.get(key)
    if depth is not None:  # a reference cycle: where up the stack the value is
        hasher.update(b"@" + size(len(stack) - depth))
        return False
    if len(stack) >= MAX_DEPTH:
        raise UnhashableValueError(
            f"cannot hash a {qualified_name(type(value))}: nested deeper than "
            f"{MAX_DEPTH} levels; register a hasher for the type that unfolds without end",
            value_type=type(value),
        )
    operations = _encoder_for(value)(hasher, value)
    if operations is LEAF:
        return False
    on_path[key] = len(stack)
    stack.append((iter(operations), hasher, key, value))
    return True


def _encoder_for(value: Any) -> Encoder:
    kind = type(value)
    encoder = _EXACT.get(kind)
    if encoder is not None:
        return encoder
    custom = _find_custom(kind)
    if custom is not None:
        return _custom_encoder(custom)
    for base in kind.__mro__[:-1]:  # library types and their subclasses
        select = LIBRARIES.get(base.__module__.partition(".")[0])
        found = select(value) if select is not None else None
        if found is not None:
            return found
    return _structured(value)


def _find_custom(kind: type) -> Callable[[Any], Any] | None:
    if not _CUSTOM:
        return None
    for base in kind.__mro__:
        if base in _CUSTOM:
            return _CUSTOM[base]
    return None


def _custom_encoder(function: Callable[[Any], Any]) -> Encoder:
    def encode(hasher: Hasher, value: Any) -> Iterable[Any]:
        hasher.update(b"X" + qualified_name(type(value)).encode())
        replacement = function(value)
        if isinstance(replacement, bytes | bytearray | memoryview):
            tag(hasher, b"Y", bytes(replacement))
            return LEAF
        return (replacement,)

    return encode


# -- dispatch, and the encoders that may pickle (plain values: _hash_std.py) ---------------


def _zone(hasher: Hasher, value: zoneinfo.ZoneInfo) -> Iterable[Any]:
    key: str | None = value.key
    if key is None:  # built from a file: no name, and its pickle fails, so say so
        return _object(hasher, value)
    tag(hasher, b"Z", key.encode())
    return LEAF


_ORDERED_SUBCLASS = subclassed_container(b"m", encode_ordered_mapping)
_MAPPING_SUBCLASS = subclassed_container(b"m", encode_mapping)
_SEQUENCE_SUBCLASS = subclassed_container(b"l", sequence_encoder(b"L"))
_SET_SUBCLASS = subclassed_container(b"s", unordered_encoder(b"E"))

_EXACT: dict[type, Encoder] = {
    list: sequence_encoder(b"L"),
    tuple: sequence_encoder(b"T"),
    dict: encode_mapping,
    set: unordered_encoder(b"E"),
    frozenset: unordered_encoder(b"e"),
    collections.OrderedDict: _ORDERED_SUBCLASS,
    collections.defaultdict: _MAPPING_SUBCLASS,
    dt.datetime: encode_datetime,
    dt.time: encode_datetime,
    dt.timezone: encode_timezone,
    zoneinfo.ZoneInfo: _zone,
}
"""Exact types that contain other values (or a tzinfo), before any registered hasher."""


def _structured(value: Any) -> Encoder:
    """The encoder of a value that is not of an exact builtin or library type."""
    if isinstance(value, enum.Enum):
        return encode_enum
    if isinstance(value, pathlib.PurePath):
        return encode_path
    if isinstance(value, collections.OrderedDict):
        return _ORDERED_SUBCLASS
    if isinstance(value, Mapping):
        return _MAPPING_SUBCLASS
    if isinstance(value, list | tuple):  # subclasses (namedtuples...)
        return _SEQUENCE_SUBCLASS
    if isinstance(value, set | frozenset):
        return _SET_SUBCLASS
    if isinstance(value, types.FunctionType):
        return _function
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode_dataclass
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):
        return encode_pydantic
    if isinstance(value, type):
        return encode_type
    return _object


def _function(hasher: Hasher, value: types.FunctionType) -> Iterable[Any]:
    """A function by value: cloudpickle bytes of a copy (an importable function itself
    would be pickled by reference, its name only)."""
    copy = types.FunctionType(
        value.__code__, value.__globals__, value.__name__, value.__defaults__, value.__closure__
    )
    copy.__kwdefaults__ = value.__kwdefaults__
    copy.__qualname__ = value.__qualname__
    copy.__module__ = value.__module__
    copy.__dict__.update(value.__dict__)
    tag(hasher, b"f", qualified_name(type(value)).encode())
    tag(hasher, b"Y", _pickled(copy, type(value)))
    return LEAF


def _object(hasher: Hasher, value: Any) -> Iterable[Any]:
    """Its pickle recipe (``__reduce_ex__``) hashed structurally, else its pickle."""
    left = getattr(_walk, "left", None)
    if left is not None:
        if left <= 0:
            raise _OverBudget
        _walk.left = left - 1
    tag(hasher, b"o", qualified_name(type(value)).encode())
    try:
        reduced = value.__reduce_ex__(4)
    except Exception:  # not picklable this way: cloudpickle may know better
        reduced = None
    if isinstance(reduced, tuple) and len(reduced) >= 2:
        recipe = (*reduced, None, None, None)[:5]
        build, arguments, state, items, pairs = recipe
        hasher.update(b"r")
        tag(hasher, b"S", _callable_name(build).encode())
        return (
            arguments if isinstance(arguments, tuple) else (arguments,),
            state,
            None if items is None else list(items),
            None if pairs is None else list(pairs),
        )
    tag(hasher, b"Y", _pickled(value, type(value)))
    return LEAF


def _callable_name(build: Any) -> str:
    module = getattr(build, "__module__", None)
    name = getattr(build, "__qualname__", None)
    if isinstance(module, str) and isinstance(name, str):
        return f"{module}.{name}"
    return _pickled(build, type(build)).hex()


def _pickled(value: Any, value_type: type) -> bytes:
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps(value, protocol=5))
    except Exception as error:  # every pickling failure means the same thing here
        name = qualified_name(value_type)
        raise UnhashableValueError(
            f"cannot hash a value of type {name}: plait has no canonical hash for it and "
            f"it cannot be pickled ({type(error).__name__}: {error}); return a plain value "
            f"instead, or teach plait with "
            f"plait.store.hashing.register_hasher({value_type.__qualname__}, function)",
            value_type=value_type,
            cause=error,
        ) from error
