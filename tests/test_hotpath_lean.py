"""The inline driver's lean lane (plait.run.inline): the same records, values and
failures as the general path, made later and cheaper.

A run with a hook that listens to step ends takes the general path for every step, so
each case runs twice, with and without such a hook, and the records must agree.
"""

from __future__ import annotations

import logging

import pytest

from plait import Pipeline, Step, current
from plait.assets import Metrics as MetricsAsset
from plait.assets._metrics import assets_of
from plait.errors import MutatedInputError, RunFailed
from plait.results import RELEASED, Err, Ok, Skipped


class Listener:
    """Any ``on_step_end`` hook: every record is made as the step ends (general path)."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    def on_step_end(self, step_result, run):
        self.ended.append(step_result.name)


def both(pipeline: Pipeline, **options):
    """(lean run, general run) of the same pipeline."""
    return pipeline.run(**options), pipeline.run(hooks=[Listener()], **options)


def comparable(record):
    """A record's fields that do not depend on the clock."""
    outcome = record.outcome
    if isinstance(outcome, Err):
        outcome = ("err", type(outcome.error).__name__, str(outcome.error))
    return (
        record.name,
        record.status,
        outcome,
        record.cached,
        record.reason,
        record.fallback,
        record.attempts,
        None if record.error is None else (record.error.type, record.error.message),
        dict(record.metrics),
        record.logs,
        record.failed_elements,
        record.element_attempts,
    )


def mixed() -> Pipeline:
    def src(x):
        return x + 1

    def kept(src):
        return src * 2

    def listed(src):
        return [src, src]  # a list: its consumer's input is guarded (general path)

    def total(listed, kept):
        return sum(listed) + kept

    def boom(kept):
        raise ValueError(f"bad {kept}")

    def after_boom(boom):
        return boom

    def maybe(kept):
        raise RuntimeError("optional")

    def after_maybe(maybe):
        return maybe

    def logs(kept):
        ctx = current()
        ctx.log_metric("k", kept)
        ctx.logger.info("kept is %s", kept)
        return kept

    return Pipeline(
        [
            Step(src),
            Step(kept),
            Step(listed),
            Step(total),
            Step(boom),
            Step(after_boom),
            Step(maybe, optional=True),
            Step(after_maybe),
            Step(logs),
        ],
        params={"x": 1},
    )


@pytest.mark.parametrize("executor", ["sequential", "threads:2"])
@pytest.mark.parametrize("outputs", [None, ["total", "logs"]])
def test_records_and_values_match_the_general_path(outputs, executor):
    """Sequential: the lean lane; threads: records deferred (RunState._defer)."""
    lean, general = both(mixed(), outputs=outputs, on_error="continue", executor=executor)
    assert lean.status == general.status == ("failed" if outputs is None else "succeeded")
    assert dict(lean) == dict(general)
    assert list(lean.steps) == list(general.steps)
    for name in lean.steps:
        assert comparable(lean.steps[name]) == comparable(general.steps[name]), name


def test_a_lean_record_has_its_timing_and_attempt():
    result = mixed().run(outputs=["total"], on_error="continue")
    record = result.steps["kept"]
    assert record.status == "ok"
    assert record.reason == "executed"
    assert record.attempts == 1
    assert record.duration >= 0
    assert record.start_time is not None
    assert record.end_time is not None
    assert record.start_time <= record.end_time
    assert record.end_time - record.start_time == pytest.approx(record.duration, abs=1e-6)
    assert record.started_at is not None
    assert record.outcome == Ok(RELEASED)  # not requested, released
    assert result.steps["total"].outcome == Ok(8)


def test_a_failure_in_the_lean_lane_is_recorded_with_its_traceback():
    result = mixed().run(on_error="continue")
    record = result.steps["boom"]
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.message == "bad 4"
    assert "in boom" in record.error.traceback
    assert isinstance(result.steps["after_boom"].outcome, Skipped)
    assert result.steps["after_maybe"].status == "skipped"
    with pytest.raises(RunFailed) as caught:
        mixed().run()
    assert caught.value.step == "boom"


def test_current_gives_each_lean_step_its_own_context():
    seen = []

    def a(x):
        ctx = current()
        seen.append((ctx.step, ctx.attempt, ctx.element, ctx.run_id))
        ctx.log_metric("who", "a")
        return x

    def b(a):
        ctx = current()
        seen.append((ctx.step, ctx.attempt, ctx.element, ctx.run_id))
        return a

    def c(b):
        return b

    result = Pipeline([Step(a), Step(b), Step(c)], params={"x": 1}).run()
    assert seen == [("a", 1, None, result.run_id), ("b", 1, None, result.run_id)]
    assert result.steps["a"].metrics == {"who": "a"}
    assert result.steps["b"].metrics == {}  # a context, nothing logged
    assert result.steps["c"].metrics == {}


def test_logs_and_captured_output_of_a_lean_step(capsys):
    def talk(x):
        logging.getLogger("elsewhere").info("not kept")
        current().logger.warning("careful")
        with current().capture_output():
            print("hello")
        print("passes through")
        return x

    def quiet(talk):
        current().log_metric("m", 1)
        return talk

    result = Pipeline([Step(talk), Step(quiet)], params={"x": 1}).run()
    assert result.steps["talk"].logs == ["WARNING careful", "[stdout] hello"]
    assert "passes through" in capsys.readouterr().out
    metrics = result.steps["quiet"].metrics
    assert metrics == {"m": 1}
    assert metrics._logs is None  # a metric alone makes no log buffer


def test_current_outside_a_step_still_fails():
    from plait.errors import PlaitError

    with pytest.raises(PlaitError, match="inside a running step"):
        current()


def test_an_asset_returned_by_a_lean_step_is_recorded_as_one():
    def score(x):
        return MetricsAsset({"r2": 0.5})

    def use(score):
        return score["r2"]

    lean, general = both(Pipeline([Step(score), Step(use)], params={"x": 1}))
    for result in (lean, general):
        assert result["use"] == 0.5
        assert result.steps["score"].metrics["r2"] == 0.5
        assert [info.kind for info in assets_of(result.steps["score"].metrics)] == ["metrics"]


def test_a_guarded_input_after_lean_steps_is_still_protected():
    def make(x):
        return [x]

    def change(make):
        make.append(2)
        return make

    with pytest.raises(RunFailed) as caught:
        Pipeline([Step(make), Step(change)], params={"x": 1}).run()
    assert isinstance(caught.value.__cause__, MutatedInputError)


def test_records_are_made_once_when_first_read():
    result = mixed().run(on_error="continue")
    first = result.steps
    assert result.steps is first
    assert result.steps["src"] is first["src"]
    assert "src" in repr(result.summary())


def test_an_async_run_defers_its_records_and_they_match():
    import asyncio

    async def twice(x):
        await asyncio.sleep(0)
        current().log_metric("seen", x)
        return 2 * x

    def plus(twice):
        return twice + 1

    pipeline = Pipeline([Step(twice), Step(plus)], params={"x": 3})
    lean = asyncio.run(pipeline.run_async(outputs=["plus"]))
    general = asyncio.run(pipeline.run_async(outputs=["plus"], hooks=[Listener()]))
    assert lean["plus"] == general["plus"] == 7
    for name in ("twice", "plus"):
        assert comparable(lean.steps[name]) == comparable(general.steps[name])
    assert lean.steps["twice"].outcome == Ok(RELEASED)
    assert lean.steps["twice"].metrics == {"seen": 3}
