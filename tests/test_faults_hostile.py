"""Fault injection: a hostile writer of the store, and hostile names and params.

Someone with write access to the store plants pickles (with and without ``PLAIT_SECRET``)
and crafts entries whose fields would reach paths; a user's code hands plait names and
params chosen to break it. Each test proves: no planted code runs (a marker directory
would appear), no wrong value is returned, no file outside the store is touched (a
snapshot of the parent directory), and ``run()`` returns or raises a :class:`PlaitError`,
never another traceback.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import xxhash

from plait import Pipeline, Store, step
from plait.errors import PlaitError
from store_cases import (
    FAULT_KINDS,
    FAULT_STEPS,
    count,
    fault_expected,
    fault_pipeline,
    rewrite_entries,
    same_outputs,
    snapshot,
    store_files,
)

pytestmark = pytest.mark.faults

N = 4


class _Payload:
    """Unpickling this creates a directory: proof that planted code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _run(root: Path, folder: Path, **store_options):
    store = Store(root, **store_options)
    try:
        return fault_pipeline().run(params={"n": N, "folder": str(folder)}, store=store)
    finally:
        store.close()


@pytest.fixture
def layout(tmp_path, monkeypatch):
    monkeypatch.delenv("PLAIT_SECRET", raising=False)
    (tmp_path / "neighbour.txt").write_text("leave me alone")
    root, folder = tmp_path / "store", tmp_path / "work"
    folder.mkdir()
    return root, folder, snapshot(tmp_path, skip=(root, folder))


def _plant(root: Path, version: str, data: bytes, serializer: str | None = None) -> None:
    """Replace the artifact of ``version`` by ``data`` and make its entries' size and
    checksum match (and optionally their serializer), as a writer of the store could."""
    path = next(p for p in store_files(root) if p.name.startswith(version))
    path.write_bytes(data)

    def forge(raw: bytes) -> bytes:
        entry = json.loads(raw)
        for ref in entry["outputs"].values():
            if ref["version"] == version:
                ref["size"], ref["checksum"] = len(data), xxhash.xxh3_64_hexdigest(data)
                if serializer is not None:
                    ref["serializer"] = serializer
        return json.dumps(entry).encode()

    rewrite_entries(root, forge)
    if serializer is not None:
        path.rename(path.with_suffix(f".{serializer}"))


@pytest.mark.parametrize("name", ["source", "matrix", "table"], ids=lambda n: FAULT_KINDS[n])
def test_without_a_secret_a_pickle_planted_in_a_non_pickle_artifact_never_runs(layout, name):
    # The documented risk without a secret is confined to pickle artifacts: JSON, .npy
    # (allow_pickle=False) and Parquet bytes are never unpickled, whatever they hold.
    root, folder, outside = layout
    first = _run(root, folder)
    marker = root.parent / "work" / "code-ran"
    _plant(root, first.steps[name].data_versions[name], pickle.dumps(_Payload(str(marker))))
    calls = {n: count(folder, n) for n in FAULT_STEPS}
    result = _run(root, folder)
    assert not marker.exists()
    assert same_outputs(result.outputs, fault_expected(N)) == []
    assert count(folder, name) == calls[name] + 1  # unreadable: recomputed
    healed = _run(root, folder)
    assert all(s.cached for s in healed.steps.values())
    assert snapshot(root.parent, skip=(root, folder)) == outside


def test_without_a_secret_a_planted_pickle_artifact_runs_code_the_documented_risk(layout):
    # docs/trust.md, "Without a secret": whoever can write the store can run code through
    # a pickled artifact. This pins that the documentation tells the truth (and that the
    # other tests' markers would show code running); use PLAIT_SECRET for shared stores.
    root, folder, _ = layout
    first = _run(root, folder)
    marker = root.parent / "work" / "code-ran"
    _plant(root, first.steps["blob"].data_versions["blob"], pickle.dumps(_Payload(str(marker))))
    _run(root, folder)
    assert marker.exists()


@pytest.mark.parametrize("name", sorted(FAULT_KINDS), ids=lambda n: FAULT_KINDS[n])
def test_with_a_secret_a_planted_pickle_never_runs_in_any_artifact(layout, monkeypatch, name):
    root, folder, outside = layout
    monkeypatch.setenv("PLAIT_SECRET", "shared-key")
    first = _run(root, folder)
    marker = root.parent / "work" / "code-ran"
    version = first.steps[name].data_versions[name]
    _plant(root, version, pickle.dumps(_Payload(str(marker))), serializer="pickle")
    calls = {n: count(folder, n) for n in FAULT_STEPS}
    result = _run(root, folder)
    assert not marker.exists()
    assert same_outputs(result.outputs, fault_expected(N)) == []
    assert count(folder, name) == calls[name] + 1
    assert snapshot(root.parent, skip=(root, folder)) == outside


VICTIM = b'{"values":[9,9,9,9]}'


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "../../../victim"),
        ("version", "../../../victim\x00"),
        ("version", "/" + "a" * 40),
        ("serializer", "../../../victim.json"),
        ("serializer", "json/../../x"),
        ("serializer", "zzz"),  # a valid shape, but no such serializer
        ("key", "../../../victim"),
        ("key", "/etc/passwd"),
    ],
)
def test_a_crafted_entry_never_reaches_a_file_outside_the_store(layout, field, value):
    root, folder, _ = layout
    victim = root.parent / "victim.json"
    victim.write_bytes(VICTIM)
    outside = snapshot(root.parent, skip=(root, folder))
    _run(root, folder)

    def craft(raw: bytes) -> bytes:
        entry = json.loads(raw)
        if field == "key":
            entry["key"] = value
        for ref in entry["outputs"].values():
            if field != "key":
                ref[field] = value
        return json.dumps(entry).encode()

    rewrite_entries(root, craft)
    calls = {n: count(folder, n) for n in FAULT_STEPS}
    result = _run(root, folder)
    assert same_outputs(result.outputs, fault_expected(N)) == []
    assert {n: count(folder, n) - calls[n] for n in FAULT_STEPS} == dict.fromkeys(FAULT_STEPS, 1)
    assert victim.read_bytes() == VICTIM
    assert snapshot(root.parent, skip=(root, folder)) == outside


def _double(x):
    return x * 2


@pytest.mark.parametrize(
    "name",
    ["../x", "../../outside", "a/b", "/abs/path", "..", "nul\x00name", "é🙂" * 300],
    ids=["dotdot", "dotdot2", "slash", "absolute", "parent", "nul", "long-unicode"],
)
def test_hostile_step_and_pipeline_names_stay_inside_the_store(layout, name):
    root, folder, outside = layout
    hostile = step(_double, name=name)
    try:
        first = Pipeline([hostile], name=name).run(params={"x": 21}, store=Store(root))
        again = Pipeline([hostile], name=name).run(params={"x": 21}, store=Store(root))
    except PlaitError:  # refusing the name is fine; a stray traceback or file is not
        pass
    else:
        assert first[name] == 42
        assert again[name] == 42
        assert again.steps[name].cached
    assert snapshot(root.parent, skip=(root, folder)) == outside
