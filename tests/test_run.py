"""Running: entry points, concurrency, pruning, memory, failure policies, context."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest

from plait import Err, Ok, Pipeline, RunResult, Skipped, current, step
from plait.errors import PlaitError, RunFailed

LOCAL_EXECUTORS = ["sequential", "threads", "threads:2"]


@step
def base(x):
    return x + 1


@step
def left(base):
    return base * 2


@step
def right(base):
    return base * 3


@step
def joined(left, right):
    return left + right


DIAMOND = [base, left, right, joined]

# -- entry points --------------------------------------------------------------------


def test_run_returns_a_run_result():
    result = Pipeline(DIAMOND).run(params={"x": 1})
    assert isinstance(result, RunResult)
    assert result["joined"] == 10


def test_calling_the_pipeline_is_run_with_params():
    pipeline = Pipeline(DIAMOND)
    assert pipeline(x=5)["joined"] == pipeline.run(params={"x": 5})["joined"] == 30


def test_run_async_inside_a_running_event_loop():
    async def main():
        return await Pipeline(DIAMOND).run_async(params={"x": 2})

    assert asyncio.run(main())["joined"] == 15


@pytest.mark.parametrize("executor", [*LOCAL_EXECUTORS, "processes:2"])
def test_every_local_executor_gives_the_same_values(executor):
    result = Pipeline(DIAMOND).run(params={"x": 3}, executor=executor)
    assert result.ok
    assert dict(result.outputs) == {"base": 4, "left": 8, "right": 12, "joined": 20}


def test_none_is_an_ordinary_value(recorder):
    @step
    def nothing():
        return None

    @step
    def consume(nothing, maybe):
        recorder.hit("consume")
        return (nothing, maybe)

    result = Pipeline([nothing, consume]).run(params={"maybe": None})
    assert recorder.calls["consume"] == 1
    assert result["nothing"] is None
    assert result["consume"] == (None, None)
    assert result.steps["nothing"].status == "ok"
    assert result.steps["nothing"].outcome == Ok(None)


# -- concurrency ---------------------------------------------------------------------


def _sleepers(recorder):
    @step
    async def slow_a():
        recorder.mark("a start")
        await asyncio.sleep(0.2)
        recorder.mark("a end")
        return "a"

    @step
    async def slow_b():
        recorder.mark("b start")
        await asyncio.sleep(0.2)
        recorder.mark("b end")
        return "b"

    return Pipeline([slow_a, slow_b])


@pytest.mark.parametrize("entry", ["run", "run_async"])
def test_independent_async_steps_run_concurrently(entry, recorder):
    pipeline = _sleepers(recorder)
    result = pipeline.run() if entry == "run" else asyncio.run(pipeline.run_async())
    assert (result["slow_a"], result["slow_b"]) == ("a", "b")
    times = recorder.times
    # Both started before either finished: the two sleeps overlapped.
    assert max(times["a start"], times["b start"]) < min(times["a end"], times["b end"])


def test_a_fast_chain_does_not_wait_for_a_slow_sibling(recorder):
    @step
    async def slow():
        await asyncio.sleep(0.5)
        recorder.mark("slow end")

    @step
    async def one():
        await asyncio.sleep(0.01)
        return 1

    @step
    async def two(one):
        await asyncio.sleep(0.01)
        return one + 1

    @step
    async def three(two):
        await asyncio.sleep(0.01)
        recorder.mark("three end")
        return two + 1

    result = Pipeline([slow, one, two, three]).run()
    assert result["three"] == 3
    assert recorder.times["three end"] < recorder.times["slow end"]


# -- pruning and memory --------------------------------------------------------------


def test_outputs_prunes_steps_that_are_not_needed(recorder):
    @step
    def needed(x):
        recorder.hit("needed")
        return x

    @step
    def wanted(needed):
        recorder.hit("wanted")
        return needed + 1

    @step
    def unrelated(x):
        recorder.hit("unrelated")
        return x

    @step
    def downstream_only(wanted):
        recorder.hit("downstream_only")
        return wanted

    pipeline = Pipeline([needed, wanted, unrelated, downstream_only])
    result = pipeline.run(params={"x": 1}, outputs=["wanted"])
    assert result["wanted"] == 2
    assert recorder.calls == {"needed": 1, "wanted": 1}


def test_outputs_keeps_only_the_requested_values():
    result = Pipeline(DIAMOND).run(params={"x": 1}, outputs=["left", "joined"])
    assert dict(result.outputs) == {"left": 4, "joined": 10}
    with pytest.raises(KeyError, match=r"not requested"):
        result["base"]


def test_outputs_none_keeps_every_value():
    result = Pipeline(DIAMOND).run(params={"x": 1})
    assert {"base": 2, "left": 4, "right": 6, "joined": 10}.items() <= result.outputs.items()


class Blob:
    """A weak-referenceable stand-in for a large intermediate value."""


def _release_probe(seen):
    refs = []

    @step
    def big():
        blob = Blob()
        refs.append(weakref.ref(blob))
        return blob

    @step
    def small(big):
        return 1

    @step
    def last(small):
        gc.collect()
        seen["alive"] = refs[0]() is not None
        return small + 1

    return Pipeline([big, small, last])


@pytest.mark.parametrize("executor", LOCAL_EXECUTORS)
def test_intermediate_is_released_once_no_pending_step_needs_it(executor):
    seen = {}
    result = _release_probe(seen).run(outputs=["last"], executor=executor)
    assert result["last"] == 2
    assert seen == {"alive": False}


def test_requested_intermediate_is_kept():
    seen = {}
    result = _release_probe(seen).run(outputs=["last", "big"])
    assert seen == {"alive": True}
    assert isinstance(result["big"], Blob)


def test_intermediate_is_released_in_run_async():
    seen = {}
    result = asyncio.run(_release_probe(seen).run_async(outputs=["last"]))
    assert result["last"] == 2
    assert seen == {"alive": False}


# -- failures ------------------------------------------------------------------------


def _failing(recorder, raised):
    @step
    def first():
        recorder.hit("first")
        return 1

    @step
    def boom(first):
        recorder.hit("boom")
        error = ValueError("bad input")
        raised.append(error)
        raise error

    @step
    def after_boom(boom):
        recorder.hit("after_boom")
        return boom

    @step
    def independent():
        recorder.hit("independent")
        return "fine"

    return Pipeline([first, boom, after_boom, independent])


@pytest.mark.parametrize("executor", LOCAL_EXECUTORS)
def test_on_error_raise_raises_run_failed_with_result_step_and_cause(executor, recorder):
    raised = []
    with pytest.raises(RunFailed, match=r"'boom'") as info:
        _failing(recorder, raised).run(executor=executor)
    error = info.value
    assert isinstance(error, PlaitError)
    assert isinstance(error, RuntimeError)
    assert error.step == "boom"
    assert error.__cause__ is raised[0]
    assert error.result.status == "failed"
    assert not error.result.ok
    assert error.result["first"] == 1
    assert error.result.steps["boom"].status == "failed"
    assert recorder.calls["after_boom"] == 0


def test_on_error_raise_does_not_start_a_receiving_downstream_step(recorder):
    @step
    def boom():
        raise ValueError("bad")

    @step(on_upstream="receive")
    def handler(boom):
        recorder.hit("handler")
        return boom

    with pytest.raises(RunFailed) as info:
        Pipeline([boom, handler]).run()
    assert recorder.calls["handler"] == 0
    assert info.value.result.steps["handler"].status == "not_run"


@pytest.mark.parametrize("executor", LOCAL_EXECUTORS)
def test_on_error_continue_runs_every_independent_branch(executor, recorder):
    raised = []
    result = _failing(recorder, raised).run(on_error="continue", executor=executor)
    assert result.status == "failed"
    assert not result.ok
    assert result["independent"] == "fine"
    assert result["first"] == 1
    assert recorder.calls["independent"] == 1
    assert recorder.calls["after_boom"] == 0
    assert result.steps["after_boom"].status == "skipped"


def test_outcomes_are_ok_err_and_skipped(recorder):
    raised = []
    result = _failing(recorder, raised).run(on_error="continue")
    assert result.steps["first"].outcome == Ok(1)
    outcome = result.steps["boom"].outcome
    assert isinstance(outcome, Err)
    assert outcome.error is raised[0]
    skipped = result.steps["after_boom"].outcome
    assert isinstance(skipped, Skipped)
    assert "boom" in skipped.reason


# -- upstream policies ---------------------------------------------------------------


@step
def broken():
    raise ValueError("upstream broke")


def test_on_upstream_skip_is_the_default_and_propagates(recorder):
    @step
    def child(broken):
        recorder.hit("child")

    @step
    def grandchild(child):
        recorder.hit("grandchild")

    @step(after=["broken"])
    def ordered_after():
        recorder.hit("ordered_after")

    result = Pipeline([broken, child, grandchild, ordered_after]).run(on_error="continue")
    assert recorder.calls == {}
    for name in ("child", "grandchild", "ordered_after"):
        assert result.steps[name].status == "skipped", name
        assert isinstance(result.steps[name].outcome, Skipped), name


def test_on_upstream_receive_gets_outcome_objects_and_plain_params():
    @step
    def fine():
        return 5

    @step(on_upstream="receive")
    def inspect_inputs(broken, fine, x):
        return (type(broken).__name__, str(broken.error), fine, x)

    result = Pipeline([broken, fine, inspect_inputs]).run(params={"x": 7}, on_error="continue")
    assert result["inspect_inputs"] == ("Err", "upstream broke", Ok(5), 7)
    assert result.steps["inspect_inputs"].status == "ok"


def test_on_upstream_receive_gets_skipped_from_a_skipped_upstream():
    @step
    def child(broken):
        return broken

    @step(on_upstream="receive")
    def handler(child):
        return isinstance(child, Skipped)

    result = Pipeline([broken, child, handler]).run(on_error="continue")
    assert result["handler"] is True


def test_on_upstream_fail_fails_the_step(recorder):
    @step(on_upstream="fail")
    def strict(broken):
        recorder.hit("strict")

    result = Pipeline([broken, strict]).run(on_error="continue")
    assert recorder.calls == {}
    assert result.steps["strict"].status == "failed"
    assert isinstance(result.steps["strict"].outcome, Err)
    assert "broken" in str(result.steps["strict"].outcome.error)


# -- when= branches ------------------------------------------------------------------


def _branches(recorder):
    @step(when=lambda x: x > 0)
    def positive(x):
        recorder.hit("positive")
        return f"{x} is positive"

    @step(when=lambda x: x <= 0)
    def negative(x):
        recorder.hit("negative")
        return f"{x} is not positive"

    @step(on_upstream="receive")
    def verdict(positive, negative):
        chosen = positive if isinstance(positive, Ok) else negative
        return chosen.value

    @step
    def only_if_positive(positive):
        recorder.hit("only_if_positive")
        return positive

    return Pipeline([positive, negative, verdict, only_if_positive])


@pytest.mark.parametrize(
    ("x", "taken", "not_taken", "verdict"),
    [
        (3, "positive", "negative", "3 is positive"),
        (-2, "negative", "positive", "-2 is not positive"),
    ],
)
def test_when_picks_one_of_two_complementary_branches(x, taken, not_taken, verdict, recorder):
    result = _branches(recorder).run(params={"x": x})
    assert result.ok
    assert result["verdict"] == verdict
    assert recorder.calls[taken] == 1
    assert recorder.calls[not_taken] == 0
    assert result.steps[not_taken].status == "skipped"
    assert isinstance(result.steps[not_taken].outcome, Skipped)


def test_a_when_skip_propagates_to_default_downstream(recorder):
    result = _branches(recorder).run(params={"x": -1})
    assert result.ok
    assert result.steps["only_if_positive"].status == "skipped"
    assert recorder.calls["only_if_positive"] == 0


def test_when_predicate_receives_the_step_parameters_after_mapping():
    @step(inputs={"n": "x"}, when=lambda n: n % 2 == 0)
    def even(n):
        return n

    pipeline = Pipeline([even])
    assert pipeline.run(params={"x": 4})["even"] == 4
    assert pipeline.run(params={"x": 3}).steps["even"].status == "skipped"


# -- optional steps ------------------------------------------------------------------


def test_optional_step_failure_neither_fails_the_run_nor_raises(recorder):
    @step(optional=True)
    def enrich(x):
        raise ConnectionError("service down")

    @step(on_upstream="receive")
    def combine(x, enrich):
        return (x, enrich)

    @step
    def needs_enrich(enrich):
        recorder.hit("needs_enrich")

    result = Pipeline([enrich, combine, needs_enrich]).run(params={"x": 1})
    assert result.ok
    assert result.status == "succeeded"
    assert result.steps["enrich"].status == "failed"
    x, seen = result["combine"]
    assert x == 1
    assert isinstance(seen, Skipped)
    assert result.steps["needs_enrich"].status == "skipped"
    assert recorder.calls == {}
    result.raise_for_status()


# -- retries and attempts --------------------------------------------------------------


def test_retries_call_again_and_count_attempts():
    attempts = []

    @step(retries=2, backoff=0)
    def flaky():
        attempts.append(current().attempt)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "done"

    result = Pipeline([flaky]).run()
    assert result["flaky"] == "done"
    assert attempts == [1, 2, 3]
    assert result.steps["flaky"].attempts == 3


# -- the step context ----------------------------------------------------------------


def test_current_gives_the_running_step_context():
    seen = {}

    @step
    def observed():
        context = current()
        seen.update(
            run_id=context.run_id,
            step=context.step,
            attempt=context.attempt,
            logger=context.logger,
        )
        context.log_metric("loss", 0.25)
        context.log_metric("rows", 10)
        return 1

    result = Pipeline([observed.with_options(name="watched")]).run()
    assert seen["run_id"] == result.run_id
    assert seen["step"] == "watched"
    assert seen["attempt"] == 1
    assert isinstance(seen["logger"], logging.Logger)
    assert seen["logger"].name == "plait.step.watched"
    assert result.steps["watched"].metrics == {"loss": 0.25, "rows": 10}


def test_current_in_async_steps_is_per_step():
    seen = {}

    async def record(name):
        await asyncio.sleep(0.01)
        seen[name] = current().step
        await asyncio.sleep(0.01)
        seen[name + " again"] = current().step

    @step
    async def first():
        await record("first")

    @step
    async def second():
        await record("second")

    Pipeline([first, second]).run()
    assert seen == {
        "first": "first",
        "first again": "first",
        "second": "second",
        "second again": "second",
    }


# -- isolation and cancellation ------------------------------------------------------


def test_concurrent_runs_of_one_pipeline_in_threads_stay_isolated():
    seen = []
    lock = threading.Lock()

    @step
    def slow_double(x):
        time.sleep(0.02)
        with lock:
            seen.append((x, current().run_id))
        return 2 * x

    @step
    def plus(slow_double, x):
        time.sleep(0.01)
        return slow_double + x

    pipeline = Pipeline([slow_double, plus])
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda x: pipeline.run(params={"x": x}), range(16)))
    assert [result["plus"] for result in results] == [3 * x for x in range(16)]
    assert len({result.run_id for result in results}) == 16
    run_ids = {x: result.run_id for x, result in zip(range(16), results, strict=True)}
    assert sorted(seen) == sorted(run_ids.items())


def test_wait_for_cancels_run_async_on_time(recorder):
    @step
    async def long():
        recorder.mark("started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            recorder.mark("cancelled")
            raise
        recorder.mark("finished")

    async def main():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(Pipeline([long]).run_async(), 0.2)
        return list(recorder.events)

    assert asyncio.run(main()) == ["started", "cancelled"]
