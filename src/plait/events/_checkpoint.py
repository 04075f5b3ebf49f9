"""Checkpoints: small JSON values kept in the store, under ``events/``.

A stream's offset and a cron trigger's last tick live here, written atomically (temp file
then rename, fsynced) through the store's backend, so they survive a SIGKILL and work on
any store (local or fsspec). Without a store they are kept in memory for the process.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.store.store import Store

__all__ = ["Checkpoints"]


def _file_name(key: str) -> str:
    clean = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:80]
    digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
    return f"events/checkpoints/{clean}-{digest}.json"


class Checkpoints:
    """Load and save named checkpoints in ``store`` (None: in memory)."""

    def __init__(self, store: Store | None) -> None:
        self.store = store
        self._memory: dict[str, Any] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> Any:
        """The value last saved under ``key``, or None."""
        if self.store is None:
            with self._lock:
                return self._memory.get(key)
        try:
            data = self.store.backend.read(_file_name(key))
        except (OSError, FileNotFoundError):
            return None
        try:
            return json.loads(data)["value"]
        except (ValueError, KeyError, TypeError):
            return None

    def save(self, key: str, value: Any) -> None:
        """Save ``value`` (JSON data) under ``key``, durably."""
        if self.store is None:
            with self._lock:
                self._memory[key] = value
            return
        data = json.dumps({"key": key, "value": value}).encode()
        self.store.backend.write(_file_name(key), data, durable=True)
