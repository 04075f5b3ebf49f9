"""The Dask executor: what is particular to Dask.

Behaviour shared with every executor is in the executor-parametrised suite, and what all
remote executors share is in ``test_remote``; both run on the session's ``LocalCluster``
(two worker processes, one thread each, ``allowed-failures`` 0). Here: a worker that dies
mid-step, the cluster the ``"dask"`` shortcut starts and closes, a scheduler address or a
client given by the caller (never closed), and the install hint.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import pytest

import executor_cases
from plait import Pipeline, step
from plait.errors import UsageError
from plait.executors import Dask

dask_executor = pytest.fixture(name="dask_executor")(executor_cases.shared_dask)


@pytest.fixture
def dask_cluster(request):
    """The shared executor; afterwards, both workers are up again (a test may kill one)."""
    executor = executor_cases.shared_dask(request)
    yield executor
    executor.client.wait_for_workers(2, timeout=60)


@step
def dies(x):
    os._exit(1)


@step
def sibling(x):
    return x + 1


def test_a_worker_that_dies_mid_step_fails_the_step(dask_cluster):
    result = Pipeline([dies, sibling]).run(
        params={"x": 1}, executor=dask_cluster, on_error="continue"
    )
    record = result.steps["dies"]
    assert record.status == "failed"
    assert record.error.type == "KilledWorker"
    assert "dies" in record.error.message
    assert "died" in record.error.message
    assert record.attempts == 1
    assert result["sibling"] == 2


def test_a_worker_death_is_retried_when_the_step_allows(dask_cluster, tmp_path):
    @step(retries=1, backoff=0)
    def dies_once(folder):
        marker = Path(folder, "died")
        if not marker.exists():
            marker.touch()
            os._exit(1)
        return os.getpid()

    result = Pipeline([dies_once]).run(params={"folder": str(tmp_path)}, executor=dask_cluster)
    assert result.steps["dies_once"].status == "ok"
    assert result.steps["dies_once"].attempts == 2
    assert result["dies_once"] != os.getpid()


def test_a_worker_death_is_not_retried_when_retry_on_excludes_it(dask_cluster, tmp_path):
    @step(retries=2, backoff=0, retry_on=(ValueError,))
    def dies_always(folder):
        executor_cases.bump(folder, "calls")
        os._exit(1)

    result = Pipeline([dies_always]).run(
        params={"folder": str(tmp_path)}, executor=dask_cluster, on_error="continue"
    )
    assert result.steps["dies_always"].error.type == "KilledWorker"
    assert executor_cases.count(tmp_path, "calls") == 1


# -- the cluster: started and closed, or given and kept -------------------------------------


@step
def where_am_i():
    return executor_cases.where()


def test_the_dask_shortcut_starts_a_local_cluster_and_closes_it(dask_executor):
    before = {p.pid for p in multiprocessing.active_children()}
    result = Pipeline([where_am_i]).run(executor="dask")
    assert int(result["where_am_i"].split(":")[0]) != os.getpid()
    left_over = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert left_over == []
    assert result.steps["where_am_i"].status == "ok"


def test_a_scheduler_address_is_used_and_left_running(dask_executor):
    address = dask_executor.client.scheduler.address
    result = Pipeline([sibling]).run(params={"x": 41}, executor=f"dask:{address}")
    assert result["sibling"] == 42
    assert dask_executor.client.submit(int, "7").result() == 7  # the cluster still serves


def test_an_executor_on_an_address_reconnects_after_shutdown(dask_executor):
    executor = Dask(dask_executor.client.scheduler.address)
    try:
        assert Pipeline([sibling]).run(params={"x": 1}, executor=executor)["sibling"] == 2
        executor.shutdown()
        assert Pipeline([sibling]).run(params={"x": 2}, executor=executor)["sibling"] == 3
    finally:
        executor.shutdown()
    assert dask_executor.client.submit(int, "8").result() == 8


def test_a_given_client_is_never_closed(dask_executor):
    client = dask_executor.client
    executor = Dask(client)
    Pipeline([sibling]).run(params={"x": 1}, executor=executor)
    executor.shutdown()
    assert client.status == "running"
    assert client.submit(int, "9").result() == 9


# -- errors ---------------------------------------------------------------------------------


def test_a_missing_distributed_package_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(UsageError, match=r"pip install 'plait\[dask\]'"):
        Dask()
    with pytest.raises(UsageError, match=r"pip install 'plait\[dask\]'"):
        Pipeline([sibling]).run(params={"x": 1}, executor="dask")


def test_a_worker_count_after_dask_is_refused_with_the_address_form():
    with pytest.raises(UsageError, match=r"'dask:4'.*cluster address, like 'dask:tcp://"):
        Pipeline([sibling]).run(params={"x": 1}, executor="dask:4")


def test_dask_takes_a_client_an_address_or_nothing():
    with pytest.raises(UsageError, match=r"distributed.Client, a scheduler address.*got 42"):
        Dask(42)  # type: ignore[arg-type]
