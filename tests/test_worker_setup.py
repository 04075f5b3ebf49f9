"""Worker setup and the driver's registrations on the local executors.

Dask (a worker that joins during a run), Ray and Celery are in their own test modules;
here: a process pool runs the setup once per worker process and gets the driver's hashers,
and the command line's ``--worker-setup`` with an executor that runs steps in its own
process runs the setup once there.
"""

from __future__ import annotations

import os

from plait import Pipeline, step
from plait.executors import Processes
from plait.store import hashing


class Tagged:
    """Registered with a hasher in this process only (removed after the test)."""


def _where(i):
    return os.getpid()


def _knows_tagged():
    return Tagged in hashing._CUSTOM


def test_a_process_pool_runs_the_setup_once_per_worker_with_the_drivers_hashers(tmp_path):
    log = tmp_path / "setup.log"

    def setup():
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")

    hashing.register_hasher(Tagged, lambda value: b"tagged")
    pool = Processes(2, setup=setup)
    try:
        steps = [step(_where, name=f"w{i}", inputs={"i": "n"}) for i in range(6)]
        result = Pipeline([*steps, step(_knows_tagged, name="knows")]).run(
            params={"n": 0}, executor=pool
        )
    finally:
        hashing._CUSTOM.pop(Tagged, None)
        pool.shutdown()
    assert result["knows"] is True
    pids = [int(line) for line in log.read_text().split()]
    assert len(pids) == len(set(pids))  # once per worker process
    assert {result[f"w{i}"] for i in range(6)} <= set(pids)
    assert os.getpid() not in pids


def test_the_command_line_runs_the_setup_here_for_a_local_executor(tmp_path):
    from cli_cases import succeeds

    (tmp_path / "workers.py").write_text(
        "import os\n\ndef configure():\n"
        "    with open('setup.log', 'a') as handle:\n"
        "        handle.write(f'{os.getpid()}\\n')\n"
    )
    (tmp_path / "flow.py").write_text(
        "import os\nfrom plait import Pipeline, step\n\n"
        "@step\ndef pid():\n    return os.getpid()\n\npipeline = Pipeline([pid])\n"
    )
    output = succeeds(
        "run", "flow.py", "-e", "threads:2", "--worker-setup", "workers:configure", cwd=tmp_path
    )
    (setup_pid,) = (tmp_path / "setup.log").read_text().split()
    assert f"pid = {setup_pid}" in output  # the step ran in the process that was set up
