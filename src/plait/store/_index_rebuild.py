"""Rebuilding a lost cache index from the history and the artifacts on disk (``plait doctor``).

:func:`rebuild_plan` plans the entries: each step record with a cache key gives one (the
latest record of a key wins) when every output's artifact is on disk and its bytes load and
hash to the data version in its name, so a damaged artifact never comes back as a hit.
Nothing is planned for a store with a secret (see ``docs/trust.md``), nor without a
readable history. :mod:`plait.store.doctor` decides when to rebuild and saves the plan.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from plait.store.entries import checksum
from plait.store.store import ArtifactRef, Entry, Store

__all__ = ["rebuild_plan"]

_REBUILT_SESSION = "rebuilt-by-doctor"  # the session recorded on rebuilt entries


def rebuild_plan(store: Store, *, history_ok: bool = True) -> Iterator[Entry]:
    """The entries an index rebuilt from the history and the artifacts on disk would hold.

    Each step record with a cache key gives one entry (the latest record of a key wins)
    when every output's artifact is on disk and its bytes load and hash to the data version
    in its name; size and checksum are computed from the file. Nothing is planned for a
    store with a secret, or without a readable history.
    """
    if store.signed or not history_ok or not store.has_history:
        return

    latest: dict[str, tuple[Any, ...]] = {}
    for row in _step_records(store):
        latest[str(row[0])] = row
    for key, (_, step, pipeline, versions, run_id, finished, reason) in latest.items():
        outputs = _adopt(store, versions)
        if outputs is None:
            continue
        reusable = not str(reason or "").startswith("cache disabled")
        yield Entry(
            key,
            str(step),
            str(pipeline or ""),
            outputs,
            float(finished or time.time()),
            str(run_id),
            _REBUILT_SESSION,
            reusable,
        )


def _adopt(store: Store, versions_json: Any) -> dict[str, ArtifactRef] | None:
    """Refs for a record's outputs, or None when any artifact is gone or wrong."""

    try:
        versions = json.loads(versions_json or "{}")
    except ValueError:
        return None
    if not isinstance(versions, dict) or not versions:
        return None
    outputs: dict[str, ArtifactRef] = {}
    for name, version in versions.items():
        ref = _verified_ref(store, str(version))
        if ref is None:
            return None
        outputs[str(name)] = ref
    return outputs


def _step_records(store: Store) -> list[tuple[Any, ...]]:
    """(key, step, pipeline, output versions JSON, run, finished, reason) of each ok step
    with a cache key, oldest first."""
    return store.history.db.execute(
        "SELECT s.cache_key, s.name, r.pipeline, s.data_versions, s.run_id, s.finished_at, "
        "s.reason FROM steps s LEFT JOIN runs r ON r.run_id = s.run_id "
        "WHERE s.cache_key IS NOT NULL AND s.status = 'ok' ORDER BY s.finished_at"
    )


def _verified_ref(store: Store, version: str) -> ArtifactRef | None:
    """A ref to the artifact of data version ``version`` when its bytes are that value."""
    from plait.store.hashing import data_version
    from plait.store.serializers import serializer_named

    folder = f"objects/{version[:2]}"
    for path in list(store.backend.list(folder)):
        name = path.rsplit("/", 1)[-1]
        stem, _, serializer = name.partition(".")
        if stem != version:
            continue
        try:
            data = store.backend.read(path)
            ref = ArtifactRef(version, serializer, checksum(data), len(data))
            if data_version(serializer_named(serializer).loads(data)) == version:
                return ref
        except Exception:  # any failure to read, load or hash: not adopted, recomputed
            continue
    return None
