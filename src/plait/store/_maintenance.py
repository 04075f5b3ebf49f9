"""Clearing a store and collecting its garbage (``Store.clear``, ``Store.gc``).

Artifacts live in two places in a local store: files under ``objects/`` and small ones
inline in ``index.db`` (see :mod:`plait.store.index`). Both are named by the same
content-address path (:attr:`~plait.store.entries.ArtifactRef.path`), so "every artifact
no remaining entry references" is the union of both listings minus the entries' paths.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plait.store.store import Store

__all__ = ["clear", "gc"]


def clear(store: Store) -> int:
    """See :meth:`Store.clear`."""
    removed = 0
    for entry in list(store.entries()):
        store.drop(entry.key)
        removed += 1
    removed += store.delete_inline_artifacts(None)
    parts = store._parts_file
    if parts is not None:
        removed += parts.clear()
    for prefix in ("cache", "objects", "steps", "datasets/files", "datasets/sinks"):
        for path in list(store.backend.list(prefix)):
            store.backend.delete(path)
            removed += 1
    return removed


def gc(
    store: Store,
    *,
    keep_last: int | None = None,
    older_than: float | timedelta | None = None,
    keep_lineage: bool = False,
) -> dict[str, int]:
    """See :meth:`Store.gc`."""
    from plait._step_options import to_seconds

    cutoff = to_seconds(older_than, "older_than")
    doomed: set[str] = set()
    kept_keys: set[str] = set()
    if store.has_history and (keep_last is not None or cutoff is not None):
        doomed = _doomed_runs(store, keep_last, cutoff)
        kept_keys = _keys_of_kept_runs(store, doomed)
        if not keep_lineage:
            store.history.delete_runs(doomed)
            for run_id in doomed:  # what each run read and wrote (plait.io)
                for path in list(store.backend.list(f"datasets/runs/{run_id}")):
                    store.backend.delete(path)
    entries = 0
    live: set[str] = set()
    for entry in list(store.entries()):
        if entry.run_id in doomed and entry.key not in kept_keys:
            store.drop(entry.key)
            entries += 1
        else:
            live.update(ref.path for ref in entry.outputs.values())
    artifacts = 0
    for path in list(store.backend.list("objects")):
        if path not in live:
            store.backend.delete(path)
            artifacts += 1
    unnamed = [path for path in store.inline_artifact_paths() if path not in live]
    artifacts += store.delete_inline_artifacts(unnamed)
    return {"runs": len(doomed), "entries": entries, "artifacts": artifacts}


def _doomed_runs(store: Store, keep_last: int | None, cutoff: float | None) -> set[str]:
    """The runs to drop; never one that produced an aliased asset version."""
    from plait.assets._catalog import Catalog

    protected = Catalog(store.history).protected_runs()
    doomed: set[str] = set()
    per_pipeline: dict[str, int] = {}
    now = time.time()
    for record in store.history.runs(limit=None):
        seen = per_pipeline.get(record.pipeline, 0)
        per_pipeline[record.pipeline] = seen + 1
        too_many = keep_last is not None and seen >= keep_last
        too_old = cutoff is not None and now - record.start_time > cutoff
        if (too_many or too_old) and record.run_id not in protected:
            doomed.add(record.run_id)
    return doomed


def _keys_of_kept_runs(store: Store, doomed: set[str]) -> set[str]:
    rows = store.history.db.execute(
        "SELECT DISTINCT run_id, cache_key FROM steps WHERE cache_key IS NOT NULL"
    )
    return {str(key) for run_id, key in rows if run_id not in doomed}
