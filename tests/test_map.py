"""Map steps: ``map="items"`` runs a step once per element, on every executor.

Calls and in-flight intervals are recorded in files because elements may run in other
processes; the folder arrives as the ``folder`` param.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import executor_cases
from executor_cases import bump, count, kind_of, lines, max_overlap
from plait import Pipeline, current, step
from plait.errors import MapFailed, RunFailed

executor = executor_cases.executor
process_pool = executor_cases.process_pool


@step(map="items")
def square(items):
    return items * items


def test_map_over_a_list_keeps_the_input_order(executor):
    @step(map="items")
    def slow_first(items):
        time.sleep(0.02 * (4 - items))  # the first elements finish last
        return items * 10

    result = Pipeline([slow_first]).run(params={"items": [0, 1, 2, 3]}, executor=executor)
    assert result["slow_first"] == [0, 10, 20, 30]
    assert result.steps["slow_first"].status == "ok"
    assert result.steps["slow_first"].failed_elements == {}


def test_map_over_a_tuple_gives_a_list(executor):
    result = Pipeline([square]).run(params={"items": (1, 2, 3)}, executor=executor)
    assert result["square"] == [1, 4, 9]


def test_map_over_a_dict_keeps_keys_and_their_order(executor):
    result = Pipeline([square]).run(params={"items": {"b": 2, "a": 3, "c": 4}}, executor=executor)
    assert result["square"] == {"b": 4, "a": 9, "c": 16}
    assert list(result["square"]) == ["b", "a", "c"]


def test_map_over_an_empty_list_gives_an_empty_list(executor, tmp_path):
    @step(map="items")
    def never(items, folder):
        bump(folder, "calls")
        return items

    @step
    def after(never):
        return len(never)

    result = Pipeline([never, after]).run(
        params={"items": [], "folder": str(tmp_path)}, executor=executor
    )
    assert result["never"] == []
    assert result.steps["never"].status == "ok"
    assert result["after"] == 0
    assert count(tmp_path, "calls") == 0


def test_map_over_an_empty_dict_gives_an_empty_dict(executor):
    result = Pipeline([square]).run(params={"items": {}}, executor=executor)
    assert result["square"] == {}


def test_a_map_step_never_receives_the_whole_list(executor, tmp_path):
    @step
    def numbers():
        return [1, 2, 3, 4, 5]

    @step(map="numbers")
    def inspect_element(numbers, folder):
        bump(folder, "received", type(numbers).__name__)
        return numbers + 1

    result = Pipeline([numbers, inspect_element]).run(
        params={"folder": str(tmp_path)}, executor=executor
    )
    assert result["inspect_element"] == [2, 3, 4, 5, 6]
    assert lines(tmp_path, "received") == ["int"] * 5


def test_other_inputs_are_shared_by_every_element(executor):
    @step(map="items")
    def scaled(items, factor, offset):
        return items * factor + offset

    @step
    def offset():
        return 1

    result = Pipeline([scaled, offset]).run(
        params={"items": [1, 2, 3], "factor": 10}, executor=executor
    )
    assert result["scaled"] == [11, 21, 31]


def test_a_map_over_the_output_of_a_map(executor):
    @step(map="square")
    def plus_one(square):
        return square + 1

    @step
    def total(plus_one):
        return sum(plus_one)

    result = Pipeline([square, plus_one, total]).run(params={"items": [1, 2, 3]}, executor=executor)
    assert result["square"] == [1, 4, 9]
    assert result["plus_one"] == [2, 5, 10]
    assert result["total"] == 17


def test_a_map_over_a_dict_output_of_a_map(executor):
    @step(map="square")
    def halved(square):
        return square / 2

    result = Pipeline([square, halved]).run(params={"items": {"x": 2, "y": 4}}, executor=executor)
    assert result["halved"] == {"x": 2.0, "y": 8.0}


def test_current_inside_an_element_names_the_step(executor):
    @step(map="items")
    def who(items):
        return current().step

    result = Pipeline([who]).run(params={"items": [1, 2]}, executor=executor)
    assert result["who"] == ["who", "who"]


# -- failed elements ------------------------------------------------------------------


@step(map="items", min_success_ratio=0.5)
def picky(items):
    if items < 0:
        raise ValueError(f"negative: {items}")
    return items * 2


def test_a_failed_element_leaves_none_in_its_slot(executor):
    result = Pipeline([picky]).run(params={"items": [1, -2, 3, -4]}, executor=executor)
    record = result.steps["picky"]
    assert record.status == "ok"
    assert result["picky"] == [2, None, 6, None]
    assert set(record.failed_elements) == {1, 3}
    assert record.failed_elements[1].type == "ValueError"
    assert record.failed_elements[1].message == "negative: -2"
    assert record.failed_elements[3].message == "negative: -4"


def test_failed_elements_of_a_dict_map_are_keyed_by_key(executor):
    result = Pipeline([picky]).run(params={"items": {"a": 1, "b": -1}}, executor=executor)
    assert result["picky"] == {"a": 2, "b": None}
    assert set(result.steps["picky"].failed_elements) == {"b"}
    assert result.steps["picky"].failed_elements["b"].type == "ValueError"


def test_a_map_fails_below_min_success_ratio(executor):
    result = Pipeline([picky]).run(
        params={"items": [1, -2, -3, -4]}, executor=executor, on_error="continue"
    )
    record = result.steps["picky"]
    assert record.status == "failed"
    assert record.error.type == "MapFailed"
    assert "picky" in record.error.message
    assert set(record.failed_elements) == {1, 2, 3}
    with pytest.raises(KeyError):
        result["picky"]


def test_by_default_one_failed_element_fails_the_map(executor):
    @step(map="items")
    def strict(items):
        if items == 2:
            raise ValueError("two")
        return items

    @step
    def downstream(strict):
        return strict

    with pytest.raises(RunFailed) as caught:
        Pipeline([strict, downstream]).run(params={"items": [1, 2, 3]}, executor=executor)
    assert caught.value.step == "strict"
    assert isinstance(caught.value.__cause__, MapFailed)
    assert caught.value.__cause__.step == "strict"
    result = caught.value.result
    assert result.steps["strict"].status == "failed"
    assert set(result.steps["strict"].failed_elements) == {1}
    assert result.steps["downstream"].status in ("skipped", "not_run")


def test_min_success_ratio_at_the_boundary_succeeds(executor):
    @step(map="items", min_success_ratio=0.75)
    def three_of_four(items):
        if items == 0:
            raise ValueError("zero")
        return items

    result = Pipeline([three_of_four]).run(params={"items": [0, 1, 2, 3]}, executor=executor)
    assert result["three_of_four"] == [None, 1, 2, 3]
    assert result.steps["three_of_four"].status == "ok"


def test_retries_apply_per_element(executor, tmp_path):
    @step(map="items", retries=1, backoff=0.01)
    def flaky_element(items, folder):
        bump(folder, f"element-{items}")
        if items == 2 and current().attempt == 1:
            raise ConnectionError("element 2 fails once")
        return items * 100

    result = Pipeline([flaky_element]).run(
        params={"items": [1, 2, 3], "folder": str(tmp_path)}, executor=executor
    )
    assert result["flaky_element"] == [100, 200, 300]
    assert result.steps["flaky_element"].failed_elements == {}
    # Only the failing element is called again, not the whole list.
    assert [count(tmp_path, f"element-{i}") for i in (1, 2, 3)] == [1, 2, 1]
    assert result.steps["flaky_element"].attempts == 1  # the step; its elements apart:
    assert result.steps["flaky_element"].element_attempts == {0: 1, 1: 2, 2: 1}


def test_an_element_that_keeps_failing_exhausts_its_own_retries(executor, tmp_path):
    @step(map="items", retries=2, backoff=0.01, min_success_ratio=0.5)
    def hopeless(items, folder):
        bump(folder, f"element-{items}")
        if items == "bad":
            raise ValueError("always")
        return items

    result = Pipeline([hopeless]).run(
        params={"items": ["good", "bad"], "folder": str(tmp_path)}, executor=executor
    )
    assert result["hopeless"] == ["good", None]
    assert count(tmp_path, "element-good") == 1
    assert count(tmp_path, "element-bad") == 3


def test_on_failure_applies_per_element(executor):
    @step(map="items", on_failure=lambda exc, **inputs: -inputs["items"])
    def rescue(items):
        if items % 2:
            raise ValueError("odd")
        return items

    result = Pipeline([rescue]).run(params={"items": [1, 2, 3]}, executor=executor)
    assert result["rescue"] == [-1, 2, -3]
    assert result.steps["rescue"].failed_elements == {}


def test_mapping_over_a_non_collection_fails_the_step(executor):
    result = Pipeline([square]).run(params={"items": 5}, executor=executor, on_error="continue")
    record = result.steps["square"]
    assert record.status == "failed"
    assert "items" in record.error.message


# -- element concurrency --------------------------------------------------------------


@pytest.mark.parametrize("cap", [1, 2])
def test_concurrency_caps_elements_in_flight(executor, cap, tmp_path):
    @step(map="items", concurrency=cap)
    def tracked(items, folder):
        start = time.time()
        time.sleep(0.1)
        bump(folder, "intervals", f"{start!r} {time.time()!r}")
        return items

    result = Pipeline([tracked]).run(
        params={"items": list(range(4)), "folder": str(tmp_path)}, executor=executor
    )
    assert result["tracked"] == [0, 1, 2, 3]
    intervals = [tuple(map(float, line.split())) for line in lines(tmp_path, "intervals")]
    assert len(intervals) == 4
    assert max_overlap(intervals) <= cap
    if kind_of(executor) != "sequential":
        assert max_overlap(intervals) == cap  # the cap is reached, not only respected


def test_without_a_cap_elements_run_side_by_side(tmp_path):
    @step(map="items")
    def tracked(items, folder):
        start = time.time()
        time.sleep(0.15)
        bump(folder, "intervals", f"{start!r} {time.time()!r}")
        return items

    Pipeline([tracked]).run(
        params={"items": list(range(4)), "folder": str(tmp_path)}, executor="threads:4"
    )
    intervals = [tuple(map(float, line.split())) for line in lines(tmp_path, "intervals")]
    assert max_overlap(intervals) >= 3


# -- elements with async steps, timeouts and values that cannot travel -----------------


def test_an_async_step_maps_with_its_elements_side_by_side(executor):
    intervals = []  # async steps run on the caller's event loop, whatever the executor

    @step(map="items")
    async def fetch(items):
        start = time.time()
        await asyncio.sleep(0.1)
        intervals.append((start, time.time()))
        return (items, current().step)

    result = Pipeline([fetch]).run(params={"items": ["a", "b", "c"]}, executor=executor)
    assert result["fetch"] == [("a", "fetch"), ("b", "fetch"), ("c", "fetch")]
    assert max_overlap(intervals) == 3


def test_a_timeout_applies_per_element(executor):
    @step(map="items", timeout=0.2, min_success_ratio=0.5)
    def sometimes_stuck(items):
        if items == "stuck":
            time.sleep(5)
        return items.upper()

    result = Pipeline([sometimes_stuck]).run(
        params={"items": ["a", "stuck", "b"]}, executor=executor
    )
    assert result["sometimes_stuck"] == ["A", None, "B"]
    record = result.steps["sometimes_stuck"]
    assert set(record.failed_elements) == {1}
    assert record.failed_elements[1].type == "StepTimeoutError"
    assert result.duration < 3


def test_an_element_whose_value_cannot_come_back_fails_alone(process_pool):
    import threading

    @step(map="items", min_success_ratio=0.5)
    def maybe_lock(items):
        return threading.Lock() if items == "lock" else items

    result = Pipeline([maybe_lock]).run(params={"items": ["a", "lock", "b"]}, executor=process_pool)
    assert result["maybe_lock"] == ["a", None, "b"]
    error = result.steps["maybe_lock"].failed_elements[1]
    assert error.type == "SerializationError"
    assert "maybe_lock" in error.message
    assert "lock" in error.message


def test_concurrency_caps_async_elements_too(executor):
    intervals = []

    @step(map="items", concurrency=2)
    async def capped(items):
        start = time.time()
        await asyncio.sleep(0.1)
        intervals.append((start, time.time()))
        return items

    result = Pipeline([capped]).run(params={"items": list(range(5))}, executor=executor)
    assert result["capped"] == [0, 1, 2, 3, 4]
    assert max_overlap(intervals) == 2


def test_map_step_keeps_each_elements_log_lines_prefixed_by_its_index(executor):
    @step(map="items")
    def noisy(items):
        current().logger.info("element %d", items)
        current().logger.debug("debug is not kept")
        return items

    result = Pipeline([noisy]).run(params={"items": [5, 6, 7]}, executor=executor)
    logs = result.steps["noisy"].logs
    assert sorted(logs) == ["[0] INFO element 5", "[1] INFO element 6", "[2] INFO element 7"]


def test_map_step_over_a_dict_prefixes_log_lines_by_key(executor):
    @step(map="items")
    def noisy(items):
        current().logger.warning("got %s", items)
        return items

    result = Pipeline([noisy]).run(params={"items": {"a": 1, "b": 2}}, executor=executor)
    assert sorted(result.steps["noisy"].logs) == ["['a'] WARNING got 1", "['b'] WARNING got 2"]
