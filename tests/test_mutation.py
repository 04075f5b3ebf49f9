"""Inputs are read-only: a step never changes what another step or the store sees.

Kedro's spaceflights starter adds a column to its input frame in place; before the rule,
a second consumer of that frame saw the column in a cold run and not in a warm one (it
loaded the stored, unchanged artifact). Counters are files (steps may run in other
processes); the folder arrives as the ``folder`` param.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

import executor_cases
from executor_cases import bump, count
from plait import Err, Ok, Pipeline, step
from plait.errors import MutatedInputError, RunFailed

executor = executor_cases.executor
process_pool = executor_cases.process_pool


# -- a spaceflights-like pipeline: one step edits its input frame in place ---------------


@step
def companies(folder: str) -> pd.DataFrame:
    bump(folder, "companies")
    return pd.DataFrame({"rating": ["90%", "80%", "70%"], "size": [1, 2, 3]})


@step
def preprocessed(companies: pd.DataFrame, folder: str) -> pd.DataFrame:
    bump(folder, "preprocessed")
    companies["score"] = companies["rating"].str.rstrip("%").astype(float)  # in place
    companies.loc[0, "size"] = 100  # in place, into existing data
    return companies


@step
def columns(companies: pd.DataFrame, folder: str) -> list[str]:
    bump(folder, "columns")
    return list(companies.columns)


@step
def total_size(companies: pd.DataFrame, folder: str) -> int:
    bump(folder, "total_size")
    return int(companies["size"].sum())


SPACEFLIGHTS = [companies, preprocessed, columns, total_size]
EXPECTED = {"columns": ["rating", "size"], "total_size": 6}


def _values(result) -> dict[str, object]:
    return {name: result[name] for name in EXPECTED}


def test_cold_and_warm_runs_agree_when_a_step_edits_its_input_frame(executor, tmp_path):
    folder, store = tmp_path / "calls", tmp_path / "store"
    folder.mkdir()
    p = Pipeline(SPACEFLIGHTS, params={"folder": str(folder)})
    cold = p.run(store=store, executor=executor)
    consumers_again = p.run(store=store, executor=executor, force=["columns", "total_size"])
    warm = p.run(store=store, executor=executor)

    assert _values(cold) == _values(consumers_again) == _values(warm) == EXPECTED
    assert all(record.cached for record in warm.steps.values())
    assert not consumers_again.steps["columns"].cached  # it re-ran on the stored frame
    assert count(folder, "companies") == count(folder, "preprocessed") == 1
    assert count(folder, "columns") == count(folder, "total_size") == 2
    # the step's own edits are its output, and its input stays as it was
    assert list(cold["preprocessed"].columns) == ["rating", "size", "score"]
    assert cold["preprocessed"]["size"].tolist() == [100, 2, 3]
    assert list(warm["companies"].columns) == ["rating", "size"]
    assert cold["companies"]["size"].tolist() == [1, 2, 3]


def test_without_a_store_every_executor_gives_the_same_values(executor, tmp_path):
    p = Pipeline(SPACEFLIGHTS, params={"folder": str(tmp_path)})
    assert _values(p.run(executor=executor)) == EXPECTED


# -- numpy arrays: read-only views, never copied ----------------------------------------


@step
def doubled(values: np.ndarray) -> np.ndarray:
    values *= 2
    return values


def test_an_in_place_array_change_fails_naming_the_step_the_input_and_the_fix(executor):
    values = np.arange(4.0)
    with pytest.raises(RunFailed) as caught:
        Pipeline([doubled]).run(params={"values": values}, executor=executor)
    error = caught.value.__cause__
    assert isinstance(error, MutatedInputError)
    assert (error.step, error.input) == ("doubled", "values")
    with pytest.raises(MutatedInputError, match=r"step 'doubled' tried to change its input"):
        raise error
    assert "values = values.copy()" in str(error)
    assert "output array is read-only" in str(error)  # the cause, which may not travel
    assert values.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_large_array_is_handed_over_without_a_copy():
    big = np.zeros(10_000_000)  # 80 MB

    @step
    def address(big: np.ndarray) -> int:
        assert not big.flags.writeable
        return int(big.__array_interface__["data"][0])

    result = Pipeline([address]).run(params={"big": big})
    assert result["address"] == big.__array_interface__["data"][0]
    assert big.flags.writeable  # the caller's array is untouched


def test_a_step_that_does_not_mutate_pays_nothing_and_its_outputs_are_its_own(executor):
    @step
    def same(values: np.ndarray) -> np.ndarray:
        return values

    @step
    def head(values: np.ndarray) -> np.ndarray:
        return values[:2]

    @step
    def scaled(values: np.ndarray) -> np.ndarray:
        return values * 2

    @step
    def listed(items: list[int], table: dict[str, int]) -> list[int]:
        return [*items, table["a"]]

    values = np.arange(4.0)
    result = Pipeline([same, head, scaled, listed]).run(
        params={"values": values, "items": [1, 2], "table": {"a": 3}}, executor=executor
    )
    assert result.ok
    assert result["scaled"].tolist() == [0.0, 2.0, 4.0, 6.0]
    assert result["listed"] == [1, 2, 3]
    assert result["same"].tolist() == [0.0, 1.0, 2.0, 3.0]
    if executor_cases.kind_of(executor) in executor_cases.IN_PROCESS:
        # as without plait: the caller's array itself, and a writable slice of it
        assert result["same"] is values
        assert result["head"].flags.writeable


# -- other values: watched by data version -----------------------------------------------


class Box:
    def __init__(self) -> None:
        self.items = [1]


def _grow_box(box: Box) -> None:
    box.items.append(2)


def _objects(*items: object) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


MUTATIONS = [
    pytest.param([1, 2], lambda value: value.append(3), "value = list(value)", id="list"),
    pytest.param({"a": 1}, lambda value: value.update(k=2), "value = dict(value)", id="dict"),
    pytest.param({1, 2}, lambda value: value.add(3), "value = set(value)", id="set"),
    pytest.param(bytearray(b"ab"), lambda value: value.extend(b"c"), "bytearray", id="bytes"),
    pytest.param(([1], 2), lambda value: value[0].append(3), "deepcopy", id="tuple-of-list"),
    pytest.param(Box(), _grow_box, "value = copy.deepcopy(value)", id="object"),
    pytest.param(  # the standard pickler refuses the lambda: watched by data version
        {"scale": lambda x: x * 2, "items": [1]},
        lambda value: value["items"].append(2),
        "value = dict(value)",
        id="dict-with-a-lambda",
    ),
    pytest.param(
        _objects([1], [2]),
        lambda value: value[0].append(3),
        "deepcopy",
        id="object-array",
    ),
    pytest.param(
        np.ma.masked_array([1, 2], mask=[False, False]),
        lambda value: value.__setitem__(0, np.ma.masked),
        "deepcopy",
        id="masked-array",
    ),
]


@pytest.mark.parametrize(("value", "mutate", "fix"), MUTATIONS)
def test_a_changed_input_fails_the_step_and_names_the_fix(value, mutate, fix):
    @step
    def changes(value: object) -> int:
        mutate(value)
        return 1

    with pytest.raises(RunFailed) as caught:
        Pipeline([changes]).run(params={"value": value})
    error = caught.value.__cause__
    assert isinstance(error, MutatedInputError)
    assert (error.step, error.input) == ("changes", "value")
    assert "step 'changes' changed its input 'value'" in str(error)
    assert fix in str(error)


def test_a_value_with_no_fingerprint_is_handed_over_unwatched():
    import threading

    @step
    def appends(value: dict[str, object]) -> int:
        value["more"] = 1
        return len(value)

    value = {"lock": threading.Lock()}  # neither picklable nor hashable: cannot be watched
    assert Pipeline([appends]).run(params={"value": value})["appends"] == 2


def test_a_list_appended_to_is_caught_on_every_executor(executor):
    @step
    def produce() -> list[int]:
        return [1, 2]

    @step
    def appends(produce: list[int]) -> int:
        produce.append(3)
        return len(produce)

    with pytest.raises(RunFailed) as caught:
        Pipeline([produce, appends]).run(executor=executor)
    assert caught.value.step == "appends"
    assert isinstance(caught.value.__cause__, MutatedInputError)
    assert caught.value.__cause__.input == "produce"


def test_with_on_error_continue_no_later_step_runs_on_a_changed_value(executor):
    @step
    def produce() -> list[int]:
        return [1, 2]

    @step
    def appends(produce: list[int]) -> int:
        produce.append(3)
        return len(produce)

    @step(after=["appends"], on_upstream="receive")
    def reads(produce: Ok) -> int:
        return len(produce.value)

    result = Pipeline([produce, appends, reads]).run(executor=executor, on_error="continue")
    assert result.steps["appends"].error.type == "MutatedInputError"
    record = result.steps["reads"]
    assert record.status == "failed"
    assert record.error.type == "MutatedInputError"
    assert "changed in place by step 'appends'" in record.error.message
    assert record.reason == "input 'produce' ('produce') was changed in place by step 'appends'"


def test_a_refused_array_write_changes_nothing_so_later_steps_still_run(executor):
    @step
    def doubles(source: np.ndarray) -> np.ndarray:
        source *= 2
        return source

    @step(after=["doubles"], on_upstream="receive")
    def total(source: Ok) -> float:
        return float(source.value.sum())

    result = Pipeline([source, doubles, total]).run(executor=executor, on_error="continue")
    assert result.steps["doubles"].error.type == "MutatedInputError"
    assert result["total"] == 3.0


def test_a_mutation_is_neither_retried_nor_replaced_by_a_fallback(tmp_path):
    fallbacks: list[BaseException] = []

    def fallback(error: BaseException, **_: object) -> int:
        fallbacks.append(error)
        return 0

    @step(retries=3, backoff=0, on_failure=fallback)
    def appends(items: list[int], folder: str) -> int:
        bump(folder, "appends")
        items.append(1)
        return len(items)

    with pytest.raises(RunFailed, match="changed its input 'items'"):
        Pipeline([appends]).run(params={"items": [], "folder": str(tmp_path)})
    assert count(tmp_path, "appends") == 1
    assert fallbacks == []


def test_an_async_step_is_checked_too():
    @step
    async def appends(items: list[int]) -> int:
        await asyncio.sleep(0)
        items.append(1)
        return len(items)

    with pytest.raises(RunFailed) as caught:
        Pipeline([appends]).run(params={"items": []})
    assert isinstance(caught.value.__cause__, MutatedInputError)


# -- receiving steps and map elements ----------------------------------------------------


@step
def source() -> np.ndarray:
    return np.arange(3.0)


def test_a_receiving_step_gets_its_ok_value_read_only(executor):
    @step(on_upstream="receive")
    def receives(source: Ok | Err) -> float:
        assert isinstance(source, Ok)
        value = source.value
        value += 1  # in place
        return float(value.sum())

    result = Pipeline([source, receives]).run(executor=executor, on_error="continue")
    record = result.steps["receives"]
    assert record.status == "failed"
    assert record.error.type == "MutatedInputError"
    assert result["source"].tolist() == [0.0, 1.0, 2.0]


def test_a_receiving_step_that_appends_to_its_ok_list_is_caught(executor):
    @step
    def numbers() -> list[int]:
        return [1]

    @step(on_upstream="receive")
    def receives(numbers: Ok | Err) -> int:
        numbers.value.append(2)
        return 0

    result = Pipeline([numbers, receives]).run(executor=executor, on_error="continue")
    assert result.steps["receives"].error.type == "MutatedInputError"


def test_map_elements_are_inputs_too(executor):
    @step(map="rows")
    def tagged(rows: list[str]) -> int:
        rows.append("seen")
        return len(rows)

    with pytest.raises(RunFailed) as caught:
        Pipeline([tagged]).run(params={"rows": [["a"], ["b"]]}, executor=executor)
    assert "changed its input 'rows'" in str(caught.value)
    assert "tagged[" in str(caught.value)


def test_map_elements_that_are_arrays_are_read_only(executor):
    @step(map="arrays")
    def zeroed(arrays: np.ndarray) -> float:
        arrays[:] = 0
        return 0.0

    with pytest.raises(RunFailed, match="tried to change its input array 'arrays'"):
        Pipeline([zeroed]).run(params={"arrays": [np.ones(2), np.ones(3)]}, executor=executor)
