"""The fast path of source versions: an unchanged file is confirmed by its signature, an
edited one is always hashed again, even with its size and mtime put back."""

from __future__ import annotations

import json
import os
import time

import pytest
from fsspec.implementations.local import LocalFileSystem

from plait import Store
from plait.io import _versions
from plait.io._versions import FileVersions, content_hash

FS = LocalFileSystem()


@pytest.fixture
def old_file(tmp_path, monkeypatch):
    """A file older than the racy window (the window shrunk to 0 for the test)."""
    monkeypatch.setattr(_versions, "RACY_NS", 0)
    monkeypatch.setattr(_versions, "_MEMO", {})
    path = tmp_path / "companies.csv"
    path.write_text("a,b\n1,2\n")
    return str(path)


def _plant(store, path, version):
    """Rewrite the remembered hash (the store's own record) to prove it is what is used."""
    [record_path] = list(store.backend.list("datasets/files"))
    record = json.loads(store.backend.read(record_path))
    assert record["path"] == path
    record["version"] = version
    store.backend.write(record_path, json.dumps(record).encode())
    _versions._MEMO.clear()


def test_an_unchanged_file_is_confirmed_without_reading_it(old_file, tmp_path):
    store = Store(tmp_path / "store")
    assert FileVersions(store).version(FS, old_file) == content_hash(FS, old_file)
    _plant(store, old_file, "remembered")
    assert FileVersions(store).version(FS, old_file) == "remembered"


def test_an_edit_with_size_and_mtime_put_back_is_hashed_again(old_file, tmp_path):
    store = Store(tmp_path / "store")
    FileVersions(store).version(FS, old_file)
    _plant(store, old_file, "remembered")
    before = os.stat(old_file)
    with open(old_file, "r+b") as handle:
        handle.write(b"x")  # same size
    os.utime(old_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(old_file).st_mtime_ns == before.st_mtime_ns
    assert FileVersions(store).version(FS, old_file) == content_hash(FS, old_file)


def test_a_file_changed_just_before_its_hash_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setattr(_versions, "_MEMO", {})
    path = tmp_path / "fresh.csv"
    path.write_text("a\n")
    store = Store(tmp_path / "store")
    FileVersions(store).version(FS, str(path))  # within the racy window of its write
    _plant(store, str(path), "remembered")
    assert FileVersions(store).version(FS, str(path)) == content_hash(FS, str(path))


def test_confirming_an_unchanged_file_costs_microseconds(old_file, tmp_path):
    versions = FileVersions(Store(tmp_path / "store"))
    versions.version(FS, old_file)
    start = time.perf_counter()
    for _ in range(1000):
        versions.version(FS, old_file)
    per_call = (time.perf_counter() - start) / 1000
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs"
