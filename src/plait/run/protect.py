"""Inputs are read-only: a step can never change what another step, or the store, sees.

One value is often handed to several consumers: two steps reading one output, the
elements of a map, tasks sharing a Dask or Ray worker's memory. If one consumer changed
it in place, the others would see the change in a cold run but not in a warm one (they
load the stored, unchanged artifact), so one data version would stand for two values.
:func:`guard` runs where the step runs (``run/task.py``), on every executor, and hands
the step its inputs under one of three treatments, chosen per type:

- **protected** (free): a numpy array arrives as a read-only *view* of itself (no copy),
  so ``arr *= 2`` fails at the user's own line; :func:`verdict` turns that ``ValueError``
  into a :class:`~plait.errors.MutatedInputError` naming the step, the input and the fix.
  A pandas ``DataFrame`` or ``Series`` arrives as a shallow copy: under copy-on-write
  (pandas 3, or pandas 2 with ``mode.copy_on_write`` on) every edit, ``df["x"] = ...`` or
  ``df.loc[...] = ...``, changes the step's own copy only, and no data is copied until
  the step writes. With pandas 2 and copy-on-write off, the copy still keeps new columns
  to the step, and the frame is also *watched*.
- **watched** (costs two fingerprints): any other value that can change (a list, dict,
  set, bytearray, masked or object array, any object) is fingerprinted before the step
  and after each attempt; a changed fingerprint fails the step with
  :class:`~plait.errors.MutatedInputError`. The fingerprint is the xxh3 hash of the
  value's pickle (protocol 5, array buffers hashed in place, not copied): C speed, 5 to
  30 times faster than a data version on Python containers, and it sees everything a
  data version sees (and order changes it ignores). A value the standard pickler cannot
  pickle (a lambda inside) is fingerprinted by its data version; a masked array, whose
  pickle copies its data, always is. Both fingerprints are taken here, in the process
  that runs the step, so a value whose hash differs between processes (a pickled set) is
  never mistaken for a changed one, and the check is the same with or without a store.
  A value with neither cannot be watched and is handed over as it is.
- **passed**: values that cannot change (numbers, strings, bytes, dates, paths, enums,
  functions and classes, Arrow objects, pandas indexes, tuples and frozensets of those).

A ``MutatedInputError`` is never retried nor replaced by ``on_failure``: the step's code
is wrong, and a watched input may already be changed. A value found changed is remembered
(in this process, the last 64): a step that would read it later (``on_error="continue"``)
fails at once with :func:`refusal` instead of running on it. Outputs that are a protected view
itself, or a read-only slice of it, are given back writable, as the step would have
returned them without plait.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import fractions
import pathlib
import pickle
import re
import sys
import threading
import types
import uuid
from typing import Any

from plait.errors import MutatedInputError, UnhashableValueError
from plait.results import Err, Ok, Skipped

__all__ = ["Guard", "guard", "plain", "refusal", "release", "verdict"]

PASS, ARRAY, FRAME, WATCH, HASH, ELEMENTS, OUTCOME = range(7)  # treatments, chosen per type

_ATOMS: frozenset[type] = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        range,
        slice,
        type(Ellipsis),
        decimal.Decimal,
        fractions.Fraction,
        uuid.UUID,
        re.Pattern,
        types.FunctionType,
        types.BuiltinFunctionType,
        types.MethodType,
        types.ModuleType,
    }
)
_IMMUTABLE_BASES = (dt.date, dt.time, dt.timedelta, dt.tzinfo, pathlib.PurePath, enum.Enum, type)
_ARROW = ("Table", "RecordBatch", "Array", "ChunkedArray", "Scalar", "Schema", "DataType")
_PLANS: dict[type, int] = dict.fromkeys(_ATOMS, 0)  # type -> treatment (0: PASS)
_DEPTH = 4  # nested tuples checked element by element before the whole is watched
# Values a step changed in place, in this process, and who changed them: a later consumer
# (on_error="continue") is refused rather than run on the changed value.
_CHANGED: dict[int, tuple[Any, str]] = {}
_CHANGED_LIMIT = 64
_CHANGED_LOCK = threading.Lock()


_NOTHING: dict[str, Any] = {}  # shared by guards with nothing to check; never written


class Guard:
    """A step's inputs as the step receives them, and what to check afterwards.

    Attributes:
        kwargs: The arguments to call the step with (views, copies, or the values).
        arrays: Parameter -> (the array, the read-only view of it the step received).
        watched: Parameter -> (the value, how it is fingerprinted, its fingerprint before).
        tainted: Parameter -> the step that changed its value in place (and failed).

    A guard of plain values (the common case) shares one empty table for all three.
    """

    __slots__ = ("arrays", "kwargs", "tainted", "watched")

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.arrays: dict[str, tuple[Any, Any]] = _NOTHING
        self.watched: dict[str, tuple[Any, int, str]] = _NOTHING
        self.tainted: dict[str, str] = _NOTHING


def plain(kwargs: dict[str, Any]) -> bool:
    """True when every input is of a type that cannot change (nothing to guard)."""
    plans = _PLANS
    return all(plans.get(type(value)) == PASS for value in kwargs.values())


def guard(kwargs: dict[str, Any]) -> Guard:
    """Prepare a step's inputs: protect what is free to protect, watch the rest."""
    shield = Guard(kwargs)
    changed: dict[str, Any] | None = None
    plans = _PLANS
    for param, value in kwargs.items():
        if plans.get(type(value)) == PASS:  # the common case, at the cost of a lookup
            continue
        handed = _protect(shield, param, value)
        if handed is not value:
            if changed is None:
                changed = dict(kwargs)
            changed[param] = handed
    if changed is not None:
        shield.kwargs = changed
    return shield


def _protect(shield: Guard, param: str, value: Any) -> Any:
    """The value to hand over for ``param``; watched values are hashed now."""
    kind = type(value)
    plan = _PLANS.get(kind)
    if plan is None:
        plan = _plan(kind)
    if plan == PASS or (plan == ELEMENTS and _immutable(value, _DEPTH)):
        return value
    if plan == OUTCOME:  # on_upstream="receive": the value inside an Ok
        inner = _protect(shield, param, value.value)
        return value if inner is value.value else Ok(inner)
    if plan == ARRAY:
        view = value.view()
        view.flags.writeable = False
        if shield.arrays is _NOTHING:
            shield.arrays = {}
        shield.arrays[param] = (value, view)
        if value.dtype.hasobject:  # the slots are read-only, the objects in them are not
            _watch(shield, param, value, WATCH)
        return view
    if plan == FRAME:
        if not _copy_on_write():  # pandas 2 without copy-on-write: the data is shared
            _watch(shield, param, value, HASH)
        return value.copy(deep=False)
    _watch(shield, param, value, plan)
    return value


def _watch(shield: Guard, param: str, value: Any, plan: int) -> None:
    changed = _CHANGED.get(id(value))
    if changed is not None and changed[0] is value:
        if shield.tainted is _NOTHING:
            shield.tainted = {}
        shield.tainted[param] = changed[1]
    found = _fingerprint(value, plan)
    if found is not None:
        if shield.watched is _NOTHING:
            shield.watched = {}
        shield.watched[param] = (value, plan, found)


def _fingerprint(value: Any, plan: int) -> str | None:
    """What a change of ``value`` would change: the hash of its pickle (``WATCH``) or its
    data version (``HASH``, or when the standard pickler fails); None when neither works."""
    if plan == WATCH:
        digest = _pickle_digest(value)
        if digest is not None:
            return digest
    from plait.store.hashing import data_version

    try:
        return f"v{data_version(value)}"
    except UnhashableValueError:
        return None


def _pickle_digest(value: Any) -> str | None:
    """The xxh3 hash of ``value``'s pickle, its out-of-band buffers hashed where they are."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception:  # any error of a __reduce__ (PicklingError, TypeError, ...)
        return None
    import xxhash

    digest = xxhash.xxh3_128(data)
    for buffer in buffers:
        digest.update(buffer.raw())
    return f"p{digest.hexdigest()}"


def refusal(shield: Guard, step: str) -> MutatedInputError | None:
    """The error of a step whose input another step already changed in this process
    (possible with ``on_error="continue"``): it must not run on the changed value."""
    for param, culprit in shield.tainted.items():
        return MutatedInputError(
            f"step {step!r} cannot run: its input {param!r} was changed in place by step "
            f"{culprit!r}, which failed for it; fix that step (inputs are read-only)",
            step=step,
            input=param,
        )
    return None


def verdict(shield: Guard, label: str, step: str, error: Exception | None) -> Exception | None:
    """The error an attempt ends with: its own, or a :class:`MutatedInputError` when it
    changed a watched input or tried to write to a protected array (``error`` is then the
    ``__cause__``)."""
    if shield.watched:
        for param, (value, plan, before) in shield.watched.items():
            if _fingerprint(value, plan) != before:
                _remember(value, label)
                mutated = MutatedInputError(_changed(label, param, value), step=step, input=param)
                mutated.__cause__ = error
                return mutated
    if shield.arrays and isinstance(error, ValueError) and "read-only" in str(error):
        params = list(shield.arrays)
        message = _read_only(label, params, error)
        mutated = MutatedInputError(message, step=step, input=params[0], changed=False)
        mutated.__cause__ = error
        return mutated
    return error


def _remember(value: Any, label: str) -> None:
    with _CHANGED_LOCK:
        _CHANGED[id(value)] = (value, label)  # kept alive, so its id is not reused
        while len(_CHANGED) > _CHANGED_LIMIT:
            del _CHANGED[next(iter(_CHANGED))]


def release(shield: Guard, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The outputs as the step meant them: a protected view it returned is the array
    itself again, and a read-only slice of a writable input is writable again."""
    if not shield.arrays:
        return values
    originals = {id(view): array for array, view in shield.arrays.values()}
    numpy = sys.modules["numpy"]
    owners = {
        id(_owner(array, numpy)) for array, _ in shield.arrays.values() if array.flags.writeable
    }
    out = []
    for value in values:
        if id(value) in originals:
            out.append(originals[id(value)])
            continue
        if (
            isinstance(value, numpy.ndarray)
            and not value.flags.writeable
            and id(_owner(value, numpy)) in owners
        ):
            value.flags.writeable = True  # allowed: the memory's owner is writable
        out.append(value)
    return tuple(out)


def _owner(array: Any, numpy: Any) -> Any:
    """The last array in ``array``'s chain of bases (numpy collapses most chains)."""
    while isinstance(array.base, numpy.ndarray):
        array = array.base
    return array


# -- choosing a treatment ---------------------------------------------------------------


def _plan(kind: type) -> int:
    """The treatment of values of exact type ``kind`` (cached)."""
    plan = _choose(kind)
    if plan != FRAME:  # a frame's treatment depends on pandas' options at call time
        _PLANS[kind] = plan
    return plan


def _choose(kind: type) -> int:
    if kind in _ATOMS or issubclass(kind, _IMMUTABLE_BASES):
        return PASS
    if issubclass(kind, tuple | frozenset):
        return ELEMENTS
    if kind is Ok:
        return OUTCOME
    if kind is Err or kind is Skipped:
        return PASS  # plait's own records of a failure; not data, never stored
    module = kind.__module__.partition(".")[0]
    if module == "numpy":
        return _numpy_plan(kind)
    if module == "pandas":
        return _pandas_plan(kind)
    if module == "pyarrow":
        arrow = sys.modules["pyarrow"]
        bases = tuple(getattr(arrow, name) for name in _ARROW if hasattr(arrow, name))
        return PASS if issubclass(kind, bases) else WATCH
    numpy = sys.modules.get("numpy")
    if numpy is not None and issubclass(kind, numpy.ndarray):  # an array subclass elsewhere
        return _numpy_plan(kind)
    pandas = sys.modules.get("pandas")
    if pandas is not None and issubclass(kind, pandas.DataFrame | pandas.Series | pandas.Index):
        return _pandas_plan(kind)
    return WATCH


def _numpy_plan(kind: type) -> int:
    numpy = sys.modules["numpy"]
    if issubclass(kind, numpy.ma.MaskedArray):
        return HASH  # a read-only view does not protect the mask; its pickle copies
    if issubclass(kind, numpy.ndarray):
        return ARRAY
    if issubclass(kind, numpy.void):
        return WATCH  # a structured scalar may be a view into an array
    if issubclass(kind, numpy.generic | numpy.dtype):
        return PASS
    return WATCH


def _pandas_plan(kind: type) -> int:
    pandas = sys.modules["pandas"]
    if issubclass(kind, pandas.DataFrame | pandas.Series):
        return FRAME
    if issubclass(kind, pandas.Index):
        return PASS  # immutable
    return WATCH


def _copy_on_write() -> bool:
    """Whether pandas copies on write (always since pandas 3)."""
    pandas = sys.modules["pandas"]
    if int(pandas.__version__.partition(".")[0]) >= 3:
        return True
    return pandas.options.mode.copy_on_write is True


def _immutable(value: Any, depth: int) -> bool:
    """True when a tuple or frozenset holds only values that cannot change."""
    if depth == 0:
        return False
    for item in value:
        kind = type(item)
        plan = _PLANS.get(kind)
        if plan is None:
            plan = _plan(kind)
        if plan == ELEMENTS:
            if not _immutable(item, depth - 1):
                return False
        elif plan != PASS:
            return False
    return True


# -- messages ---------------------------------------------------------------------------


def _fix(param: str, value: Any) -> str:
    kind = type(value)
    if kind in (list, dict, set, bytearray):
        copy = f"{param} = {kind.__name__}({param})"
    else:
        copy = f"{param} = copy.deepcopy({param})"
    return (
        f"copy it before changing it ({copy}; copy.deepcopy for what it contains), or build "
        "and return a new value"
    )


def _changed(label: str, param: str, value: Any) -> str:
    return (
        f"step {label!r} changed its input {param!r} (a {type(value).__qualname__}) in "
        "place; other steps reading the same value, and the store, would disagree about "
        f"it. Inputs are read-only: {_fix(param, value)}"
    )


def _read_only(label: str, params: list[str], error: BaseException) -> str:
    which = (
        f"its input array {params[0]!r}"
        if len(params) == 1
        else "one of its input arrays " + ", ".join(repr(p) for p in params)
    )
    name = params[0] if len(params) == 1 else "arr"
    return (
        f"step {label!r} tried to change {which} in place ({type(error).__name__}: {error}). "
        "Inputs are read-only (numpy arrays arrive as read-only views, shared with other "
        f"steps and the store): copy it first ({name} = {name}.copy()), or return a new "
        f"array ({name} * 2 rather than {name} *= 2)"
    )
