"""Canonical content hashing: the *data version* of a value.

A data version is a 128-bit xxh3 digest (32 hex digits) of a canonical, type-tagged
encoding of the value, so it is the same in every process and under every
``PYTHONHASHSEED``:

- scalars are tagged by type: ``1``, ``1.0`` and ``True`` differ; floats hash exactly;
- dicts and sets are order-free (their items' digests are sorted), lists and tuples are
  ordered and differ from each other;
- numpy arrays hash dtype, shape and raw bytes (large buffers go straight to xxh3, at
  memory speed); pandas frames and series hash column names, dtypes, index and each
  column's buffers; pyarrow tables and polars frames hash their schema and buffers;
- datetimes, dates, paths, enums, decimals, UUIDs, dataclasses and pydantic models have
  their own encodings;
- anything else: a registered hasher (:func:`register_hasher`), else its pickled state
  under its class name — never a constant, so two different objects never collide by
  construction.

Optional libraries are only imported when a value of theirs is hashed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import pickle
import struct
import uuid
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["data_version", "file_version", "register_hasher"]

_Hasher = Any  # an xxhash.xxh3_128 object
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


def _new() -> _Hasher:
    import xxhash

    return xxhash.xxh3_128()


def data_version(value: Any) -> str:
    """The content hash of ``value`` (32 hex digits), stable across processes."""
    hasher = _new()
    _update(hasher, value)
    return str(hasher.hexdigest())


def file_version(path: str | pathlib.Path) -> str:
    """The content hash of a file's bytes (read in 8 MiB blocks)."""
    hasher = _new()
    with open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            hasher.update(block)
    return str(hasher.hexdigest())


def _tag(hasher: _Hasher, tag: bytes, payload: bytes) -> None:
    hasher.update(tag)
    hasher.update(struct.pack("<Q", len(payload)))
    hasher.update(payload)


def _digest_of(value: Any) -> bytes:
    hasher = _new()
    _update(hasher, value)
    return bytes(hasher.digest())


def _update(hasher: _Hasher, value: Any) -> None:
    kind = type(value)
    simple = _SIMPLE.get(kind)
    if simple is not None:
        simple(hasher, value)
        return
    custom = _find_custom(kind)
    if custom is not None:
        hasher.update(b"X" + _qualname(kind).encode())
        replacement = custom(value)
        if isinstance(replacement, bytes | bytearray | memoryview):
            _tag(hasher, b"Y", bytes(replacement))
        else:
            _update(hasher, replacement)
        return
    module = kind.__module__.partition(".")[0]
    special = _BY_MODULE.get(module)
    if special is not None and special(hasher, value):
        return
    _structured(hasher, value)


def _find_custom(kind: type) -> Callable[[Any], Any] | None:
    if not _CUSTOM:
        return None
    for base in kind.__mro__:
        if base in _CUSTOM:
            return _CUSTOM[base]
    return None


def _qualname(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _hash_sequence(tag: bytes) -> Callable[[_Hasher, Any], None]:
    def update(hasher: _Hasher, value: Any) -> None:
        hasher.update(tag + struct.pack("<Q", len(value)))
        for item in value:
            _update(hasher, item)

    return update


def _hash_unordered(tag: bytes) -> Callable[[_Hasher, Any], None]:
    def update(hasher: _Hasher, value: Any) -> None:
        hasher.update(tag + struct.pack("<Q", len(value)))
        for digest in sorted(_digest_of(item) for item in value):
            hasher.update(digest)

    return update


def _hash_mapping(hasher: _Hasher, value: Mapping[Any, Any]) -> None:
    hasher.update(b"D" + struct.pack("<Q", len(value)))
    for digest in sorted(_digest_of((k, v)) for k, v in value.items()):
        hasher.update(digest)


_SIMPLE: dict[type, Callable[[_Hasher, Any], None]] = {
    type(None): lambda h, v: h.update(b"N"),
    bool: lambda h, v: h.update(b"B1" if v else b"B0"),
    int: lambda h, v: _tag(h, b"I", v.to_bytes(v.bit_length() // 8 + 1, "little", signed=True)),
    float: lambda h, v: _tag(h, b"F", v.hex().encode()),
    complex: lambda h, v: _tag(h, b"C", f"{v.real.hex()},{v.imag.hex()}".encode()),
    str: lambda h, v: _tag(h, b"S", v.encode("utf-8", "surrogatepass")),
    bytes: lambda h, v: _tag(h, b"Y", v),
    bytearray: lambda h, v: _tag(h, b"y", bytes(v)),
    list: _hash_sequence(b"L"),
    tuple: _hash_sequence(b"T"),
    dict: _hash_mapping,
    set: _hash_unordered(b"E"),
    frozenset: _hash_unordered(b"e"),
    dt.datetime: lambda h, v: _tag(h, b"t", v.isoformat().encode()),
    dt.date: lambda h, v: _tag(h, b"d", v.isoformat().encode()),
    dt.time: lambda h, v: _tag(h, b"h", v.isoformat().encode()),
    dt.timedelta: lambda h, v: _tag(h, b"r", repr((v.days, v.seconds, v.microseconds)).encode()),
    decimal.Decimal: lambda h, v: _tag(h, b"M", str(v).encode()),
    uuid.UUID: lambda h, v: _tag(h, b"U", v.bytes),
    range: lambda h, v: _tag(h, b"R", repr((v.start, v.stop, v.step)).encode()),
}


def _structured(hasher: _Hasher, value: Any) -> None:
    kind = type(value)
    name = _qualname(kind).encode()
    if isinstance(value, enum.Enum):
        _tag(hasher, b"n", name)
        _update(hasher, value.value)
    elif isinstance(value, pathlib.PurePath):
        _tag(hasher, b"P", name + b":" + str(value).encode())
    elif isinstance(value, Mapping):
        _tag(hasher, b"m", name)
        _hash_mapping(hasher, value)
    elif isinstance(value, list | tuple):  # subclasses (namedtuples...)
        _tag(hasher, b"l", name)
        _hash_sequence(b"L")(hasher, value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _tag(hasher, b"c", name)
        for field in dataclasses.fields(value):
            _update(hasher, field.name)
            _update(hasher, getattr(value, field.name))
    elif hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):
        _tag(hasher, b"p", name)
        _update(hasher, value.model_dump(mode="python"))
    elif isinstance(value, type):
        _tag(hasher, b"k", name + b":" + _qualname(value).encode())
    else:
        _fallback(hasher, value, name)


def _fallback(hasher: _Hasher, value: Any, name: bytes) -> None:
    """Objects: their state (``__getstate__``/``__dict__``/slots), else their pickle."""
    _tag(hasher, b"o", name)
    state = None
    try:
        reduced = value.__reduce_ex__(4)
    except Exception:
        reduced = None
    if isinstance(reduced, tuple) and len(reduced) >= 3 and reduced[2] is not None:
        state = reduced[2]
        _update(hasher, reduced[1] if isinstance(reduced[1], tuple) else ())
        _update(hasher, state)
        return
    try:
        payload = pickle.dumps(value, protocol=5)
    except Exception:
        payload = repr(value).encode()  # unpicklable: its repr, with the id-free parts
    _tag(hasher, b"Y", payload)


# -- array libraries: their buffers go straight to xxh3 ------------------------------------


def _numpy(hasher: _Hasher, value: Any) -> bool:
    import numpy as np

    if isinstance(value, np.ndarray):
        dtype = repr(value.dtype.descr) if value.dtype.fields else value.dtype.str
        _tag(hasher, b"A", f"{dtype}|{value.shape}".encode())
        if value.dtype.hasobject:
            _hash_sequence(b"L")(hasher, value.ravel().tolist())
        else:
            if value.dtype.kind in "mM":  # datetimes and timedeltas: their int64 ticks
                value = value.view("<i8")
            hasher.update(np.ascontiguousarray(value).data.cast("B"))
        return True
    if isinstance(value, np.generic):
        _tag(hasher, b"a", f"{value.dtype.str}".encode())
        hasher.update(value.tobytes())
        return True
    return False


def _pandas(hasher: _Hasher, value: Any) -> bool:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        _tag(hasher, b"Q", repr(value.shape).encode())
        _update(hasher, [str(c) for c in value.columns])
        _update(hasher, [type(c).__name__ for c in value.columns])
        _pandas_index(hasher, value.index)
        for _, column in value.items():
            _pandas_values(hasher, column)
        return True
    if isinstance(value, pd.Series):
        _tag(hasher, b"q", repr(value.name).encode())
        _pandas_index(hasher, value.index)
        _pandas_values(hasher, value)
        return True
    if isinstance(value, pd.Index):
        _pandas_index(hasher, value)
        return True
    return False


def _pandas_index(hasher: _Hasher, index: Any) -> None:
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        _tag(hasher, b"i", repr((index.start, index.stop, index.step, index.name)).encode())
        return
    if isinstance(index, pd.MultiIndex):
        _tag(hasher, b"j", repr((index.nlevels, list(index.names))).encode())
        for level in range(index.nlevels):
            _pandas_values(hasher, index.get_level_values(level))
        return
    _tag(hasher, b"x", repr((str(index.dtype), index.names)).encode())
    _pandas_values(hasher, index)


def _pandas_values(hasher: _Hasher, values: Any) -> None:
    import pandas as pd

    array = values.array if hasattr(values, "array") else values
    _tag(hasher, b"v", str(values.dtype).encode())
    if isinstance(values.dtype, pd.CategoricalDtype):  # categories and order matter too
        hasher.update(b"o1" if values.dtype.ordered else b"o0")
        _pandas_values(hasher, pd.Index(values.dtype.categories))
        _numpy(hasher, pd.Categorical(values).codes)
        return
    arrow = getattr(array, "_pa_array", None)
    if arrow is not None:  # arrow-backed (str, string[pyarrow], ...): hash its content
        _arrow_chunks(hasher, arrow)
        return
    numpy_values = values.to_numpy() if hasattr(values, "to_numpy") else values
    if numpy_values.dtype.hasobject:
        _object_column(hasher, numpy_values)
    else:
        _numpy(hasher, numpy_values)


def _object_column(hasher: _Hasher, values: Any) -> None:
    """Object columns (usually strings): through arrow when it can, else item by item."""
    try:
        import pyarrow as pa

        array = pa.array(values, from_pandas=True)
    except Exception:
        array = None
    if array is None or not (pa.types.is_string(array.type) or pa.types.is_binary(array.type)):
        _hash_sequence(b"L")(hasher, values.tolist())  # mixed objects keep their types
        return
    _arrow_chunks(hasher, array)


def _arrow_chunks(hasher: _Hasher, array: Any) -> None:
    """Hash an arrow array's logical content, the same for any chunking, slicing or buffer
    padding: values, lengths and null positions go to three streams, so chunk boundaries
    leave no trace."""
    import numpy as np

    chunks = getattr(array, "chunks", [array])
    _tag(hasher, b"W", f"{array.type}|{len(array)}".encode())
    streams = [_new(), _new(), _new()]  # values, lengths, null positions
    position = 0
    for raw in chunks:
        chunk = raw
        if raw.null_count:
            mask = raw.is_null().to_numpy(zero_copy_only=False)
            streams[2].update((np.flatnonzero(mask) + position).astype("<i8").tobytes())
            chunk = _without_null_bytes(raw)
        if not _arrow_buffers(streams, chunk):
            for item in chunk.to_pylist():  # booleans, nested, dictionary...: exact, slower
                _update(streams[0], item)
        position += len(chunk)
    for stream in streams:
        hasher.update(stream.digest())


def _without_null_bytes(chunk: Any) -> Any:
    """The chunk with defined values under its null slots (their bytes are arbitrary)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = chunk.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        filler = pa.scalar("", type=kind)
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        filler = pa.scalar(b"", type=kind)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        filler = pa.scalar(0, type=kind)
    else:
        return chunk  # other types are hashed through their Python values
    try:
        return pc.fill_null(chunk, filler)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return chunk


def _arrow_buffers(streams: list[_Hasher], chunk: Any) -> bool:
    """Feed the live bytes of a primitive or string chunk; False for other types."""
    import numpy as np
    import pyarrow as pa

    kind, start, count = chunk.type, chunk.offset, len(chunk)
    buffers = chunk.buffers()
    large = pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)
    if large or pa.types.is_string(kind) or pa.types.is_binary(kind):
        offsets = np.frombuffer(buffers[1], dtype="<i8" if large else "<i4")
        offsets = offsets[start : start + count + 1]
        if count:
            streams[1].update(np.diff(offsets).astype("<i8").tobytes())
            streams[0].update(memoryview(buffers[2])[int(offsets[0]) : int(offsets[-1])])
        return True
    bit_width = getattr(kind, "bit_width", 0)
    if bit_width and bit_width % 8 == 0 and len(buffers) == 2 and buffers[1] is not None:
        size = bit_width // 8
        streams[0].update(memoryview(buffers[1])[start * size : (start + count) * size])
        return True
    return False


def _pyarrow(hasher: _Hasher, value: Any) -> bool:
    import pyarrow as pa

    if isinstance(value, pa.Table | pa.RecordBatch):
        _tag(hasher, b"G", str(value.schema).encode())
        for column in value.columns:
            _arrow_chunks(hasher, column)
        return True
    if isinstance(value, pa.Array | pa.ChunkedArray):
        _arrow_chunks(hasher, value)
        return True
    return False


def _polars(hasher: _Hasher, value: Any) -> bool:
    import polars as pl

    if isinstance(value, pl.DataFrame):
        _tag(hasher, b"O", b"polars")
        return _pyarrow(hasher, value.to_arrow())
    if isinstance(value, pl.Series):
        _tag(hasher, b"o", value.name.encode())
        return _pyarrow(hasher, value.to_arrow())
    return False


_BY_MODULE: dict[str, Callable[[_Hasher, Any], bool]] = {
    "numpy": _numpy,
    "pandas": _pandas,
    "pyarrow": _pyarrow,
    "polars": _polars,
}
