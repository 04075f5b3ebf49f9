"""Signatures for what a store hands back: HMAC-SHA256 under the store's secret.

Design note. A store's files can be written by anyone who can write its directory (a
shared volume, a bucket, a PostgreSQL history). With a secret (``PLAIT_SECRET``), plait
signs everything it will later trust and checks before trusting:

- an **artifact** is signed over ``(version, serializer, bytes)``, so its bytes cannot be
  replaced and it cannot be renamed to another data version or read as another format;
- an **entry** is signed over its key and its whole canonical JSON (the output refs
  included, with their artifact signatures), so an entry cannot be pointed at another
  entry's artifact, moved to another key, or edited;
- a history's **params/config blob** is signed over the run id and its bytes.

Each signature has a purpose prefix and length-prefixed parts, so no signature made for
one purpose or one split of the parts verifies another. A check that fails never deletes
anything: a store written with another key is left intact for its owner.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

__all__ = ["Signer"]


class Signer:
    """Signs and verifies byte strings for one purpose at a time."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("a store secret must not be empty")
        self._secret = secret

    def sign(self, purpose: str, *parts: bytes) -> str:
        """The hex HMAC-SHA256 of ``parts`` (length-prefixed) for ``purpose``."""
        mac = hmac.new(self._secret, purpose.encode() + b"\x00", hashlib.sha256)
        for part in parts:
            mac.update(struct.pack("<Q", len(part)))
            mac.update(part)
        return mac.hexdigest()

    def verify(self, signature: object, purpose: str, *parts: bytes) -> bool:
        """True when ``signature`` is :meth:`sign` of the same purpose and parts."""
        if not isinstance(signature, str):
            return False
        return hmac.compare_digest(signature, self.sign(purpose, *parts))

    def __repr__(self) -> str:
        return "Signer(<secret>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Signer holds a secret and is never pickled")
