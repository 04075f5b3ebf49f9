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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.history.records import StepRecord
    from plait.store.store import Store

__all__ = ["lineage_datasets", "run_datasets", "run_record_path"]


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


def lineage_datasets(
    store: Store,
    version: str,
    upstream: Iterable[StepRecord],
    consumers: Iterable[StepRecord] = (),
) -> list[dict[str, Any]]:
    """The datasets among the values of a lineage: which files they were read from or
    written to.

    A source dataset's version is its file's content hash, the same data version its
    consumers' records carry as an input; a sink is matched by its output name in the run
    of the record that made (or reused) it.

    Args:
        store: The store the runs used.
        version: The data version the lineage is about.
        upstream: The step records of the lineage (``History.lineage(version)``).
        consumers: The records of the steps that read the value (their runs hold the
            record of a source the value was read from).

    Returns:
        One dict per dataset (``name``, ``role``, ``type``, ``path``, ``version``: the
        file's content hash; ``data_version``: the value's version in the history;
        ``run_id``), nearest first, each dataset and value once.
    """
    upstream = list(upstream)
    values = {version}
    for record in upstream:
        values.update(record.input_versions.values())
    records = [*upstream, *consumers]
    per_run: dict[str, list[dict[str, Any]]] = {}
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in records:
        if record.run_id not in per_run:
            per_run[record.run_id] = run_datasets(store, record.run_id)
        for dataset in per_run[record.run_id]:
            value = _value_of(dataset, record, values)
            if value is None:
                continue
            key = (dataset.get("name"), dataset.get("role"), dataset.get("path"), value)
            found.setdefault(key, {**dataset, "data_version": value, "run_id": record.run_id})
    return list(found.values())


def _value_of(dataset: dict[str, Any], record: StepRecord, values: set[str]) -> str | None:
    """The data version a run's dataset record stands for in ``record``, if any."""
    if dataset.get("role") == "source":
        version = dataset.get("version")
        return version if version in values else None
    if dataset.get("role") == "sink":
        made = record.data_versions.get(str(dataset.get("name")))
        return str(made) if made in values else None
    return None
