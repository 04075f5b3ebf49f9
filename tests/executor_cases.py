"""Shared fixtures and helpers for the executor-parametrised suite.

Every behaviour test in ``test_executors``, ``test_retries``, ``test_map``,
``test_branching``, ``test_subpipelines``, ``test_dynamic`` and ``test_cancellation``
takes the ``executor`` fixture, so a new executor (Dask, Ray, ...) inherits the whole
suite by adding one entry to :data:`EXECUTORS` and one branch to :func:`_make`.

Steps may run in another process, so nothing here relies on shared memory: counters,
timestamps and markers are files under ``tmp_path`` (appending one short line to a file
is atomic on POSIX), and helpers take the directory as an argument.

``"dask"`` (a ``distributed.Client`` given to ``Dask``), ``"dask:address"`` (``Dask``
given the same cluster's scheduler address), ``"ray"`` and ``"celery"`` are real engines
shared by the whole session (starting one takes seconds): a ``distributed.LocalCluster``
with two worker processes of one thread each, a local Ray with two CPUs, and a ``celery
worker`` process (prefork, two pool processes) on database 15 of the session's
redis-server. They start on first use and stop when pytest ends.

A test module uses the fixtures by binding them at module level (an assignment, so
linters do not see an unused import)::

    import executor_cases

    executor = executor_cases.executor
    process_pool = executor_cases.process_pool
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from plait import Pipeline, step
from plait.executors import Celery, Dask, Processes, Ray, Sequential, Threads

#: One id per executor kind, spelled like the shortcut string for the same executor.
EXECUTORS = ["sequential", "threads:4", "processes:2", "dask", "dask:address", "ray", "celery"]
#: Executors that run several steps at once.
PARALLEL = ["threads:4", "processes:2", "dask", "dask:address", "ray", "celery"]
#: Executors whose steps run on an engine, outputs staying there as its references.
REMOTE = ["dask", "dask:address", "ray", "celery"]
#: The executors that are shared by the whole session (never shut down by a test).
SHARED = ["processes:2", "dask", "dask:address", "ray", "celery"]
#: Executors whose steps share the caller's memory (contextvars, in-process objects).
IN_PROCESS = ["sequential", "threads:4"]


def _rendezvous(folder: str, me: str, other: str) -> str:
    """Create a marker and wait (up to 60 s) until the other step created its own."""
    Path(folder, me).touch()
    deadline = time.monotonic() + 60
    while not Path(folder, other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other!r} never started")
        time.sleep(0.01)
    return me


_POOL: list[Processes] = []  # the one warm pool of the session, made on first use


def _warm(executor: Any, folder: str) -> None:
    """Run two steps that each wait for the other: both workers are up afterwards."""
    warm = Pipeline(
        [
            step(_rendezvous, name="first", inputs={"me": "a", "other": "b"}),
            step(_rendezvous, name="second", inputs={"me": "b", "other": "a"}),
        ]
    )
    warm.run(params={"folder": folder, "a": "a", "b": "b"}, executor=executor)


def _warm_pool(folder: str) -> Processes:
    if not _POOL:
        pool = Processes(2)
        _warm(pool, folder)
        _POOL.append(pool)
    return _POOL[0]


_ENGINES: dict[str, Any] = {}  # "dask" / "ray" -> the session's shared executor
_BROKEN: dict[str, str] = {}  # "dask" / "ray" -> why it could not start (tried once)


def _started_once(kind: str) -> None:
    """Fail at once, with the first error, when an engine already failed to start."""
    if kind in _BROKEN:
        pytest.fail(f"the session's {kind} engine did not start: {_BROKEN[kind]}", pytrace=False)


def shared_dask(request: pytest.FixtureRequest) -> Dask:
    """The session's Dask executor, on a ``LocalCluster`` of two single-thread worker
    processes; a worker that dies fails its task at once (``allowed-failures`` 0)."""
    _started_once("dask")
    if "dask" not in _ENGINES:
        _BROKEN["dask"] = "its start raised (see the first test that needed it)"
        import dask
        from distributed import Client, LocalCluster

        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # never warn: 8787 taken
            )
        client = Client(cluster, set_as_default=False)

        def close() -> None:
            client.close()
            cluster.close()

        request.config.add_cleanup(close)
        executor = Dask(client)
        _warm(executor, str(request.getfixturevalue("tmp_path_factory").mktemp("warm")))
        _ENGINES["dask"] = executor
        del _BROKEN["dask"]
    return _ENGINES["dask"]


def shared_ray(request: pytest.FixtureRequest) -> Ray:
    """The session's Ray executor, on a local Ray with two CPUs (whose workers can import
    the test modules: Ray does not pass ``sys.path`` on)."""
    _started_once("ray")
    if "ray" not in _ENGINES:
        _BROKEN["ray"] = "its start raised (see the first test that needed it)"
        import ray

        path = os.pathsep.join(
            p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p
        )
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
        request.config.add_cleanup(ray.shutdown)
        executor = Ray()
        _warm(executor, str(request.getfixturevalue("tmp_path_factory").mktemp("warm")))
        _ENGINES["ray"] = executor
        del _BROKEN["ray"]
    return _ENGINES["ray"]


def celery_worker(broker: str, *options: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A real ``celery worker`` process (prefork pool) of plait's application on
    ``broker``, in a process group of its own (so its pool goes with it), with more worker
    ``options``; the working directory and ``PYTHONPATH`` entry are the tests' folder."""
    here = str(Path(__file__).parent)
    command = [sys.executable, "-m", "celery", "-A", "plait.run.celery_executor", "-b", broker,
               "worker", "--pool", "prefork", *options, "--without-heartbeat", "--without-gossip",
               "--without-mingle", "--loglevel", "WARNING"]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=here,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a :func:`celery_worker`'s process group, SIGKILL after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def shared_celery(request: pytest.FixtureRequest) -> Celery:
    """The session's Celery executor: a real ``celery worker`` process (prefork, two pool
    processes) on database 15 of the session's redis-server (``redis_url`` flushes only
    database 0), values and outcomes through that Redis; killed when pytest ends."""
    _started_once("celery")
    if "celery" not in _ENGINES:
        _BROKEN["celery"] = "its start raised (see the first test that needed it)"
        broker = f"{request.getfixturevalue('redis_server')}/15"
        here = str(Path(__file__).parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
        }
        worker = celery_worker(broker, "--concurrency", "2", "-O", "fair", env=env)
        request.config.add_cleanup(lambda: stop_worker(worker))
        executor = Celery(broker)
        _warm(executor, str(request.getfixturevalue("tmp_path_factory").mktemp("warm")))
        _ENGINES["celery"] = executor
        del _BROKEN["celery"]
    return _ENGINES["celery"]


@pytest.fixture(scope="session")
def process_pool(tmp_path_factory):
    """One warm ``Processes(2)`` pool shared by the whole session (spawning costs ~0.3 s).

    Each test module binds this fixture, which makes one fixture definition per module;
    they all hand out the same pool, and the first finalizer (at the end of the session)
    shuts it down. Warming makes both workers start before any test relies on
    parallelism: two steps that each wait for the other can only finish once two
    workers run at the same time.
    """
    yield _warm_pool(str(tmp_path_factory.mktemp("warm")))
    while _POOL:
        _POOL.pop().shutdown()


def _make(kind: str, request: pytest.FixtureRequest):
    if kind == "sequential":
        return Sequential()
    if kind == "threads:4":
        return Threads(4)
    if kind == "processes:2":
        return request.getfixturevalue("process_pool")
    if kind == "dask":
        return shared_dask(request)
    if kind == "dask:address":  # the same cluster, through a client of its own
        if kind not in _ENGINES:
            _ENGINES[kind] = Dask(shared_dask(request).client.scheduler.address)
            request.config.add_cleanup(_ENGINES[kind].shutdown)
        return _ENGINES[kind]
    if kind == "ray":
        return shared_ray(request)
    if kind == "celery":
        return shared_celery(request)
    raise AssertionError(f"unknown executor id {kind!r}")


@pytest.fixture(params=EXECUTORS)
def executor(request):
    """An executor object of each kind (the process pool, Dask and Ray are shared and stay
    warm)."""
    made = _make(request.param, request)
    yield made
    if request.param not in SHARED:
        made.shutdown()


@pytest.fixture(params=PARALLEL)
def parallel_executor(request):
    """Only the executors that run steps side by side."""
    made = _make(request.param, request)
    yield made
    if request.param not in SHARED:
        made.shutdown()


@pytest.fixture(params=REMOTE)
def remote_executor(request):
    """Only the executors whose steps run on an engine (Dask, Ray)."""
    return _make(request.param, request)


@pytest.fixture(params=IN_PROCESS)
def in_process_executor(request):
    """Only the executors whose steps run in the caller's process."""
    made = _make(request.param, request)
    yield made
    made.shutdown()


def kind_of(executor) -> str:
    """``"sequential"``, ``"threads"`` or ``"processes"`` for an executor object."""
    if isinstance(executor, Sequential):
        return "sequential"
    if isinstance(executor, Threads):
        return "threads"
    if isinstance(executor, Processes):
        return "processes"
    if isinstance(executor, Dask):
        return "dask"
    if isinstance(executor, Ray):
        return "ray"
    if isinstance(executor, Celery):
        return "celery"
    raise AssertionError(f"unknown executor {executor!r}")


# -- files as cross-process counters and clocks ---------------------------------------


def bump(folder: str | os.PathLike[str], name: str, text: str = "x") -> None:
    """Append one line to ``folder/name`` (a call counter that works across processes)."""
    with open(Path(folder, name), "a", encoding="utf-8") as handle:
        handle.write(f"{text}\n")


def lines(folder: str | os.PathLike[str], name: str) -> list[str]:
    """The lines appended to ``folder/name`` (empty when the file does not exist)."""
    path = Path(folder, name)
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8").splitlines()


def count(folder: str | os.PathLike[str], name: str) -> int:
    """How many times :func:`bump` hit ``folder/name``."""
    return len(lines(folder, name))


def stamp(folder: str | os.PathLike[str], name: str) -> None:
    """Append the current wall-clock time to ``folder/name``."""
    bump(folder, name, repr(time.time()))


def stamps(folder: str | os.PathLike[str], name: str) -> list[float]:
    """The times :func:`stamp` wrote, in order."""
    return [float(line) for line in lines(folder, name)]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment (touching ends do not count)."""
    events = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    events.sort(key=lambda event: (event[0], event[1]))  # an end before a start at a tie
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def interval(result, name: str) -> tuple[float, float]:
    """A step's recorded ``(started, finished)`` as POSIX seconds."""
    record = result.steps[name]
    assert record.started_at is not None, f"{name} has no start time"
    assert record.finished_at is not None, f"{name} has no finish time"
    return record.started_at.timestamp(), record.finished_at.timestamp()


def where() -> str:
    """Where this code runs: ``"<pid>:<thread name>"``."""
    return f"{os.getpid()}:{threading.current_thread().name}"


def ran_on(executor, place: str) -> bool:
    """Whether ``place`` (from :func:`where`) is where ``executor`` runs steps."""
    pid, _, thread = place.partition(":")
    kind = kind_of(executor)
    if kind in ("processes", "dask", "ray", "celery"):
        return int(pid) != os.getpid()
    if int(pid) != os.getpid():
        return False
    if kind == "sequential":
        return thread == threading.main_thread().name
    return thread != threading.main_thread().name


# -- a worker process that dies mid-step (Dask, Ray, Celery) --------------------------


@step
def dies(x):
    """Kill the worker process that runs it."""
    os._exit(1)


@step
def sibling(x):
    return x + 1


def check_a_dying_worker_fails_its_step(executor, error_type: str, *words: str) -> None:
    """``dies`` fails with ``error_type`` (its message naming the step and ``words``), is
    tried once, and its independent ``sibling`` still runs."""
    result = Pipeline([dies, sibling]).run(params={"x": 1}, executor=executor, on_error="continue")
    record = result.steps["dies"]
    assert record.status == "failed"
    assert record.error.type == error_type
    for word in ("dies", *words):
        assert word in record.error.message
    assert record.attempts == 1
    assert result["sibling"] == 2


def check_a_worker_death_is_retried(executor, folder: str | os.PathLike[str]) -> None:
    """A step with ``retries=1`` whose first try kills its worker succeeds on the second
    try, in another process than the caller's."""

    @step(retries=1, backoff=0)
    def dies_once(folder):
        marker = Path(folder, "died")
        if not marker.exists():
            marker.touch()
            os._exit(1)
        return os.getpid()

    result = Pipeline([dies_once]).run(params={"folder": str(folder)}, executor=executor)
    assert result.steps["dies_once"].status == "ok"
    assert result.steps["dies_once"].attempts == 2
    assert result["dies_once"] != os.getpid()


def check_a_worker_death_outside_retry_on_is_not_retried(
    executor, folder: str | os.PathLike[str], error_type: str
) -> None:
    """A worker death is not an error ``retry_on`` names: one call, no retry."""

    @step(retries=2, backoff=0, retry_on=(ValueError,))
    def dies_always(folder):
        bump(folder, "calls")
        os._exit(1)

    result = Pipeline([dies_always]).run(
        params={"folder": str(folder)}, executor=executor, on_error="continue"
    )
    assert result.steps["dies_always"].error.type == error_type
    assert count(folder, "calls") == 1


# -- worker setup and the driver's registrations (Ray, Celery) -------------------------


class Marked:
    """A class with a hasher registered in the driver only (removed after the test)."""


@step
def knows_marked():
    from plait.store import hashing

    return Marked in hashing._CUSTOM


def check_setup_and_registrations_reach_the_workers(make, folder: str | os.PathLike[str]) -> None:
    """The executor ``make(setup)`` runs ``setup`` once per worker process, on every worker
    that ran a step, and a hasher registered in the driver reaches the workers. The
    executor is shut down afterwards (a shared engine it did not start stays up)."""
    from plait.store import hashing

    log = Path(folder, "setup.log")

    def setup():
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")

    hashing.register_hasher(Marked, lambda value: b"marked")
    executor = make(setup)
    try:
        steps = [step(where, name=f"w{i}") for i in range(6)]
        result = Pipeline([*steps, knows_marked]).run(executor=executor)
    finally:
        hashing._CUSTOM.pop(Marked, None)
        executor.shutdown()
    assert result["knows_marked"] is True
    pids = [int(line) for line in log.read_text().split()]
    assert len(pids) == len(set(pids))  # once per worker process
    assert {int(result[f"w{i}"].split(":")[0]) for i in range(6)} <= set(pids)
