"""Serializers: how a value becomes bytes in the store, chosen by its type.

Each serializer has a ``name`` (recorded with the artifact, so it is read back the same
way), ``accepts(value)``, ``dumps(value) -> bytes`` and ``loads(bytes)``. The first that
accepts a value wins, in this order: registered ones (newest first), parquet for pandas /
polars / pyarrow tables, ``.npy`` for numpy arrays, JSON for plain JSON data (only when it
round-trips exactly: no tuples, only string keys), pickle (cloudpickle) for the rest.
All of them keep types: dtypes, index and column order for frames.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from typing import Any, Protocol, runtime_checkable

__all__ = ["Serializer", "register_serializer", "serializer_for", "serializer_named"]


@runtime_checkable
class Serializer(Protocol):
    """Turns values of some types into bytes and back."""

    name: str

    def accepts(self, value: Any) -> bool:
        """True when this serializer can store ``value`` losslessly."""
        ...

    def dumps(self, value: Any) -> bytes:
        """The bytes of ``value``."""
        ...

    def loads(self, data: bytes) -> Any:
        """The value back from :meth:`dumps`' bytes."""
        ...


class PickleSerializer:
    """Anything picklable, through cloudpickle (lambdas, closures, local classes)."""

    name = "pickle"
    signed = True  # unpickling runs code: artifacts are signed when a secret is set

    def accepts(self, value: Any) -> bool:
        """Pickle is the fallback: it accepts everything (dumps may still fail)."""
        return True

    def dumps(self, value: Any) -> bytes:
        """Pickle with protocol 5."""
        try:
            return pickle.dumps(value, protocol=5)
        except Exception:
            import cloudpickle

            return bytes(cloudpickle.dumps(value, protocol=5))

    def loads(self, data: bytes) -> Any:
        """Unpickle."""
        return pickle.loads(data)


def _plain_json(value: Any, depth: int = 0) -> bool:
    if depth > 50:
        return False
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_plain_json(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain_json(v, depth + 1) for k, v in value.items())
    return False


class JSONSerializer:
    """Plain JSON data (dicts with string keys, lists, str, int, float, bool, None)."""

    name = "json"
    signed = False

    def accepts(self, value: Any) -> bool:
        """Only values that come back identical (no tuples, no non-string keys)."""
        return _plain_json(value)

    def dumps(self, value: Any) -> bytes:
        """UTF-8 JSON."""
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        """Parse JSON."""
        return json.loads(data)


class NumpySerializer:
    """numpy arrays as ``.npy`` (object arrays go to pickle)."""

    name = "npy"
    signed = False

    def accepts(self, value: Any) -> bool:
        """numpy arrays without Python objects inside."""
        if type(value).__module__ != "numpy":
            return False
        import numpy as np

        return isinstance(value, np.ndarray) and not value.dtype.hasobject

    def dumps(self, value: Any) -> bytes:
        """The ``.npy`` format."""
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        """Read ``.npy``."""
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)


class ParquetSerializer:
    """pandas and polars frames and pyarrow tables as Parquet (dtypes and index kept)."""

    name = "parquet"
    signed = False

    def accepts(self, value: Any) -> bool:
        """Frames whose columns parquet can hold (checked by a trial write)."""
        module = type(value).__module__.partition(".")[0]
        if module not in ("pandas", "polars", "pyarrow"):
            return False
        kind = type(value).__name__
        if kind not in ("DataFrame", "Table"):
            return False
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return False
        return module != "pandas" or _object_columns_are_strings(value)

    def dumps(self, value: Any) -> bytes:
        """Parquet bytes, with the library recorded in the schema metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        module = type(value).__module__.partition(".")[0]
        if module == "pandas":
            table = pa.Table.from_pandas(value, preserve_index=None)  # a RangeIndex as metadata
        elif module == "polars":
            table = value.to_arrow()
        else:
            table = value
        metadata = dict(table.schema.metadata or {})
        metadata[b"plait.kind"] = module.encode()
        table = table.replace_schema_metadata(metadata)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        """Read Parquet back into the library it came from."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(pa.BufferReader(data))
        kind = (table.schema.metadata or {}).get(b"plait.kind", b"pyarrow").decode()
        if kind == "pandas":
            return table.to_pandas()
        if kind == "polars":
            import polars as pl

            return pl.from_arrow(table)
        return table


def _object_columns_are_strings(frame: Any) -> bool:
    if not all(isinstance(c, str) for c in frame.columns):
        return False
    for name, dtype in frame.dtypes.items():
        if str(dtype) == "object":
            column = frame[name]
            if not column.map(lambda v: v is None or isinstance(v, str)).all():
                return False
    return True


_REGISTERED: list[Serializer] = []
_BUILTIN: list[Serializer] = [
    ParquetSerializer(),
    NumpySerializer(),
    JSONSerializer(),
    PickleSerializer(),
]


def register_serializer(serializer: Serializer) -> None:
    """Use ``serializer`` for the values it accepts (before the built-in ones)."""
    _REGISTERED.insert(0, serializer)


def serializer_for(value: Any) -> Serializer:
    """The first serializer that accepts ``value``."""
    for serializer in (*_REGISTERED, *_BUILTIN):
        if serializer.accepts(value):
            return serializer
    return _BUILTIN[-1]


def serializer_named(name: str) -> Serializer:
    """The serializer recorded as ``name``.

    Raises:
        KeyError: When no serializer has that name (register it first).
    """
    for serializer in (*_REGISTERED, *_BUILTIN):
        if serializer.name == name:
            return serializer
    raise KeyError(f"no serializer named {name!r}; register it with register_serializer()")
