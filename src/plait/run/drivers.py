"""Drivers: the loops that move a :class:`~plait.run.state.RunState` forward.

``drive_sync`` serves sequential runs (tasks inline, one at a time: :mod:`plait.run.inline`,
the fast path) and
pool executors (tasks submitted as soon as they are ready; completions come back through
a queue, so the scheduler reacts to the first one that finishes). ``drive_async`` serves
runs with ``async def`` steps and ``run_async``: async steps are tasks on the event loop,
sync steps go to the executor (for ``Sequential``, one helper thread, so the loop stays
responsive and cancellation is prompt).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import functools
import queue
from typing import Any

from plait.run.executors import Executor
from plait.run.inline import drive_inline
from plait.run.state import RunState
from plait.run.task import Task, TaskResult, execute, execute_async

__all__ = ["drive_async", "drive_sync"]


def _failed(exc: BaseException) -> TaskResult:
    return TaskResult(ok=False, error=exc)


def _put(
    done: queue.SimpleQueue[tuple[Task, cf.Future[TaskResult]]],
    task: Task,
    future: cf.Future[TaskResult],
) -> None:
    done.put((task, future))


def drive_sync(state: RunState, executor: Executor, limit: int | None) -> None:
    """Run until nothing is ready or running; Ctrl-C stops scheduling and re-raises."""
    if executor.inline:
        drive_inline(state)  # run/inline.py: the lean lane
        return
    state.deferring = state.can_defer()  # records made when first read
    done: queue.SimpleQueue[tuple[Task, cf.Future[TaskResult]]] = queue.SimpleQueue()
    inflight: dict[cf.Future[TaskResult], Task] = {}
    workers = getattr(executor, "max_workers", None)
    if limit is None and isinstance(workers, int):
        limit = 4 * workers  # keep the pool fed, not flooded: 10,000 queued futures cost
    # A lone ready task with nothing in flight cannot be overtaken by anything: an executor
    # that allows it (Threads) runs it right here and saves two thread hand-offs (chains).
    alone_inline = getattr(executor, "inline_when_alone", False)
    try:
        while True:
            free = None if limit is None else limit - len(inflight)
            if free is None or free > 0:
                tasks = state.next_tasks(free)
                if alone_inline and not inflight and len(tasks) == 1:
                    state.complete(tasks[0], execute(tasks[0]))
                    continue
                for task in tasks:
                    future = _submit(executor, task)
                    inflight[future] = task
                    future.add_done_callback(functools.partial(_put, done, task))
            if not inflight:
                return
            finished = [done.get()]
            while True:  # take every completion there is: one wake-up, many results
                try:
                    finished.append(done.get_nowait())
                except queue.Empty:
                    break
            for task, future in finished:
                del inflight[future]
                try:
                    result = future.result()
                except Exception as exc:  # the executor itself failed (dead worker, pickling)
                    result = _failed(exc)
                state.complete(task, result)
    except BaseException:
        state.stop()
        for future in inflight:
            future.cancel()
        raise


def _submit(executor: Executor, task: Task) -> cf.Future[TaskResult]:
    try:
        return executor.submit(task)
    except Exception as exc:  # e.g. an input that cannot be pickled
        failed: cf.Future[TaskResult] = cf.Future()
        failed.set_result(_failed(exc))
        return failed


async def drive_async(state: RunState, executor: Executor, limit: int | None) -> None:
    """Run on the current event loop; cancellation stops everything and propagates.

    Each dispatched future reports its own completion (a done callback appends it to
    ``arrived`` and wakes the loop): waking costs the same with ten or ten thousand
    futures in flight (``asyncio.wait`` would add and remove a callback on every one of
    them at each wake-up).
    """
    loop = asyncio.get_running_loop()
    state.deferring = state.can_defer()  # records made when first read
    helper = cf.ThreadPoolExecutor(1, thread_name_prefix="plait") if executor.inline else None
    inflight: dict[asyncio.Future[TaskResult], Task] = {}
    arrived: list[asyncio.Future[TaskResult]] = []
    wake = asyncio.Event()

    def report(future: asyncio.Future[TaskResult]) -> None:
        arrived.append(future)
        wake.set()

    try:
        while True:
            free = None if limit is None else limit - len(inflight)
            if free is None or free > 0:
                for task in state.next_tasks(free):
                    future = _dispatch(loop, executor, helper, task)
                    inflight[future] = task
                    future.add_done_callback(report)
            if not inflight:
                return
            if not arrived:
                await wake.wait()
            wake.clear()
            finished = arrived[:]
            arrived.clear()
            for future in finished:
                task = inflight.pop(future)
                try:
                    result = future.result()
                except Exception as exc:
                    result = _failed(exc)
                state.complete(task, result)
    except BaseException:
        state.stop()
        for future in inflight:
            future.cancel()
        if inflight:
            await asyncio.wait(inflight, timeout=1.0)
        raise
    finally:
        if helper is not None:
            helper.shutdown(wait=False, cancel_futures=True)


def _dispatch(
    loop: asyncio.AbstractEventLoop,
    executor: Executor,
    helper: cf.ThreadPoolExecutor | None,
    task: Task,
) -> asyncio.Future[Any]:
    if task.step.signature.is_async:
        return loop.create_task(execute_async(task))
    if helper is not None:
        context = contextvars.copy_context()
        return loop.run_in_executor(helper, context.run, execute, task)
    try:
        return asyncio.wrap_future(executor.submit(task))
    except Exception as exc:
        future: asyncio.Future[TaskResult] = loop.create_future()
        future.set_result(_failed(exc))
        return future
