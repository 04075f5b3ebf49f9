"""Fault injection for the batched history: ``kill -9`` at seeded random points of a run.

A child process runs a 60-step chain on a real store with its SQLite history: the first
30 steps are cache hits (a warm half, whose records the recorder commits in batches), the
last 30 execute on a cold store. An ``on_step_end`` hook appends each step's name to
``reported`` as it is told; each executed step appends its name to ``started`` as it
begins. The test SIGKILLs the child once ``reported`` holds a seeded number of names, so
the kill lands wherever the run is by then (the last step waits for a file the test
writes only before resuming, so a fast run cannot end before the kill). Then, in this
process:

- every step named in ``reported`` is in the history, ``ok``, with its data versions, and
  its cache entry's artifact loads and holds the right value;
- every step that finished before another step started executing is in the history;
- a resume of the killed run returns the right value and executes no step again that the
  killed run had finished.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from plait import Store

pytestmark = pytest.mark.faults

SEED = 20261207
SIZE = 60
WARM = 30

CHAIN = textwrap.dedent(
    f"""
    import os
    import sys
    import time
    from pathlib import Path

    from plait import Pipeline, Step, Store


    def note(folder, kind, name):
        with open(Path(folder, kind), "a") as handle:
            handle.write(name + "\\n")


    def make(name):
        def inc(v, folder):
            note(folder, "started", name)
            if name == "s{SIZE - 1}":  # the run cannot end before the test kills it
                while not Path(folder, "release").exists():
                    time.sleep(0.005)
            return v + 1

        return Step(inc, inputs={{"v": "x" if name == "s0" else f"s{{int(name[1:]) - 1}}"}},
                    outputs=[name], name=name)


    PIPELINE = Pipeline([make(f"s{{i}}") for i in range({SIZE})], name="batched",
                        params={{"x": 0}})


    class Reporter:
        def __init__(self, folder):
            self.folder = folder

        def on_step_end(self, step_result, run):
            note(self.folder, "reported", step_result.name)


    def main(store, folder, stage):
        store = Store(store)
        if stage == "warm":
            PIPELINE.run(params={{"folder": folder}}, store=store, outputs=["s{WARM - 1}"])
        else:
            PIPELINE.run(params={{"folder": folder}}, store=store, hooks=[Reporter(folder)])
    """
)


def _child(tmp_path: Path, store: Path, folder: Path, stage: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import batched_chain; "
            "batched_chain.main(sys.argv[2], sys.argv[3], sys.argv[4])",
            str(tmp_path),
            str(store),
            str(folder),
            stage,
        ],
        stderr=subprocess.PIPE,
    )


def _names(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _kill_after(tmp_path: Path, reports: int) -> tuple[Path, Path]:
    (tmp_path / "batched_chain.py").write_text(CHAIN)
    folder, store = tmp_path / "work", tmp_path / "store"
    folder.mkdir()
    warm = _child(tmp_path, store, folder, "warm")
    _, err = warm.communicate(timeout=120)
    assert warm.returncode == 0, err.decode()
    child = _child(tmp_path, store, folder, "cold")
    try:
        deadline = time.monotonic() + 120
        while len(_names(folder / "reported")) < reports and child.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    return store, folder


POINTS = sorted(random.Random(SEED).sample(range(1, SIZE), 5))


@pytest.mark.parametrize("reports", POINTS)
def test_every_step_reported_before_a_kill_is_in_the_history_and_its_artifact_loads(
    tmp_path, reports, monkeypatch
):
    store_dir, folder = _kill_after(tmp_path, reports)
    reported = _names(folder / "reported")
    started = _names(folder / "started")
    assert len(reported) >= reports
    store = Store(store_dir)
    try:
        killed = [r for r in store.history.runs() if r.status != "succeeded"]
        assert len(killed) == 1
        assert (killed[0].error or "").startswith("process died")
        steps = store.history.run(killed[0].run_id).steps
        for name in reported:
            record = steps.get(name)
            assert record is not None, f"{name} was reported to a hook but is not recorded"
            assert record.status == "ok"
            assert record.cache_key
            entry = store.lookup(record.cache_key)
            assert entry is not None, f"{name} is recorded but its entry is not in the store"
            assert entry.outputs[name].version == record.data_versions[name]
            assert store.get(entry.outputs[name]) == int(name[1:]) + 1
        # a step that finished before another started executing is recorded too
        for later in started[WARM:] if len(started) > WARM else []:
            earlier = f"s{int(later[1:]) - 1}"
            assert earlier in steps, f"{earlier} finished before {later} started: not recorded"

        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "batched_chain", raising=False)
        import batched_chain

        before = len(started)
        (folder / "release").touch()
        resumed = batched_chain.PIPELINE.resume(killed[0].run_id, store=store)
        assert resumed[f"s{SIZE - 1}"] == SIZE
        again = _names(folder / "started")[before:]
        finished = {n for n in steps if steps[n].status == "ok"}
        assert not finished & set(again), "a step the killed run finished executed again"
    finally:
        store.close()
        sys.modules.pop("batched_chain", None)


class _Witness:
    """A hook that looks in the history database, through its own connection, for each
    step it is told of; and adds a metric to each step after it was recorded."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.missing: list[str] = []
        self.seen: list[str] = []

    def on_step_end(self, step_result, run) -> None:
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.database)) as db:
            rows = db.execute(
                "SELECT status FROM steps WHERE run_id = ? AND name = ?",
                (run.run_id, step_result.name),
            ).fetchall()
        if rows != [("ok",)]:
            self.missing.append(step_result.name)
        self.seen.append(step_result.name)
        step_result.metrics["witnessed"] = len(self.seen)


def _hooked_chain(size: int):
    from plait import Pipeline, Step

    def inc(v: int) -> int:
        return v + 1

    steps = [
        Step(inc, inputs={"v": "x" if i == 0 else f"s{i - 1}"}, outputs=[f"s{i}"], name=f"s{i}")
        for i in range(size)
    ]
    return Pipeline(steps, name="witnessed", params={"x": 0})


@pytest.mark.parametrize("warm", [False, True], ids=["executed", "cache-hits"])
def test_a_hook_is_told_of_a_step_only_once_it_is_committed(tmp_path, warm):
    pipeline = _hooked_chain(40)
    store = Store(tmp_path / "store")
    try:
        if warm:
            pipeline.run(store=store)
        witness = _Witness(tmp_path / "store" / "history.db")
        result = pipeline.run(store=store, hooks=[witness])
        assert all(r.cached for r in result.steps.values()) == warm
        assert len(witness.seen) == 40
        assert witness.missing == []
        # what the hook added after the record was committed is recorded as well
        steps = store.history.run(result.run_id).steps
        assert {n: s.metrics.get("witnessed") for n, s in steps.items()} == {
            f"s{i}": i + 1 for i in range(40)
        }
    finally:
        store.close()
