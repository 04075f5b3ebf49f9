"""Cancellation: Ctrl-C during ``run()`` and cancelling ``run_async``.

Ctrl-C is tested in a child process: a script runs a pipeline whose step writes a
marker file and then sleeps 30 s; once the marker exists the test sends ``SIGINT`` to
the child (only to it, as ``kill -INT`` or a notebook's "interrupt kernel" does) and
expects a prompt exit with ``KeyboardInterrupt`` and the run recorded as cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import executor_cases
from plait import Pipeline, step

executor = executor_cases.executor
process_pool = executor_cases.process_pool

SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys
    import time
    from pathlib import Path

    from plait import Pipeline, step


    class StatusHook:
        def __init__(self, folder):
            self.folder = folder

        def on_run_end(self, result):
            Path(self.folder, "status").write_text(result.status)


    def main():
        executor, kind, folder = sys.argv[1:4]

        @step
        def sleepy(folder):
            Path(folder, "started").touch()
            time.sleep(30)
            Path(folder, "finished").touch()
            return "finished"

        @step
        async def async_sleepy(folder):
            Path(folder, "started").touch()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                Path(folder, "step-cancelled").touch()
                raise
            return "finished"

        @step
        def after(value):
            Path(folder, "after-ran").touch()
            return value

        chosen = sleepy if kind == "sync" else async_sleepy
        first = chosen.with_options(name="first", outputs="value")
        pipeline = Pipeline([first, after], hooks=[StatusHook(folder)])
        pipeline.run(params={"folder": folder}, executor=executor)
        Path(folder, "run-returned").touch()


    if __name__ == "__main__":
        main()
    """
)


def _interrupt(tmp_path: Path, executor_name: str, kind: str) -> tuple[int, str, float]:
    """Run the script, SIGINT it once its step started; returncode, stderr, seconds.

    The child leads its own process group, so whatever it leaves behind (worker
    processes) is killed at the end; its output goes to files, never pipes, so a
    leftover worker holding them open cannot hang the test.
    """
    script = tmp_path / "interrupt_me.py"
    script.write_text(SCRIPT)
    folder = tmp_path / "markers"
    folder.mkdir()
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr, open(tmp_path / "stdout.txt", "w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, str(script), executor_name, kind, str(folder)],
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not (folder / "started").exists():
            if proc.poll() is not None:
                pytest.fail(
                    f"the script exited before its step started:\n{stderr_path.read_text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail("the step never started")
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)  # to the main process only
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the process was still running 10 s after SIGINT ({executor_name}, {kind}):"
                f"\n{stderr_path.read_text()}"
            )
        return proc.returncode, stderr_path.read_text(), time.monotonic() - sent
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize(
    ("executor_name", "kind"),
    [
        ("sequential", "sync"),
        ("threads:4", "sync"),
        ("processes:2", "sync"),
        ("sequential", "async"),
        ("dask", "sync"),  # starts its own LocalCluster in the child, closes it on Ctrl-C
        ("ray", "sync"),  # starts Ray in the child, shuts it down on Ctrl-C
    ],
)
def test_ctrl_c_in_run_cancels_promptly_with_keyboard_interrupt(tmp_path, executor_name, kind):
    returncode, err, elapsed = _interrupt(tmp_path, executor_name, kind)
    folder = tmp_path / "markers"
    assert returncode != 0
    assert "KeyboardInterrupt" in err, err
    assert elapsed < 10
    assert not (folder / "run-returned").exists()
    assert not (folder / "after-ran").exists()
    assert (folder / "status").read_text() == "cancelled"
    if kind == "async":
        assert (folder / "step-cancelled").exists()


# -- run_async ------------------------------------------------------------------------


class _Status:
    """A hook keeping the final status of each run."""

    def __init__(self) -> None:
        self.statuses: list[str] = []

    def on_run_end(self, result):
        self.statuses.append(result.status)


def _sleeping_pipeline(events: list[str]) -> Pipeline:
    @step
    async def waits(seed):
        events.append("started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        events.append("finished")
        return seed

    @step
    def later(waits):
        events.append("later ran")
        return waits

    return Pipeline([waits, later])


def test_wait_for_on_run_async_times_out_and_cancels_the_step(executor):
    events: list[str] = []
    hook = _Status()
    pipeline = _sleeping_pipeline(events)

    async def main():
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                pipeline.run_async(params={"seed": 1}, executor=executor, hooks=[hook]), 0.2
            )
        return time.monotonic() - started

    elapsed = asyncio.run(main())
    assert elapsed < 5
    assert events == ["started", "cancelled"]
    assert hook.statuses == ["cancelled"]


def test_cancelling_the_run_async_task_raises_cancelled_error(executor):
    events: list[str] = []
    hook = _Status()
    pipeline = _sleeping_pipeline(events)

    async def main():
        task = asyncio.ensure_future(
            pipeline.run_async(params={"seed": 1}, executor=executor, hooks=[hook])
        )
        while "started" not in events:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(main()) is True
    assert events == ["started", "cancelled"]
    assert hook.statuses == ["cancelled"]


def test_cancelling_run_async_does_not_wait_for_a_running_sync_step(executor, tmp_path):
    """A sync step cannot be interrupted: the caller gets control back anyway."""
    release = tmp_path / "release"
    started = tmp_path / "started"

    @step
    def blocking(folder):
        from pathlib import Path

        Path(folder, "started").touch()
        deadline = time.monotonic() + 20
        while not Path(folder, "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return "released"

    hook = _Status()

    async def main():
        task = asyncio.ensure_future(
            Pipeline([blocking]).run_async(
                params={"folder": str(tmp_path)}, executor=executor, hooks=[hook]
            )
        )
        while not started.exists():
            await asyncio.sleep(0.01)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - cancelled_at

    try:
        elapsed = asyncio.run(main())
    finally:
        release.touch()  # let the abandoned step finish so the worker is free again
    assert elapsed < 5
    assert hook.statuses == ["cancelled"]


def test_a_run_async_that_is_not_cancelled_completes(executor):
    @step
    async def quick(seed):
        await asyncio.sleep(0.01)
        return seed * 2

    async def main():
        return await asyncio.wait_for(
            Pipeline([quick]).run_async(params={"seed": 4}, executor=executor), 30
        )

    assert asyncio.run(main())["quick"] == 8
