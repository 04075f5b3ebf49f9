"""The binary cache entries of a local store and the keys hashed without JSON (issue 16).

A local store keeps each entry as ``MAGIC``, a flag, (signed) a signature and the
``marshal`` body; these tests tamper with that form byte by byte, check that damage is a
miss that never crashes, that entries in the JSON form of earlier versions are still read
(and checked), and that the key encoding is collision-safe and stable.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import sqlite3
import time
from pathlib import Path

import pytest

from plait import Pipeline, step
from plait.errors import StoreSecretError
from plait.store.cache import cache_key
from plait.store.entries import MAGIC, ArtifactRef, Entry, encode_entry, split_binary
from plait.store.signing import Signer
from plait.store.store import SESSION, Store
from store_cases import CALLS, raw_entries


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.reset()


@step
def source(n):
    CALLS.hit("source")
    return list(range(n))


@step
def total(source):
    CALLS.hit("total")
    return sum(source)


def _run(store: Store, n: int = 4):
    return Pipeline([source, total], name="fast").run(params={"n": n}, store=store)


def _rows(root: Path) -> dict[str, bytes]:
    with contextlib.closing(sqlite3.connect(root / "index.db")) as connection:
        return {k: bytes(v) for k, v in connection.execute("SELECT key, data FROM entries")}


def _write_rows(root: Path, rows: dict[str, bytes]) -> None:
    with contextlib.closing(sqlite3.connect(root / "index.db")) as connection, connection:
        connection.executemany(
            "INSERT INTO entries (key, data) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET data = excluded.data",
            list(rows.items()),
        )


def _signed_store(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "store"
    with Store(root, secret="k", history=False) as store:
        _run(store)
    rows = _rows(root)
    assert len(rows) == 2
    assert all(data[:5] == MAGIC + b"S" for data in rows.values())
    return root, rows


def _tamper_all(root: Path, rows: dict[str, bytes], change) -> dict[str, bytes]:
    changed = {key: change(data) for key, data in rows.items()}
    _write_rows(root, changed)
    return changed


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


TAMPERINGS = {
    "body byte": lambda data: _flip(data, len(data) - 3),
    "signature digit": lambda data: data[:5] + (b"0" if data[5:6] != b"0" else b"1") + data[6:],
    "signed made unsigned": lambda data: MAGIC + b"U" + data[5 + 64 :],
    "body of another build": lambda data: data[: 5 + 64] + marshal.dumps(("x",) * 9, 4),
}


@pytest.mark.parametrize("how", list(TAMPERINGS))
def test_a_tampered_binary_entry_is_a_miss_left_in_place(tmp_path, how, caplog):
    root, rows = _signed_store(tmp_path)
    tampered = _tamper_all(root, rows, TAMPERINGS[how])
    with Store(root, secret="k", history=False) as store, caplog.at_level(logging.WARNING):
        for key in rows:
            assert store.lookup(key) is None
    assert _rows(root) == tampered  # a failed check deletes nothing
    CALLS.reset()
    with Store(root, secret="k", history=False) as store:
        assert _run(store)["total"] == 6
    assert CALLS["source"] == CALLS["total"] == 1  # recomputed, not served


def test_a_signed_binary_entry_moved_to_another_key_is_a_miss(tmp_path):
    root, rows = _signed_store(tmp_path)
    (first, data), (second, _) = sorted(rows.items())
    _write_rows(root, {second: data})
    with Store(root, secret="k", history=False) as store:
        assert store.lookup(first) is not None
        assert store.lookup(second) is None


def test_binary_entries_signed_with_another_key_are_misses(tmp_path):
    root, rows = _signed_store(tmp_path)
    with Store(root, secret="other", history=False) as store:
        assert all(store.lookup(key) is None for key in rows)
    assert _rows(root) == rows


def test_a_signed_binary_store_opened_without_its_secret_is_refused(tmp_path):
    root, rows = _signed_store(tmp_path)
    with Store(root, history=False) as store:
        with pytest.raises(StoreSecretError):
            store.check_secret()
        with pytest.raises(StoreSecretError):
            store.lookup(next(iter(rows)))


def test_the_signature_covers_exactly_the_stored_body(tmp_path):
    _root, rows = _signed_store(tmp_path)
    signer = Signer(b"k")
    for key, data in rows.items():
        signature, body = split_binary(data)
        assert signature == signer.sign("entry2", key.encode(), body)
        assert signature != signer.sign("entry", key.encode(), body)  # purposes differ


DAMAGE = {
    "empty": lambda data: b"",
    "magic only": lambda data: MAGIC,
    "bad flag": lambda data: MAGIC + b"X" + data[5:],
    "truncated": lambda data: data[: len(data) // 2],
    "garbage body": lambda data: MAGIC + b"U\xff\xfe\x00garbage",
    "wrong shape": lambda data: MAGIC + b"U" + marshal.dumps([1, 2, 3], 4),
    "wrong field type": lambda data: MAGIC + b"U" + marshal.dumps((1,) * 9, 4),
    "a code object": lambda data: MAGIC + b"U" + marshal.dumps(compile("1", "x", "eval"), 4),
    "crafted version": lambda data: (
        MAGIC
        + b"U"
        + marshal.dumps(
            ("k", "s", "p", (("o", "../../x", "json", "0", 1, None),), 1.0, "r", "s", True, {}), 4
        )
    ),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_binary_entry_is_a_miss_and_recomputed(tmp_path, how):
    root = tmp_path / "store"
    with Store(root, history=False) as store:
        _run(store)
    rows = _rows(root)
    _tamper_all(root, rows, DAMAGE[how])
    CALLS.reset()
    with Store(root, history=False) as store:
        assert all(store.lookup(key) is None for key in rows)
        assert list(store.entries()) == []
        assert _run(store)["total"] == 6
    assert CALLS["source"] == CALLS["total"] == 1
    with Store(root, history=False) as store:
        assert all(record.cached for record in _run(store).steps.values())


def _entry(key: str) -> Entry:
    ref = ArtifactRef("ab" * 16, "json", "0" * 16, 3)
    return Entry(key, "s", "p", {"out": ref}, time.time(), "run", SESSION, True, {"code": "c"})


def test_json_entries_of_earlier_versions_are_still_read(tmp_path):
    root = tmp_path / "store"
    with Store(root, history=False) as store:
        store.index.put("a" * 32, _entry("a" * 32).to_json())
        found = store.lookup("a" * 32)
    assert found is not None
    assert found.outputs["out"].version == "ab" * 16
    assert [e.key for e in Store(root, history=False).entries()] == ["a" * 32]


def test_signed_json_entries_of_earlier_versions_are_still_checked(tmp_path):
    import json

    from plait.store.entries import canonical

    root = tmp_path / "store"
    raw = json.loads(_entry("b" * 32).to_json())
    raw["signature"] = Signer(b"k").sign("entry", b"b" * 32, canonical(raw))
    good = json.dumps(raw).encode()
    raw["step"] = "forged"
    forged = json.dumps(raw).encode()
    with Store(root, secret="k", history=False) as store:
        store.index.put("b" * 32, good)
        store.index.put("c" * 32, forged.replace(b"b" * 32, b"c" * 32))
        assert store.lookup("b" * 32) is not None
        assert store.lookup("c" * 32) is None


def test_the_binary_form_round_trips_and_a_local_store_writes_it(tmp_path):
    entry = _entry("d" * 32)
    data = encode_entry(entry)
    assert data.startswith(MAGIC + b"U")
    root = tmp_path / "store"
    with Store(root, history=False) as store:
        store.save(entry)
        assert raw_entries(root)["d" * 32][:5] == MAGIC + b"U"
        assert store.lookup("d" * 32) == entry


def test_parts_marshal_refuses_are_kept_by_their_json_reading(tmp_path):
    entry = _entry("e" * 32)
    entry.parts = {"odd": object()}  # marshal refuses it; its repr is kept
    with Store(tmp_path / "store", history=False) as store:
        store.save(entry)
        found = store.lookup("e" * 32)
    assert found is not None
    assert isinstance(found.parts["odd"], str)


# -- keys -----------------------------------------------------------------------------------


def test_keys_are_stable():
    # A change here changes every key: every entry misses once. Do it deliberately
    # (docs/trust.md says when keys last changed).
    parts = {"code": "c" * 32, "version": None, "outputs": ["o"], "inputs": {"x": "a" * 32}}
    assert cache_key(parts) == "cd0e8ba8a48d988e461f41e51ceb96ff"
    assert cache_key(parts) == cache_key({**parts, "sources": {"x": "up"}})
    assert cache_key(parts) == cache_key(dict(reversed(list(parts.items()))))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"inputs": {"a": "b:c"}}, {"inputs": {"a": "b", "c": ""}}),
        ({"inputs": {"a": "bs1:c"}}, {"inputs": {"a": "b", "c": ""}}),
        ({"inputs": {"ab": "c"}}, {"inputs": {"a": "bc"}}),
        ({"a": "1"}, {"a": 1}),
        ({"a": 1}, {"a": 1.0}),
        ({"a": 1}, {"a": True}),
        ({"a": None}, {"a": "None"}),
        ({"a": None}, {"a": "n"}),
        ({"a": ["x", "y"]}, {"a": ["xy"]}),
        ({"a": ["x"]}, {"a": "x"}),
        ({"a": {"x": "1"}}, {"a": {"x": 1}}),
        ({"a": {}}, {"a": []}),
        ({"a": "x", "b": "y"}, {"a": "xb", "": "y"}),
        ({"version": "1"}, {"version": None}),
    ],
)
def test_different_parts_give_different_keys(left, right):
    assert cache_key(left) != cache_key(right)


def test_lists_and_tuples_key_alike_as_they_did_in_json():
    assert cache_key({"a": ["x", 1]}) == cache_key({"a": ("x", 1)})


def test_dicts_with_keys_of_several_types_are_keyed_in_a_stable_order():
    assert cache_key({"a": {1: "x", "b": 2}}) == cache_key({"a": {"b": 2, 1: "x"}})
    assert cache_key({"a": {1: "x"}}) != cache_key({"a": {"1": "x"}})


@pytest.mark.parametrize("element", [None, "e" * 32])
@pytest.mark.parametrize("files", [False, True])
def test_a_runs_keys_equal_the_keys_of_its_parts(tmp_path, element, files):
    from plait.store.cache import RunCache

    data = tmp_path / "data.csv"
    data.write_text("a,b\n")
    item = step(total, name="total_v", version="3", input_files=[str(data)] if files else ())
    cache = RunCache(Store(tmp_path / "store", history=False), "p", "run")
    for inputs in ({"source": "a" * 32}, {"source": "b" * 32}, {}):
        parts = cache.parts(item, inputs, element, {"source": "source"})
        assert cache.key(item, parts) == cache_key(parts)
        assert cache.key(item, parts) == cache.key(item, parts)  # the fixed part, reused
