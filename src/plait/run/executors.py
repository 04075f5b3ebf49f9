"""Local executors: where tasks run.

An executor hands back a :class:`concurrent.futures.Future` per task. The scheduler does
not care where the work happens, so a remote engine fits by returning futures too (the
Dask and Ray executors live in their own modules, imported only when asked for).
``Sequential`` is special: its tasks run inline, one at a time, in the caller's thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, runtime_checkable

from plait.errors import PlaitError, SerializationError, UsageError, WorkerError, suggest
from plait.run.task import Task, TaskResult, execute

__all__ = ["Executor", "Owned", "Processes", "Sequential", "Threads", "make_executor"]


@runtime_checkable
class Executor(Protocol):
    """Runs tasks. ``inline`` executors run them in the scheduler's own thread.

    A *remote* executor (an attribute ``remote = True``) returns TaskResults whose
    ``values`` are the engine's references (Dask futures, Ray object refs): the scheduler
    passes them as inputs to later tasks without fetching them, and calls the executor's
    ``fetch(ref)`` only for what must be local (requested outputs, ``when`` predicates,
    the list a map step maps over, a dynamic step's pipeline).
    """

    name: str
    inline: bool

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        """Start ``task``; the future's result is its TaskResult."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Release workers (the executor may be started again by the next submit)."""
        ...


class Sequential:
    """Run every step in the calling thread, one at a time (the default)."""

    name = "sequential"
    inline = True

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        """Run ``task`` now and return a finished future."""
        future: cf.Future[TaskResult] = cf.Future()
        future.set_result(execute(task))
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "Sequential()"


class DaemonThreadPool:
    """A minimal thread pool whose threads are daemons.

    ``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits,
    so one step that cannot be interrupted (a sleep, a blocking call) would keep the
    process alive after Ctrl-C. Python cannot kill a thread; a daemon thread at least does
    not hold the process hostage.
    """

    def __init__(self, max_workers: int, name: str = "plait") -> None:
        self.max_workers = max_workers
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)

    def submit(self, fn: Any, *args: Any) -> cf.Future[Any]:
        """Run ``fn(*args)`` in a pool thread."""
        future: cf.Future[Any] = cf.Future()
        self._queue.put((future, fn, args))
        if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
            thread = threading.Thread(
                target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # delivered to whoever waits on the future
                    future.set_exception(exc)
            self._idle.release()

    def shutdown(self, wait: bool = True) -> None:
        """Cancel queued work and stop the threads (joined only when ``wait``)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
        self._threads = []


class Threads:
    """Run steps in a pool of threads (good for I/O and for code that releases the GIL).

    A step that is the only one ready while nothing else runs is run by the scheduler's
    own thread (nothing could run beside it anyway): a chain pays no thread hand-offs.

    Args:
        max_workers: Threads in the pool (default: ``min(32, cpu_count + 4)``).
    """

    inline = False
    inline_when_alone = True

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self.name = "threads" if max_workers is None else f"threads:{max_workers}"
        self._pool: DaemonThreadPool | None = None

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        """Run ``task`` in a worker thread, with the caller's contextvars."""
        if self._pool is None:
            self._pool = DaemonThreadPool(self.max_workers)
        context = contextvars.copy_context()
        return self._pool.submit(context.run, execute, task)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the pool; threads still running abandoned attempts are not waited for."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
            self._pool = None

    def __repr__(self) -> str:
        return f"Threads({self.max_workers})"


def _die_with_parent() -> None:
    """Worker initializer: end this worker as soon as the process that started it is gone.

    A pool's workers outlive a parent killed with SIGKILL (no ``atexit``, no shutdown), and
    one running a long step would go on for hours. A daemon thread waits on the parent's
    sentinel (ready when the parent dies, however it died) and exits the worker at once.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="plait-parent-watch", daemon=True).start()


def _run_pickled(payload: bytes, setup: Any = None) -> bytes:
    """Worker side of :class:`Processes`: install the worker setup (once per worker),
    unpickle a task, run it, pickle the result."""
    import cloudpickle

    if setup is not None:
        from plait.run.worker_setup import install

        install(setup)

    task: Task = cloudpickle.loads(payload)
    result = execute(task)
    if result.error is not None and not _survives_pickling(result.error, cloudpickle):
        result.error = WorkerError(str(result.error), type_name=type(result.error).__name__)
    try:
        return bytes(cloudpickle.dumps(result))
    except Exception as exc:
        values = ", ".join(type(v).__name__ for v in result.values)
        failed = TaskResult(
            ok=False,
            attempts=result.attempts,
            start=result.start,
            end=result.end,
            duration=result.duration,
            error=SerializationError(
                f"step {task.label!r} returned a value that cannot be sent back from the "
                f"worker process ({values}): {exc}; return plain data, or use Threads",
                step=task.step.name,
            ),
        )
        return bytes(cloudpickle.dumps(failed))


def _survives_pickling(error: BaseException, cloudpickle: Any) -> bool:
    try:
        cloudpickle.loads(cloudpickle.dumps(error))
    except Exception:
        return False
    return True


class Processes:
    """Run steps in worker processes (for CPU-bound pure-Python work).

    Steps, inputs and outputs travel with cloudpickle, so closures, lambdas and functions
    defined in a notebook work. Workers are started with ``spawn`` by default: a script
    that runs a pipeline on processes needs the usual ``if __name__ == "__main__":`` guard.

    Args:
        max_workers: Worker processes (default: the number of CPUs).
        start_method: ``"spawn"``, ``"forkserver"`` or ``"fork"``.
        setup: A function of no argument run once in each worker process before its
            first step (or ``"module:function"``). The hashers and serializers registered
            in this process reach the workers the same way.
    """

    inline = False

    def __init__(
        self,
        max_workers: int | None = None,
        start_method: str = "spawn",
        *,
        setup: Any = None,
    ) -> None:
        from plait.run.worker_setup import resolve_setup

        self.max_workers = max_workers or os.cpu_count() or 1
        self.start_method = start_method
        self.setup = resolve_setup(setup)
        self.name = f"processes:{self.max_workers}"
        self._pool: cf.ProcessPoolExecutor | None = None

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        """Ship ``task`` to a worker process."""
        import cloudpickle

        payload = _dumps(task, cloudpickle)
        if self._pool is None:
            context = multiprocessing.get_context(self.start_method)
            self._pool = cf.ProcessPoolExecutor(
                self.max_workers, mp_context=context, initializer=_die_with_parent
            )
        from plait.run.worker_setup import bundle

        inner = self._pool.submit(_run_pickled, payload, bundle(self.setup))
        outer: cf.Future[TaskResult] = cf.Future()

        def relay(done: cf.Future[bytes]) -> None:
            try:
                outer.set_result(cloudpickle.loads(done.result()))
            except BrokenProcessPool as exc:
                outer.set_exception(
                    PlaitError(
                        f"step {task.label!r}: a worker process died ({exc}). If the script that "
                        "runs the pipeline has no 'if __name__ == \"__main__\":' guard, add one: "
                        "worker processes import it again"
                    )
                )
            except BaseException as exc:  # the task failed in a way the worker could not report
                outer.set_exception(exc)

        inner.add_done_callback(relay)
        return outer

    def shutdown(self, wait: bool = True) -> None:
        """Stop the worker processes; without ``wait``, running ones are terminated."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if not wait:  # a cancelled run: do not wait for steps that are still running
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=wait, cancel_futures=True)

    def __repr__(self) -> str:
        return f"Processes({self.max_workers})"


def _dumps(task: Task, cloudpickle: Any) -> bytes:
    from plait.run.pickling import dumps

    try:
        return dumps(task)
    except Exception as exc:
        for name, value in task.kwargs.items():
            try:
                cloudpickle.dumps(value)
            except Exception:
                raise SerializationError(
                    f"step {task.label!r}: input {name!r} (a {type(value).__name__}) cannot "
                    f"be pickled to reach a worker process: {exc}; use executor='threads' "
                    "or pass something picklable",
                    step=task.step.name,
                ) from exc
        raise SerializationError(
            f"step {task.label!r}: the step's function cannot be pickled: {exc}",
            step=task.step.name,
        ) from exc


_SHORTCUTS = ("sequential", "threads", "processes", "dask", "ray", "celery")


def make_executor(spec: Any, *, setup: Any = None) -> tuple[Executor, bool]:
    """Turn an executor, a ``distributed.Client`` or a shortcut string into an executor;
    True if the run owns it (a client's executor is owned, the client never closed).

    ``setup`` (a callable or ``"module:function"``) is the worker setup of an executor
    made here from a string or a client (see :mod:`plait.run.worker_setup`).
    """
    if isinstance(spec, Owned):
        return spec.executor, True
    if not isinstance(spec, str):
        if isinstance(spec, Executor):
            if setup is not None:
                raise UsageError(
                    f"a worker setup is given with the executor object {spec!r}: pass it "
                    "to the executor instead, e.g. Dask(client, setup=...)"
                )
            return spec, False
        if _is_dask_client(spec):
            from plait.run.dask_executor import Dask

            return Dask(spec, setup=setup), True
        raise UsageError(
            f"executor must be a name, an executor object or a distributed.Client, got {spec!r}"
        )
    kind, _, count = spec.partition(":")
    if kind in ("dask", "ray", "celery"):  # the part after ':' is a cluster address
        return _remote_executor(kind, count or None, setup), True
    if setup is not None:
        return _local_with_setup(spec, setup), True
    workers = None
    if count:
        try:
            workers = int(count)
        except ValueError:
            workers = 0
        if workers < 1:
            raise UsageError(
                f"executor {spec!r}: the part after ':' is a worker count of at least 1, "
                f"like '{kind}:8'; got {count!r} (leave it out for the default)"
            )
    if kind == "sequential":
        if count:
            raise UsageError(
                f"executor {spec!r}: 'sequential' runs one step at a time and takes no worker "
                "count; use 'threads:N' or 'processes:N' for N at a time"
            )
        return Sequential(), True
    if kind == "threads":
        return Threads(workers), True
    if kind == "processes":
        return Processes(workers), True
    raise UsageError(
        f"unknown executor {spec!r}{suggest(kind, _SHORTCUTS)}; choose one of "
        f"{list(_SHORTCUTS)} or pass an executor object"
    )


class Owned:
    """An executor handed to a run that owns it: the run shuts it down at its end, as it
    does an executor it made from a string (the command line makes one with a worker
    setup this way)."""

    __slots__ = ("executor",)

    def __init__(self, executor: Executor) -> None:
        self.executor = executor


def _is_dask_client(value: Any) -> bool:
    """True for a ``distributed.Client`` (checked without importing ``distributed``)."""
    return any(
        kind.__name__ == "Client" and kind.__module__.startswith("distributed")
        for kind in type(value).__mro__
    )


def _local_with_setup(spec: str, setup: Any) -> Executor:
    """A local executor after running the worker setup: once here for the executors that
    run steps in this process; in each worker for ``processes``."""
    from plait.run.worker_setup import resolve_setup

    function = resolve_setup(setup)
    executor, _ = make_executor(spec)
    if isinstance(executor, Processes):
        executor.setup = function
    elif function is not None:
        function()
    return executor


def _remote_executor(kind: str, address: str | None, setup: Any = None) -> Executor:
    """``Dask``, ``Ray`` or ``Celery`` on ``address``, imported only now (optional
    dependencies)."""
    if kind == "celery":
        from plait.run.celery_executor import Celery

        if not address:
            raise UsageError(
                "executor 'celery' needs its broker: write 'celery:redis://host:6379/0'"
            )
        return Celery(address, setup=setup)
    if address is not None and address.isdigit():
        raise UsageError(
            f"executor '{kind}:{address}': the part after ':' is a cluster address, like "
            f"'{kind}:tcp://10.0.0.5:8786'; size a cluster where you start it"
            if kind == "dask"
            else f"executor '{kind}:{address}': the part after ':' is a cluster address, "
            f"like '{kind}:auto' or '{kind}:ray://10.0.0.5:10001'"
        )
    if kind == "dask":
        from plait.run.dask_executor import Dask

        return Dask(address, setup=setup)
    from plait.run.ray_executor import Ray

    return Ray(address, setup=setup)
