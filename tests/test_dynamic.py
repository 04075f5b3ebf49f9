"""Dynamic steps: ``dynamic=True`` returns a Pipeline that runs inside the same run.

Calls are counted in files (the dynamic step and its inner steps may run in worker
processes); the folder arrives as the ``folder`` param.
"""

from __future__ import annotations

import pytest

import executor_cases
from executor_cases import bump, count, lines, max_overlap, ran_on, where
from plait import Pipeline, Step, step
from plait.errors import RunFailed

executor = executor_cases.executor
process_pool = executor_cases.process_pool
parallel_executor = executor_cases.parallel_executor


@step
def width():
    return 3


def fan(count_of: int):
    """A dynamic step that builds ``count_of`` inner steps ``add<i>`` -> ``out<i>``."""

    @step(dynamic=True, name="fan")
    def fan(width, base, folder):
        bump(folder, "fan")
        steps = []
        for i in range(count_of):

            def add(base, width, folder, i=i):
                bump(folder, f"inner-{i}")
                return base + width + i

            steps.append(Step(add, name=f"add{i}", outputs=f"out{i}"))
        return Pipeline(steps)

    return fan


@step
def after(fan):
    return sorted(fan.items())


def test_a_dynamic_pipeline_runs_once(executor, tmp_path):
    result = Pipeline([width, fan(3), after]).run(
        params={"base": 100, "folder": str(tmp_path)}, executor=executor
    )
    assert result.ok
    assert count(tmp_path, "fan") == 1
    assert [count(tmp_path, f"inner-{i}") for i in range(3)] == [1, 1, 1]


def test_inner_steps_and_values_are_namespaced_by_the_dynamic_step(executor, tmp_path):
    result = Pipeline([width, fan(2)]).run(
        params={"base": 100, "folder": str(tmp_path)}, executor=executor
    )
    assert {"fan.add0", "fan.add1"} <= set(result.steps)
    assert result.steps["fan.add0"].status == "ok"
    assert result.steps["fan.add1"].status == "ok"
    assert result["fan.out0"] == 103
    assert result["fan.out1"] == 104


def test_the_dynamic_value_is_a_dict_of_the_inner_sink_outputs(executor, tmp_path):
    result = Pipeline([width, fan(3), after]).run(
        params={"base": 100, "folder": str(tmp_path)}, executor=executor
    )
    assert result["fan"] == {"out0": 103, "out1": 104, "out2": 105}
    assert result.steps["fan"].status == "ok"
    assert result["after"] == [("out0", 103), ("out1", 104), ("out2", 105)]


def test_only_sinks_of_the_inner_pipeline_make_the_value(executor):
    @step
    def first(seed):
        return seed + 1

    @step
    def second(first):
        return first * 2

    @step(dynamic=True)
    def chain(seed):
        return Pipeline([first, second])

    result = Pipeline([chain]).run(params={"seed": 1}, executor=executor)
    assert result["chain"] == {"second": 4}
    assert result["chain.first"] == 2
    assert result["chain.second"] == 4


def test_inner_steps_run_on_the_same_executor(executor):
    @step
    def inner_place():
        return where()

    @step(dynamic=True)
    def placed():
        # two inner steps ready together: a lone ready step may run on the scheduler's
        # thread on threads (nothing could run beside it)
        return Pipeline([inner_place, inner_place.with_options(name="twin")])

    result = Pipeline([placed]).run(executor=executor)
    for name in ("placed.inner_place", "placed.twin"):
        assert ran_on(executor, result[name]), result[name]


def test_an_empty_dynamic_pipeline_gives_an_empty_dict(executor):
    @step(dynamic=True)
    def nothing():
        return Pipeline([])

    @step
    def downstream(nothing):
        return nothing

    result = Pipeline([nothing, downstream]).run(executor=executor)
    assert result["nothing"] == {}
    assert result["downstream"] == {}


def test_a_failing_inner_step_fails_the_dynamic_step(executor):
    @step
    def broken(seed):
        raise ValueError("inner broke")

    @step(dynamic=True)
    def holder(seed):
        return Pipeline([broken])

    @step
    def downstream(holder):
        return holder

    result = Pipeline([holder, downstream]).run(
        params={"seed": 1}, executor=executor, on_error="continue"
    )
    assert result.steps["holder.broken"].status == "failed"
    assert result.steps["holder.broken"].error.type == "ValueError"
    assert result.steps["holder"].status == "failed"
    assert result.steps["downstream"].status == "skipped"
    with pytest.raises(RunFailed) as caught:
        Pipeline([holder, downstream]).run(params={"seed": 1}, executor=executor)
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_dynamic_step_must_return_a_pipeline(executor):
    @step(dynamic=True)
    def not_a_pipeline():
        return [1, 2, 3]

    result = Pipeline([not_a_pipeline]).run(executor=executor, on_error="continue")
    record = result.steps["not_a_pipeline"]
    assert record.status == "failed"
    assert record.error.type == "TypeError"
    assert "Pipeline" in record.error.message


def test_an_invalid_inner_pipeline_fails_the_dynamic_step(executor):
    @step
    def needs_missing(nowhere):
        return nowhere

    @step(dynamic=True)
    def bad_inner():
        return Pipeline([needs_missing])

    result = Pipeline([bad_inner]).run(executor=executor, on_error="continue")
    record = result.steps["bad_inner"]
    assert record.status == "failed"
    assert "nowhere" in record.error.message


def test_inner_steps_keep_their_options(executor, tmp_path):
    @step(map="items", retries=1, backoff=0.01)
    def flaky_square(items, folder):
        from plait import current

        bump(folder, f"element-{items}")
        if items == 2 and current().attempt == 1:
            raise ConnectionError("once")
        return items * items

    @step(dynamic=True)
    def mapper(items, folder):
        return Pipeline([flaky_square])

    result = Pipeline([mapper]).run(
        params={"items": [1, 2, 3], "folder": str(tmp_path)}, executor=executor
    )
    assert result["mapper"] == {"flaky_square": [1, 4, 9]}
    assert count(tmp_path, "element-2") == 2


def test_inner_pipeline_constants_are_used(executor):
    @step
    def times(seed, factor):
        return seed * factor

    @step(dynamic=True)
    def with_constants(seed):
        return Pipeline([times], params={"factor": 7})

    result = Pipeline([with_constants]).run(params={"seed": 6}, executor=executor)
    assert result["with_constants"] == {"times": 42}


def test_inner_steps_of_a_dynamic_pipeline_run_side_by_side(parallel_executor, tmp_path):
    def make(i):
        def timed(folder):
            import time

            start = time.time()
            time.sleep(0.2)
            bump(folder, "intervals", f"{start!r} {time.time()!r}")
            return i

        return Step(timed, name=f"timed{i}", outputs=f"t{i}")

    @step(dynamic=True)
    def parallel(folder):
        return Pipeline([make(0), make(1)])

    result = Pipeline([parallel]).run(params={"folder": str(tmp_path)}, executor=parallel_executor)
    assert result["parallel"] == {"t0": 0, "t1": 1}
    intervals = [tuple(map(float, line.split())) for line in lines(tmp_path, "intervals")]
    assert max_overlap(intervals) == 2


def test_a_dynamic_pipeline_may_hold_async_steps(executor):
    @step
    async def inner_async(seed):
        return seed + 1

    @step(dynamic=True)
    def with_async(seed):
        return Pipeline([inner_async])

    result = Pipeline([with_async]).run(params={"seed": 1}, executor=executor)
    assert result["with_async"] == {"inner_async": 2}
