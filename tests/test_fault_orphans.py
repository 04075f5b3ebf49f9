"""Fault injection: a ``processes`` run whose parent is SIGKILLed leaves no worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.faults

_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from plait import Pipeline, step

    @step
    def slow(folder: str, i: int) -> int:
        Path(folder, f"worker-{os.getpid()}").touch()
        time.sleep(120)
        return i

    if __name__ == "__main__":
        items = Pipeline([slow.with_options(map="i")])
        items.run(params={"folder": sys.argv[1], "i": [1, 2]}, executor="processes:2")
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_killing_the_parent_of_a_processes_run_ends_its_workers(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("worker-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
        assert len(workers) == 2, "the workers never started their steps"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # do not leave them running after a failure
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"workers {left} outlived their killed parent"
