"""Fault injection against the history: a damaged ``history.db``, a pickle planted in a run's
params/config blob, params the history cannot show. Each failed before the history's
crash-safety work (bare ``sqlite3.DatabaseError``; planted code ran on resume; ``run()``
crashed in the history writer)."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path

import pytest

from plait import Pipeline, Store, step
from plait.errors import PlaitError
from store_cases import damage, fault_expected, fault_pipeline, same_outputs, snapshot

pytestmark = pytest.mark.faults

N = 4


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _run(root: Path, folder: Path):
    store = Store(root)
    try:
        return fault_pipeline().run(params={"n": N, "folder": str(folder)}, store=store)
    finally:
        store.close()


@pytest.mark.parametrize("how", ["garbage", "truncate"])
def test_a_damaged_history_gives_right_values_or_a_clear_error(tmp_path, how):
    root, folder = tmp_path / "store", tmp_path / "work"
    folder.mkdir()
    _run(root, folder)
    damage(root / "history.db", how)
    outside = snapshot(tmp_path, skip=(root, folder))
    message = ""
    try:
        result = _run(root, folder)
    except PlaitError as exc:
        message = str(exc)
    else:
        assert same_outputs(result.outputs, fault_expected(N)) == []
    if message:
        assert str(root / "history.db") in message
        assert "plait doctor --repair" in message
    assert snapshot(tmp_path, skip=(root, folder)) == outside


def test_with_a_secret_a_pickle_planted_in_the_history_params_blob_never_runs(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PLAIT_SECRET", "shared-key")
    root, folder = tmp_path / "store", tmp_path / "work"
    folder.mkdir()
    first = _run(root, folder)
    marker = tmp_path / "code-ran"
    planted = pickle.dumps(_Payload(str(marker)))
    with sqlite3.connect(root / "history.db") as connection:
        connection.execute("UPDATE runs SET inputs = ? WHERE run_id = ?", (planted, first.run_id))
    connection.close()
    store = Store(root)
    try:
        try:
            resumed = fault_pipeline().resume(first.run_id, store=store)
        except PlaitError:
            pass
        else:
            assert same_outputs(resumed.outputs, fault_expected(N)) == []
    finally:
        store.close()
    assert not marker.exists()


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr refuses")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BadRepr)

    def __hash__(self) -> int:
        return 1


def _deep(levels: int) -> list[object]:
    top: list[object] = []
    current = top
    for _ in range(levels):
        inner: list[object] = []
        current.append(inner)
        current = inner
    return top


@step
def echo(x):
    return x


@pytest.mark.parametrize(
    "value",
    [10**5000, -(2**20000), _deep(3000), _BadRepr()],
    ids=["huge-int", "huge-negative-int", "deep-nesting", "repr-raises"],
)
def test_hostile_params_never_crash_a_run_with_a_store(tmp_path, value):
    root = tmp_path / "store"
    outside = snapshot(tmp_path, skip=(root,))
    try:
        result = Pipeline([echo], name="hostile").run(params={"x": value}, store=Store(root))
    except PlaitError:
        pass
    else:
        assert result["echo"] is value or result["echo"] == value
    assert snapshot(tmp_path, skip=(root,)) == outside
