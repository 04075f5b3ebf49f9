"""The store: lossless round trips, integrity checks, signed pickles, concurrent writers.

Artifacts are damaged by rewriting files under ``<store>/objects/`` and entries under
``<store>/cache/``, as a failing disk, an interrupted copy or an attacker would.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from plait import Pipeline, Store, step
from plait.store.serializers import register_serializer
from store_cases import CALLS, Blob, damage, entries, rewrite_entries, store_files

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.reset()


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


# -- round trips keep types ----------------------------------------------------------------


def _frame():
    frame = pd.DataFrame(
        {
            "zeta": np.array([3, 1, 2], dtype=np.int32),
            "alpha": [0.5, np.nan, 2.5],
            "text": ["x", "y", None],
            "flag": [True, False, True],
            "small": np.array([1, 2, 3], dtype=np.uint8),
        },
        index=pd.Index(["r1", "r2", "r3"], name="row"),
    )
    frame["cat"] = pd.Categorical(["a", "b", "a"])
    return frame


VALUES = {
    "tuple": (1, "two", 3.0),
    "nested-tuples": {"pairs": [(1, 2), (3, 4)]},
    "json-data": {"a": [1, 2.5, None, "s", True], "b": {"c": []}},
    "int-keys": {1: "one", 2: "two"},
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "bytes": b"\x00\xff",
    "nan": float("nan"),
    "unicode": "ünïcødé ☃",
    "none": None,
    "big-float-list": [1e308, -0.0, 5e-324],
    "custom-object": Blob({"k": (1, 2)}),
    "numpy-float32": np.arange(6, dtype=np.float32).reshape(2, 3),
    "numpy-int8": np.array([-1, 0, 1], dtype=np.int8),
    "numpy-fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "numpy-structured": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
    "numpy-scalar": np.float64(2.5),
    "pandas-frame": _frame(),
    "pandas-multiindex": pd.DataFrame(
        {"v": [1, 2]}, index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"])
    ),
    "pandas-range-index": pd.DataFrame({"b": [1.0, 2.0], "a": [3, 4]}),
    "pandas-series": pd.Series([1, 2, 3], name="s", index=[10, 20, 30]),
    "arrow-table": pa.table({"i": pa.array([1, None], pa.int16()), "s": ["x", "y"]}),
}


def _same(left, right):
    assert type(left) is type(right)
    if isinstance(left, pd.DataFrame):
        pd.testing.assert_frame_equal(left, right, check_exact=True)
        assert list(left.columns) == list(right.columns)
        assert left.dtypes.to_dict() == right.dtypes.to_dict()
    elif isinstance(left, pd.Series):
        pd.testing.assert_series_equal(left, right, check_exact=True)
    elif isinstance(left, pa.Table):
        assert left.equals(right)
        assert left.schema.equals(right.schema)
    elif isinstance(left, np.ndarray):
        assert left.dtype == right.dtype
        assert left.shape == right.shape
        np.testing.assert_array_equal(left, right)
    elif isinstance(left, float) and math.isnan(left):
        assert math.isnan(right)
    else:
        assert left == right
        assert repr(left) == repr(right)


@step
def produce(key):
    CALLS.hit("produce")
    return VALUES[key]


@pytest.mark.parametrize("key", list(VALUES), ids=list(VALUES))
def test_round_trip_through_the_store_keeps_types(store, key):
    Pipeline([produce]).run(params={"key": key}, store=store)
    result = Pipeline([produce]).run(params={"key": key}, store=store)
    assert result.steps["produce"].cached
    assert CALLS["produce"] == 1
    _same(VALUES[key], result["produce"])


@pytest.mark.parametrize(
    ("key", "suffix"),
    [
        ("json-data", ".json"),
        ("tuple", ".pickle"),
        ("int-keys", ".pickle"),
        ("numpy-float32", ".npy"),
        ("pandas-frame", ".parquet"),
        ("pandas-multiindex", ".parquet"),
        ("arrow-table", ".parquet"),
        ("custom-object", ".pickle"),
    ],
)
def test_values_are_stored_in_their_natural_format(store, key, suffix):
    Pipeline([produce]).run(params={"key": key}, store=store)
    (artifact,) = store_files(store)
    assert artifact.suffix == suffix


@pytest.mark.parametrize(
    "value",
    [
        pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-06-30"])}),
        pd.DataFrame({"t": pd.to_datetime(["2024-01-01"]).tz_localize("Europe/Paris")}),
        np.array(["2024-01-01T10:00"], dtype="datetime64[s]"),
    ],
    ids=["naive-datetimes", "aware-datetimes", "numpy-datetime64"],
)
def test_round_trip_of_datetime_data(store, value):
    @step
    def stamped():
        CALLS.hit("stamped")
        return value

    Pipeline([stamped]).run(store=store)
    result = Pipeline([stamped]).run(store=store)
    assert result.steps["stamped"].cached
    assert CALLS["stamped"] == 1
    _same(value, result["stamped"])


def test_a_multi_output_step_round_trips_each_output(store):
    @step(outputs=["pair", "array"])
    def two():
        CALLS.hit("two")
        return (1, 2), np.arange(3, dtype=np.int16)

    Pipeline([two]).run(store=store)
    result = Pipeline([two]).run(store=store)
    assert result["pair"] == (1, 2)
    assert result["array"].dtype == np.int16
    assert CALLS["two"] == 1


class Celsius:
    def __init__(self, degrees):
        self.degrees = degrees


class CelsiusSerializer:
    name = "celsius"
    calls: list[str] = []

    def accepts(self, value):
        return isinstance(value, Celsius)

    def dumps(self, value):
        self.calls.append("dumps")
        return f"{value.degrees}C".encode()

    def loads(self, data):
        self.calls.append("loads")
        return Celsius(float(data.decode().removesuffix("C")))


def test_register_serializer_plugs_in(store):
    register_serializer(CelsiusSerializer())

    @step
    def temperature(base):
        CALLS.hit("temperature")
        return Celsius(base + 0.5)

    Pipeline([temperature]).run(params={"base": 20}, store=store)
    assert CelsiusSerializer.calls == ["dumps"]
    assert [p.read_bytes() for p in store_files(store) if p.name.endswith(".celsius")] == [b"20.5C"]
    result = Pipeline([temperature]).run(params={"base": 20}, store=store)
    assert result.steps["temperature"].cached
    assert isinstance(result["temperature"], Celsius)
    assert result["temperature"].degrees == 20.5
    assert CelsiusSerializer.calls == ["dumps", "loads"]
    assert CALLS["temperature"] == 1


def test_a_store_at_an_fsspec_memory_url_caches(tmp_path):
    url = f"memory://plait-test-{tmp_path.name}"
    Pipeline([produce]).run(params={"key": "tuple"}, store=Store(url))
    result = Pipeline([produce]).run(params={"key": "tuple"}, store=url)
    assert result.steps["produce"].cached
    assert result["produce"] == (1, "two", 3.0)
    assert CALLS["produce"] == 1


# -- integrity: damaged artifacts are recomputed, never returned ----------------------------


@step
def numbers(n):
    CALLS.hit("numbers")
    return [i * 1.5 for i in range(n)]


@step
def stats(numbers):
    CALLS.hit("stats")
    return {"count": len(numbers), "sum": sum(numbers), "pair": (min(numbers), max(numbers))}


@step
def obj(stats):
    CALLS.hit("obj")
    return Blob(stats)


INTEGRITY = [numbers, stats, obj]
EXPECTED = {
    "numbers": [0.0, 1.5, 3.0, 4.5],
    "stats": {"count": 4, "sum": 9.0, "pair": (0.0, 4.5)},
    "obj": Blob({"count": 4, "sum": 9.0, "pair": (0.0, 4.5)}),
}


def _integrity_run(store, **kwargs):
    return Pipeline(INTEGRITY).run(params={"n": 4}, store=store, **kwargs)


@pytest.mark.parametrize("how", ["flip", "truncate", "garbage"])
def test_damaged_artifacts_are_recomputed_never_returned(store, how):
    _integrity_run(store)
    artifacts = store_files(store)
    assert len(artifacts) == 3
    for path in artifacts:
        damage(path, how)
    CALLS.reset()
    result = _integrity_run(store)
    assert result.outputs == EXPECTED
    assert CALLS["numbers"] == CALLS["stats"] == CALLS["obj"] == 1
    CALLS.reset()
    healed = _integrity_run(store)  # the store was repaired: everything hits again
    assert healed.outputs == EXPECTED
    assert CALLS.total() == 0


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_a_damaged_upstream_artifact_needed_by_an_executing_step_is_recomputed(store, how):
    version = _integrity_run(store).steps["numbers"].data_versions["numbers"]
    (artifact,) = [p for p in store_files(store) if p.name.startswith(version)]
    damage(artifact, how)
    CALLS.reset()

    @step
    def mean(numbers):
        CALLS.hit("mean")
        return sum(numbers) / len(numbers)

    result = Pipeline([numbers, mean]).run(params={"n": 4}, store=store, outputs=["mean"])
    assert result["mean"] == 2.25
    assert CALLS["mean"] == 1
    assert CALLS["numbers"] == 1


def test_a_missing_artifact_is_recomputed(store):
    _integrity_run(store)
    for path in store_files(store):
        path.unlink()
    CALLS.reset()
    result = _integrity_run(store)
    assert result.outputs == EXPECTED
    assert CALLS["numbers"] == CALLS["stats"] == CALLS["obj"] == 1


@pytest.mark.parametrize(
    "transform",
    [
        lambda data: b"",
        lambda data: data[: len(data) // 2],
        lambda data: b"not json at all",
        lambda data: b'{"key": 1}',
        lambda data: b"[1, 2, 3]",
        lambda data: b"\xff\xfe\x00",
        lambda data: data.replace(b'"outputs"', b'"outptus"'),
    ],
    ids=["empty", "truncated", "garbage", "missing-fields", "wrong-shape", "binary", "renamed"],
)
def test_a_damaged_cache_entry_is_a_miss(store, transform):
    _integrity_run(store)
    assert rewrite_entries(store, transform) == 3
    CALLS.reset()
    result = _integrity_run(store)
    assert result.outputs == EXPECTED
    assert not any(record.cached for record in result.steps.values())
    assert CALLS["numbers"] == CALLS["stats"] == CALLS["obj"] == 1
    assert _integrity_run(store).steps["obj"].cached


def test_an_entry_whose_checksum_does_not_match_is_never_trusted(store):
    _integrity_run(store)

    def wrong_checksum(data):
        entry = json.loads(data)
        for ref in entry["outputs"].values():
            ref["checksum"] = "0" * len(ref["checksum"])
        return json.dumps(entry).encode()

    rewrite_entries(store, wrong_checksum)
    CALLS.reset()
    result = _integrity_run(store)
    assert result.outputs == EXPECTED
    assert CALLS["numbers"] == CALLS["stats"] == CALLS["obj"] == 1


def test_damaged_map_element_artifacts_are_recomputed_and_repaired(store):
    @step(map="items")
    def cube(items):
        CALLS.hit("cube")
        return (items, items**3)

    Pipeline([cube]).run(params={"items": [1, 2, 3]}, store=store)
    for path in store_files(store):
        damage(path, "flip")
    CALLS.reset()
    result = Pipeline([cube]).run(params={"items": [1, 2, 3]}, store=store)
    assert result["cube"] == [(1, 1), (2, 8), (3, 27)]
    assert CALLS["cube"] == 3
    CALLS.reset()
    again = Pipeline([cube]).run(params={"items": [1, 2, 3]}, store=store)
    assert again["cube"] == [(1, 1), (2, 8), (3, 27)]
    assert CALLS["cube"] == 0  # the store was repaired


# -- signed pickles --------------------------------------------------------------------------


def _rewrite_artifact(store_root: Path, data: bytes) -> None:
    """Replace every pickled artifact by ``data`` and make its entry's size and checksum
    match, as someone with write access to the store could."""
    import xxhash

    def forge(raw: bytes) -> bytes:
        entry = json.loads(raw)
        for ref in entry["outputs"].values():
            if ref["serializer"] != "pickle":
                continue
            artifact = next(p for p in store_files(store_root) if p.name.startswith(ref["version"]))
            artifact.write_bytes(data)
            ref["size"] = len(data)
            ref["checksum"] = xxhash.xxh3_64_hexdigest(data)
        return json.dumps(entry).encode()

    rewrite_entries(store_root, forge)


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_tampered_pickled_artifact_is_refused_with_a_secret(store, tmp_path):
    import pickle

    secured = Store(store, secret="s3cret")
    Pipeline(INTEGRITY).run(params={"n": 4}, store=secured)
    marker = tmp_path / "code-ran"
    _rewrite_artifact(store, pickle.dumps(_Payload(str(marker))))
    CALLS.reset()
    result = Pipeline(INTEGRITY).run(params={"n": 4}, store=Store(store, secret="s3cret"))
    assert not marker.exists()
    assert result.outputs == EXPECTED
    assert CALLS["obj"] == 1


def test_a_pickled_artifact_written_without_the_secret_is_refused(store):
    Pipeline(INTEGRITY).run(params={"n": 4}, store=Store(store))
    CALLS.reset()
    result = Pipeline(INTEGRITY).run(params={"n": 4}, store=Store(store, secret="s3cret"))
    assert result.outputs == EXPECTED
    assert CALLS["obj"] == 1


def test_a_pickled_artifact_signed_with_another_secret_is_refused(store, monkeypatch):
    monkeypatch.setenv("PLAIT_SECRET", "first")
    Pipeline(INTEGRITY).run(params={"n": 4}, store=store)
    CALLS.reset()
    same = Pipeline(INTEGRITY).run(params={"n": 4}, store=store)
    assert same.outputs == EXPECTED
    assert CALLS.total() == 0
    monkeypatch.setenv("PLAIT_SECRET", "second")
    result = Pipeline(INTEGRITY).run(params={"n": 4}, store=store)
    assert result.outputs == EXPECTED
    assert CALLS["obj"] == 1


def test_signed_pickles_hit_with_the_same_secret(store):
    Pipeline(INTEGRITY).run(params={"n": 4}, store=Store(store, secret=b"key"))
    CALLS.reset()
    result = Pipeline(INTEGRITY).run(params={"n": 4}, store=Store(store, secret=b"key"))
    assert result.outputs == EXPECTED
    assert CALLS.total() == 0


# -- concurrency ---------------------------------------------------------------------------

WORKER = """
import json, os, random, sys, time
sys.path.insert(0, {tests!r})
from store_cases import concurrent_expected, concurrent_pipeline

store, start, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
pipeline = concurrent_pipeline()
deadline = time.monotonic() + 60
while not os.path.exists(start) and time.monotonic() < deadline:
    time.sleep(0.005)
order = list(range(1, 9))
random.Random(worker).shuffle(order)
bad = []
for _ in range(2):
    for n in order:
        result = pipeline.run(params={{"n": n}}, store=store)
        if result.outputs != concurrent_expected(n):
            bad.append(n)
print(json.dumps(bad))
"""


def test_concurrent_processes_never_corrupt_the_store_or_lose_an_entry(store, tmp_path):
    from store_cases import concurrent_expected, concurrent_pipeline

    start = tmp_path / "go"
    script = WORKER.format(tests=str(TESTS))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(store), str(start), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    start.touch()
    outcomes = [worker.communicate(timeout=100) for worker in workers]
    for worker, (out, err) in zip(workers, outcomes, strict=True):
        assert worker.returncode == 0, err
        assert json.loads(out) == [], "a worker got wrong values"
    leftovers = [p for p in store.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    for data in entries(store).values():
        json.loads(data)  # every entry is complete JSON
    pipeline = concurrent_pipeline()
    for n in range(1, 9):
        result = pipeline.run(params={"n": n}, store=store)
        assert result.outputs == concurrent_expected(n)
        assert all(record.cached for record in result.steps.values()), n


def test_threads_writing_the_same_keys_at_once(store):
    barrier = threading.Barrier(8, timeout=30)

    @step
    def together(n):
        CALLS.hit("together")
        barrier.wait()  # every thread writes its outputs at the same moment
        return {"n": n, "payload": list(range(1000)), "tag": (n,)}

    @step
    def after(together):
        return Blob(together["tag"])

    results: list[object] = []
    errors: list[BaseException] = []

    def run():
        try:
            results.append(Pipeline([together, after]).run(params={"n": 7}, store=store))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert all(r["after"] == Blob((7,)) for r in results)
    assert CALLS["together"] == 8
    final = Pipeline([together, after]).run(params={"n": 7}, store=store)
    assert final.steps["together"].cached
    assert final.steps["after"].cached
    assert final["together"]["payload"] == list(range(1000))
    assert final["after"] == Blob((7,))
