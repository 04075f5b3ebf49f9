"""Pickling for the trip to a worker (processes, Dask, Ray): cloudpickle, with file names.

cloudpickle sends functions that cannot be imported by name (closures, lambdas, steps
defined in ``__main__`` or a notebook) by value, code object and all. Since 3.1.3 it
replaces each code object's ``co_filename`` with ``"<dynamic-code>"`` to make its payload
deterministic, so a traceback raised on a worker no longer names the user's file and line.
A transport does not need a deterministic payload, and a user needs the traceback: this
pickler sends code objects with :mod:`marshal` (the format of ``.pyc`` files), which keeps
the file name, the line table and every nested code object exactly, whatever cloudpickle
version is installed. Driver and workers must run the same Python version, as cloudpickle
already requires for code sent by value.

Hashing never uses this module: a value's hash must not depend on where its code lives.
"""

from __future__ import annotations

import io
import marshal
import types
from collections import ChainMap
from typing import Any, ClassVar


def _reduce_code(code: types.CodeType) -> tuple[Any, tuple[bytes]]:
    return marshal.loads, (marshal.dumps(code),)


_pickler_class: Any = None


def _pickler() -> Any:
    """The cloudpickle ``Pickler`` subclass (built on first use: cloudpickle loads lazily)."""
    global _pickler_class
    if _pickler_class is None:
        import cloudpickle

        base = cloudpickle.Pickler

        class _Pickler(base):  # type: ignore[misc, valid-type]
            dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
                {types.CodeType: _reduce_code}, base.dispatch_table
            )

        _pickler_class = _Pickler
    return _pickler_class


def dumps(obj: Any) -> bytes:
    """``obj`` pickled as cloudpickle does, keeping each code object's file and lines."""
    buffer = io.BytesIO()
    _pickler()(buffer, protocol=5).dump(obj)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    """The object that :func:`dumps` pickled."""
    import cloudpickle

    return cloudpickle.loads(data)
