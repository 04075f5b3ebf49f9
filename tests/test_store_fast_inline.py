"""Small artifacts kept inline in a local store's ``index.db`` (issue 16).

An artifact of at most ``INLINE_MAX`` bytes is written in the same SQLite transaction as
the entry that names it; larger ones stay files. These tests check where each kind goes,
that every reader finds both kinds (load, doctor, gc, clear), that damage to an inline
artifact is found like damage to a file, and that ``kill -9`` in the middle of the
inline transaction leaves neither an entry nor a half-written artifact.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from plait import Pipeline, step
from plait.store.doctor import check, repair
from plait.store.store import INLINE_MAX, Store
from store_cases import CALLS, InlineArtifact, count, damage, inline_artifacts, store_files

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.reset()


@step
def small(n):
    CALLS.hit("small")
    return list(range(n))


@step
def large(n):
    CALLS.hit("large")
    return "x" * (INLINE_MAX + n)  # just over the limit: a file


@step
def joined(small, large):
    CALLS.hit("joined")
    return len(small) + len(large)


def _pipeline() -> Pipeline:
    return Pipeline([small, large, joined], name="inline")


def _run(root: Path, n: int = 3, **options):
    with Store(root, **options) as store:
        return _pipeline().run(params={"n": n}, store=store)


def _files(root: Path) -> list[Path]:
    return [p for p in store_files(root) if not isinstance(p, InlineArtifact)]


def test_small_artifacts_are_inline_and_large_ones_files(tmp_path):
    root = tmp_path / "store"
    assert _run(root)["joined"] == 3 + INLINE_MAX + 3
    assert len(inline_artifacts(root)) == 2  # small and joined
    [file] = _files(root)
    assert file.suffix == ".json"
    assert file.stat().st_size > INLINE_MAX
    CALLS.reset()
    again = _run(root)
    assert all(record.cached for record in again.steps.values())
    assert again["small"] == [0, 1, 2]  # loaded from index.db
    assert again["large"] == "x" * (INLINE_MAX + 3)  # loaded from its file
    assert CALLS.total() == 0


@pytest.mark.parametrize("how", ["flip", "truncate", "garbage"])
def test_a_damaged_inline_artifact_is_recomputed_and_rewritten(tmp_path, how):
    root = tmp_path / "store"
    _run(root)
    [target] = [a for a in inline_artifacts(root) if a.read_bytes() == b"[0,1,2]"]
    damage(target, how)  # type: ignore[arg-type]
    CALLS.reset()
    result = _run(root)
    assert result["small"] == [0, 1, 2]
    assert result["joined"] == 3 + INLINE_MAX + 3
    assert CALLS["small"] == 1
    assert target.read_bytes() == b"[0,1,2]"  # written again
    CALLS.reset()
    assert all(r.cached for r in _run(root).steps.values())


def test_a_signed_store_signs_inline_artifacts_and_refuses_replaced_ones(tmp_path):
    root = tmp_path / "store"
    _run(root, secret="k")
    [target] = [a for a in inline_artifacts(root) if a.read_bytes() == b"[0,1,2]"]
    target.write_bytes(b"[7,7,7]")  # same size: only the checksum and signature differ
    CALLS.reset()
    assert _run(root, secret="k")["small"] == [0, 1, 2]
    assert CALLS["small"] == 1


def test_doctor_finds_and_repairs_damaged_missing_and_orphaned_inline_artifacts(tmp_path):
    root = tmp_path / "store"
    _run(root, n=3)
    _run(root, n=4)
    inline = {a.read_bytes(): a for a in inline_artifacts(root)}
    damage(inline[b"[0,1,2]"], "flip")  # type: ignore[arg-type]
    inline[b"[0,1,2,3]"].unlink()
    orphan = InlineArtifact(root / "index.db", "objects/ab/" + "ab" * 16 + ".json")
    orphan.write_bytes(b"[1]")
    with Store(root) as store:
        kinds = sorted(p.kind for p in check(store).problems)
        assert kinds == ["artifact-damaged", "artifact-missing", "orphan"]
        report = repair(store)
    assert report.healthy, report.problems
    assert not orphan.exists()
    CALLS.reset()
    assert _run(root, n=3)["small"] == [0, 1, 2]
    assert _run(root, n=4)["small"] == [0, 1, 2, 3]
    assert CALLS["small"] == 2  # the two dropped entries, recomputed
    with Store(root) as store:
        assert check(store).healthy


def test_gc_and_clear_remove_inline_artifacts(tmp_path):
    root = tmp_path / "store"
    _run(root, n=3)
    orphan = InlineArtifact(root / "index.db", "objects/cd/" + "cd" * 16 + ".json")
    orphan.write_bytes(b"[1]")
    with Store(root) as store:
        assert store.gc()["artifacts"] == 1
        assert not orphan.exists()
        assert len(inline_artifacts(root)) == 2
        assert store.clear() >= 3
    assert inline_artifacts(root) == []
    assert _files(root) == []


def test_a_lost_index_adopts_the_artifact_files_again(tmp_path):
    root = tmp_path / "store"
    _run(root)
    (root / "index.db").unlink()
    with Store(root) as store:
        report = repair(store)
    assert "rebuilt the index: 1 entries" in " ".join(report.actions)
    CALLS.reset()
    result = _run(root)
    assert result.steps["large"].cached  # its file was adopted
    assert not result.steps["small"].cached  # inline: it went with the index
    assert result["joined"] == 3 + INLINE_MAX + 3


def test_an_index_of_an_earlier_version_gets_its_artifacts_table_when_written(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    with contextlib.closing(sqlite3.connect(root / "index.db")) as connection:
        connection.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, data BLOB NOT NULL)")
    with Store(root) as store:
        assert store.inline_artifact_paths() == []
    assert _run(root)["small"] == [0, 1, 2]
    assert len(inline_artifacts(root)) == 2


# -- kill -9 inside the inline transaction -----------------------------------------------------

KILLED = f"import sys; sys.path.insert(0, {str(TESTS)!r})\n" + textwrap.dedent(
    """
    import time
    from pathlib import Path
    import plait.store.index as index
    from plait import Pipeline, Store, step
    from store_cases import bump

    root, folder, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    real_db = index.SQLiteIndex._db

    class Stalling:  # the connection, stalled at one statement of the entry's transaction
        def __init__(self, connection):
            self.connection = connection
        def execute(self, sql, *args):
            entry = sql.startswith("INSERT INTO entries")
            if (mode == "before-entry" and entry) or (mode == "before-commit" and sql == "COMMIT"):
                if Path(folder, "first-done").exists():
                    Path(folder, "writing").touch()
                    time.sleep(120)
            return self.connection.execute(sql, *args)
        def __getattr__(self, name):
            return getattr(self.connection, name)

    def hooked_db(self):
        return Stalling(real_db(self))

    index.SQLiteIndex._db = hooked_db

    @step
    def first(folder):
        bump(folder, "first")
        return [1, 2, 3]

    @step
    def second(first, folder):
        bump(folder, "second")
        Path(folder, "first-done").touch()  # first's entry is committed by now
        return {"sum": sum(first)}

    Pipeline([first, second], name="killed").run(params={"folder": folder}, store=Store(root))
    """
)


@pytest.mark.faults
@pytest.mark.parametrize("mode", ["before-entry", "before-commit"])
def test_kill_9_inside_the_inline_transaction_leaves_neither_entry_nor_artifact(tmp_path, mode):
    root, folder = tmp_path / "store", tmp_path / "work"
    folder.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(root), str(folder), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (folder / "writing").exists():
            assert child.poll() is None, child.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "timed out waiting for the write"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    # first's transaction committed: its entry and inline artifact are both there; the
    # killed transaction of second left neither its entry nor its artifact
    stored = {a.read_bytes() for a in inline_artifacts(root)}
    assert stored == {b"[1,2,3]"}
    with Store(root) as store:
        assert check(store).healthy
    rerun = f"import sys; sys.path.insert(0, {str(TESTS)!r})\n" + KILLED.split("\n", 1)[1]
    rerun = rerun.replace("index.SQLiteIndex._db = hooked_db", "")
    done = subprocess.run(
        [sys.executable, "-c", rerun, str(root), str(folder), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert count(folder, "first") == 1  # kept: a hit
    assert count(folder, "second") == 2  # lost with the killed transaction: computed again
    assert {a.read_bytes() for a in inline_artifacts(root)} == {b"[1,2,3]", b'{"sum":6}'}


def test_a_failed_inline_transaction_keeps_the_run_going_with_values_in_memory(
    tmp_path, monkeypatch, caplog
):
    from plait.store.index import SQLiteIndex

    def full(self, key, data, artifacts):
        raise sqlite3.OperationalError("database or disk is full")

    @step
    def first(n):
        CALLS.hit("first")
        return [n, n]

    @step
    def second(first):
        CALLS.hit("second")
        return sum(first)

    @step
    def third(second):
        return second + 1

    pipeline = Pipeline([first, second, third], name="full")
    root = tmp_path / "store"
    monkeypatch.setattr(SQLiteIndex, "put_with", full)
    with Store(root, history=False) as store:
        assert pipeline.run(params={"n": 2}, store=store, outputs=["third"])["third"] == 5
    assert "could not store the outputs of step 'first'" in caplog.text
    assert inline_artifacts(root) == []
    monkeypatch.undo()
    CALLS.reset()
    with Store(root, history=False) as store:
        assert pipeline.run(params={"n": 2}, store=store, outputs=["third"])["third"] == 5
    assert CALLS["first"] == CALLS["second"] == 1  # nothing was stored: computed again
