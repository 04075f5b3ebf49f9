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


# -- map= with dynamic=True: one pipeline per element -------------------------------------------
def _per_item(**options):
    """A dynamic map step: per element, ``doubled`` -> ``labelled`` (the sink)."""

    @step(map="items", dynamic=True, **options)
    def per_item(items, folder):
        bump(folder, "builder")

        @step
        def doubled(items, folder):
            bump(folder, f"doubled-{items}")
            if items < 0:
                raise ValueError(f"negative: {items}")
            return items * 2

        @step
        def labelled(doubled, folder):
            bump(folder, f"labelled-{doubled}")
            return f"#{doubled}"

        return Pipeline([doubled, labelled])

    return per_item


@step
def summary(per_item):
    return per_item


def test_a_dynamic_map_runs_one_pipeline_per_element(executor, tmp_path):
    result = Pipeline([_per_item(), summary]).run(
        params={"items": [3, 1, 2], "folder": str(tmp_path)}, executor=executor
    )
    assert result["per_item"] == [{"labelled": "#6"}, {"labelled": "#2"}, {"labelled": "#4"}]
    assert result["summary"] == result["per_item"]
    assert result["per_item[0].doubled"] == 6
    for index in range(3):
        for inner in ("doubled", "labelled"):
            assert result.steps[f"per_item[{index}].{inner}"].status == "ok"
    assert count(tmp_path, "builder") == 3
    assert [count(tmp_path, f"doubled-{i}") for i in (3, 1, 2)] == [1, 1, 1]
    record = result.steps["per_item"]
    assert record.status == "ok"
    assert record.element_attempts == {0: 1, 1: 1, 2: 1}


def test_a_dynamic_map_over_a_dict_keeps_its_keys(executor, tmp_path):
    result = Pipeline([_per_item()]).run(
        params={"items": {"b": 2, "a": 1}, "folder": str(tmp_path)}, executor=executor
    )
    assert result["per_item"] == {"b": {"labelled": "#4"}, "a": {"labelled": "#2"}}
    assert list(result["per_item"]) == ["b", "a"]
    assert result.steps["per_item['a'].labelled"].status == "ok"


def test_a_warm_dynamic_map_recomputes_nothing(executor, tmp_path):
    store, folder = tmp_path / "store", tmp_path / "calls"
    folder.mkdir()
    params = {"items": [1, 2, 3], "folder": str(folder)}
    pipeline = Pipeline([_per_item(), summary])
    first = pipeline.run(params=params, store=store, executor=executor)
    warm = pipeline.run(params=params, store=store, executor=executor)
    assert warm["per_item"] == first["per_item"]
    assert [count(folder, f"doubled-{i}") for i in (1, 2, 3)] == [1, 1, 1]
    assert [count(folder, f"labelled-{2 * i}") for i in (1, 2, 3)] == [1, 1, 1]
    inner = [n for n in warm.steps if n.startswith("per_item[")]
    assert len(inner) == 6
    assert all(warm.steps[n].cached for n in inner)
    assert all(warm.steps[n].reason == "cache hit" for n in inner)
    assert warm.steps["summary"].cached  # same value, so its key is unchanged
    grown = pipeline.run(params={**params, "items": [1, 2, 3, 4]}, store=store, executor=executor)
    assert grown["per_item"][3] == {"labelled": "#8"}
    assert [count(folder, f"doubled-{i}") for i in (1, 2, 3, 4)] == [1, 1, 1, 1]
    assert not grown.steps["per_item[3].doubled"].cached
    assert grown.steps["per_item[2].doubled"].cached


def test_a_failed_element_pipeline_leaves_none_and_is_a_failed_element(executor, tmp_path):
    result = Pipeline([_per_item(min_success_ratio=0.5)]).run(
        params={"items": [1, -1, 2], "folder": str(tmp_path)}, executor=executor
    )  # on_error="raise": a tolerated element does not stop the run
    assert result.ok
    assert result["per_item"] == [{"labelled": "#2"}, None, {"labelled": "#4"}]
    record = result.steps["per_item"]
    assert list(record.failed_elements) == [1]
    assert record.failed_elements[1].type == "ValueError"
    assert result.steps["per_item[1].doubled"].status == "failed"
    assert result.steps["per_item[1].labelled"].status == "skipped"


def test_a_failed_element_pipeline_fails_the_map_by_default(executor, tmp_path):
    with pytest.raises(RunFailed) as caught:
        Pipeline([_per_item(), summary]).run(
            params={"items": [1, -1], "folder": str(tmp_path)}, executor=executor
        )
    result = caught.value.result
    assert caught.value.step == "per_item"
    assert result.steps["per_item"].error.type == "MapFailed"
    assert result.steps["summary"].status == "not_run"  # the failed map stopped the run


def test_an_element_builder_must_return_a_pipeline(executor):
    @step(map="items", dynamic=True, min_success_ratio=0.5)
    def builds(items):
        return Pipeline([]) if items else "not a pipeline"

    result = Pipeline([builds]).run(params={"items": [1, 0]}, executor=executor)
    assert result["builds"] == [{}, None]
    assert result.steps["builds"].failed_elements[1].type == "TypeError"


def test_concurrency_counts_an_element_until_its_pipeline_ends(recorder):
    @step(map="items", dynamic=True, concurrency=1)
    def one_at_a_time(items):
        recorder.hit(f"build-{items}")

        @step
        def work(items):
            recorder.hit(f"work-{items}")
            return items

        return Pipeline([work])

    result = Pipeline([one_at_a_time]).run(params={"items": [1, 2]}, executor="threads:4")
    assert result["one_at_a_time"] == [{"work": 1}, {"work": 2}]
    assert recorder.events == ["build-1", "work-1", "build-2", "work-2"]
