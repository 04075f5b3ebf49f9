"""Recording runs without an artifact store: ``run(history="sqlite:///runs.db")``.

Design note
-----------
A pipeline whose values must not be kept (personal data, huge intermediates, a stream)
still wants its runs listed and its lineage (which data version came from which step of
which run). That needs data versions, which plait computes where it stores values. So a
run with ``history=`` and no store gets a :class:`HistoryOnlyStore` in place of a store:

- it stores nothing: ``put`` returns a reference that says "unstored" with the value's
  data version (computed where the value is, on a worker too), ``save`` drops the entry,
  and the byte backend reads nothing and writes nowhere;
- every lookup misses (:class:`HistoryOnlyCache`): every step runs, and its record's
  reason says ``"not cached: no store (history only)"``;
- its ``history`` is the one given, recorded like a store's, so ``plait runs list
  --history URL``, ``History.lineage`` and the rest work.

``"memory"`` is one in-memory SQLite history per process (``History("memory")`` gives
the same one back), for tests and notebooks.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from plait.store.cache import RunCache
from plait.store.entries import ArtifactRef, Entry

if TYPE_CHECKING:
    from plait.history import History
    from plait.steps import Step

__all__ = ["REASON", "HistoryOnlyCache", "HistoryOnlyStore", "open_history"]

REASON = "not cached: no store (history only)"
_MEMORY: dict[str, History] = {}  # "memory" -> this process's in-memory history
_MEMORY_LOCK = threading.Lock()


def open_history(url: str | History) -> History:
    """A :class:`~plait.history.History` for a URL (``"memory"``: this process's own)."""
    from plait.history import History

    if isinstance(url, History):
        return url
    if url != "memory":
        return History(url)
    with _MEMORY_LOCK:
        if "memory" not in _MEMORY:
            _MEMORY["memory"] = History("sqlite:///:memory:")
        return _MEMORY["memory"]


class NullBackend:
    """A byte backend that keeps nothing."""

    url = "history-only"

    def read(self, path: str) -> bytes:
        """Nothing is ever there."""
        raise FileNotFoundError(path)

    def write(self, path: str, data: bytes, *, durable: bool = False) -> None:
        """Dropped."""

    def exists(self, path: str) -> bool:
        """Never."""
        return False

    def delete(self, path: str) -> None:
        """Nothing to delete."""

    def list(self, prefix: str) -> Iterator[str]:
        """Nothing."""
        return iter(())


class _NoIndex:
    rebuilt = None


class HistoryOnlyStore:
    """Stands for a store in a run that records history and stores no value."""

    signed = False
    has_history = True
    project: str | None = None

    def __init__(self, history: History | None) -> None:
        self._history = history
        self.backend = NullBackend()
        self.index = _NoIndex()
        self.url = "history-only"

    @property
    def history(self) -> History:
        """The history runs are recorded in (on the driver only)."""
        if self._history is None:
            from plait.errors import PlaitError

            raise PlaitError("a history-only store's history stays on the driver")
        return self._history

    def __reduce__(self) -> tuple[Any, ...]:
        return (HistoryOnlyStore, (None,))  # to a worker: only put and save are used there

    def __repr__(self) -> str:
        return f"HistoryOnlyStore({self._history!r})"

    def check_secret(self) -> None:
        """Nothing stored: nothing to check."""

    def put(self, value: Any, version: str) -> ArtifactRef:
        """Keep nothing; the reference carries the data version."""
        return ArtifactRef(version, "unstored", "", -1)

    def save(self, entry: Entry) -> None:
        """Keep nothing."""

    def lookup(self, key: str) -> Entry | None:
        """Nothing is ever found."""
        return None

    def drop(self, key: str) -> None:
        """Nothing to drop."""

    def last_parts(self, pipeline: str, step: str) -> dict[str, Any] | None:
        """Nothing remembered."""
        return None

    def record_parts(self, pipeline: str, step: str, parts: Mapping[str, Any]) -> None:
        """Nothing remembered."""


class HistoryOnlyCache(RunCache):
    """A run's cache that never hits and stores nothing (see the module's note)."""

    def lookup(self, item: Step, key: str) -> tuple[Entry | None, str]:
        """Always a miss."""
        return None, REASON

    def why(self, item: Step, parts: Mapping[str, Any], known: str) -> str:
        """Always :data:`REASON`."""
        return REASON

    def remember(self, item: Step, parts: Mapping[str, Any]) -> None:
        """Nothing remembered."""


def history_only_cache(history: str | History, pipeline: str, run_id: str) -> RunCache:
    """The cache of a run that records in ``history`` and stores no value.

    A history opened here from a URL is closed when the run lets go of its cache (a
    ``History`` given, or ``"memory"``, stays open).
    """
    opened = open_history(history)
    store: Any = HistoryOnlyStore(opened)
    cache = HistoryOnlyCache(store, pipeline, run_id, frozenset(), frozenset())
    if isinstance(history, str) and history != "memory":
        weakref.finalize(cache, opened.close)
    return cache
