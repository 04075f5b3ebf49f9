"""Remote executors (Dask, Ray): what only an engine can show.

The whole executor-parametrised suite (``test_executors``, ``test_retries``, ``test_map``,
``test_branching``, ``test_subpipelines``, ``test_dynamic``, ``test_cancellation``) already
runs on the session's shared Dask cluster and local Ray. Here: values stay on the workers
(bytes that reach the driver are counted), map elements spread over the workers, the
store is written by the workers and the history is complete, data versions match the local
executors', hooks see every step, and closures travel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

import executor_cases
from executor_cases import bump, count, kind_of, where
from plait import Pipeline, Step, Store, step

remote_executor = executor_cases.remote_executor

SIZE = 1 << 19  # float64 elements: 4 MiB per array


# -- counting what travels to the driver ----------------------------------------------------


def _arrays(value: Any) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, list | tuple):
        return [a for item in value for a in _arrays(item)]
    if isinstance(value, dict):
        return [a for item in value.values() for a in _arrays(item)]
    return []


class Arrivals:
    """Everything the engine handed to the driver while the counter was on."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, value: Any) -> Any:
        self.items.append(value)
        return value

    @property
    def arrays(self) -> list[np.ndarray]:
        return [a for item in self.items for a in _arrays(item)]

    @property
    def array_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


@pytest.fixture
def arrivals(remote_executor, monkeypatch) -> Arrivals:
    """Counts the values fetched to the driver: on Dask every ``client.gather``, on Ray
    every ``ray.get``. (Step descriptions travel on their own: Dask events, or a Ray task's
    first return.)"""
    seen = Arrivals()
    if kind_of(remote_executor) == "dask":
        client = remote_executor.client
        gather = client.gather
        monkeypatch.setattr(client, "gather", lambda *a, **k: seen.add(gather(*a, **k)))
    elif kind_of(remote_executor) == "celery":  # values read from the shared store
        read = remote_executor._read_all
        monkeypatch.setattr(remote_executor, "_read_all", lambda refs: seen.add(read(refs)))
    else:
        import ray

        get = ray.get
        monkeypatch.setattr(ray, "get", lambda *a, **k: seen.add(get(*a, **k)))
    return seen


def _chain(length: int) -> Pipeline:
    steps = [Step(lambda n: np.full(n, 1.0), inputs=["n"], outputs="s0", name="s0")]
    for i in range(1, length):
        steps.append(
            Step(lambda prev: prev + 1.0, inputs=[f"s{i - 1}"], outputs=f"s{i}", name=f"s{i}")
        )
    return Pipeline(steps)


def test_only_the_requested_array_travels_to_the_driver(remote_executor, arrivals):
    started = time.time()
    result = _chain(20).run(params={"n": SIZE}, outputs=["s19"], executor=remote_executor)
    assert list(result.outputs) == ["s19"]
    np.testing.assert_array_equal(result["s19"], np.full(SIZE, 20.0))
    assert len(arrivals.arrays) == 1, [a[:1] for a in arrivals.arrays]
    assert arrivals.array_bytes == SIZE * 8
    if kind_of(remote_executor) == "dask":  # what else reached the driver: 20 descriptions
        events = remote_executor.client.get_events("plait-outcomes")
        sizes = [len(message["outcome"]) for stamp, message in events if stamp >= started]
        assert len(sizes) == 20
        assert max(sizes) < 4096, sizes


def test_asking_for_every_output_brings_every_array(remote_executor, arrivals):
    # The control for the test above: the counter does see arrays when they travel.
    result = _chain(5).run(params={"n": SIZE}, executor=remote_executor)
    assert sorted(result.outputs) == [f"s{i}" for i in range(5)]
    assert len(arrivals.arrays) == 5
    assert arrivals.array_bytes == 5 * SIZE * 8


# -- map steps fan out over the workers ------------------------------------------------------


def test_map_elements_run_on_several_workers_at_once(remote_executor, tmp_path):
    @step(map="items")
    def meet(items, folder):
        executor_cases._rendezvous(folder, str(items), str(1 - items))  # waits for the other
        return where()

    result = Pipeline([meet]).run(
        params={"items": [0, 1], "folder": str(tmp_path)}, executor=remote_executor
    )
    first, second = result["meet"]
    assert first.split(":")[0] != second.split(":")[0]  # two worker processes
    assert os.getpid() not in {int(first.split(":")[0]), int(second.split(":")[0])}


@step(map="pairs", outputs=["low", "high"])
def bounds(pairs):
    return min(pairs), max(pairs)


@step
def spread(low, high):
    return [h - lo for lo, h in zip(low, high, strict=True)]


def test_a_map_step_with_several_outputs_splits_each_element(remote_executor):
    pipeline = Pipeline([bounds, spread])
    params = {"pairs": [(3, 1), (2, 8), (5, 5)]}
    result = pipeline.run(params=params, executor=remote_executor)
    assert result["low"] == [1, 2, 5]
    assert result["high"] == [3, 8, 5]
    assert result["spread"] == [2, 6, 0]
    keyed = Pipeline([bounds]).run(
        params={"pairs": {"a": (1, 4), "b": (9, 0)}}, executor=remote_executor
    )
    assert keyed["low"] == {"a": 1, "b": 0}
    assert keyed["high"] == {"a": 4, "b": 9}


def test_a_map_element_that_returns_too_few_outputs_fails_naming_the_step(remote_executor):
    @step(map="items", outputs=["a", "b"])
    def short(items):
        return (items,)

    result = Pipeline([short]).run(
        params={"items": [1, 2]}, executor=remote_executor, on_error="continue"
    )
    record = result.steps["short"]
    assert record.status == "failed"
    assert "short" in str(record.error.message)


# -- the store is written by the workers, the history is complete ---------------------------


@step
def numbers(n, folder):
    bump(folder, "numbers")
    return np.arange(n, dtype=np.float64)


@step(map="chunks")
def chunk_sum(chunks, folder):
    bump(folder, "chunk_sum")
    return float(sum(chunks))


@step
def chunks(numbers):
    return [list(numbers[i : i + 2]) for i in range(0, len(numbers), 2)]


@step
def doubled(numbers, folder):
    bump(folder, "doubled")
    bump(folder, "doubled_where", where())
    return numbers * 2


@step
def report(doubled, chunk_sum):
    return float(doubled.sum()) + sum(chunk_sum)


def _cached_pipeline() -> Pipeline:
    return Pipeline([numbers, chunks, chunk_sum, doubled, report], name="remote-cache")


def test_workers_write_the_store_and_a_second_run_hits_every_step(remote_executor, tmp_path):
    store = Store(tmp_path / "store")
    folder = tmp_path / "calls"
    folder.mkdir()
    params = {"n": 6, "folder": str(folder)}
    try:
        first = _cached_pipeline().run(
            params=params, outputs=["report"], store=store, executor=remote_executor
        )
        assert first["report"] == 2 * 15.0 + 15.0
        assert [count(folder, n) for n in ("numbers", "chunk_sum", "doubled")] == [1, 3, 1]
        writer = executor_cases.lines(folder, "doubled_where")[0]
        assert int(writer.split(":")[0]) != os.getpid()  # the step (and its write) ran there
        artifacts = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
        assert len(artifacts) > 5

        record = store.history.run(first.run_id)
        assert record.status == "succeeded"
        assert set(record.steps) == {"numbers", "chunks", "chunk_sum", "doubled", "report"}
        for name, step_record in record.steps.items():
            assert step_record.status == "ok", name
            assert step_record.data_versions == first.steps[name].data_versions, name
            assert step_record.cache_key, name
        assert record.steps["report"].input_versions
        assert record.executor == remote_executor.name

        second = _cached_pipeline().run(
            params=params, outputs=["report"], store=store, executor=remote_executor
        )
        assert second["report"] == first["report"]
        assert all(r.cached for r in second.steps.values()), second.summary()
        assert [count(folder, n) for n in ("numbers", "chunk_sum", "doubled")] == [1, 3, 1]
    finally:
        store.history.close()


def test_data_versions_are_the_same_as_on_a_local_executor(remote_executor, tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    params = {"n": 8, "folder": str(folder)}
    versions = {}
    for name, executor in (("local", "sequential"), ("remote", remote_executor)):
        store = Store(tmp_path / name)
        try:
            result = _cached_pipeline().run(params=params, store=store, executor=executor)
        finally:
            store.history.close()
        versions[name] = {n: r.data_versions for n, r in result.steps.items()}
    assert versions["remote"] == versions["local"]
    assert all(versions["local"].values())


def test_adding_a_map_element_computes_only_that_element(remote_executor, tmp_path):
    @step(map="items")
    def tenfold(items, folder):
        bump(folder, "tenfold")
        return items * 10

    store = Store(tmp_path / "store")
    try:
        args = {"store": store, "executor": remote_executor}
        Pipeline([tenfold]).run(params={"items": [1, 2, 3], "folder": str(tmp_path)}, **args)
        grown = Pipeline([tenfold]).run(
            params={"items": [1, 2, 3, 4], "folder": str(tmp_path)}, **args
        )
    finally:
        store.history.close()
    assert grown["tenfold"] == [10, 20, 30, 40]
    assert count(tmp_path, "tenfold") == 4


def test_a_fallback_value_is_versioned_and_recorded(remote_executor, tmp_path):
    @step(on_failure=lambda exc, seed: np.zeros(3) + seed)
    def flaky(seed):
        raise OSError("no network")

    @step
    def after_flaky(flaky):
        return float(flaky.sum())

    store = Store(tmp_path / "store")
    try:
        result = Pipeline([flaky, after_flaky]).run(
            params={"seed": 2}, store=store, executor=remote_executor
        )
        record = store.history.run(result.run_id).steps["flaky"]
    finally:
        store.history.close()
    assert result["after_flaky"] == 6.0
    assert result.steps["flaky"].fallback
    from plait.store.hashing import data_version

    assert result.steps["flaky"].data_versions == {"flaky": data_version(np.zeros(3) + 2)}
    assert record.data_versions == result.steps["flaky"].data_versions


@step
def listed(n):
    return list(range(n))


@step(dynamic=True)
def expanded(listed, folder):
    @step
    def inner_sum(listed, folder):
        bump(folder, "inner_sum")
        return sum(listed)

    return Pipeline([inner_sum])


def test_a_dynamic_step_fed_by_a_remote_value_is_cached_by_content(remote_executor, tmp_path):
    # The inner step is bound to the remote value: its key must use the data, not the ref.
    store = Store(tmp_path / "store")
    try:
        runs = [
            Pipeline([listed, expanded]).run(
                params={"n": 4, "folder": str(tmp_path)}, store=store, executor=remote_executor
            )
            for _ in range(2)
        ]
    finally:
        store.history.close()
    assert runs[0]["expanded"] == {"inner_sum": 6}
    assert count(tmp_path, "inner_sum") == 1
    assert runs[1].steps["expanded.inner_sum"].cached


# -- hooks, closures, async steps beside remote ones -----------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def on_step_start(self, step, run):
        self.events.append(("start", step.name))

    def on_step_end(self, step_result, run):
        self.events.append((step_result.status, step_result.name))

    def on_run_end(self, result):
        self.events.append(("run", result.status))


@step
def hooked_source(x):
    return x


@step
def hooked_fails(hooked_source):
    raise KeyError("missing")


@step
def hooked_skipped(hooked_fails):
    return hooked_fails


def test_hooks_see_every_step_as_on_a_local_executor(remote_executor):
    pipeline = Pipeline([hooked_source, hooked_fails, hooked_skipped])
    seen = {}
    for name, executor in (("local", "sequential"), ("remote", remote_executor)):
        recorder = Recorder()
        pipeline.run(params={"x": 1}, executor=executor, hooks=[recorder], on_error="continue")
        seen[name] = recorder.events
    assert seen["remote"] == seen["local"]
    assert ("failed", "hooked_fails") in seen["remote"]
    assert ("skipped", "hooked_skipped") in seen["remote"]


def test_closures_and_lambdas_travel_to_the_workers(remote_executor):
    offset = 100

    def add_offset(x):
        return x + offset

    scale = Step(lambda add_offset: add_offset * 2, inputs=["add_offset"], name="scale")
    pid = Step(os.getpid, outputs="pid", name="pid")
    result = Pipeline([step(add_offset), scale, pid]).run(params={"x": 1}, executor=remote_executor)
    assert (result["add_offset"], result["scale"]) == (101, 202)
    assert result["pid"] != os.getpid()


def test_an_async_step_receives_values_computed_on_the_workers(remote_executor):
    @step
    def remote_list(n):
        return list(range(n))

    @step
    async def local_sum(remote_list):
        return sum(remote_list)

    @step(dynamic=True)
    def inner(remote_list):
        @step
        async def inner_len(remote_list):
            return len(remote_list)

        return Pipeline([inner_len])

    result = Pipeline([remote_list, local_sum, inner]).run(
        params={"n": 5}, executor=remote_executor
    )
    assert result["local_sum"] == 10
    assert result["inner"] == {"inner_len": 5}


def test_an_unpicklable_input_fails_the_step_naming_the_input(remote_executor):
    @step
    def use_lock(lock):
        return "unreachable"

    @step
    def independent():
        return "fine"

    result = Pipeline([use_lock, independent]).run(
        params={"lock": threading.Lock()}, executor=remote_executor, on_error="continue"
    )
    error = result.steps["use_lock"].error
    assert error.type == "SerializationError"
    assert "'use_lock'" in error.message
    assert "input 'lock'" in error.message
    assert result["independent"] == "fine"


# -- optional imports ------------------------------------------------------------------------


def test_importing_plait_executors_imports_no_engine(tmp_path):
    probe = (
        "import sys, plait.executors; "
        "print(sorted(m for m in ('dask', 'distributed', 'ray') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert completed.stdout.strip() == "[]"
