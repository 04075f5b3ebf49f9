"""The garbage collector during large runs (plait.run.collector): the heap that was there
before a run is frozen while it goes, collection goes on for everything the run makes,
and the collector's state comes back on every way out."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from plait import Pipeline, Step
from plait.errors import RunFailed
from plait.run.collector import LARGE


def inc(v):
    return v + 1


def chain(size: int, middle=None, prefix: str = "s") -> Pipeline:
    """``size`` steps; the one in the middle is ``middle`` (a function of one input)."""
    steps = [Step(inc, inputs=["x"], outputs=[f"{prefix}0"], name=f"{prefix}0")]
    for i in range(1, size):
        func = middle if middle is not None and i == size // 2 else inc
        steps.append(
            Step(func, inputs=[f"{prefix}{i - 1}"], outputs=[f"{prefix}{i}"], name=f"{prefix}{i}")
        )
    return Pipeline(steps, params={"x": 0})


@pytest.fixture(autouse=True)
def _collector_left_alone():
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    yield
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


class Cycle:
    """A node of a reference cycle that counts the live instances of its class."""

    live = 0
    peak = 0

    def __init__(self) -> None:
        Cycle.live += 1
        Cycle.peak = max(Cycle.peak, Cycle.live)
        self.me = self

    def __del__(self) -> None:
        Cycle.live -= 1


def test_a_step_making_cyclic_garbage_runs_in_bounded_memory():
    frozen = []

    def churn(v):
        frozen.append(gc.get_freeze_count())  # the policy is on while this step runs
        for _ in range(200_000):
            Cycle()
        return v + 1

    Cycle.live = Cycle.peak = 0
    result = chain(LARGE, churn).run()
    assert result.ok
    assert frozen[0] > 0
    assert Cycle.peak < 20_000  # 200,000 made: collected as they went
    gc.collect()
    assert Cycle.live == 0


def test_a_small_run_leaves_the_collector_alone():
    frozen = []

    def look(v):
        frozen.append(gc.get_freeze_count())
        return v

    assert chain(10, look).run().ok
    assert frozen == [0]


def test_the_old_heap_is_frozen_during_the_run_and_thawed_after():
    old = [[i] for i in range(1_000)]  # alive before the run
    seen = []

    def look(v):
        seen.append(gc.get_freeze_count())
        return v

    chain(LARGE, look).run()
    assert seen[0] >= len(old)
    assert gc.get_freeze_count() == 0


def test_restored_after_a_failed_run():
    def boom(v):
        raise ValueError("boom")

    with pytest.raises(RunFailed):
        chain(LARGE, boom).run()
    assert chain(LARGE, boom).run(on_error="continue").status == "failed"


def test_restored_after_ctrl_c():
    def interrupt(v):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        chain(LARGE, interrupt).run()


def test_restored_after_a_step_raises_system_exit():
    def leave(v):
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        chain(LARGE, leave).run()


def test_a_nested_run_keeps_the_outer_freeze():
    inner = chain(LARGE, prefix="i")
    seen = []

    def nest(v):
        assert inner.run()["i" + str(LARGE - 1)] == LARGE
        seen.append(gc.get_freeze_count())  # the inner run ended: still frozen for us
        return v + 1

    chain(LARGE, nest).run()
    assert seen[0] > 0


def test_runs_in_threads_unfreeze_once_all_ended():
    started = threading.Barrier(2)
    errors = []

    def meet(v):
        started.wait(timeout=60)  # both runs are inside their step at once
        return v + 1

    def go():
        try:
            assert chain(LARGE, meet).run().ok
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_an_async_run_and_its_cancellation_restore_it():
    async def main():
        assert (await chain(LARGE).run_async()).ok
        gate = asyncio.Event()

        async def wait(v):
            gate.set()
            await asyncio.sleep(60)
            return v

        task = asyncio.ensure_future(chain(LARGE, wait).run_async())
        await gate.wait()
        assert gc.get_freeze_count() > 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_freeze_of_the_process_own_is_left_alone():
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        assert chain(LARGE).run().ok
        assert gc.get_freeze_count() > before // 2  # not unfrozen (a few frozen objects die)
    finally:
        gc.unfreeze()


def test_a_disabled_collector_stays_disabled():
    gc.disable()
    try:
        assert chain(LARGE).run().ok
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
