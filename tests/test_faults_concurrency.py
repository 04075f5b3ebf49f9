"""Fault injection: several writers on one store and one SQLite history at once.

Four processes run :func:`store_cases.fault_pipeline` on the same store at the same time
(three with the same params, so their steps overlap and race to write the same entries and
artifacts; one with other params), released together through a file. Then threads of one
process share a single :class:`Store`. Every run must finish with the right values, no
"database is locked" may escape, and the history must list every run with all its steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from plait import Store
from store_cases import FAULT_STEPS, fault_expected, fault_pipeline, same_outputs, snapshot

pytestmark = pytest.mark.faults

TESTS = Path(__file__).parent

WORKER = f"import sys; sys.path.insert(0, {str(TESTS)!r})\n" + textwrap.dedent(
    """
    import json, os, time
    from plait import Store
    from store_cases import fault_expected, fault_pipeline, same_outputs

    root, folder, go, executor, n = sys.argv[1:6]
    n = int(n)
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    wrong, ids = [], []
    for _ in range(2):
        store = Store(root)
        result = fault_pipeline().run(
            params={"n": n, "folder": folder}, store=store, executor=executor
        )
        wrong += same_outputs(result.outputs, fault_expected(n))
        ids.append(result.run_id)
        store.close()
    print(json.dumps({"wrong": wrong, "runs": ids}))
    """
)

# (executor, n): three overlap on n=5, one has its own keys
WORKERS = [("sequential", 5), ("threads:2", 5), ("processes:2", 5), ("sequential", 7)]


def test_processes_running_one_pipeline_on_one_store_and_history(tmp_path):
    (tmp_path / "neighbour.txt").write_text("leave me alone")
    root, folder = tmp_path / "store", tmp_path / "work"
    folder.mkdir()
    go = folder / "go"
    outside = snapshot(tmp_path, skip=(root, folder))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(root), str(folder), str(go), executor, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for executor, n in WORKERS
    ]
    go.touch()
    reports = []
    for child in children:
        try:
            out, err = child.communicate(timeout=120)
        finally:
            child.kill()
        assert child.returncode == 0, err
        assert "locked" not in err
        reports.append(json.loads(out.splitlines()[-1]))
    assert [r["wrong"] for r in reports] == [[]] * len(WORKERS)
    run_ids = {run_id for r in reports for run_id in r["runs"]}
    assert len(run_ids) == 2 * len(WORKERS)

    store = Store(root)
    try:
        listed = {record.run_id: record for record in store.history.runs(limit=None)}
        assert set(listed) == run_ids
        for run_id in run_ids:
            record = store.history.run(run_id)
            assert record.status == "succeeded"
            assert {name: s.status for name, s in record.steps.items()} == dict.fromkeys(
                FAULT_STEPS, "ok"
            )
        for n in (5, 7):  # every entry is complete and right
            result = fault_pipeline().run(params={"n": n, "folder": str(folder)}, store=store)
            assert same_outputs(result.outputs, fault_expected(n)) == []
            assert all(s.cached for s in result.steps.values())
    finally:
        store.close()
    assert not [p for p in root.rglob("*.tmp")]
    assert snapshot(tmp_path, skip=(root, folder)) == outside


def test_threads_sharing_one_store_object(tmp_path):
    root, folder = tmp_path / "store", tmp_path / "work"
    folder.mkdir()
    store = Store(root)
    params = [5, 5, 6, 5, 7, 6]
    barrier = threading.Barrier(len(params), timeout=60)
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def run(index: int, n: int) -> None:
        try:
            barrier.wait()
            results[index] = fault_pipeline().run(
                params={"n": n, "folder": str(folder)}, store=store, executor="threads:2"
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(params)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert errors == []
        assert all(not thread.is_alive() for thread in threads)
        for index, n in enumerate(params):
            result = results[index]
            assert same_outputs(result.outputs, fault_expected(n)) == []  # type: ignore[attr-defined]
        run_ids = {result.run_id for result in results.values()}  # type: ignore[attr-defined]
        listed = {record.run_id for record in store.history.runs(limit=None)}
        assert listed == run_ids
        for run_id in run_ids:
            record = store.history.run(run_id)
            assert record.status == "succeeded"
            assert set(record.steps) == set(FAULT_STEPS)
    finally:
        store.close()
