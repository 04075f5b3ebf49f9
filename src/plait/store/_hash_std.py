"""Data-version encoders of plain Python values: scalars, containers, dates and times,
enums, paths, types, dataclasses and pydantic models.

None of these ever pickles anything, so they neither count against the object budget of
:mod:`plait.store.hashing` nor need its traversal: they write their own bytes and yield the
values they contain (see :mod:`plait.store._hash_core` for the encoder protocol). The
dispatch tables and the encoders that fall back to pickle (functions, generic objects)
stay in :mod:`plait.store.hashing`.

- :data:`SIMPLE`: exact types written at once, which cannot contain other values;
- lists and tuples in order; plain dicts and sets order-free, by the sorted digests of
  their items (``{'a': 1, 'b': 2}`` and ``{'b': 2, 'a': 1}`` share a version);
- subclasses of builtin containers by their exact type, a ``defaultdict`` with its
  ``default_factory``, and the attributes they carry beside their items.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
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

__all__ = [
    "SIMPLE",
    "encode_dataclass",
    "encode_datetime",
    "encode_enum",
    "encode_mapping",
    "encode_ordered_mapping",
    "encode_path",
    "encode_pydantic",
    "encode_timezone",
    "encode_type",
    "sequence_encoder",
    "subclassed_container",
    "unordered_encoder",
    "write_flat",
]


def _int(hasher: Hasher, value: int) -> None:
    tag(hasher, b"I", value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True))


def _complex(hasher: Hasher, value: complex) -> None:
    tag(hasher, b"C", f"{value.real.hex()},{value.imag.hex()}".encode())


def _timedelta(hasher: Hasher, value: dt.timedelta) -> None:
    tag(hasher, b"r", repr((value.days, value.seconds, value.microseconds)).encode())


SIMPLE: dict[type, Callable[[Hasher, Any], None]] = {
    type(None): lambda h, v: h.update(b"N"),
    bool: lambda h, v: h.update(b"B1" if v else b"B0"),
    int: _int,
    float: lambda h, v: tag(h, b"F", v.hex().encode()),
    complex: _complex,
    str: lambda h, v: tag(h, b"S", v.encode("utf-8", "surrogatepass")),
    bytes: lambda h, v: tag(h, b"Y", v),
    bytearray: lambda h, v: tag(h, b"y", bytes(v)),
    dt.date: lambda h, v: tag(h, b"d", v.isoformat().encode()),
    dt.timedelta: _timedelta,
    decimal.Decimal: lambda h, v: tag(h, b"M", str(v).encode()),
    uuid.UUID: lambda h, v: tag(h, b"U", v.bytes),
    range: lambda h, v: tag(h, b"R", repr((v.start, v.stop, v.step)).encode()),
}
"""Exact types written at once: values that cannot contain anything else."""


def write_flat(hasher: Hasher, value: Any) -> bool:
    """Write a list or tuple of scalars at once (no encoder frame); False for others."""
    label = _FLAT.get(type(value))
    if label is None:
        return False
    simple = SIMPLE
    for item in value:
        if type(item) not in simple:
            return False
    hasher.update(label + size(len(value)))
    for item in value:
        simple[type(item)](hasher, item)
    return True


_FLAT: dict[type, bytes] = {list: b"L", tuple: b"T"}


def sequence_encoder(label: bytes) -> Encoder:
    def encode(hasher: Hasher, value: Any) -> Iterable[Any]:
        hasher.update(label + size(len(value)))
        items: Iterable[Any] = value  # each item is an operation: encoded in place
        return items

    return encode


def _digests(items: Iterable[Any], digests: list[bytes]) -> Iterator[Any]:
    """Append the digest of each item to ``digests`` (scalars at once)."""
    for item in items:
        sub = new_hasher()
        simple = SIMPLE.get(type(item))
        if simple is not None:
            simple(sub, item)
        elif not write_flat(sub, item):
            yield Into(item, sub)
        digests.append(sub.digest())


def unordered_encoder(label: bytes) -> Encoder:
    def encode(hasher: Hasher, value: Any) -> Iterator[Any]:
        hasher.update(label + size(len(value)))
        digests: list[bytes] = []
        yield from _digests(value, digests)
        for digest in sorted(digests):
            hasher.update(digest)

    return encode


def encode_mapping(hasher: Hasher, value: Mapping[Any, Any]) -> Iterator[Any]:
    """Order-free: the sorted digests of its ``(key, value)`` pairs (encoded as tuples)."""
    hasher.update(b"D" + size(len(value)))
    digests: list[bytes] = []
    for pair in value.items():
        sub = new_hasher()
        sub.update(b"T" + size(2))
        for part in pair:
            simple = SIMPLE.get(type(part))
            if simple is not None:
                simple(sub, part)
            elif not write_flat(sub, part):
                yield Into(part, sub)
        digests.append(sub.digest())
    for digest in sorted(digests):
        hasher.update(digest)


def encode_ordered_mapping(hasher: Hasher, value: Mapping[Any, Any]) -> Iterator[Any]:
    hasher.update(b"Z" + size(len(value)))
    for key, item in value.items():
        yield key
        yield item


def _instance_state(value: Any) -> dict[str, Any] | None:
    """Attributes a subclass of a builtin container carries beside its items, if any."""
    return getattr(value, "__dict__", None) or None


def subclassed_container(label: bytes, items: Encoder) -> Encoder:
    def encode(hasher: Hasher, value: Any) -> Iterator[Any]:
        tag(hasher, label, qualified_name(type(value)).encode())
        if isinstance(value, collections.defaultdict):
            yield value.default_factory
        yield from items(hasher, value)
        yield _instance_state(value)

    return encode


def encode_datetime(hasher: Hasher, value: dt.datetime | dt.time) -> Iterable[Any]:
    """The wall time, ``fold`` and the ``tzinfo`` itself (not just today's offset)."""
    label = b"t" if isinstance(value, dt.datetime) else b"h"
    wall = value.replace(tzinfo=None, fold=0).isoformat()
    tag(hasher, label, f"{wall}|{value.fold}".encode())
    if value.tzinfo is None:
        hasher.update(b"N")
        return LEAF
    return (value.tzinfo,)


def encode_timezone(hasher: Hasher, value: dt.timezone) -> Iterable[Any]:
    tag(hasher, b"z", f"{value.utcoffset(None)}|{value.tzname(None)}".encode())
    return LEAF


def encode_enum(hasher: Hasher, value: enum.Enum) -> Iterable[Any]:
    tag(hasher, b"n", qualified_name(type(value)).encode())
    return (value.value,)


def encode_path(hasher: Hasher, value: pathlib.PurePath) -> Iterable[Any]:
    tag(hasher, b"P", f"{qualified_name(type(value))}:{value}".encode())
    return LEAF


def encode_type(hasher: Hasher, value: type) -> Iterable[Any]:
    name = f"{qualified_name(type(value))}:{qualified_name(value)}"
    tag(hasher, b"k", name.encode())
    return LEAF


def encode_dataclass(hasher: Hasher, value: Any) -> Iterator[Any]:
    tag(hasher, b"c", qualified_name(type(value)).encode())
    names = set()
    for field in dataclasses.fields(value):
        names.add(field.name)
        yield field.name
        yield getattr(value, field.name)
    extra = {k: v for k, v in getattr(value, "__dict__", {}).items() if k not in names}
    yield extra or None


def encode_pydantic(hasher: Hasher, value: Any) -> Iterable[Any]:
    tag(hasher, b"p", qualified_name(type(value)).encode())
    return (value.model_dump(mode="python"),)
