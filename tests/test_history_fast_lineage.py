"""Lineage rows after a ``kill -9`` (issue 16).

Before a step executes, the recorder commits the records of the steps that finished, but
not their lineage rows (``data``), which follow with its next background batch. A run
killed before that batch has records without lineage rows: a reader that finds the run's
process dead writes them again from the records. The child here makes the background
batch never come (``FLUSH_DELAY`` of an hour) and kills itself inside the fourth step,
so the rows of the three finished steps are certainly missing until a reader rebuilds
them.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plait import Store

pytestmark = pytest.mark.faults

CHILD = textwrap.dedent(
    """
    import os
    import signal
    import sys

    import plait.history.recorder
    from plait import Pipeline, Step, Store

    plait.history.recorder.FLUSH_DELAY = 3600.0  # no background batch during the run


    def inc(v):
        return v + 1


    def die(v):
        print("dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


    steps = [Step(inc, inputs={"v": "x"}, outputs=["s0"], name="s0")]
    steps += [Step(inc, inputs={"v": f"s{i - 1}"}, outputs=[f"s{i}"], name=f"s{i}")
              for i in (1, 2)]
    steps.append(Step(die, inputs={"v": "s2"}, outputs=["end"], name="end"))
    Pipeline(steps, name="killed", params={"x": 10}).run(store=Store(sys.argv[1]))
    """
)


def test_a_killed_runs_lineage_is_written_again_from_its_records(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    root = tmp_path / "store"
    child = subprocess.run(
        [sys.executable, str(script), str(root)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "dying" in child.stdout
    # straight from the file: the three records are there, their lineage rows are not
    raw = sqlite3.connect(root / "history.db")
    [(run_id,)] = raw.execute("SELECT run_id FROM runs").fetchall()
    names = {row[0] for row in raw.execute("SELECT name FROM steps WHERE run_id = ?", [run_id])}
    assert names == {"s0", "s1", "s2"}
    assert raw.execute("SELECT COUNT(*) FROM data").fetchall() == [(0,)]
    raw.close()

    store = Store(root)
    history = store.history
    record = history.run(run_id)
    assert record.status == "failed"
    assert "process died" in (record.error or "")
    last = record.steps["s2"].data_versions["s2"]
    assert [(r.run_id, r.name) for r in history.producers(last)] == [(run_id, "s2")]
    assert [r.name for r in history.lineage(last)] == ["s2", "s1", "s0"]
    first = record.steps["s0"].data_versions["s0"]
    assert [r.name for r in history.consumers(first)] == ["s1"]
    rows = history.db.execute("SELECT COUNT(*) FROM data WHERE run_id = ?", [run_id])
    assert rows == [(6,)]  # one out and one in per step (s0 reads the param x)
    store.close()
    # a second reader finds nothing left to do, and no row twice
    again = Store(root)
    assert again.history.db.execute("SELECT COUNT(*) FROM data") == [(6,)]
    again.close()


def test_a_finished_run_writes_every_lineage_row_before_it_returns(tmp_path: Path) -> None:
    from plait import Pipeline, Step
    from plait.history import recorder

    def inc(v):
        return v + 1

    steps = [Step(inc, inputs={"v": "x"}, outputs=["a"], name="a")]
    steps.append(Step(inc, inputs={"v": "a"}, outputs=["b"], name="b"))
    store = Store(tmp_path / "store")
    saved = recorder.FLUSH_DELAY
    recorder.FLUSH_DELAY = 3600.0  # only the run's end writes them
    try:
        result = Pipeline(steps, name="done", params={"x": 1}).run(store=store)
    finally:
        recorder.FLUSH_DELAY = saved
    rows = store.history.db.execute(
        "SELECT step, name, role FROM data WHERE run_id = ? ORDER BY step, role", [result.run_id]
    )
    assert rows == [("a", "x", "in"), ("a", "a", "out"), ("b", "a", "in"), ("b", "b", "out")]
    assert os.getpid() == store.history.run(result.run_id).pid
    store.close()
