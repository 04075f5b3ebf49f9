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
from store_cases import store_files

dask_executor = pytest.fixture(name="dask_executor")(executor_cases.shared_dask)


@pytest.fixture
def dask_cluster(request):
    """The shared executor; afterwards, both workers are up again (a test may kill one)."""
    executor = executor_cases.shared_dask(request)
    yield executor
    executor.client.wait_for_workers(2, timeout=60)


sibling = executor_cases.sibling


def test_a_worker_that_dies_mid_step_fails_the_step(dask_cluster):
    executor_cases.check_a_dying_worker_fails_its_step(dask_cluster, "KilledWorker", "died")


def test_a_worker_death_is_retried_when_the_step_allows(dask_cluster, tmp_path):
    executor_cases.check_a_worker_death_is_retried(dask_cluster, tmp_path)


def test_a_worker_death_is_not_retried_when_retry_on_excludes_it(dask_cluster, tmp_path):
    executor_cases.check_a_worker_death_outside_retry_on_is_not_retried(
        dask_cluster, tmp_path, "KilledWorker"
    )


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


# -- registrations and worker setup reach the workers ----------------------------------------

NODES = """
import uuid


class Model:
    def __init__(self, weights):
        self.weights = weights
        self.trained_at = uuid.uuid4().hex  # differs at every training: not the model


def train(n):
    return Model([i * 0.5 for i in range(n)])


def score(train):
    return sum(train.weights)
"""

REGISTERING = """
import json

import nodes
from plait import Pipeline, step
from plait.store.hashing import register_hasher
from plait.store.serializers import register_serializer

register_hasher(nodes.Model, lambda model: model.weights)


class ModelSerializer:
    name = "model"

    def accepts(self, value):
        return isinstance(value, nodes.Model)

    def dumps(self, value):
        return json.dumps(value.weights).encode()

    def loads(self, data):
        return nodes.Model(json.loads(data))


register_serializer(ModelSerializer())
pipeline = Pipeline([step(nodes.train), step(nodes.score)])
"""


def _project(folder: Path) -> Path:
    (folder / "nodes.py").write_text(NODES)
    (folder / "flow.py").write_text(REGISTERING)
    return folder


def _run_json(folder: Path, *args: str) -> dict:
    import json

    from cli_cases import succeeds

    return json.loads(succeeds("run", "flow.py", "-p", "n=4", "--json", "-q", *args, cwd=folder))


def test_hashers_and_serializers_registered_in_the_driver_reach_dask_workers(tmp_path):
    """The reported failure: the steps live in nodes.py (which workers import), the
    registrations in flow.py (which they never import). The model's data version must come
    from its registered hasher (the training stamp left out), on the workers too."""
    folder = _project(tmp_path)
    first = _run_json(folder, "-e", "dask", "--store", "store")
    again = _run_json(folder, "-e", "dask", "--store", "store", "--force", "train")
    assert first["status"] == again["status"] == "succeeded"
    versions = first["steps"]["train"]["data_versions"]
    assert again["steps"]["train"]["data_versions"] == versions
    assert again["steps"]["train"]["cached"] is False
    assert again["steps"]["score"]["cached"] is True  # equal model: its consumer hits
    suffixes = {path.suffix for path in store_files(folder / "store")}  # files and inline
    assert ".model" in suffixes  # written with the registered serializer


def test_a_client_passed_as_the_executor_is_used_and_kept(dask_executor):
    client = dask_executor.client
    result = Pipeline([sibling, where_am_i]).run(params={"x": 1}, executor=client)
    assert result["sibling"] == 2
    assert int(result["where_am_i"].split(":")[0]) != os.getpid()
    assert client.status == "running"
    assert client.submit(int, "5").result() == 5


class Stamp:
    """A class registered with a hasher in this process only (removed after the test)."""

    def __init__(self, value):
        self.value = value


def _wait_for(path: Path, lines: int) -> None:
    import time

    deadline = time.monotonic() + 60
    while not path.exists() or len(path.read_text().split()) < lines:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never had {lines} lines")
        time.sleep(0.01)


def test_worker_setup_runs_once_on_every_worker_including_one_that_joins_later(tmp_path):
    import threading

    import dask
    from distributed import Client, LocalCluster

    from plait.store import hashing

    log = tmp_path / "setup.log"

    def setup():
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")

    @step
    def gate(folder):
        _wait_for(Path(folder, "joined"), 1)
        return 1

    @step
    def after(gate, folder):
        return gate + 1

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
    client = Client(cluster, set_as_default=False)
    hashing.register_hasher(Stamp, lambda stamp: stamp.value)
    try:
        executor = Dask(client, setup=setup)
        box = {}

        def run():
            pipeline = Pipeline([gate, after])
            box["result"] = pipeline.run(params={"folder": str(tmp_path)}, executor=executor)

        runner = threading.Thread(target=run)
        runner.start()
        _wait_for(log, 1)  # the first worker is set up and the run has started
        cluster.scale(2)
        client.wait_for_workers(2, timeout=60)
        (tmp_path / "joined").write_text("go\n")
        runner.join(timeout=60)
        assert box["result"]["after"] == 2
        worker_pids = set(client.run(os.getpid).values())
        assert len(worker_pids) == 2
        assert sorted(map(int, log.read_text().split())) == sorted(worker_pids)  # once each
        registered = client.run(lambda: Stamp in hashing._CUSTOM)
        assert list(registered.values()) == [True, True]
    finally:
        hashing._CUSTOM.pop(Stamp, None)
        client.close()
        cluster.close()


def test_a_worker_setup_string_names_a_function():
    with pytest.raises(UsageError, match=r"'nowhere': write it as 'module:function'"):
        Dask(setup="nowhere")
    with pytest.raises(UsageError, match=r"cannot import module 'no_such_module_x'"):
        Dask(setup="no_such_module_x:setup")
    with pytest.raises(UsageError, match=r"module 'os' has no function 'nothing_here'"):
        Dask(setup="os:nothing_here")


SETUP_MODULE = """
import os


def configure():
    with open("setup.log", "a") as handle:
        handle.write(f"{os.getpid()}\\n")
"""

SIMPLE_FLOW = """
import os

from plait import Pipeline, step


@step
def pid():
    return os.getpid()


pipeline = Pipeline([pid])
"""


def test_the_command_line_runs_the_worker_setup_on_the_workers(tmp_path):
    import json

    from cli_cases import succeeds

    (tmp_path / "workers.py").write_text(SETUP_MODULE)
    (tmp_path / "flow.py").write_text(SIMPLE_FLOW)
    args = ("run", "flow.py", "-e", "dask", "--json", "-q")
    output = succeeds(*args, "--worker-setup", "workers:configure", cwd=tmp_path)
    assert json.loads(output)["status"] == "succeeded"
    first = (tmp_path / "setup.log").read_text().split()
    assert first  # each worker of the local cluster, once
    assert len(first) == len(set(first))
    (tmp_path / "pyproject.toml").write_text('[tool.plait]\nworker_setup = "workers:configure"\n')
    again = succeeds(*args, "--force", cwd=tmp_path)  # not a cache hit: the step runs
    assert len((tmp_path / "setup.log").read_text().split()) == 2 * len(first), again


def test_a_bad_worker_setup_on_the_command_line_is_a_clear_error(tmp_path):
    from cli_cases import plait

    (tmp_path / "flow.py").write_text(SIMPLE_FLOW)
    completed = plait("run", "flow.py", "--worker-setup", "nowhere_at_all:fn", cwd=tmp_path)
    assert completed.returncode == 2
    assert "cannot import module 'nowhere_at_all'" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
def test_a_spaceflights_project_runs_again_and_again_on_a_local_cluster(tmp_path):
    """The project of the report (pandas, scikit-learn, a matplotlib figure; hashers
    registered in pipeline.py only) through ``plait run -e dask``: a bounded version of
    ``benchmarks/soak_spaceflights.py`` (20 runs)."""
    from spaceflights_case import write_project

    folder = write_project(tmp_path / "spaceflights")
    args = ("--store", ".plait", "-e", "dask")
    runs = [
        _run_target(folder, *args),
        _run_target(folder, *args),
        _run_target(folder, *args, "--force"),
    ]
    assert [run["status"] for run in runs] == ["succeeded"] * 3
    assert all(step["cached"] for step in runs[1]["steps"].values())
    assert not any(step["cached"] for step in runs[2]["steps"].values())
    for name in ("train_model", "evaluate_model", "plot_predictions"):  # registered hashers
        assert runs[2]["steps"][name]["data_versions"] == runs[0]["steps"][name]["data_versions"]


def _run_target(folder: Path, *args: str) -> dict:
    import json

    from cli_cases import succeeds

    return json.loads(succeeds("run", "pipeline.py", "--json", "-q", *args, cwd=folder))


def test_the_command_line_shows_no_dask_info_logs_without_verbose(tmp_path):
    # distributed sets its own loggers to INFO: its records (and the tracebacks it logs at
    # INFO when a connection closes at shutdown) reached plait's stderr handler
    from cli_cases import plait

    (tmp_path / "flow.py").write_text(SIMPLE_FLOW)
    quiet = plait("run", "flow.py", "-e", "dask", "-q", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "distributed." not in quiet.stderr
    verbose = plait("run", "flow.py", "-e", "dask", "-q", "-v", "--force", cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert "INFO distributed.scheduler" in verbose.stderr  # -v shows them
