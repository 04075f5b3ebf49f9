"""What each run read and wrote, kept in the store beside the cache.

A run with datasets writes one small JSON file per dataset under
``datasets/runs/<run id>/`` in its store: the dataset's name, its role (``"source"`` or
``"sink"``), its type, the path it read or wrote (a versioned dataset's own version
folder) and its data version, the content hash of that file. A source's data version is
also the input version its consumers' step records carry, so ``plait lineage`` of a
step's input leads back to the file.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.store.store import Store

__all__ = ["run_datasets", "run_record_path"]


def run_record_path(run_id: str, name: str) -> str:
    """Where, in a store, the record of dataset ``name`` in run ``run_id`` is kept."""
    digest = hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
    return f"datasets/runs/{run_id}/{digest}.json"


def run_datasets(store: Store, run_id: str) -> list[dict[str, Any]]:
    """What run ``run_id`` read and wrote through datasets.

    Args:
        store: The store the run used.
        run_id: The run's full id.

    Returns:
        One dict per dataset (``name``, ``role`` ``"source"`` or ``"sink"``, ``type``,
        ``path``, ``version``: the file's content hash), sources first, then by name;
        empty for a run without datasets.
    """
    found = []
    for path in store.backend.list(f"datasets/runs/{run_id}"):
        try:
            found.append(json.loads(store.backend.read(path)))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda d: (d.get("role") != "source", str(d.get("name"))))
