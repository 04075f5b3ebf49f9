"""Executors: concurrency, dispatch order, limits, async steps, context, pickling, isolation.

Every test takes an executor fixture from :mod:`executor_cases`; tests that only make
sense where steps run side by side (or in the caller's process) say so in their fixture.
Overlap and ordering are read from recorded timestamps, never from wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import executor_cases
from executor_cases import interval, max_overlap, ran_on, where
from plait import Pipeline, Step, current, step
from plait.errors import RunFailed, SerializationError, StepTimeoutError

executor = executor_cases.executor
parallel_executor = executor_cases.parallel_executor
in_process_executor = executor_cases.in_process_executor
process_pool = executor_cases.process_pool

REQUEST = contextvars.ContextVar("REQUEST", default="unset")


# -- every executor computes the same values ------------------------------------------


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


def test_a_diamond_gives_the_same_values_on_every_executor(executor):
    result = Pipeline([base, left, right, joined]).run(params={"x": 3}, executor=executor)
    assert result.ok
    assert dict(result.outputs) == {"base": 4, "left": 8, "right": 12, "joined": 20}
    assert all(record.status == "ok" for record in result.steps.values())


@step
def place():
    return where()


def test_steps_run_where_the_executor_says(executor):
    # Two steps ready together are dispatched to the executor's workers. (On threads, a
    # step that is the only one ready while nothing runs may run on the scheduler's own
    # thread: nothing could run beside it, and it saves two thread hand-offs.)
    other = place.with_options(name="other")
    result = Pipeline([place, other]).run(executor=executor)
    assert ran_on(executor, result["place"]), result["place"]
    assert ran_on(executor, result["other"]), result["other"]


# -- concurrency and dispatch ---------------------------------------------------------


@step
def slow():
    time.sleep(0.5)
    return "slow"


@step
def a1():
    return 1


@step
def a2(a1):
    return a1 + 1


@step
def a3(a2):
    return a2 + 1


def test_a_fast_chain_finishes_before_a_slow_sibling(parallel_executor):
    # Level-by-level dispatch would start a2 only after every level-1 step (slow too).
    result = Pipeline([slow, a1, a2, a3]).run(executor=parallel_executor)
    assert result["a3"] == 3
    slow_start, slow_end = interval(result, "slow")
    a2_start, _ = interval(result, "a2")
    _, a3_end = interval(result, "a3")
    assert a2_start < slow_end
    assert a3_end < slow_end
    assert interval(result, "a1")[0] < slow_end
    assert slow_start < a3_end


@step
def sleeper_1():
    time.sleep(0.15)
    return 1


@step
def sleeper_2():
    time.sleep(0.15)
    return 2


@step
def sleeper_3():
    time.sleep(0.15)
    return 3


SLEEPERS = [sleeper_1, sleeper_2, sleeper_3]


def test_independent_steps_overlap(parallel_executor):
    result = Pipeline(SLEEPERS).run(executor=parallel_executor)
    assert result.ok
    intervals = [interval(result, s.name) for s in SLEEPERS]
    assert max_overlap(intervals) >= 2


def test_max_concurrency_one_serialises_steps(executor):
    result = Pipeline(SLEEPERS).run(executor=executor, max_concurrency=1)
    assert [result[s.name] for s in SLEEPERS] == [1, 2, 3]
    intervals = sorted(interval(result, s.name) for s in SLEEPERS)
    assert max_overlap(intervals) == 1
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert end <= start


@step
def sleeper_4():
    time.sleep(0.15)
    return 4


def test_max_concurrency_two_caps_steps_in_flight():
    # Threads(4) could run all four at once; the run-wide limit keeps two in flight.
    result = Pipeline([*SLEEPERS, sleeper_4]).run(executor="threads:4", max_concurrency=2)
    intervals = [interval(result, name) for name in ("sleeper_1", "sleeper_2", "sleeper_3")]
    intervals.append(interval(result, "sleeper_4"))
    assert max_overlap(intervals) == 2


@step
def fails_fast():
    raise ValueError("fails fast")


@step
def running_sibling():
    time.sleep(0.3)
    return "finished"


@step
def after_sibling(running_sibling):
    return running_sibling


def test_on_error_raise_lets_running_steps_finish_and_starts_nothing_new(parallel_executor):
    pipeline = Pipeline([running_sibling, fails_fast, after_sibling])
    with pytest.raises(RunFailed) as caught:
        pipeline.run(executor=parallel_executor)
    steps = caught.value.result.steps
    assert caught.value.step == "fails_fast"
    assert steps["fails_fast"].status == "failed"
    assert steps["running_sibling"].status == "ok"  # was running: finished and recorded
    assert steps["after_sibling"].status == "not_run"


def test_on_error_continue_runs_what_does_not_depend_on_the_failure(executor):
    result = Pipeline([running_sibling, fails_fast, after_sibling]).run(
        executor=executor, on_error="continue"
    )
    assert result.status == "failed"
    assert result["after_sibling"] == "finished"


# -- async steps ----------------------------------------------------------------------


@step
async def async_1():
    await asyncio.sleep(0.3)
    return current().step


@step
async def async_2():
    await asyncio.sleep(0.3)
    return current().step


@step
def sync_beside():
    time.sleep(0.3)
    return "sync"


@step
def after_all(async_1, async_2, sync_beside):
    return [async_1, async_2, sync_beside]


def test_async_steps_run_concurrently_with_sync_steps_beside_them(executor):
    result = Pipeline([async_1, async_2, sync_beside, after_all]).run(executor=executor)
    assert result["after_all"] == ["async_1", "async_2", "sync"]
    one, two, sync = (interval(result, n) for n in ("async_1", "async_2", "sync_beside"))
    assert max_overlap([one, two]) == 2
    # The event loop is not blocked by the sync step: they all overlap.
    assert max_overlap([one, two, sync]) == 3
    assert interval(result, "after_all")[0] >= max(one[1], two[1], sync[1])


def test_async_steps_in_run_async_on_every_executor(executor):
    async def main():
        return await Pipeline([async_1, async_2, sync_beside, after_all]).run_async(
            executor=executor
        )

    result = asyncio.run(main())
    assert result["after_all"] == ["async_1", "async_2", "sync"]
    assert max_overlap([interval(result, "async_1"), interval(result, "async_2")]) == 2


@step
async def async_double(base):
    await asyncio.sleep(0)
    return base * 2


def test_async_and_sync_steps_chain(executor):
    # sync -> async -> sync: values cross between the loop and the executor.
    @step
    def last(async_double):
        return async_double + 1

    result = Pipeline([base, async_double, last]).run(params={"x": 1}, executor=executor)
    assert result["last"] == 5


@step
async def async_slow():
    await asyncio.sleep(0.5)
    return "slow"


@step
async def b1():
    await asyncio.sleep(0)
    return 1


@step
async def b2(b1):
    await asyncio.sleep(0)
    return b1 + 1


@step
def b3(b2):
    return b2 + 1


def test_a_fast_async_chain_does_not_wait_for_a_slow_async_sibling(executor):
    result = Pipeline([async_slow, b1, b2, b3]).run(executor=executor)
    assert result["b3"] == 3
    _, slow_end = interval(result, "async_slow")
    assert interval(result, "b2")[0] < slow_end
    assert interval(result, "b3")[1] < slow_end


@step
async def async_a():
    await asyncio.sleep(0.1)
    return "a"


@step
async def async_b():
    await asyncio.sleep(0.1)
    return "b"


@step
def sync_c():
    time.sleep(0.1)
    return "c"


def test_max_concurrency_one_serialises_async_steps_too(executor):
    result = Pipeline([async_a, async_b, sync_c]).run(executor=executor, max_concurrency=1)
    assert [result[n] for n in ("async_a", "async_b", "sync_c")] == ["a", "b", "c"]
    intervals = [interval(result, n) for n in ("async_a", "async_b", "sync_c")]
    assert max_overlap(intervals) == 1


def test_concurrent_run_async_calls_on_one_loop_stay_isolated(executor):
    @step
    async def echo(x):
        await asyncio.sleep(0.05)
        return x

    @step
    def pair(echo, x):
        return (echo, x)

    pipeline = Pipeline([echo, pair])

    async def main():
        runs = [pipeline.run_async(params={"x": x}, executor=executor) for x in range(6)]
        return [result["pair"] for result in await asyncio.gather(*runs)]

    assert asyncio.run(main()) == [(x, x) for x in range(6)]


# -- contextvars ----------------------------------------------------------------------


def test_contextvars_set_before_run_are_visible_in_steps(in_process_executor):
    @step
    def seen():
        return REQUEST.get()

    @step(timeout=10)
    def seen_with_timeout():
        return REQUEST.get()

    @step
    async def seen_async():
        return REQUEST.get()

    token = REQUEST.set("request-42")
    try:
        sync_only = Pipeline([seen, seen_with_timeout]).run(executor=in_process_executor)
        with_async = Pipeline([seen, seen_async]).run(executor=in_process_executor)
    finally:
        REQUEST.reset(token)
    assert sync_only["seen"] == "request-42"
    assert sync_only["seen_with_timeout"] == "request-42"
    assert with_async["seen"] == "request-42"
    assert with_async["seen_async"] == "request-42"


# -- processes: pickling --------------------------------------------------------------


def test_closures_and_lambdas_run_on_processes(process_pool):
    offset = 100

    def add_offset(x):
        return x + offset

    scale = Step(lambda add_offset: add_offset * 2, inputs=["add_offset"], name="scale")
    pid = Step(os.getpid, outputs="pid", name="pid")
    result = Pipeline([step(add_offset), scale, pid]).run(params={"x": 1}, executor=process_pool)
    assert result["add_offset"] == 101
    assert result["scale"] == 202
    assert result["pid"] != os.getpid()


def test_an_unpicklable_param_fails_the_step_with_a_serialization_error(process_pool):
    @step
    def use_lock(lock):
        return "unreachable"

    @step
    def independent():
        return "fine"

    result = Pipeline([use_lock, independent]).run(
        params={"lock": threading.Lock()}, executor=process_pool, on_error="continue"
    )
    record = result.steps["use_lock"]
    assert record.status == "failed"
    assert record.error.type == "SerializationError"
    assert "use_lock" in record.error.message
    assert type(threading.Lock()).__name__ in record.error.message  # "lock"
    assert result["independent"] == "fine"


def test_an_unpicklable_upstream_value_fails_with_a_serialization_error(process_pool):
    @step
    def make_lock():
        return threading.Lock()

    @step
    def use_it(make_lock):
        return "unreachable"

    result = Pipeline([make_lock, use_it]).run(executor=process_pool, on_error="continue")
    failed = [r for r in result.steps.values() if r.status == "failed"]
    assert failed, "an unpicklable value crossed a process boundary without error"
    record = failed[0]
    assert record.error.type == "SerializationError"
    assert record.name in record.error.message
    assert type(threading.Lock()).__name__ in record.error.message
    assert result.steps["use_it"].status in ("failed", "skipped")


def test_serialization_error_raises_as_run_failed_by_default(process_pool):
    @step
    def use_lock(lock):
        return "unreachable"

    with pytest.raises(RunFailed) as caught:
        Pipeline([use_lock]).run(params={"lock": threading.Lock()}, executor=process_pool)
    assert isinstance(caught.value.__cause__, SerializationError)
    assert isinstance(caught.value.__cause__, TypeError)
    assert caught.value.step == "use_lock"


# -- isolation of concurrent runs -----------------------------------------------------


@step
def slow_echo(x):
    time.sleep(0.05)
    return x


@step
def tagged(slow_echo, x):
    return (slow_echo, x)


def test_concurrent_runs_of_one_pipeline_stay_isolated(executor):
    pipeline = Pipeline([slow_echo, tagged])

    def run_one(x):
        return pipeline.run(params={"x": x}, executor=executor)["tagged"]

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(run_one, range(8)))
    assert got == [(x, x) for x in range(8)]


# -- timeouts don't block the executor ------------------------------------------------


def test_a_timed_out_step_does_not_hold_back_its_siblings(executor):
    @step(timeout=0.2)
    def stuck():
        time.sleep(5)

    @step
    def fine():
        return "fine"

    result = Pipeline([stuck, fine]).run(executor=executor, on_error="continue")
    assert result["fine"] == "fine"
    assert result.steps["stuck"].error.type == StepTimeoutError.__name__
    assert result.duration < 3


# -- errors are recorded the same everywhere -------------------------------------------


class NeedsKeyword(Exception):
    """An exception whose constructor cannot be replayed from its args."""

    def __init__(self, *, code):
        self.code = code
        super().__init__(f"failed with code {code}")


def test_a_step_error_is_recorded_with_its_traceback_on_every_executor(executor):
    @step
    def plain_error():
        raise LookupError("plain lookup failure")

    result = Pipeline([plain_error]).run(executor=executor, on_error="continue")
    error = result.steps["plain_error"].error
    assert (error.type, error.message) == ("LookupError", "plain lookup failure")
    # The traceback shows the step's own frame, wherever it ran: the user's file and line
    # (cloudpickle >= 3.1.3 renames code sent by value to "<dynamic-code>"; plait keeps it).
    line = plain_error.__wrapped__.__code__.co_firstlineno + 2
    assert f'File "{__file__}", line {line}, in plain_error' in error.traceback, error.traceback
    assert 'raise LookupError("plain lookup failure")' in error.traceback


def test_an_exception_that_cannot_be_rebuilt_from_its_args_is_still_recorded(executor):
    @step
    def keyword_error():
        raise NeedsKeyword(code=7)

    result = Pipeline([keyword_error]).run(executor=executor, on_error="continue")
    error = result.steps["keyword_error"].error
    assert (error.type, error.message) == ("NeedsKeyword", "failed with code 7")


# -- executor lifetime -----------------------------------------------------------------


def test_an_executor_object_is_reused_across_runs(executor):
    pipeline = Pipeline([base, left, right, joined])
    first = pipeline.run(params={"x": 1}, executor=executor)
    second = pipeline.run(params={"x": 2}, executor=executor)
    assert (first["joined"], second["joined"]) == (10, 15)


def test_a_threads_shortcut_leaves_no_worker_threads_behind():
    before = set(threading.enumerate())
    Pipeline(SLEEPERS).run(executor="threads:3")
    left_over = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left_over == []


def test_a_processes_shortcut_leaves_no_worker_processes_behind(process_pool):
    import multiprocessing

    before = {p.pid for p in multiprocessing.active_children()}
    result = Pipeline([place]).run(executor="processes:1")
    assert int(result["place"].split(":")[0]) != os.getpid()
    left_over = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert left_over == []


_MAIN_SCRIPT = """
from plait import Pipeline, step


@step
def broken(x: int) -> int:
    return x // 0


if __name__ == "__main__":
    result = Pipeline([broken]).run(params={"x": 1}, executor="processes:1", on_error="continue")
    print(result.steps["broken"].error.traceback)
"""


def test_a_worker_traceback_names_the_script_run_as_main(tmp_path):
    # A step defined in the script being run (``__main__``) travels by value; its
    # traceback from the worker process still names the script's file and line.
    script = tmp_path / "job.py"
    script.write_text(_MAIN_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f'File "{script}", line 7, in broken' in done.stdout, done.stdout
    assert "return x // 0" in done.stdout


def test_sequential_takes_no_worker_count():
    from plait.errors import UsageError

    @step
    def one() -> int:
        return 1

    with pytest.raises(UsageError, match=r"'sequential:3'.*takes no worker count"):
        Pipeline([one]).run(executor="sequential:3")


@pytest.mark.parametrize("spec", ["threads:-1", "processes:0", "sequential:2"])
def test_a_bad_worker_count_is_a_usage_error_on_the_command_line(tmp_path, spec):
    (tmp_path / "flow.py").write_text(
        "from plait import Pipeline, step\n\n@step\ndef one() -> int:\n    return 1\n\n"
        "p = Pipeline([one])\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "plait", "run", "flow.py:p", "-e", spec],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert spec in done.stderr
    assert "Traceback" not in done.stderr
