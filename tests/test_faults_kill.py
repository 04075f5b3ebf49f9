"""Fault injection: ``kill -9`` at chosen points of a run, then resume in a new process.

A child process runs :func:`store_cases.fault_pipeline` (seven steps, every artifact kind)
on a real store with its SQLite history. The step picked by a seeded RNG waits on a file
(``block-<step>``); once it says it is waiting, the test SIGKILLs the child (and then its
process group, so no worker outlives it). A second child resumes the run by its id.
Then:

- the resumed values equal a clean computation's;
- every step the killed run had recorded as finished is not executed again (call
  counter files), and every step the blocked one depends on was among them;
- a warm run in this process hits every step and returns the same values, so no partial
  artifact or entry was left where a reader would take it;
- nothing outside the store and the work folder was touched.

Kills *during* a write are made deterministic by wrapping ``open`` / ``os.replace`` /
``SQLiteIndex.put`` in the child (the artifact's temporary file is half written, or
complete but not renamed, or the artifact is published but its entry is not, when the
child is killed), and a kill among a stream of map-element writes (artifacts, entries,
history rows interleaved) lands wherever the stream is when the progress file reaches a
seeded length: every assertion holds wherever it lands.
"""

from __future__ import annotations

import contextlib
import json
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
from store_cases import (
    FAULT_STEPS,
    ancestors,
    big_pipeline,
    count,
    fault_expected,
    fault_pipeline,
    same_outputs,
    snapshot,
    stream_pipeline,
)

pytestmark = pytest.mark.faults

TESTS = Path(__file__).parent
SEED = 20261206
N = 6
EXECUTORS = ("sequential", "threads:2", "processes:2")


def _kill_points() -> list[tuple[str, int]]:
    rng = random.Random(SEED)
    return [(executor, k) for executor in EXECUTORS for k in sorted(rng.sample(range(1, 7), 2))]


PREAMBLE = f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"

RUN = PREAMBLE + textwrap.dedent(
    """
    from plait import Store
    from store_cases import fault_pipeline
    root, folder, executor, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    fault_pipeline().run(params={"n": n, "folder": folder}, store=Store(root), executor=executor)
    """
)

RESUME = PREAMBLE + textwrap.dedent(
    """
    import json
    from plait import Store
    from store_cases import fault_expected, fault_pipeline, same_outputs
    root, executor, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(root)
    [record] = store.history.runs()
    result = fault_pipeline().resume(record.run_id, store=store, executor=executor)
    print(json.dumps({
        "wrong": same_outputs(result.outputs, fault_expected(n)),
        "cached": sorted(name for name, s in result.steps.items() if s.cached),
        "origin": store.history.run(result.run_id).origin_run_id == record.run_id,
    }))
    store.close()
    """
)


@contextlib.contextmanager
def _child(args: list[str]):
    """A child in its own process group; whatever happens, the group is killed after."""
    child = subprocess.Popen(
        [sys.executable, "-c", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield child
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)


def _wait_for(child: subprocess.Popen[bytes], ready, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if child.poll() is not None:
            raise AssertionError(f"the child ended before {what}: {child.stderr.read().decode()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _sigkill(child: subprocess.Popen[bytes]) -> None:
    """``kill -9`` the child itself, then (after it is gone) its process group."""
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def _finished_steps(root: Path) -> set[str]:
    store = Store(root)
    try:
        [record] = store.history.runs()
        steps = store.history.run(record.run_id).steps
        return {name for name, s in steps.items() if s.status == "ok"}
    finally:
        store.close()


def _warm_check(root: Path, folder: Path, calls_before: dict[str, int]) -> None:
    """A warm run here hits every step, returns the right values and executes nothing."""
    store = Store(root)
    try:
        result = fault_pipeline().run(params={"n": N, "folder": str(folder)}, store=store)
        assert same_outputs(result.outputs, fault_expected(N)) == []
        assert {name: s.cached for name, s in result.steps.items()} == dict.fromkeys(
            FAULT_STEPS, True
        )
    finally:
        store.close()
    assert {name: count(folder, name) for name in FAULT_STEPS} == calls_before


def _layout(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[int, int]]]:
    (tmp_path / "neighbour.txt").write_text("leave me alone")
    root, folder = tmp_path / "store", tmp_path / "work"
    folder.mkdir()
    return root, folder, snapshot(tmp_path, skip=(root, folder))


def _resume(root: Path, executor: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", RESUME, str(root), executor, str(N)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "database is locked" not in done.stderr
    summary: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return summary


@pytest.mark.parametrize(
    ("executor", "k"),
    _kill_points(),
    ids=[f"{e}-seed{SEED}-k{k}" for e, k in _kill_points()],
)
def test_kill_9_after_step_k_then_resume_recomputes_only_what_had_not_finished(
    tmp_path, executor, k
):
    root, folder, outside = _layout(tmp_path)
    blocked = FAULT_STEPS[k]
    (folder / f"block-{blocked}").touch()
    with _child([RUN, str(root), str(folder), executor, str(N)]) as child:
        _wait_for(child, (folder / f"blocked-{blocked}").exists, f"step {blocked} to block")
        _sigkill(child)
    finished = _finished_steps(root)
    assert ancestors(blocked) <= finished, "a step that had finished was not recorded"
    assert blocked not in finished
    (folder / f"block-{blocked}").unlink()
    calls = {name: count(folder, name) for name in FAULT_STEPS}

    summary = _resume(root, executor)
    assert summary["wrong"] == []
    assert summary["origin"] is True
    after = {name: count(folder, name) for name in FAULT_STEPS}
    assert {name: after[name] for name in finished} == {name: calls[name] for name in finished}
    assert set(summary["cached"]) >= finished  # type: ignore[arg-type]
    assert after[blocked] == calls[blocked] + 1
    assert all(after[name] >= 1 for name in FAULT_STEPS)
    _warm_check(root, folder, after)
    assert snapshot(tmp_path, skip=(root, folder)) == outside


# -- kill during a write -------------------------------------------------------------------

BIG = PREAMBLE + textwrap.dedent(
    """
    import os
    from pathlib import Path
    import time
    import plait.store.backends as backends
    from plait.store.index import SQLiteIndex
    from plait import Store
    from store_cases import big_pipeline

    root, folder, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    def stall():
        Path(folder, "writing").touch()
        time.sleep(120)

    real_open, real_replace = open, os.replace

    class HalfWriter:  # writes half the bytes, then stalls: killed mid-write
        def __init__(self, handle):
            self.handle = handle
        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            stall()
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.handle.close()

    def hooked_open(path, mode_="r", *args, **kwargs):
        handle = real_open(path, mode_, *args, **kwargs)
        if mode == "mid-write" and "/objects/" in str(path) and "w" in mode_:
            return HalfWriter(handle)
        return handle

    def hooked_replace(src, dst):
        if mode == "before-rename" and "/objects/" in str(dst):
            stall()
        return real_replace(src, dst)

    real_put = SQLiteIndex.put

    def hooked_put(self, key, data):
        if mode == "before-entry":  # the artifacts are published, the entry is not
            stall()
        return real_put(self, key, data)

    backends.open = hooked_open
    backends.os.replace = hooked_replace
    SQLiteIndex.put = hooked_put

    big_pipeline().run(params={"folder": folder}, store=Store(root))
    """
)


@pytest.mark.parametrize("mode", ["mid-write", "before-rename", "before-entry"])
def test_kill_9_while_a_value_is_stored_leaves_nothing_a_reader_takes(tmp_path, mode):
    root, folder, outside = _layout(tmp_path)
    with _child([BIG, str(root), str(folder), mode]) as child:
        _wait_for(child, (folder / "writing").exists, "the artifact write to start")
        _sigkill(child)
    written = [p for p in (root / "objects").rglob("*") if p.is_file()]
    assert written
    if mode == "before-entry":  # a complete artifact that no entry points at
        assert not any(p.name.endswith(".tmp") for p in written)
    else:  # only the torn temporary file
        assert all(p.name.endswith(".tmp") for p in written)
    store = Store(root)
    try:
        result = big_pipeline().run(params={"folder": str(folder)}, store=store)
        assert result["total"] == float(sum(range(2_000_000)))
        assert count(folder, "big") == 2  # nothing was stored: computed again
        again = big_pipeline().run(params={"folder": str(folder)}, store=store)
        assert again.steps["big"].cached
        assert again.steps["total"].cached
        assert again["big"].shape == (2_000_000,)
    finally:
        store.close()
    assert snapshot(tmp_path, skip=(root, folder)) == outside


STREAM = PREAMBLE + textwrap.dedent(
    """
    from plait import Store
    from store_cases import stream_pipeline

    root, folder = sys.argv[1], sys.argv[2]

    stream_pipeline().run(
        params={"items": list(range(400)), "folder": folder}, store=Store(root)
    )
    """
)


STREAM_POINTS = sorted(random.Random(SEED + 1).sample(range(20, 380), 2))


@pytest.mark.parametrize(
    "after", STREAM_POINTS, ids=[f"seed{SEED + 1}-after{a}" for a in STREAM_POINTS]
)
def test_kill_9_among_a_stream_of_entry_and_artifact_writes(tmp_path, after):
    root, folder, outside = _layout(tmp_path)
    progress = folder / "progress"

    def far_enough() -> bool:
        return progress.exists() and progress.read_text().count("\n") >= after

    with _child([STREAM, str(root), str(folder)]) as child:
        _wait_for(child, far_enough, f"{after} elements")
        _sigkill(child)
    done_before = progress.read_text().count("\n")
    progress.unlink()
    params = {"items": list(range(400)), "folder": str(folder)}
    store = Store(root)
    try:
        result = stream_pipeline().run(params=params, store=store)
        assert result["gathered"] == sum(range(400))
        assert result["element"] == [
            {"item": i, "payload": list(range(i % 50))} for i in range(400)
        ]
        recomputed = progress.read_text().count("\n")
        assert recomputed < 400  # elements stored before the kill were reused
        assert recomputed >= 400 - done_before
        progress.unlink()
        again = stream_pipeline().run(params=params, store=store)
        assert again.steps["element"].cached
        assert again["gathered"] == sum(range(400))
        assert not progress.exists()
    finally:
        store.close()
    assert snapshot(tmp_path, skip=(root, folder)) == outside
