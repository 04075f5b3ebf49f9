"""Data-version encoders for array libraries: numpy, pandas, pyarrow, polars.

Numeric buffers go straight to xxh3 (no copy for contiguous arrays, no Python loop per
element), and so do arrow strings: their bytes and their offsets buffer as they are (see
:func:`_end_offsets` for how that stays independent of chunking); everything that
changes how the value behaves is hashed beside them: the exact type (``np.matrix``,
``recarray``, masked arrays, DataFrame subclasses), dtype and shape, masks, categories
and arrow dictionaries, index and column names and levels, timezones and the kind of
each null in object columns. A library is only imported once a value of
its own is being hashed, so these functions find it in ``sys.modules``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

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

__all__ = ["LIBRARIES"]


# -- numpy -----------------------------------------------------------------------------------


def _numpy(value: Any) -> Encoder | None:
    np = sys.modules["numpy"]
    masked = sys.modules.get("numpy.ma.core")
    if masked is not None and isinstance(value, masked.MaskedArray):
        return _masked_array
    if isinstance(value, np.ndarray):
        return _ndarray
    if isinstance(value, np.generic):
        return _numpy_scalar
    return None


def _dtype_text(dtype: Any) -> str:
    return repr(dtype.descr) if dtype.fields else str(dtype.str)


def _ndarray(hasher: Hasher, value: Any) -> Iterable[Any]:
    """dtype, shape and the raw bytes (object and variable-width strings item by item)."""
    np = sys.modules["numpy"]
    if type(value) is not np.ndarray:  # matrix, recarray, memmap, user subclasses
        tag(hasher, b"K", qualified_name(type(value)).encode())
        value = value.view(np.ndarray)
    dtype = value.dtype
    tag(hasher, b"A", f"{_dtype_text(dtype)}|{value.shape}".encode())
    if dtype.hasobject or dtype.kind == "T":  # pointers: hash what they point to
        return (value.ravel().tolist(),)
    if value.size:
        if dtype.kind in "mM":  # datetimes and timedeltas export no buffer: their ticks
            value = value.view("<i8")
        hasher.update(memoryview(np.ascontiguousarray(value)).cast("B"))
    return LEAF


def _masked_array(hasher: Hasher, value: Any) -> Iterable[Any]:
    """Data (all of it: ``.data`` shows it), mask, fill value and mask hardness."""
    np = sys.modules["numpy"]
    tag(hasher, b"K", qualified_name(type(value)).encode())
    hasher.update(b"h1" if value.hardmask else b"h0")
    return (value.data.view(np.ndarray), np.ma.getmaskarray(value), value.fill_value)


def _numpy_scalar(hasher: Hasher, value: Any) -> Iterable[Any]:
    tag(hasher, b"a", _dtype_text(value.dtype).encode())
    if value.dtype.hasobject:
        return (value.item(),)
    hasher.update(value.tobytes())
    return LEAF


# -- pandas ----------------------------------------------------------------------------------


def _pandas(value: Any) -> Encoder | None:
    pd = sys.modules["pandas"]
    if isinstance(value, pd.DataFrame):
        return _frame
    if isinstance(value, pd.Series):
        return _series
    if isinstance(value, pd.Index):
        return _index
    if isinstance(value, pd.api.extensions.ExtensionArray):
        return _values
    return None


def _frame(hasher: Hasher, value: Any) -> Iterator[Any]:
    tag(hasher, b"Q", f"{qualified_name(type(value))}|{value.shape}".encode())
    yield from _index(hasher, value.columns)
    yield from _index(hasher, value.index)
    for _, column in value.items():
        yield from _values(hasher, column)
    yield dict(value.attrs)


def _series(hasher: Hasher, value: Any) -> Iterator[Any]:
    tag(hasher, b"q", qualified_name(type(value)).encode())
    yield value.name
    yield from _index(hasher, value.index)
    yield from _values(hasher, value)
    yield dict(value.attrs)


def _index(hasher: Hasher, index: Any) -> Iterator[Any]:
    """Exact type, names (level names of a MultiIndex), frequency and values."""
    pd = sys.modules["pandas"]
    tag(hasher, b"x", qualified_name(type(index)).encode())
    yield list(index.names)
    if isinstance(index, pd.RangeIndex):
        tag(hasher, b"i", f"{index.start}|{index.stop}|{index.step}".encode())
        return
    if isinstance(index, pd.MultiIndex):
        hasher.update(b"j" + size(index.nlevels))
        for level in range(index.nlevels):
            yield from _values(hasher, index.get_level_values(level))
        return
    yield getattr(index, "freqstr", None)
    yield from _values(hasher, index)


def _pandas_dtype_text(dtype: Any) -> str:
    text = str(dtype)
    storage = getattr(dtype, "storage", None)  # "str" and "string" by storage and null kind
    if storage is not None:
        text += f"|{storage}|{getattr(dtype, 'na_value', None)!r}"
    return text


def _values(hasher: Hasher, values: Any) -> Iterator[Any]:
    """A column's (or index's, or extension array's) dtype and content."""
    pd = sys.modules["pandas"]
    array = values.array if hasattr(values, "array") else values
    dtype = values.dtype
    tag(hasher, b"v", _pandas_dtype_text(dtype).encode())
    if isinstance(dtype, pd.CategoricalDtype):  # categories and order matter too
        hasher.update(b"o1" if dtype.ordered else b"o0")
        yield from _values(hasher, pd.Index(dtype.categories))
        yield from _ndarray(hasher, pd.Categorical(values).codes)
    elif isinstance(dtype, pd.ArrowDtype | pd.StringDtype) and _has_pyarrow():
        yield from _arrow_array(hasher, array.__arrow_array__())
    elif isinstance(dtype, pd.DatetimeTZDtype):  # the tz is in the dtype: UTC ticks
        yield from _ndarray(hasher, array.to_numpy(dtype=f"datetime64[{dtype.unit}]"))
    elif _is_masked(pd, dtype):  # nullable Int64, Float64, boolean: mask and data
        filler = False if dtype.kind == "b" else 0
        yield from _ndarray(hasher, array.isna())
        yield from _ndarray(hasher, array.to_numpy(dtype=dtype.numpy_dtype, na_value=filler))
    else:
        numpy_values = values.to_numpy() if hasattr(values, "to_numpy") else values
        if numpy_values.dtype.hasobject:
            yield from _object_column(hasher, numpy_values)
        else:
            yield from _ndarray(hasher, numpy_values)


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # python-storage strings without pyarrow: item by item
        return False
    return True


def _is_masked(pd: Any, dtype: Any) -> bool:
    masked = (pd.BooleanDtype, pd.Float32Dtype, pd.Float64Dtype, *_integer_dtypes(pd))
    return isinstance(dtype, masked)


def _integer_dtypes(pd: Any) -> tuple[type, ...]:
    names = ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
    return tuple(getattr(pd, f"{name}Dtype") for name in names)


def _object_column(hasher: Hasher, values: Any) -> Iterable[Any]:
    """Object columns: null-free strings or bytes through arrow, anything else item by item
    (so ``None``, ``NaN`` and ``pd.NA`` stay apart, and mixed objects keep their types)."""
    try:
        import pyarrow as pa

        array = pa.array(values, from_pandas=True)
    except Exception:  # no pyarrow, or objects arrow cannot convert
        array = None
    if (
        array is None
        or array.null_count
        or not (pa.types.is_string(array.type) or pa.types.is_binary(array.type))
    ):
        return (values.tolist(),)
    return _arrow_array(hasher, array)


# -- pyarrow ---------------------------------------------------------------------------------


def _pyarrow(value: Any) -> Encoder | None:
    pa = sys.modules["pyarrow"]
    if isinstance(value, pa.Table | pa.RecordBatch):
        return _arrow_table
    if isinstance(value, pa.Array | pa.ChunkedArray):
        return _arrow_array
    return None


def _arrow_table(hasher: Hasher, value: Any) -> Iterator[Any]:
    schema = value.schema.to_string(truncate_metadata=False, show_schema_metadata=True)
    tag(hasher, b"G", f"{qualified_name(type(value))}|{schema}".encode())
    for column in value.columns:
        yield from _arrow_array(hasher, column)


def _arrow_array(hasher: Hasher, array: Any) -> Iterator[Any]:
    """An arrow array's logical content, the same for any chunking, slicing or buffer
    padding: values, lengths and null positions go to three streams, so chunk boundaries
    leave no trace. Dictionaries are unified across chunks, then hashed with the indices."""
    import numpy as np
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray) and pa.types.is_dictionary(array.type):
        array = array.unify_dictionaries()
    chunks = getattr(array, "chunks", [array])
    tag(hasher, b"W", f"{array.type}|{len(array)}".encode())
    streams = [_Stream(), _Stream(), _Stream()]  # values, end offsets/lengths, null positions
    position = 0
    dictionary = None
    for raw in chunks:
        chunk = raw
        if raw.null_count:
            mask = raw.is_null().to_numpy(zero_copy_only=False)
            streams[2].update((np.flatnonzero(mask) + position).astype("<i8").tobytes())
        if pa.types.is_dictionary(chunk.type):
            if dictionary is None or not chunk.dictionary.equals(dictionary):
                dictionary = chunk.dictionary
                yield Into(dictionary, streams[1].hasher)
            chunk = chunk.indices
        if chunk.null_count:
            chunk = _without_null_bytes(chunk)
        if not _arrow_buffers(streams, chunk):
            for item in chunk.to_pylist():  # nested types (list, struct, map...): exact
                yield Into(item, streams[0].hasher)
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
    elif pa.types.is_boolean(kind):
        filler = pa.scalar(False, type=kind)
    else:
        return chunk  # other types are hashed through their Python values
    try:
        return pc.fill_null(chunk, filler)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return chunk


class _Stream:
    """A hasher that counts the string bytes fed so far (the next chunk's base offset)."""

    __slots__ = ("done", "hasher")

    def __init__(self) -> None:
        self.hasher = new_hasher()
        self.done = 0

    def update(self, data: Any) -> None:
        self.hasher.update(data)

    def digest(self) -> bytes:
        return bytes(self.hasher.digest())


_I4_LIMIT = 1 << 31
_BLOCK = 1 << 16  # offsets rebased per block: a small buffer, never a copy of the column


def _end_offsets(stream: _Stream, ends: Any, shift: int, large: bool) -> None:
    """Feed each string's end, counted from the start of the whole array's string bytes.

    That is the chunk's own offsets buffer, hashed as it is, when the chunk starts where
    the previous ones ended (a single unsliced chunk: the usual case); other chunks are
    shifted block by block. The entries are 4-byte for ``string``/``binary`` while they
    fit (8-byte beyond 2 GiB, which only a chunked array reaches) and 8-byte for the
    ``large_`` types, so the bytes depend on the value only, never on its chunking; and
    the element count (in the array's tag) makes the switch point unambiguous.
    """
    import numpy as np

    if shift == 0 and sys.byteorder == "little":
        stream.update(ends)  # no copy: the buffer itself
        return
    for begin in range(0, len(ends), _BLOCK):
        block = ends[begin : begin + _BLOCK].astype("<i8") + shift
        if large:
            stream.update(block)
            continue
        cut = int(np.searchsorted(block, _I4_LIMIT))
        stream.update(block[:cut].astype("<i4"))
        stream.update(block[cut:])


def _arrow_buffers(streams: list[_Stream], chunk: Any) -> bool:
    """Feed the live bytes of a fixed-width, boolean or string chunk; False otherwise."""
    import numpy as np
    import pyarrow as pa

    kind, start, count = chunk.type, chunk.offset, len(chunk)
    buffers = chunk.buffers()
    large = pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)
    if large or pa.types.is_string(kind) or pa.types.is_binary(kind):
        offsets = np.frombuffer(buffers[1], dtype="<i8" if large else "<i4")
        offsets = offsets[start : start + count + 1]
        if count:
            first, last = int(offsets[0]), int(offsets[-1])
            _end_offsets(streams[1], offsets[1:], streams[0].done - first, large)
            streams[0].update(memoryview(buffers[2])[first:last])
            streams[0].done += last - first
        return True
    if pa.types.is_boolean(kind) and not chunk.null_count:
        streams[0].update(chunk.to_numpy(zero_copy_only=False).astype("u1").tobytes())
        return True
    try:
        bit_width = kind.bit_width
    except ValueError:  # not a fixed-width type
        return False
    if bit_width % 8 == 0 and len(buffers) == 2 and buffers[1] is not None:
        width = bit_width // 8
        streams[0].update(memoryview(buffers[1])[start * width : (start + count) * width])
        return True
    return False


# -- polars ----------------------------------------------------------------------------------


def _polars(value: Any) -> Encoder | None:
    pl = sys.modules["polars"]
    if isinstance(value, pl.DataFrame | pl.Series):
        return _polars_value
    return None


def _polars_value(hasher: Hasher, value: Any) -> Iterable[Any]:
    pl = sys.modules["polars"]
    tag(hasher, b"O", qualified_name(type(value)).encode())
    name = value.name if isinstance(value, pl.Series) else None
    return (name, value.to_arrow())


LIBRARIES: dict[str, Callable[[Any], Encoder | None]] = {
    "numpy": _numpy,
    "pandas": _pandas,
    "pyarrow": _pyarrow,
    "polars": _polars,
}
"""Top-level module name -> ``select(value)``, the value's encoder or None."""
