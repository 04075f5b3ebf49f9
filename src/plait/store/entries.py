"""What the store's index holds: entries, the artifact references in them, their checks.

An :class:`Entry` is one step's cached result (key -> output artifacts); an
:class:`ArtifactRef` says where one stored value lives and how to check it. Both are read
back from files anyone with write access may have edited, so every field that becomes a
path is validated here, when a reference is made: a data version is 8-128 lowercase hex
digits and a serializer name a short word. ``canonical`` gives the bytes an entry's
signature covers (see :mod:`plait.store.signing`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.errors import PlaitError

__all__ = ["ArtifactRef", "CorruptArtifact", "Entry", "canonical", "checksum"]

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
