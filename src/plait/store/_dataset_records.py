"""Checking the small JSON records datasets keep in a store (for ``plait doctor``).

``plait.io`` writes them: ``datasets/runs/<run id>/`` (what each run read and wrote),
``datasets/sinks/`` (what was last saved to each sink) and ``datasets/files/`` (the
content hash remembered with a file's signature). Each is one JSON object, written
atomically; a record that is not one is useless (its reader treats it as absent), so
``plait doctor`` reports it and ``--repair`` deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plait.store.store import Store

__all__ = ["FOLDERS", "damaged_dataset_records"]

FOLDERS: dict[str, tuple[str, ...]] = {  # folder -> the keys each record must have
    "datasets/runs": ("name", "role"),
    "datasets/sinks": ("value",),
    "datasets/files": ("path", "version"),
}


def damaged_dataset_records(store: Store) -> Iterator[tuple[str, str]]:
    """``(path, what is wrong)`` for each dataset record that cannot be used."""
    for folder, keys in FOLDERS.items():
        for path in list(store.backend.list(folder)):
            try:
                record = json.loads(store.backend.read(path))
            except FileNotFoundError:
                continue  # deleted since it was listed
            except ValueError as exc:  # UnicodeDecodeError is one too
                yield path, f"a dataset record that is not JSON ({exc})"
                continue
            if not isinstance(record, dict):
                yield path, f"a dataset record is a JSON object, got {type(record).__name__}"
                continue
            missing = [key for key in keys if key not in record]
            if missing:
                yield path, f"a dataset record without {', '.join(map(repr, missing))}"
