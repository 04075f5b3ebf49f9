"""Reading and writing a store's cache entries: their stored bytes, checked and signed.

Design note. :func:`read_entry` turns the bytes an index holds into an :class:`Entry`, or
None for a miss: a binary entry (a local store's form, see :mod:`plait.store.entries`)
has its signature checked over its exact body *before* the body is decoded; a JSON one
(a remote store's, or an earlier version's) over its canonical JSON, as before. Without
a secret, a signed entry is refused with :class:`StoreSecretError` (plait cannot tell the
store's own entries from planted ones). Damage is a miss and a warning, never a crash.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from plait.errors import StoreSecretError
from plait.store.entries import (
    MAGIC,
    Entry,
    canonical,
    decode_body,
    encode_entry,
    split_binary,
)

if TYPE_CHECKING:
    from plait.store.signing import Signer

__all__ = ["check_secret", "read_entry", "write_entry"]

_log = logging.getLogger("plait.store")


def read_entry(key: str, data: bytes, signer: Signer | None, url: str) -> Entry | None:
    """The entry ``data`` holds for ``key``, or None (damaged, or not signed right).

    Raises:
        StoreSecretError: When the entry is signed and there is no ``signer``.
    """
    try:
        if data[:4] == MAGIC:
            signature, body = split_binary(data)
            if not _trusted(key, signature, body, signer, url):
                return None
            entry = decode_body(body)
        else:  # the JSON of an earlier version (or of a remote store)
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise TypeError(f"a JSON {type(raw).__name__}, not an object")
            signature = raw.pop("signature", None)
            if not _trusted(key, signature, raw, signer, url):
                return None
            entry = Entry.from_raw(raw)
    except (ValueError, KeyError, TypeError) as exc:
        _log.warning("cache entry %s in %s is damaged (%s); treating it as a miss", key, url, exc)
        return None
    if entry.key != key:
        _log.warning("cache entry %s in %s claims key %s: a miss", key, url, entry.key)
        return None
    return entry


def check_secret(data: bytes, url: str) -> None:
    """Refuse (:class:`StoreSecretError`) a store without a secret whose entry ``data``
    is signed; anything unreadable is left to the lookups."""
    if data[:4] == MAGIC:
        try:
            signature, _ = split_binary(data)
        except ValueError:
            return
        _trusted("", signature, b"", None, url)
        return
    try:
        raw = json.loads(data)
    except ValueError:
        return
    if isinstance(raw, dict):
        _trusted(str(raw.get("key", "")), raw.pop("signature", None), raw, None, url)


def write_entry(entry: Entry, signer: Signer | None, *, binary: bool) -> bytes:
    """The bytes to store for ``entry``: its binary form (a local store's index) or its
    JSON (a remote store's object), signed when there is a ``signer``."""
    if binary:
        if signer is None:
            return encode_entry(entry)
        key = entry.key.encode()
        return encode_entry(entry, lambda body: signer.sign("entry2", key, body))
    data = entry.to_json()
    if signer is not None:
        raw = json.loads(data)
        raw["signature"] = signer.sign("entry", entry.key.encode(), canonical(raw))
        data = json.dumps(raw, separators=(",", ":")).encode()
    return data


def _trusted(
    key: str, signature: object, signed: bytes | dict[str, Any], signer: Signer | None, url: str
) -> bool:
    """Check an entry's signature (with a secret) or refuse a signed store (without).

    ``signed`` is a binary entry's body, or a JSON entry's fields (their canonical JSON
    is what was signed)."""
    if signer is None:
        if signature is not None:
            raise StoreSecretError(
                f"store {url!r} was written with a secret: set the same PLAIT_SECRET "
                "(or Store(..., secret=...)) to use its cache; without it plait cannot "
                "tell its entries from planted ones"
            )
        return True
    if isinstance(signed, bytes):
        ok = signer.verify(signature, "entry2", key.encode(), signed)
    else:
        ok = signer.verify(signature, "entry", key.encode(), canonical(signed))
    if ok:
        return True
    _log.warning(
        "cache entry %s in %s is %s this store's secret (PLAIT_SECRET): a miss, left in place",
        key,
        url,
        "not signed with" if signature is None else "signed with another key than",
    )
    return False
