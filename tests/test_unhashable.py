"""Values with no data version: the run goes on, nothing about them is cached, and every
step they touch says why. (A hashing error used to escape ``run()`` and leave the run
``running`` in the history.)"""

from __future__ import annotations

import threading

import pytest

from plait import Pipeline, Store, cached, step
from store_cases import CALLS


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.reset()


@step
def lock() -> threading.Lock:
    CALLS.hit("lock")
    return threading.Lock()


@step
def locked(lock: threading.Lock) -> bool:
    CALLS.hit("locked")
    return lock.locked()


@step
def label(locked: bool) -> str:
    CALLS.hit("label")
    return f"locked={locked}"


STEPS = [lock, locked, label]


@pytest.mark.parametrize("on_error", ["raise", "continue"])
def test_an_unhashable_output_is_not_cached_and_the_run_goes_on(tmp_path, on_error):
    store = Store(tmp_path / "store")
    result = Pipeline(STEPS).run(store=store, on_error=on_error)
    assert result.ok
    assert result["label"] == "locked=False"
    lock_step = result.steps["lock"]
    assert not lock_step.cached
    assert "no data version" in lock_step.reason
    assert "lock" in lock_step.reason.lower()
    assert "input 'lock'" in result.steps["locked"].reason
    assert store.history.run(result.run_id).status == "succeeded"
    CALLS.reset()
    again = Pipeline(STEPS).run(store=store, on_error=on_error)
    assert again["label"] == "locked=False"
    assert CALLS["lock"] == 1
    assert CALLS["locked"] == 1
    # label's input (a bool) has a data version again: it is a hit.
    assert again.steps["label"].cached
    assert CALLS["label"] == 0


def test_an_unhashable_param_runs_the_step_every_time(tmp_path):
    store = Store(tmp_path / "store")

    @step
    def use(guard: threading.Lock, n: int) -> int:
        CALLS.hit("use")
        return n + 1

    for _ in range(2):
        result = Pipeline([use]).run(params={"guard": threading.Lock(), "n": 1}, store=store)
        assert result["use"] == 2
        assert not result.steps["use"].cached
        assert "input 'guard'" in result.steps["use"].reason
        assert "no data version" in result.steps["use"].reason
    assert CALLS["use"] == 2


def test_an_unhashable_map_element_is_computed_and_the_others_cached(tmp_path):
    store = Store(tmp_path / "store")

    @step(map="items")
    def kind(items: object) -> str:
        CALLS.hit("kind")
        return type(items).__name__

    def run() -> list[str]:
        items = [1, threading.Lock(), "x"]
        return Pipeline([kind]).run(params={"items": items}, store=store)["kind"]

    first = run()
    assert first[0] == "int"
    assert first[2] == "str"
    assert CALLS["kind"] == 3
    CALLS.reset()
    assert run() == first
    assert CALLS["kind"] == 1  # only the element with no data version


def test_cached_functions_of_unhashable_arguments_just_run(tmp_path):
    @cached(store=str(tmp_path / "store"))
    def held(guard: threading.Lock) -> bool:
        CALLS.hit("held")
        return guard.locked()

    assert held(threading.Lock()) is False
    assert held(threading.Lock()) is False
    assert CALLS["held"] == 2
