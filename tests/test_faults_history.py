"""The history under faults: killed processes, values it cannot hold, failed writes,
planted pickles, damaged databases, a signed store without its secret, several writers.

Real databases (SQLite, DuckDB, PostgreSQL), real subprocesses, real ``kill -9``.
"""

from __future__ import annotations

import logging
import os
import pickle
import platform
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from plait import Pipeline, Store, step
from plait.errors import PlaitError, StoreSecretError, UsageError

pytestmark = pytest.mark.faults

SLOW = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from plait import Pipeline, Store, step


    def bump(folder, name):
        with open(Path(folder, name + ".calls"), "a") as handle:
            handle.write("x")


    @step
    def one(folder):
        bump(folder, "one")
        return 1


    @step
    def two(one, folder):
        bump(folder, "two")
        return one + 1


    @step
    def slow(two, folder):
        bump(folder, "slow")
        if not Path(folder, "release").exists():
            Path(folder, "marker").touch()
            time.sleep(60)
        return two + 1


    PIPELINE = Pipeline([one, two, slow], name="slow")


    def main(store, folder):
        PIPELINE.run(params={"folder": folder}, store=Store(store))
    """
)


def _calls(folder: Path, name: str) -> int:
    path = folder / f"{name}.calls"
    return len(path.read_text()) if path.exists() else 0


def _start_slow(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """Start the slow pipeline in a child process; return it once ``slow`` has started."""
    (tmp_path / "slow_flow.py").write_text(SLOW)
    folder = tmp_path / "work"
    folder.mkdir()
    store_dir = tmp_path / "store"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import slow_flow; "
            "slow_flow.main(sys.argv[2], sys.argv[3])",
            str(tmp_path),
            str(store_dir),
            str(folder),
        ],
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 60
    while not (folder / "marker").exists() and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
    return child, store_dir, folder


def _kill(child: subprocess.Popen[bytes]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


# -- 1. a run whose process died ---------------------------------------------------------------


def test_a_killed_run_reads_failed_process_died_and_resumes_losing_nothing(tmp_path, monkeypatch):
    child, store_dir, folder = _start_slow(tmp_path)
    pid = child.pid
    _kill(child)
    store = Store(store_dir)
    try:
        [record] = store.history.runs()
        assert record.status == "failed"
        assert record.pid == pid
        assert "process died" in (record.error or "")
        assert str(pid) in (record.error or "")
        assert platform.node() in (record.error or "")
        assert store.history.run(record.run_id).status == "failed"
        # persisted: the row itself says so
        rows = store.history.db.execute(
            "SELECT status, error FROM runs WHERE run_id = ?", [record.run_id]
        )
        assert rows[0][0] == "failed"
        assert "process died" in rows[0][1]
        listed = _cli("runs", "list", "--store", str(store_dir), cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "failed" in listed.stdout
        assert "running" not in listed.stdout
        shown = _cli("runs", "show", record.run_id, "--store", str(store_dir), cwd=tmp_path)
        assert "process died" in shown.stdout

        (folder / "release").touch()
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "slow_flow", raising=False)
        import slow_flow

        resumed = slow_flow.PIPELINE.resume(record.run_id, store=store)
        assert resumed["slow"] == 3
        assert [_calls(folder, n) for n in ("one", "two", "slow")] == [1, 1, 2]
        assert resumed.steps["one"].cached
        assert resumed.steps["two"].cached
    finally:
        store.close()
        sys.modules.pop("slow_flow", None)


def test_a_live_run_stays_running_beats_and_cannot_be_resumed(tmp_path, monkeypatch):
    child, store_dir, _ = _start_slow(tmp_path, PLAIT_HISTORY_HEARTBEAT="0.05")
    store = Store(store_dir)
    try:
        [record] = store.history.runs()
        assert record.status == "running"
        assert record.pid == child.pid
        first = store.history.db.execute("SELECT heartbeat FROM runs")[0][0]
        time.sleep(0.3)
        later = store.history.db.execute("SELECT heartbeat FROM runs")[0][0]
        assert later > first  # the run's heartbeat thread keeps it fresh
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "slow_flow", raising=False)
        import slow_flow

        with pytest.raises(UsageError, match=r"still running.*pid"):
            slow_flow.PIPELINE.resume(record.run_id, store=store)
    finally:
        _kill(child)
        store.close()
        sys.modules.pop("slow_flow", None)


@step
def plain(n):
    return n + 1


def test_a_run_of_another_host_is_dead_when_its_heartbeat_is_stale(tmp_path):
    store = Store(tmp_path / "store")
    try:
        fresh = Pipeline([plain], name="beat").run(params={"n": 1}, store=store)
        stale = Pipeline([plain], name="beat").run(params={"n": 2}, store=store)
        now = time.time()
        for run_id, beat in ((fresh.run_id, now), (stale.run_id, now - 3600)):
            store.history.db.execute(
                "UPDATE runs SET status = 'running', host = 'elsewhere', pid = 1, "
                "heartbeat = ?, error = NULL WHERE run_id = ?",
                [beat, run_id],
            )
        assert store.history.run(fresh.run_id).status == "running"
        dead = store.history.run(stale.run_id)
        assert dead.status == "failed"
        assert "process died" in (dead.error or "")
        assert "elsewhere" in (dead.error or "")
    finally:
        store.close()


def test_a_pid_of_another_pid_namespace_is_judged_by_its_heartbeat(tmp_path):
    # a container sharing this host's name: its pids mean nothing here
    store = Store(tmp_path / "store")
    try:
        run = Pipeline([plain], name="ns").run(params={"n": 1}, store=store)
        store.history.db.execute(
            "UPDATE runs SET status = 'running', pid = 999999999, pid_start = ?, "
            "heartbeat = ?, error = NULL WHERE run_id = ?",
            ["proc:1@pid:[1]", time.time(), run.run_id],
        )
        assert store.history.run(run.run_id).status == "running"
        store.history.db.execute("UPDATE runs SET heartbeat = 0 WHERE run_id = ?", [run.run_id])
        assert store.history.run(run.run_id).status == "failed"
    finally:
        store.close()


# -- 2. recording never crashes a run ----------------------------------------------------------


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def _deep(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@step
def takes(value):
    return 1


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (10**5000, "int"),
        (_deep(5000), "list"),
        (BadRepr(), "BadRepr"),
    ],
    ids=["huge-int", "deep-list", "bad-repr"],
)
def test_params_the_history_cannot_hold_are_recorded_by_type(open_store, value, shown):
    store = open_store()
    result = Pipeline([takes], name="odd").run(params={"value": value}, store=store)
    assert result["takes"] == 1
    record = store.history.run(result.run_id)
    assert record.status == "succeeded"
    assert shown in str(record.params["value"])
    assert shown in str(record.steps["takes"].params["value"])


def test_config_the_history_cannot_hold_is_recorded_by_type(open_store):
    @step(inputs={"value": "config.value"})
    def reads(value):
        return 2

    store = open_store()
    result = Pipeline([reads], name="odd", config={"value": BadRepr()}).run(store=store)
    assert result["reads"] == 2
    record = store.history.run(result.run_id)
    assert record.status == "succeeded"
    assert "BadRepr" in str(record.config["config.value"])


HISTORY_FILE: dict[str, str] = {}


@step
def first_step(n):
    return n


@step
def wrecks_the_history(first_step):
    """Make every later write of step records fail, for real: drop the steps table."""
    url = HISTORY_FILE["url"]
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url) as connection:
            connection.execute("ALTER TABLE steps RENAME TO steps_gone")
    else:
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute("ALTER TABLE steps RENAME TO steps_gone")
    return first_step + 1


@step
def after_wreck(wrecks_the_history):
    return wrecks_the_history + 1


@pytest.mark.parametrize("history_url", ["sqlite", "postgresql"], indirect=True)
def test_a_history_write_failure_is_a_warning_and_the_run_goes_on(open_store, history_url, caplog):
    HISTORY_FILE["url"] = history_url
    store = open_store()
    try:
        with caplog.at_level(logging.WARNING, logger="plait.history"):
            result = Pipeline([first_step, wrecks_the_history, after_wreck], name="w").run(
                params={"n": 1}, store=store
            )
        assert result["after_wreck"] == 3
        assert any("could not record" in r.getMessage() for r in caplog.records)
        rows = store.history.db.execute("SELECT status FROM runs WHERE run_id = ?", [result.run_id])
        assert rows == [("succeeded",)]
    finally:
        store.history.db.execute("DROP TABLE IF EXISTS steps_gone")


# -- 3. the params/config blob is signed -------------------------------------------------------


@step
def base(n):
    return n * 2


@step
def top(base):
    return base + 1


def _planted(marker: Path) -> bytes:
    class Payload:
        def __reduce__(self):  # unpickling touches the marker file: code execution
            return (Path.touch, (marker,))

    return pickle.dumps({"params": {"n": 1}, "config": None, "outputs": None, "x": Payload()})


@pytest.mark.parametrize("history_url", ["sqlite", "postgresql"], indirect=True)
def test_a_planted_pickle_blob_is_never_unpickled_with_a_secret(
    tmp_path, open_store, history_url, monkeypatch
):
    monkeypatch.setenv("PLAIT_SECRET", "s3cret")
    store = open_store()
    pipeline = Pipeline([base, top], name="planted")
    result = pipeline.run(params={"n": 1}, store=store)
    marker = tmp_path / "pwned"
    store.history.db.execute(
        "UPDATE runs SET inputs = ? WHERE run_id = ?", [_planted(marker), result.run_id]
    )
    for attempt in (
        lambda: pipeline.resume(result.run_id, store=store),
        lambda: pipeline.rerun(result.run_id, ["top"], store=store),
        lambda: pipeline.debug(result.run_id, "top", store=store),
    ):
        with pytest.raises(PlaitError, match=r"not signed.*PLAIT_SECRET"):
            attempt()
    assert not marker.exists()


def test_params_that_round_trip_as_json_are_stored_as_json_and_resume(open_store):
    store = open_store()
    pipeline = Pipeline([base, top], name="json")
    result = pipeline.run(params={"n": 4}, store=store)
    blob = store.history.run_inputs(result.run_id)
    assert blob is not None
    assert blob.startswith(b"{")
    assert pipeline.resume(result.run_id, store=store)["top"] == 9


def test_params_json_cannot_hold_are_pickled_signed_and_resume(open_store, monkeypatch):
    monkeypatch.setenv("PLAIT_SECRET", "s3cret")
    store = open_store()
    pipeline = Pipeline([base], name="pickled")
    result = pipeline.run(params={"n": (1, 2)}, store=store)
    blob = store.history.run_inputs(result.run_id)
    assert blob is not None
    assert not blob.startswith(b"{")
    resumed = pipeline.resume(result.run_id, store=store)
    assert resumed["base"] == (1, 2, 1, 2)


# -- 4. a damaged history database -------------------------------------------------------------


CALLED: list[str] = []


@step
def counted(n):
    CALLED.append("counted")
    return n


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_history_fails_the_run_before_any_step_with_the_fix(tmp_path, damage):
    store_dir = tmp_path / "store"
    pipeline = Pipeline([counted], name="damaged")
    with Store(store_dir) as store:
        for n in range(30):
            pipeline.run(params={"n": n}, store=store)
    path = store_dir / "history.db"
    for extra in ("history.db-wal", "history.db-shm"):
        (store_dir / extra).unlink(missing_ok=True)
    if damage == "garbage":
        path.write_bytes(os.urandom(8192))
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    CALLED.clear()
    with Store(store_dir) as store, pytest.raises(PlaitError) as caught:
        pipeline.run(params={"n": 30}, store=store)
    message = str(caught.value)
    assert str(path) in message
    assert "plait doctor --repair" in message
    assert CALLED == []

    (tmp_path / "flow.py").write_text(
        "from plait import Pipeline, step\n\n@step\ndef s(n):\n    return n\n\n"
        "PIPELINE = Pipeline([s], name='damaged')\n"
    )
    for args in (
        ("run", "flow.py", "-p", "n=99", "--store", str(store_dir)),
        ("runs", "list", "--store", str(store_dir)),
    ):
        done = _cli(*args, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "plait doctor --repair" in done.stderr
        assert "bug in plait" not in done.stderr


# -- 8. a signed store opened without its secret -----------------------------------------------


def test_a_signed_store_without_its_secret_is_refused_before_the_run_is_recorded(
    tmp_path, monkeypatch
):
    pipeline = Pipeline([counted], name="signed")
    monkeypatch.setenv("PLAIT_SECRET", "s3cret")
    with Store(tmp_path / "store") as store:
        pipeline.run(params={"n": 1}, store=store)
    monkeypatch.delenv("PLAIT_SECRET")
    CALLED.clear()
    with Store(tmp_path / "store") as store:
        with pytest.raises(StoreSecretError, match="PLAIT_SECRET"):
            pipeline.run(params={"n": 1}, store=store)
        assert len(store.history.runs()) == 1
    assert CALLED == []


# -- 5. DuckDB history shared by several processes ---------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from plait import Pipeline, Store, step

    @step
    def a(n):
        return n

    @step
    def b(a):
        return a + 1

    store = Store(sys.argv[1], history=sys.argv[2])
    for n in range(4):
        result = Pipeline([a, b], name="shared").run(params={"n": n}, store=store)
        print(result.run_id)
    store.close()
    """
)


def test_a_duckdb_history_takes_runs_from_three_processes_at_once(tmp_path):
    pytest.importorskip("duckdb")
    url = f"duckdb:///{tmp_path / 'history.duckdb'}"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"store{i}"), url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [w.communicate(timeout=60) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    ids = [line for out, _ in outputs for line in out.split()]
    assert len(ids) == 12
    with Store(tmp_path / "store0", history=url) as store:
        records = store.history.runs(limit=None)
        assert sorted(r.run_id for r in records) == sorted(ids)
        assert all(r.status == "succeeded" for r in records)
        assert all(len(store.history.run(i).steps) == 2 for i in ids)


@step
def exits(n):
    sys.exit(3)


def test_a_run_ended_by_an_exception_escaping_the_scheduler_is_recorded_failed(tmp_path):
    with Store(tmp_path / "store") as store:
        with pytest.raises(SystemExit):
            Pipeline([exits], name="exits").run(params={"n": 1}, store=store)
        [record] = store.history.runs()
        assert record.status == "failed"
        assert "SystemExit" in (record.error or "")
