"""The Dask executor sends each step to the scheduler as soon as it is submitted.

A ``distributed`` client batches its messages to the scheduler and, after sending one
batch, holds the next until its interval (10 ms) has passed. A chain submits each step
when the previous one's outcome arrives, so that wait used to be most of plait's time per
step on Dask (issue 16). Here the interval is made an hour long: a run whose submissions
waited for it would never finish (the suite's timeout fails it); plait's finishes at once.
"""

from __future__ import annotations

import pytest

import executor_cases
from plait import Pipeline, Step
from plait.executors import Dask

dask_executor = pytest.fixture(name="dask_executor")(executor_cases.shared_dask)


def inc(v: int) -> int:
    return v + 1


def _chain(n: int) -> Pipeline:
    steps = [Step(inc, inputs={"v": "x"}, outputs="s0", name="s0")]
    steps += [
        Step(inc, inputs={"v": f"s{i - 1}"}, outputs=f"s{i}", name=f"s{i}") for i in range(1, n)
    ]
    return Pipeline(steps)


@pytest.fixture
def patient_client(dask_executor):
    """A client of the shared cluster that waits an hour between two batches of messages."""
    from distributed import Client

    client = Client(dask_executor.client.scheduler.address, set_as_default=False)
    client.scheduler_comm.interval = 3600.0
    yield client
    client.scheduler_comm.interval = 0.01  # let closing messages go
    client.close()


def test_a_chain_never_waits_for_the_clients_batching_interval(patient_client):
    result = _chain(5).run(params={"x": 0}, outputs=["s4"], executor=Dask(patient_client))
    assert result["s4"] == 5
    assert [r.status for r in result.steps.values()] == ["ok"] * 5


def test_a_failure_in_the_chain_is_reported_without_waiting_either(patient_client):
    def boom(v: int) -> int:
        raise ValueError(f"no {v}")

    steps = [
        Step(inc, inputs={"v": "x"}, outputs="a", name="a"),
        Step(boom, inputs={"v": "a"}, outputs="b", name="b"),
        Step(inc, inputs={"v": "b"}, outputs="c", name="c"),
    ]
    result = Pipeline(steps).run(
        params={"x": 0}, executor=Dask(patient_client), on_error="continue"
    )
    statuses = {name: record.status for name, record in result.steps.items()}
    assert statuses == {"a": "ok", "b": "failed", "c": "skipped"}
    assert "no 1" in result.steps["b"].error.message
