"""Fault injection: damaged artifacts of every kind, and damaged databases.

:func:`store_cases.fault_pipeline` stores JSON, ``.npy``, Parquet and pickle artifacts.
Each kind is damaged as a failing disk, an interrupted copy or a careless hand would: a
flipped byte, a truncation, a deletion, or the bytes of another artifact. The cache index
(``index.db``) and the history (``history.db``) are overwritten with garbage, truncated or
deleted. The next run must return the right values (recomputing what it must) or fail
with a clear :class:`PlaitError` that names the file and the repair; never a wrong value,
and never a file touched outside the store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plait import Store
from store_cases import (
    FAULT_KINDS,
    FAULT_STEPS,
    count,
    damage,
    fault_expected,
    fault_pipeline,
    same_outputs,
    snapshot,
    store_files,
)

pytestmark = pytest.mark.faults

N = 5
HOW = ("flip", "truncate", "delete", "swap")


def _run(root: Path, folder: Path):
    store = Store(root)
    try:
        return fault_pipeline().run(params={"n": N, "folder": str(folder)}, store=store)
    finally:
        store.close()


def _calls(folder: Path) -> dict[str, int]:
    return {name: count(folder, name) for name in FAULT_STEPS}


@pytest.fixture
def layout(tmp_path):
    (tmp_path / "neighbour.txt").write_text("leave me alone")
    root, folder = tmp_path / "store", tmp_path / "work"
    folder.mkdir()
    first = _run(root, folder)
    assert same_outputs(first.outputs, fault_expected(N)) == []
    return root, folder, first, snapshot(tmp_path, skip=(root, folder))


def _artifact(root: Path, version: str) -> Path:
    (path,) = [p for p in store_files(root) if p.name.startswith(version)]
    return path


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("name", sorted(FAULT_KINDS), ids=lambda n: FAULT_KINDS[n])
def test_a_damaged_artifact_of_every_kind_is_recomputed_never_returned(layout, name, how):
    root, folder, first, outside = layout
    path = _artifact(root, first.steps[name].data_versions[name])
    if how == "delete":
        path.unlink()
    elif how == "swap":  # the whole bytes of another (valid) artifact
        donor = _artifact(root, first.steps["final"].data_versions["final"])
        path.write_bytes(donor.read_bytes())
    else:
        damage(path, how)
    calls = _calls(folder)
    result = _run(root, folder)
    assert same_outputs(result.outputs, fault_expected(N)) == []
    recomputed = {n: c - calls[n] for n, c in _calls(folder).items() if c != calls[n]}
    assert recomputed == {name: 1}, "only the damaged step runs again, once"
    healed = _run(root, folder)  # the artifact was rewritten: everything hits
    assert same_outputs(healed.outputs, fault_expected(N)) == []
    assert all(s.cached for s in healed.steps.values())
    assert snapshot(root.parent, skip=(root, folder)) == outside


@pytest.mark.parametrize("how", ["garbage", "truncate", "delete"])
def test_a_damaged_cache_index_is_rebuilt_and_every_value_is_right(layout, how):
    root, folder, _, outside = layout
    database = root / "index.db"
    for journal in (root / "index.db-wal", root / "index.db-shm"):
        assert not journal.exists() or journal.stat().st_size == 0 or how == "delete"
    if how == "delete":
        for path in root.glob("index.db*"):
            path.unlink()
    else:
        damage(database, how)
    calls = _calls(folder)
    result = _run(root, folder)
    assert same_outputs(result.outputs, fault_expected(N)) == []
    after = _calls(folder)
    assert all(after[n] - calls[n] <= 1 for n in FAULT_STEPS)
    if after != calls:  # entries were lost: the reason says why
        assert any("rebuilt" in (s.reason or "") for s in result.steps.values())
    healed = _run(root, folder)
    assert all(s.cached for s in healed.steps.values())
    assert same_outputs(healed.outputs, fault_expected(N)) == []
    assert snapshot(root.parent, skip=(root, folder)) == outside
