"""Building blocks shared by the data-version encoders of :mod:`plait.store.hashing`.

An *encoder* feeds one value's canonical encoding to a hasher. It writes its own bytes
straight to the hasher and returns an iterable of *operations* for the parts it cannot
write itself, which the traversal in :mod:`plait.store.hashing` then encodes in order:

- a bare value: encode it into the encoder's own hasher, at this point of the stream;
- :class:`Into`: encode ``value`` into another ``hasher`` (a sub-digest the encoder reads
  once the traversal resumes it, e.g. to sort the items of a set). ``Into`` is private to
  hashing: no user value is ever one.

Encoders that yield are generators, resumed only once the previous operation is fully
encoded, so nesting depth costs heap, never Python stack. Leaf encoders return
:data:`LEAF`. Every encoding is prefix-free (a tag, then a length or a fixed-size payload),
so concatenated encodings never blur into one another.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["LEAF", "Encoder", "Hasher", "Into", "new_hasher", "qualified_name", "size", "tag"]

Hasher = Any  # an xxhash.xxh3_128 object
Encoder = Callable[[Hasher, Any], Iterable[Any]]
LEAF: tuple[()] = ()  # what an encoder that wrote everything itself returns

_FACTORY: list[Callable[[], Hasher]] = []


@dataclass(frozen=True, slots=True)
class Into:
    """An operation: encode ``value`` into ``hasher`` rather than the encoder's own."""

    value: Any
    hasher: Hasher


def new_hasher() -> Hasher:
    """A fresh 128-bit xxh3 hasher (xxhash is imported on first use)."""
    if not _FACTORY:
        import xxhash

        _FACTORY.append(xxhash.xxh3_128)
    return _FACTORY[0]()


def size(count: int) -> bytes:
    """A length or count as 8 little-endian bytes."""
    return struct.pack("<Q", count)


def tag(hasher: Hasher, label: bytes, payload: bytes) -> None:
    """Write ``label``, the payload's length, then the payload."""
    if len(payload) < 4096:  # one call: cheaper than three for the many small scalars
        hasher.update(label + struct.pack("<Q", len(payload)) + payload)
    else:
        hasher.update(label + struct.pack("<Q", len(payload)))
        hasher.update(payload)


def qualified_name(kind: type) -> str:
    """``module.QualName`` of a type: how the exact type of a value enters its hash."""
    return f"{kind.__module__}.{kind.__qualname__}"
