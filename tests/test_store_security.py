"""A store can be written by someone else: what plait refuses, and what it never does.

Entries and artifacts are rewritten under ``<store>/`` as an attacker with write access to
a shared store would (see ``docs/trust.md``): with a secret, nothing unsigned or signed for
another entry is loaded, and no field read from the store can reach a file outside it.
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
from store_cases import CALLS, entries, rewrite_entries, store_files

pytestmark = pytest.mark.faults


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.reset()


@step
def table(n: int) -> dict[str, list[int]]:
    CALLS.hit("table")
    return {"values": list(range(n))}


@step
def doubled(table: dict[str, list[int]]) -> dict[str, list[int]]:
    CALLS.hit("doubled")
    return {"values": [2 * v for v in table["values"]]}


@step
def boxed(n: int) -> tuple[int, ...]:  # a tuple: stored with pickle
    CALLS.hit("boxed")
    return tuple(range(n))


STEPS = [table, doubled, boxed]
EXPECTED = {"table": {"values": [0, 1, 2]}, "doubled": {"values": [0, 2, 4]}, "boxed": (0, 1, 2)}


def _run(store: Store | Path) -> dict[str, object]:
    result = Pipeline(STEPS).run(params={"n": 3}, store=store)
    return {name: result[name] for name in EXPECTED}


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _forge_all(root: Path, change) -> None:
    """Rewrite each entry's output refs with ``change(ref)``, keeping the JSON valid."""

    def forge(raw: bytes) -> bytes:
        entry = json.loads(raw)
        for ref in entry["outputs"].values():
            change(ref)
        return json.dumps(entry).encode()

    rewrite_entries(root, forge)


@pytest.mark.parametrize(
    "version",
    ["../../victim", "../../victim\x00", "..", "a" * 31 + "/", "ZZ" * 16, "0" * 300],
)
def test_a_crafted_version_never_reaches_a_file_outside_the_store(tmp_path, version):
    root = tmp_path / "shared" / "store"
    victim = tmp_path / "victim.json"
    victim.write_text('{"values": [9, 9, 9]}')
    _run(root)

    def point_outside(ref):  # objects/../../../victim.json is tmp_path/victim.json
        ref["version"], ref["serializer"] = version, "json"

    _forge_all(root, point_outside)
    CALLS.reset()
    assert _run(root) == EXPECTED  # the forged entries are misses, recomputed
    assert CALLS.total() == 3
    assert victim.read_text() == '{"values": [9, 9, 9]}'  # neither read nor deleted


def test_a_crafted_serializer_name_is_a_miss(tmp_path):
    root = tmp_path / "store"
    _run(root)
    _forge_all(root, lambda ref: ref.update(serializer="../../json"))
    CALLS.reset()
    assert _run(root) == EXPECTED
    assert CALLS.total() == 3


def test_with_a_secret_a_forged_json_artifact_is_refused(tmp_path):
    # JSON is not code, but a forged value is a wrong answer: with a secret, every kind of
    # artifact is signed, not only pickles.
    root = tmp_path / "store"
    _run(Store(root, secret="k"))
    forged = b'{"values":[7,7,7]}'

    def replace(ref):
        if ref["serializer"] == "json":
            path = next(p for p in store_files(root) if p.name.startswith(ref["version"]))
            path.write_bytes(forged)
            ref["size"], ref["checksum"] = len(forged), xxhash.xxh3_64_hexdigest(forged)

    _forge_all(root, replace)
    CALLS.reset()
    assert _run(Store(root, secret="k")) == EXPECTED
    assert CALLS["table"] == 1


def test_with_a_secret_an_entry_cannot_point_at_another_entrys_artifact(tmp_path):
    root = tmp_path / "store"
    _run(Store(root, secret="k"))
    raw = entries(root)
    by_step = {json.loads(data)["step"]: (key, json.loads(data)) for key, data in raw.items()}
    donor = by_step["table"][1]["outputs"]["table"]  # a signed artifact of another entry

    def swap(data: bytes) -> bytes:
        entry = json.loads(data)
        if entry["step"] == "doubled":
            entry["outputs"]["doubled"] = donor
        return json.dumps(entry).encode()

    rewrite_entries(root, swap)
    CALLS.reset()
    assert _run(Store(root, secret="k")) == EXPECTED
    assert CALLS["doubled"] == 1
    assert CALLS["table"] == 0


def test_with_a_secret_a_planted_pickle_with_a_recomputed_checksum_never_runs(tmp_path):
    root = tmp_path / "store"
    _run(Store(root, secret="k"))
    marker = tmp_path / "code-ran"
    planted = pickle.dumps(_Payload(str(marker)))

    def plant(ref):
        path = next(p for p in store_files(root) if p.name.startswith(ref["version"]))
        path.write_bytes(planted)
        ref["serializer"] = "pickle"
        ref["size"], ref["checksum"] = len(planted), xxhash.xxh3_64_hexdigest(planted)

    _forge_all(root, plant)
    assert _run(Store(root, secret="k")) == EXPECTED
    assert not marker.exists()


def test_a_wrong_secret_deletes_nothing(tmp_path):
    root = tmp_path / "store"
    _run(Store(root, secret="first"))
    before = {p: p.read_bytes() for p in store_files(root)}
    CALLS.reset()
    assert _run(Store(root, secret="second")) == EXPECTED
    assert CALLS.total() == 3  # nothing trusted
    after = {p: p.read_bytes() for p in store_files(root)}
    assert all(after.get(path) == data for path, data in before.items())  # nothing deleted
    CALLS.reset()
    assert _run(Store(root, secret="second")) == EXPECTED
    assert CALLS.total() == 0  # its own entries hit


def test_a_store_written_with_a_secret_is_refused_without_one(tmp_path, monkeypatch):
    monkeypatch.delenv("PLAIT_SECRET", raising=False)
    root = tmp_path / "store"
    _run(Store(root, secret="k"))
    with pytest.raises(PlaitError, match="PLAIT_SECRET"):
        Pipeline(STEPS).run(params={"n": 3}, store=Store(root))


def test_a_pickled_store_carries_no_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("PLAIT_SECRET", raising=False)
    store = Store(tmp_path / "store", secret="very-secret-value")
    data = pickle.dumps(store)
    assert b"very-secret-value" not in data
    copy = pickle.loads(data)
    assert copy.url == store.url
    monkeypatch.setenv("PLAIT_SECRET", "from-the-worker-env")
    assert pickle.loads(data).signed  # a worker takes the secret from its own environment
