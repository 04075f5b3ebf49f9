"""The Celery executor: what is particular to Celery.

Behaviour shared with every executor is in the executor-parametrised suite, and what all
remote executors share is in ``test_remote``; both run on the session's real ``celery
worker`` process (prefork, two pool processes) on database 15 of the session's
redis-server. Here: values travel through the shared store and are removed at shutdown,
the ``"celery:redis://…"`` shortcut and the command line, an application object, worker
setup and the driver's registrations on the workers, and the errors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import redis

import executor_cases
from plait import Pipeline, step
from plait.errors import UsageError
from plait.executors import Celery

celery_executor = pytest.fixture(name="celery_executor")(executor_cases.shared_celery)


@step
def payload(n):
    return b"v" * n


@step
def size(payload):
    return len(payload)


def _value_keys(broker: str) -> list[bytes]:
    client = redis.Redis.from_url(broker)
    try:
        return list(client.scan_iter(match="plait-values:*"))
    finally:
        client.close()


def test_values_travel_through_the_store_and_are_removed_at_shutdown(celery_executor):
    broker = celery_executor.broker
    executor = Celery(broker)
    try:
        result = Pipeline([payload, size]).run(params={"n": 100_000}, executor=executor)
        assert result["size"] == 100_000
        mine = [key for key in _value_keys(broker) if executor.id.encode() in key]
        assert len(mine) == 2  # each step's output, in Redis beside the broker's keys
    finally:
        executor.shutdown()
    assert [key for key in _value_keys(broker) if executor.id.encode() in key] == []


def test_the_celery_shortcut_runs_on_the_workers(celery_executor):
    result = Pipeline([payload, size, where_am_i]).run(
        params={"n": 3}, executor=f"celery:{celery_executor.broker}"
    )
    assert result["size"] == 3
    assert int(result["where_am_i"].split(":")[0]) != os.getpid()


def test_a_celery_application_is_accepted(celery_executor):
    import celery

    app = celery.Celery("mine", broker=celery_executor.broker, set_as_current=False)
    executor = Celery(app)
    try:
        assert Pipeline([payload, size]).run(params={"n": 7}, executor=executor)["size"] == 7
    finally:
        executor.shutdown()


def test_a_shared_directory_can_carry_the_values(celery_executor, tmp_path):
    executor = Celery(celery_executor.broker, store=tmp_path / "shared")
    try:
        assert Pipeline([payload, size]).run(params={"n": 9}, executor=executor)["size"] == 9
        assert list((tmp_path / "shared" / "values").rglob("*"))
    finally:
        executor.shutdown()
    assert [p for p in (tmp_path / "shared").rglob("*") if p.is_file()] == []


@step
def where_am_i():
    return executor_cases.where()


def test_worker_setup_and_registrations_reach_the_workers(celery_executor, tmp_path):
    executor_cases.check_setup_and_registrations_reach_the_workers(
        lambda setup: Celery(celery_executor.broker, setup=setup), tmp_path
    )


def test_the_command_line_runs_on_celery(celery_executor, tmp_path):
    from cli_cases import succeeds

    (tmp_path / "flow.py").write_text(
        "from plait import Pipeline, step\n\n"
        "@step\ndef double(x):\n    return 2 * x\n\n"
        "pipeline = Pipeline([double])\n"
    )
    output = succeeds(
        "run",
        "flow.py",
        "-p",
        "x=21",
        "-q",
        "-e",
        f"celery:{celery_executor.broker}",
        cwd=tmp_path,
        PYTHONPATH=str(tmp_path),
    )
    assert "double" in output


# -- errors ---------------------------------------------------------------------------------


def test_without_a_shared_store_the_error_names_the_fix():
    with pytest.raises(UsageError, match=r"is not Redis: give it one every worker can reach"):
        Celery("amqp://guest@127.0.0.1:5672//")


def test_a_broker_is_needed_after_celery():
    with pytest.raises(UsageError, match=r"'celery' needs its broker.*celery:redis://"):
        Pipeline([payload]).run(params={"n": 1}, executor="celery")


def test_celery_takes_an_application_or_a_url():
    with pytest.raises(UsageError, match=r"celery.Celery application or a broker URL.*got 42"):
        Celery(42)


def test_a_missing_celery_package_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "celery", None)  # import celery fails
    with pytest.raises(UsageError, match=r"pip install 'plait\[celery\]'"):
        Celery("redis://127.0.0.1:1/0")


def test_the_worker_module_offers_an_application(celery_executor):
    import subprocess

    completed = subprocess.run(
        [sys.executable, "-c", "import plait.run.celery_executor as m; print(m.app.tasks.keys())"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "plait.run_step" in completed.stdout


class Unpicklable:
    def __reduce__(self):
        raise TypeError("not today")


@step
def unpicklable():
    return Unpicklable()


@step
def consumer(unpicklable):
    return 1


def test_an_output_that_cannot_travel_fails_its_step_by_name(celery_executor):
    result = Pipeline([unpicklable, consumer]).run(executor=celery_executor, on_error="continue")
    record = result.steps["unpicklable"]
    assert record.status == "failed"
    assert record.error.type == "SerializationError"
    assert "step 'unpicklable'" in record.error.message
    assert "shared store" in record.error.message


# -- a worker process that dies ----------------------------------------------------------------


def test_a_worker_process_that_dies_mid_step_fails_the_step(celery_executor):
    executor_cases.check_a_dying_worker_fails_its_step(
        celery_executor, "WorkerLostError", "'dies'", "died"
    )


def test_a_worker_death_is_retried_when_the_step_allows(celery_executor, tmp_path):
    executor_cases.check_a_worker_death_is_retried(celery_executor, tmp_path)


def test_a_worker_death_is_not_retried_when_retry_on_excludes_it(celery_executor, tmp_path):
    executor_cases.check_a_worker_death_outside_retry_on_is_not_retried(
        celery_executor, tmp_path, "WorkerLostError"
    )


# -- signing: a worker with PLAIT_SECRET -------------------------------------------------------


@pytest.fixture(scope="module")
def signed_queue(request):
    """A second real worker, with ``PLAIT_SECRET=s3cret``, on the queue ``"signed"``."""
    broker = executor_cases.shared_celery(request).broker
    env = {**os.environ, "PLAIT_SECRET": "s3cret", "PYTHONPATH": str(Path(__file__).parent)}
    worker = executor_cases.celery_worker(broker, "-Q", "signed", "--concurrency", "1", env=env)
    yield broker
    executor_cases.stop_worker(worker)


@step
def marks(folder):
    Path(folder, "ran").touch()
    return 1


def _signed_run(broker, folder):
    executor = Celery(broker, queue="signed")
    try:
        return Pipeline([marks]).run(
            params={"folder": str(folder)}, executor=executor, on_error="continue"
        )
    finally:
        executor.shutdown()


def test_a_worker_with_a_secret_runs_steps_signed_with_it(signed_queue, tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIT_SECRET", "s3cret")
    result = _signed_run(signed_queue, tmp_path)
    assert result["marks"] == 1


@pytest.mark.parametrize("secret", [None, "another"], ids=["unsigned", "other-secret"])
def test_a_worker_with_a_secret_refuses_other_messages(signed_queue, tmp_path, monkeypatch, secret):
    if secret is None:
        monkeypatch.delenv("PLAIT_SECRET", raising=False)
    else:
        monkeypatch.setenv("PLAIT_SECRET", secret)
    result = _signed_run(signed_queue, tmp_path)
    record = result.steps["marks"]
    assert record.status == "failed"
    assert "not signed with this process's PLAIT_SECRET" in record.error.message
    assert not (tmp_path / "ran").exists()  # the step never ran
