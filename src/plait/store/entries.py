"""What the store's index holds: entries, the artifact references in them, their checks.

An :class:`Entry` is one step's cached result (key -> output artifacts); an
:class:`ArtifactRef` says where one stored value lives and how to check it. Both are read
back from files anyone with write access may have edited, so every field that becomes a
path is validated here, when a reference is made: a data version is 8-128 lowercase hex
digits and a serializer name a short word. ``canonical`` gives the bytes an entry's
signature covers (see :mod:`plait.store.signing`).

Design note: the binary form. A local store's index keeps an entry as ``MAGIC``, a flag
(``S`` signed, ``U`` unsigned), for a signed entry its 64-hex-digit signature, then the
``marshal`` (format 4) of a tuple of plain values: key, step, pipeline, the output refs as
6-tuples, created, run, session, reusable, parts. ``marshal`` never runs code when
loading (unlike pickle), but it is not hardened against deliberately crafted bytes, so
with a secret the signature (purpose ``"entry2"``, over the key and exactly these body
bytes) is checked *before* the body is decoded; every decoded
field is type-checked, and the refs validated as always, so a damaged or crafted body is a
miss. Entries of earlier versions (JSON, first byte ``{``) are still read by
:func:`parse_entry`; remote stores keep writing JSON (one object per entry).
"""

from __future__ import annotations

import json
import marshal
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.errors import PlaitError

__all__ = [
    "MAGIC",
    "ArtifactRef",
    "CorruptArtifact",
    "Entry",
    "canonical",
    "checksum",
    "decode_body",
    "encode_entry",
    "parse_entry",
    "split_binary",
]

MAGIC = b"\x00pe2"  # a binary entry; a JSON one (older versions, remote stores) starts "{"
_SIGNED, _UNSIGNED = 0x53, 0x55  # b"S", b"U"
_SIGNATURE = 64  # hex digits of an HMAC-SHA256
# Refs decoded before, by their stored fields (an ArtifactRef is immutable and validated
# once): a warm run decodes the same refs again. Bounded; cleared when full.
_REFS: dict[tuple[Any, ...], ArtifactRef] = {}
_REFS_MAX = 1 << 16

_HEX = "0123456789abcdef"
_SEEN_SERIALIZERS: set[str] = set()  # names that passed the check (a hit checks one set)


def _is_version(value: object) -> bool:
    """8-128 lowercase hex digits (``str.strip`` runs in C: a hit pays ~100 ns)."""
    return isinstance(value, str) and 8 <= len(value) <= 128 and not value.strip(_HEX)


_SERIALIZER = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class CorruptArtifact(PlaitError, OSError):
    """An artifact failed its integrity check (damaged, truncated or tampered with)."""


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """Where one stored value lives, and how to check and read it."""

    version: str  # the value's data version (content hash)
    serializer: str
    checksum: str  # xxh3_64 of the bytes
    size: int
    signature: str | None = None

    def __post_init__(self) -> None:
        # The version and serializer become a path: refuse anything but the shapes plait
        # writes, so a crafted entry or record never reaches a file outside the store.
        if not _is_version(self.version):
            raise ValueError(f"not a data version: {self.version!r}")
        if self.serializer not in _SEEN_SERIALIZERS:
            if not isinstance(self.serializer, str) or not _SERIALIZER.fullmatch(self.serializer):
                raise ValueError(f"not a serializer name: {self.serializer!r}")
            _SEEN_SERIALIZERS.add(self.serializer)

    @property
    def path(self) -> str:
        """The artifact's path under the store root."""
        return f"objects/{self.version[:2]}/{self.version}.{self.serializer}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = {
            "version": self.version,
            "serializer": self.serializer,
            "checksum": self.checksum,
            "size": self.size,
        }
        if self.signature is not None:
            data["signature"] = self.signature
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ArtifactRef:
        """Rebuild from :meth:`to_json`."""
        return cls(
            data["version"],
            data["serializer"],
            data["checksum"],
            int(data["size"]),
            data.get("signature"),
        )


@dataclass(slots=True)
class Entry:
    """A step's cached result: its outputs' artifacts and how they came to be.

    Attributes:
        key: The cache key.
        step: The step's name; ``pipeline`` the pipeline's.
        outputs: Output name -> artifact.
        created: When it was written (epoch seconds).
        run_id: The run that wrote it; ``session`` the process.
        reusable: False for ``cache=False`` steps (kept as checkpoints for resume only).
        parts: The key's ingredients (fingerprint, input versions) for explanations.
    """

    key: str
    step: str
    pipeline: str
    outputs: dict[str, ArtifactRef]
    created: float
    run_id: str
    session: str
    reusable: bool = True
    parts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The entry as JSON bytes."""
        return json.dumps(
            {
                "key": self.key,
                "step": self.step,
                "pipeline": self.pipeline,
                "outputs": {k: v.to_json() for k, v in self.outputs.items()},
                "created": self.created,
                "run_id": self.run_id,
                "session": self.session,
                "reusable": self.reusable,
                "parts": self.parts,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Entry:
        """Parse :meth:`to_json` bytes."""
        return cls.from_raw(json.loads(data))

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Entry:
        """Rebuild from the parsed JSON of :meth:`to_json`."""
        return cls(
            raw["key"],
            raw["step"],
            raw["pipeline"],
            {k: ArtifactRef.from_json(v) for k, v in raw["outputs"].items()},
            raw["created"],
            raw["run_id"],
            raw["session"],
            raw.get("reusable", True),
            raw.get("parts", {}),
        )


def checksum(data: bytes) -> str:
    import xxhash

    return str(xxhash.xxh3_64_hexdigest(data))


def canonical(raw: Mapping[str, Any]) -> bytes:
    """The bytes an entry's signature covers: its JSON with sorted keys, no signature."""
    body = {k: v for k, v in raw.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def encode_entry(entry: Entry, sign: Callable[[bytes], str] | None = None) -> bytes:
    """The binary form of ``entry`` (see the module's design note); ``sign(body)`` gives
    the signature of a signed store."""
    outputs = tuple(
        (name, r.version, r.serializer, r.checksum, r.size, r.signature)
        for name, r in entry.outputs.items()
    )
    fields = (
        entry.key,
        entry.step,
        entry.pipeline,
        outputs,
        float(entry.created),
        entry.run_id,
        entry.session,
        bool(entry.reusable),
        entry.parts,
    )
    try:
        body = marshal.dumps(fields, 4)
    except ValueError:  # parts holding a value marshal refuses: keep its JSON reading
        plain = json.loads(json.dumps(entry.parts, default=repr))
        body = marshal.dumps((*fields[:8], plain), 4)
    if sign is None:
        return MAGIC + b"U" + body
    signature = sign(body).encode()
    if len(signature) != _SIGNATURE:  # pragma: no cover - Signer gives SHA-256 hex
        raise ValueError("unexpected signature length")
    return MAGIC + b"S" + signature + body


def split_binary(data: bytes) -> tuple[str | None, bytes]:
    """A binary entry's signature (None: unsigned) and body.

    Raises:
        ValueError: When ``data`` is not a well-formed binary entry.
    """
    if data[:4] != MAGIC or len(data) < 6:
        raise ValueError("not a binary cache entry")
    flag = data[4]
    if flag == _UNSIGNED:
        return None, data[5:]
    if flag == _SIGNED and len(data) > 5 + _SIGNATURE:
        return data[5 : 5 + _SIGNATURE].decode("ascii"), data[5 + _SIGNATURE :]
    raise ValueError("a binary cache entry with a bad header")


def decode_body(body: bytes) -> Entry:
    """The entry of a binary body, every field type-checked.

    Raises:
        ValueError: When the body is damaged or not the shape plait writes.
    """
    try:
        fields = marshal.loads(body)
    except (EOFError, TypeError, ValueError) as exc:
        raise ValueError(f"undecodable binary entry ({exc})") from None
    if type(fields) is not tuple or len(fields) != 9:
        raise ValueError("a binary entry of the wrong shape")
    key, step, pipeline, outputs, created, run_id, session, reusable, parts = fields
    if (
        type(key) is not str
        or type(step) is not str
        or type(pipeline) is not str
        or type(run_id) is not str
        or type(session) is not str
        or type(created) is not float
        or type(reusable) is not bool
        or type(parts) is not dict
        or type(outputs) is not tuple
    ):
        raise ValueError("a binary entry with a field of the wrong type")
    refs: dict[str, ArtifactRef] = {}
    for ref in outputs:
        if type(ref) is not tuple or len(ref) != 6:
            raise ValueError("a binary entry with a malformed output")
        name, version, serializer, check, size, signature = ref
        if (
            type(name) is not str
            or type(check) is not str
            or type(size) is not int
            or not (signature is None or type(signature) is str)
        ):
            raise ValueError("a binary entry with a malformed output")
        found = _REFS.get(ref)
        if found is None:
            if len(_REFS) >= _REFS_MAX:
                _REFS.clear()
            found = _REFS[ref] = ArtifactRef(version, serializer, check, size, signature)
        refs[name] = found
    return Entry(key, step, pipeline, refs, created, run_id, session, reusable, parts)


def parse_entry(data: bytes) -> Entry:
    """An entry from its stored bytes, binary or JSON (no signature check).

    Raises:
        ValueError: When it is damaged (also ``KeyError``/``TypeError`` for JSON).
    """
    if data[:4] == MAGIC:
        return decode_body(split_binary(data)[1])
    return Entry.from_json(data)
