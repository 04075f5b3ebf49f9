"""Retries, backoff, ``retry_on``, per-attempt timeouts and ``on_failure`` fallbacks.

Each behaviour runs on every executor. Attempts are counted in files (steps may run in
another process); the folder arrives as the ``folder`` param.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools

import pytest

import executor_cases
from executor_cases import bump, count, lines, stamps
from plait import Pipeline, current, step
from plait.errors import RunFailed, StepTimeoutError

executor = executor_cases.executor
process_pool = executor_cases.process_pool

FAST = 0.01  # backoff small enough to keep the suite fast


# -- retries --------------------------------------------------------------------------


def test_retries_make_one_plus_n_attempts_then_fail(executor, tmp_path):
    @step(retries=2, backoff=FAST)
    def always_fails(folder):
        bump(folder, "calls", str(current().attempt))
        raise ValueError("nope")

    result = Pipeline([always_fails]).run(
        params={"folder": str(tmp_path)}, executor=executor, on_error="continue"
    )
    record = result.steps["always_fails"]
    assert record.status == "failed"
    assert record.attempts == 3
    assert record.error.type == "ValueError"
    assert record.error.message == "nope"
    assert lines(tmp_path, "calls") == ["1", "2", "3"]


def test_a_step_that_fails_twice_then_succeeds_is_ok_after_three_attempts(executor, tmp_path):
    @step(retries=2, backoff=FAST)
    def flaky(folder):
        attempt = current().attempt
        bump(folder, "calls", str(attempt))
        if attempt < 3:
            raise ConnectionError(f"attempt {attempt}")
        return f"done on {attempt}"

    @step
    def downstream(flaky):
        return flaky.upper()

    result = Pipeline([flaky, downstream]).run(params={"folder": str(tmp_path)}, executor=executor)
    assert result["flaky"] == "done on 3"
    assert result["downstream"] == "DONE ON 3"
    assert result.steps["flaky"].status == "ok"
    assert result.steps["flaky"].attempts == 3
    assert result.steps["downstream"].attempts == 1
    assert lines(tmp_path, "calls") == ["1", "2", "3"]


def test_retries_stop_at_the_first_success(executor, tmp_path):
    @step(retries=5, backoff=FAST)
    def once_flaky(folder):
        bump(folder, "calls")
        if current().attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    result = Pipeline([once_flaky]).run(params={"folder": str(tmp_path)}, executor=executor)
    assert result.steps["once_flaky"].attempts == 2
    assert count(tmp_path, "calls") == 2


def test_retry_on_does_not_retry_other_exceptions(executor, tmp_path):
    @step(retries=3, backoff=FAST, retry_on=(KeyError,))
    def wrong_kind(folder):
        bump(folder, "calls")
        raise ValueError("not a KeyError")

    result = Pipeline([wrong_kind]).run(
        params={"folder": str(tmp_path)}, executor=executor, on_error="continue"
    )
    assert result.steps["wrong_kind"].status == "failed"
    assert result.steps["wrong_kind"].attempts == 1
    assert result.steps["wrong_kind"].error.type == "ValueError"
    assert count(tmp_path, "calls") == 1


def test_retry_on_retries_the_listed_exceptions_and_their_subclasses(executor, tmp_path):
    @step(retries=3, backoff=FAST, retry_on=(LookupError,))
    def right_kind(folder):
        bump(folder, "calls")
        if current().attempt < 3:
            raise KeyError("missing")  # a LookupError
        return "found"

    result = Pipeline([right_kind]).run(params={"folder": str(tmp_path)}, executor=executor)
    assert result["right_kind"] == "found"
    assert result.steps["right_kind"].attempts == 3
    assert count(tmp_path, "calls") == 3


def test_without_retries_a_step_is_called_once(executor, tmp_path):
    @step
    def fails(folder):
        bump(folder, "calls")
        raise ValueError("once")

    with pytest.raises(RunFailed) as caught:
        Pipeline([fails]).run(params={"folder": str(tmp_path)}, executor=executor)
    assert caught.value.result.steps["fails"].attempts == 1
    assert isinstance(caught.value.__cause__, ValueError)
    assert count(tmp_path, "calls") == 1


def test_backoff_delay_doubles_between_attempts(executor, tmp_path):
    backoff = 0.05

    @step(retries=3, backoff=backoff)
    def timed(folder):
        executor_cases.stamp(folder, "attempts")
        raise ValueError("again")

    result = Pipeline([timed]).run(
        params={"folder": str(tmp_path)}, executor=executor, on_error="continue"
    )
    assert result.steps["timed"].attempts == 4
    times = stamps(tmp_path, "attempts")
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    # The delay before retry k is backoff * 2**(k-1) * a factor in [0.5, 1]: a sleep is
    # never shorter than asked, so each gap is at least the smallest possible delay.
    for k, gap in enumerate(gaps, start=1):
        assert gap >= backoff * 2 ** (k - 1) * 0.5 - 0.005, (k, gaps)
    # The third delay (>= 0.1 s) exceeds the largest possible first delay (0.05 s).
    assert gaps[2] > gaps[0], gaps


def test_current_attempt_counts_from_one(executor, tmp_path):
    @step(retries=1, backoff=FAST)
    def reports(folder):
        ctx = current()
        bump(folder, "seen", f"{ctx.step}:{ctx.attempt}")
        if ctx.attempt == 1:
            raise ValueError("retry me")
        return ctx.attempt

    result = Pipeline([reports]).run(params={"folder": str(tmp_path)}, executor=executor)
    assert result["reports"] == 2
    assert lines(tmp_path, "seen") == ["reports:1", "reports:2"]


def test_async_steps_retry(executor):
    attempts = []

    @step(retries=2, backoff=FAST)
    async def async_flaky():
        await asyncio.sleep(0)
        attempts.append(current().attempt)
        if current().attempt < 3:
            raise OSError("flaky")
        return "ok"

    result = Pipeline([async_flaky]).run(executor=executor)
    assert result["async_flaky"] == "ok"
    assert result.steps["async_flaky"].attempts == 3
    assert attempts == [1, 2, 3]


# -- timeouts -------------------------------------------------------------------------


def test_step_timeout_error_is_a_timeout_error():
    assert issubclass(StepTimeoutError, TimeoutError)


def test_a_step_past_its_timeout_fails_with_step_timeout_error(executor):
    @step(timeout=0.2)
    def stuck():
        import time

        time.sleep(5)
        return "too late"

    result = Pipeline([stuck]).run(executor=executor, on_error="continue")
    record = result.steps["stuck"]
    assert record.status == "failed"
    assert record.error.type == "StepTimeoutError"
    assert "stuck" in record.error.message
    assert record.attempts == 1
    assert result.duration < 3  # the 5 s step was abandoned, not waited for


def test_a_timeout_raises_run_failed_caused_by_a_timeout_error(executor):
    @step(timeout=0.2)
    def stuck():
        import time

        time.sleep(5)

    with pytest.raises(RunFailed) as caught:
        Pipeline([stuck]).run(executor=executor)
    cause = caught.value.__cause__
    assert isinstance(cause, StepTimeoutError)
    assert isinstance(cause, TimeoutError)
    assert caught.value.step == "stuck"
    assert caught.value.result.duration < 3


def test_a_timed_out_attempt_is_retried(executor, tmp_path):
    @step(timeout=0.2, retries=1, backoff=FAST)
    def always_stuck(folder):
        import time

        bump(folder, "calls")
        time.sleep(5)

    result = Pipeline([always_stuck]).run(
        params={"folder": str(tmp_path)}, executor=executor, on_error="continue"
    )
    record = result.steps["always_stuck"]
    assert record.status == "failed"
    assert record.attempts == 2
    assert record.error.type == "StepTimeoutError"
    assert count(tmp_path, "calls") == 2
    assert result.duration < 3


def test_a_retry_after_a_timeout_can_succeed(executor, tmp_path):
    @step(timeout=0.3, retries=2, backoff=FAST)
    def slow_then_fast(folder):
        import time

        bump(folder, "calls")
        if current().attempt == 1:
            time.sleep(5)
        return current().attempt

    result = Pipeline([slow_then_fast]).run(params={"folder": str(tmp_path)}, executor=executor)
    assert result["slow_then_fast"] == 2
    assert result.steps["slow_then_fast"].attempts == 2
    assert result.duration < 3


def test_timeout_accepts_a_timedelta(executor):
    @step(timeout=datetime.timedelta(milliseconds=200))
    def stuck():
        import time

        time.sleep(5)

    result = Pipeline([stuck]).run(executor=executor, on_error="continue")
    assert result.steps["stuck"].error.type == "StepTimeoutError"
    assert result.duration < 3


def test_a_step_within_its_timeout_is_unaffected(executor):
    @step(timeout=30)
    def quick(x):
        return x * 2

    result = Pipeline([quick]).run(params={"x": 21}, executor=executor)
    assert result["quick"] == 42
    assert result.steps["quick"].attempts == 1


def test_async_steps_time_out_and_are_cancelled(executor):
    events = []

    @step(timeout=0.2)
    async def async_stuck():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        return "too late"

    result = Pipeline([async_stuck]).run(executor=executor, on_error="continue")
    record = result.steps["async_stuck"]
    assert record.status == "failed"
    assert record.error.type == "StepTimeoutError"
    assert "async_stuck" in record.error.message
    assert events == ["cancelled"]
    assert result.duration < 3


def test_a_timed_out_async_attempt_is_retried(executor):
    attempts = []

    @step(timeout=0.2, retries=1, backoff=FAST)
    async def async_slow_then_fast():
        attempts.append(current().attempt)
        if current().attempt == 1:
            await asyncio.sleep(5)
        return "second"

    result = Pipeline([async_slow_then_fast]).run(executor=executor)
    assert result["async_slow_then_fast"] == "second"
    assert result.steps["async_slow_then_fast"].attempts == 2
    assert attempts == [1, 2]


# -- fallback -------------------------------------------------------------------------


def test_on_failure_supplies_a_value_and_the_step_is_ok(executor):
    @step(on_failure=lambda exc, **inputs: inputs["x"] * 10)
    def broken(x):
        raise ValueError("broken")

    @step
    def uses(broken):
        return broken + 1

    result = Pipeline([broken, uses]).run(params={"x": 4}, executor=executor)
    record = result.steps["broken"]
    assert record.status == "ok"
    assert record.fallback is True
    assert record.error is None
    assert result["broken"] == 40
    assert result["uses"] == 41
    assert result.steps["uses"].fallback is False
    assert result.ok


def test_on_failure_receives_the_exception_and_the_inputs(executor):
    @step(on_failure=lambda exc, **inputs: (type(exc).__name__, str(exc), sorted(inputs.items())))
    def broken(x, y):
        raise KeyError("gone")

    result = Pipeline([broken]).run(params={"x": 1, "y": 2}, executor=executor)
    assert result["broken"] == ("KeyError", "'gone'", [("x", 1), ("y", 2)])


def test_on_failure_runs_after_the_last_attempt(executor, tmp_path):
    @step(retries=2, backoff=FAST, on_failure=lambda exc, **inputs: "fallback")
    def always_fails(folder):
        bump(folder, "calls")
        raise ValueError("no")

    result = Pipeline([always_fails]).run(params={"folder": str(tmp_path)}, executor=executor)
    assert result["always_fails"] == "fallback"
    assert result.steps["always_fails"].attempts == 3
    assert result.steps["always_fails"].fallback is True
    assert count(tmp_path, "calls") == 3


def test_on_failure_is_not_used_when_a_retry_succeeds(executor):
    @step(retries=1, backoff=FAST, on_failure=lambda exc, **inputs: "fallback")
    def once_flaky():
        if current().attempt == 1:
            raise ValueError("first")
        return "real"

    result = Pipeline([once_flaky]).run(executor=executor)
    assert result["once_flaky"] == "real"
    assert result.steps["once_flaky"].fallback is False


def test_on_failure_covers_a_timeout(executor):
    @step(timeout=0.2, on_failure=lambda exc, **inputs: f"fallback after {type(exc).__name__}")
    def stuck():
        import time

        time.sleep(5)

    result = Pipeline([stuck]).run(executor=executor)
    assert result["stuck"] == "fallback after StepTimeoutError"
    assert result.steps["stuck"].fallback is True
    assert result.duration < 3


def test_a_fallback_that_raises_fails_the_step(executor):
    def bad_fallback(exc, **inputs):
        raise RuntimeError("fallback broke too")

    @step(on_failure=bad_fallback)
    def broken():
        raise ValueError("original")

    result = Pipeline([broken]).run(executor=executor, on_error="continue")
    record = result.steps["broken"]
    assert record.status == "failed"
    assert record.fallback is False
    assert record.error.type == "RuntimeError"
    assert "fallback broke too" in record.error.message


def test_on_failure_on_an_async_step(executor):
    @step(on_failure=lambda exc, **inputs: -1)
    async def async_broken():
        await asyncio.sleep(0)
        raise ValueError("async broken")

    result = Pipeline([async_broken]).run(executor=executor)
    assert result["async_broken"] == -1
    assert result.steps["async_broken"].fallback is True
    assert result.steps["async_broken"].status == "ok"
