"""Values in the history: shown (JSON for display) and kept exactly (for resume).

Shown. A record shows params, config, step params and metrics as JSON where they encode,
else as their ``repr``; a value with neither (an integer too long for ``str``, a list
nested thousands deep, an object whose ``repr`` raises) is shown by its type and data
version (``<int data version 3f2a...>``), or its type alone. Showing never raises.

Kept. A run's exact params, config and requested outputs (the *inputs blob*) are kept for
resume, rerun and debug: as JSON text when they round-trip through JSON exactly (only
dicts with string keys, lists, strings, finite floats, ints, booleans and None), so
nothing is unpickled to read them back; pickled (cloudpickle) otherwise. With a store
secret the blob is signed (:class:`~plait.store.signing.Signer`, purpose
``"history-blob"``, over the run id and the bytes), and reading refuses a blob that is
unsigned or signed with another key before unpickling anything: whoever can write a
shared history cannot run code as whoever resumes.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from collections.abc import Mapping
from typing import Any

from plait.errors import PlaitError
from plait.store.signing import Signer

__all__ = ["BLOB_PURPOSE", "decode_inputs", "display", "dumps", "encode_inputs", "shown"]

_log = logging.getLogger("plait.history")

BLOB_PURPOSE = "history-blob"
_ENCODER = json.JSONEncoder(default=repr, separators=(",", ":"))
_MAX_DEPTH = 200  # deeper plain data is pickled rather than trusted to json's recursion


def dumps(value: Any) -> str:
    """JSON text of a value :func:`display` made JSON-friendly."""
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    try:
        return _ENCODER.encode(value)
    except Exception:  # display() leaves nothing that fails; belt and braces
        return _ENCODER.encode(shown(repr(type(value))))


def _described(value: Any) -> str:
    """A value by its type and data version, or its type alone."""
    kind = type(value).__qualname__
    try:
        from plait.store.hashing import data_version

        return f"<{kind} data version {data_version(value)}>"
    except Exception:  # no data version either
        return f"<{kind}>"


def shown(value: Any) -> Any:
    """``value`` if JSON encodes it, else its repr, else its type and data version."""
    try:
        json.dumps(value)
        return value
    except Exception:  # RecursionError, ValueError (digits limit), TypeError...
        pass
    try:
        return repr(value)
    except Exception:
        return _described(value)


def display(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values as JSON-friendly data for display (exact values are kept apart)."""
    return {str(key): shown(value) for key, value in values.items()}


def _plain(root: Any) -> bool:
    """True when ``root`` comes back equal, with the same types, from JSON."""
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if value is None or kind in (str, int, bool):
            continue
        if kind is float:
            if not math.isfinite(value):
                return False
            continue
        if depth >= _MAX_DEPTH:
            return False
        if kind is list:
            stack.extend((item, depth + 1) for item in value)
        elif kind is dict:
            if not all(type(key) is str for key in value):
                return False
            stack.extend((item, depth + 1) for item in value.values())
        else:
            return False
    return True


def encode_inputs(payload: Mapping[str, Any]) -> bytes | None:
    """The inputs blob: JSON when it round-trips exactly, else a pickle (None if neither
    works; the run is then recorded without what resume needs, and a warning says so)."""
    data = dict(payload)
    if _plain(data):
        try:
            return json.dumps(data, separators=(",", ":")).encode()
        except Exception:  # an int too long for str: pickle it
            pass
    try:
        import cloudpickle

        return bytes(cloudpickle.dumps(data))
    except Exception as exc:
        _log.warning("cannot keep the run's params/config for resume: %s", exc)
        return None


def sign_inputs(signer: Signer | None, run_id: str, blob: bytes | None) -> str | None:
    """The blob's signature under the store's secret (None without one)."""
    if signer is None or blob is None:
        return None
    return signer.sign(BLOB_PURPOSE, run_id.encode(), blob)


def decode_inputs(
    blob: bytes, signature: str | None, *, run_id: str, signer: Signer | None, where: str
) -> dict[str, Any]:
    """Read an inputs blob back, checking its signature first when there is a secret.

    Raises:
        PlaitError: When a secret is set and the blob is unsigned or signed with another
            key (nothing is unpickled), or when it cannot be read.
    """
    if signer is not None and not signer.verify(signature, BLOB_PURPOSE, run_id.encode(), blob):
        state = "not signed" if signature is None else "not signed with this secret"
        raise PlaitError(
            f"the params/config of run {run_id} in {where} are {state} (PLAIT_SECRET): "
            "refusing to load them, since whoever can write the history could run code "
            "through them; resume runs recorded with the same PLAIT_SECRET"
        )
    try:
        loaded = json.loads(blob) if blob[:1] == b"{" else pickle.loads(blob)
    except Exception as exc:
        raise PlaitError(
            f"the params/config of run {run_id} in {where} cannot be read: {exc}"
        ) from exc
    if not isinstance(loaded, dict) or "params" not in loaded:
        raise PlaitError(f"the params/config of run {run_id} in {where} are damaged")
    return loaded
