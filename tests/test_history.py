"""Run history: what is recorded for every run and step, and how it is queried.

Every test runs on the three history backends (``history_url``: SQLite, DuckDB and a real
PostgreSQL), each test on a database of its own. Runs go through ``Pipeline.run`` with a
``Store(..., history=url)``; records are read back through ``store.history``. The
multi-process test is SQLite only: several processes sharing one history file is the
embedded default's promise.
"""

from __future__ import annotations

import asyncio
import platform
import re
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

import plait
from plait import Pipeline, Store, current, step
from plait.errors import PlaitError, RunFailed
from store_cases import store_files

HEX32 = re.compile(r"[0-9a-f]{32}")
CALLS: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


# -- steps: source -> scaled -> total, with a config path, a config key and a metric ---------


@step
def source(n):
    CALLS["source"] += 1
    current().log_metric("rows", n)
    return list(range(n))


@step(inputs={"factor": "config.model.factor"})
def scaled(source, factor):
    CALLS["scaled"] += 1
    return [value * factor for value in source]


@step
def total(scaled, offset):
    CALLS["total"] += 1
    current().log_metric("sum", sum(scaled))
    return sum(scaled) + offset


@step(retries=1, backoff=0)
def broken(total):
    CALLS["broken"] += 1
    raise ValueError(f"bad total {total}")


@step
def after_broken(broken):
    return broken


@step
def sibling(n):
    return n + 1


CONFIG = {"model": {"factor": 3, "unread": 7}, "offset": 100, "unused": "x"}


def _pipeline(*extra, name="records"):
    return Pipeline([source, scaled, total, *extra], name=name, config=CONFIG)


# -- the run record ---------------------------------------------------------------------------


def test_a_succeeded_run_records_everything_about_itself(open_store):
    store = open_store()
    pipeline = _pipeline()
    result = pipeline.run(params={"n": 4}, store=store, tags=["nightly", "v2"])
    record = store.history.run(result.run_id)
    assert record.run_id == result.run_id
    assert record.pipeline == "records"
    assert HEX32.fullmatch(record.fingerprint)
    assert record.status == "succeeded"
    assert record.params == {"n": 4}
    # the config values the steps read, and only those
    assert record.config == {"config.model.factor": 3, "offset": 100}
    assert record.tags == ["nightly", "v2"]
    assert record.origin_run_id is None
    assert isinstance(record.started_at, datetime)
    assert record.started_at.tzinfo is not None
    assert record.finished_at is not None
    assert record.finished_at >= record.started_at
    assert record.duration is not None
    assert record.duration >= 0
    assert record.host == platform.node()
    assert record.plait_version == plait.__version__
    assert record.python_version == platform.python_version()


def test_the_recorded_fingerprint_is_the_pipelines_and_follows_its_code(open_store):
    store = open_store()
    pipeline = _pipeline()
    first = pipeline.run(params={"n": 2}, store=store)
    assert store.history.run(first.run_id).fingerprint == pipeline.fingerprint
    grown = _pipeline(sibling)
    second = grown.run(params={"n": 2}, store=store)
    assert store.history.run(second.run_id).fingerprint == grown.fingerprint
    assert grown.fingerprint != pipeline.fingerprint


def test_every_step_record_matches_its_step_result(open_store):
    store = open_store()
    result = _pipeline().run(params={"n": 4}, store=store)
    steps = store.history.run(result.run_id).steps
    assert set(steps) == {"source", "scaled", "total"}
    for name, record in steps.items():
        live = result.steps[name]
        assert record.run_id == result.run_id
        assert record.name == name
        assert record.status == "ok"
        assert record.cached is False
        assert record.attempts == 1
        assert record.reason == live.reason
        assert record.reason.startswith("no entry")
        assert HEX32.fullmatch(record.cache_key or "")
        assert record.cache_key == live.cache_key
        assert record.data_versions == live.data_versions
        assert set(record.data_versions) == {name}
        assert all(HEX32.fullmatch(v) for v in record.data_versions.values())
        assert all(HEX32.fullmatch(v) for v in record.input_versions.values())
        assert record.error is None
        assert record.started_at is not None
        assert record.finished_at is not None
        assert record.started_at <= record.finished_at
        assert record.duration >= 0
    assert steps["source"].metrics == {"rows": 4}
    assert steps["total"].metrics == {"sum": 18}
    assert steps["scaled"].metrics == {}
    # input versions name each input and chain to the producer's data versions
    assert set(steps["source"].input_versions) == {"n"}
    assert set(steps["scaled"].input_versions) == {"source", "config.model.factor"}
    assert set(steps["total"].input_versions) == {"scaled", "offset"}
    assert steps["scaled"].input_versions["source"] == steps["source"].data_versions["source"]
    assert steps["total"].input_versions["scaled"] == steps["scaled"].data_versions["scaled"]


def test_a_second_run_records_cache_hits_with_the_same_keys_and_versions(open_store):
    store = open_store()
    first = _pipeline().run(params={"n": 4}, store=store)
    second = _pipeline().run(params={"n": 4}, store=store)
    assert Counter(source=1, scaled=1, total=1) == CALLS
    before = store.history.run(first.run_id).steps
    after = store.history.run(second.run_id).steps
    assert set(after) == set(before)
    for name, record in after.items():
        assert record.cached is True
        assert record.reason == "cache hit"
        assert record.cache_key == before[name].cache_key
        assert record.data_versions == before[name].data_versions
        assert record.input_versions == before[name].input_versions


def test_a_failing_step_records_its_error_attempts_and_the_run_fails(open_store):
    store = open_store()
    with pytest.raises(RunFailed) as caught:
        _pipeline(broken).run(params={"n": 4}, store=store)
    run_id = caught.value.result.run_id
    record = store.history.run(run_id)
    assert record.status == "failed"
    assert record.finished_at is not None
    assert "broken" in (record.error or "")
    failed = record.steps["broken"]
    assert failed.status == "failed"
    assert failed.attempts == 2
    assert CALLS["broken"] == 2
    assert failed.error is not None
    assert failed.error["type"] == "ValueError"
    assert failed.error["message"] == "bad total 118"
    assert "Traceback" in failed.error["traceback"]
    assert "in broken" in failed.error["traceback"]
    assert 'raise ValueError(f"bad total {total}")' in failed.error["traceback"]
    assert failed.data_versions == {}
    assert failed.input_versions["total"] == record.steps["total"].data_versions["total"]
    assert [record.steps[n].status for n in ("source", "scaled", "total")] == ["ok"] * 3


@pytest.mark.parametrize("executor", ["threads:4", "processes:2"])
def test_records_are_complete_whatever_the_executor(open_store, executor):
    store = open_store()
    result = _pipeline(broken, sibling).run(
        params={"n": 4}, store=store, executor=executor, on_error="continue"
    )
    record = store.history.run(result.run_id)
    assert record.status == "failed"
    assert record.executor
    assert {n: s.status for n, s in record.steps.items()} == {
        "source": "ok",
        "scaled": "ok",
        "total": "ok",
        "sibling": "ok",
        "broken": "failed",
    }
    assert record.steps["source"].metrics == {"rows": 4}
    assert record.steps["total"].metrics == {"sum": 18}
    failed = record.steps["broken"]
    assert failed.attempts == 2
    assert failed.error is not None
    assert failed.error["type"] == "ValueError"
    assert failed.error["message"] == "bad total 118"
    assert "in broken" in failed.error["traceback"]
    for name in ("source", "scaled", "total", "sibling"):
        assert record.steps[name].data_versions == result.steps[name].data_versions
        assert HEX32.fullmatch(record.steps[name].data_versions[name])


def test_skipped_steps_are_recorded_with_their_reason(open_store):
    store = open_store()
    result = _pipeline(broken, after_broken, sibling).run(
        params={"n": 2}, store=store, on_error="continue"
    )
    steps = store.history.run(result.run_id).steps
    assert steps["broken"].status == "failed"
    assert steps["sibling"].status == "ok"
    assert steps["after_broken"].status == "skipped"
    assert steps["after_broken"].reason == result.steps["after_broken"].reason
    assert "broken" in steps["after_broken"].reason
    assert store.history.run(result.run_id).status == "failed"


class _WatchHistory:
    """A hook reading the run's record from the history as each step starts."""

    def __init__(self, store):
        self.store = store
        self.seen = {}

    def on_step_start(self, step, run):
        self.seen[step.name] = self.store.history.run(run.run_id)


def test_the_run_record_is_written_when_the_run_starts(open_store):
    store = open_store()
    watch = _WatchHistory(store)
    result = _pipeline().run(params={"n": 3}, store=store, hooks=[watch], tags=["live"])
    assert set(watch.seen) == {"source", "scaled", "total"}
    for record in watch.seen.values():
        assert record.run_id == result.run_id
        assert record.status == "running"
        assert record.finished_at is None
        assert record.params == {"n": 3}
        assert record.tags == ["live"]
    assert store.history.run(result.run_id).status == "succeeded"


EVENTS: list[str] = []


@step
async def waits(seed):
    EVENTS.append("started")
    await asyncio.sleep(60)
    return seed


@step
def after_wait(waits):
    return waits


def test_a_cancelled_run_is_recorded_as_cancelled(open_store):
    store = open_store()
    EVENTS.clear()

    async def main():
        pipeline = Pipeline([waits, after_wait], name="cancel-me")
        task = asyncio.ensure_future(pipeline.run_async(params={"seed": 1}, store=store))
        while not EVENTS and not task.done():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert EVENTS == ["started"]
    [record] = store.history.runs(pipeline="cancel-me")
    assert record.status == "cancelled"
    assert record.finished_at is not None


# -- schema -----------------------------------------------------------------------------------


def test_the_schema_version_is_kept_in_meta(open_store):
    store = open_store()
    _pipeline().run(params={"n": 1}, store=store)
    rows = store.history.db.execute("SELECT key, value FROM meta WHERE key = 'schema_version'")
    assert len(rows) == 1
    assert int(rows[0][1]) >= 1
    from plait.history.db import SCHEMA_VERSION

    assert int(rows[0][1]) == SCHEMA_VERSION


def test_reopening_an_existing_history_keeps_its_records(open_store):
    first_store = open_store()
    first = _pipeline().run(params={"n": 2}, store=first_store)
    first_store.history.close()
    # a new Store object on the same database migrates again (idempotently) and reads back
    again = open_store()
    assert [r.run_id for r in again.history.runs()] == [first.run_id]
    second = _pipeline().run(params={"n": 3}, store=again)
    assert [r.run_id for r in again.history.runs()] == [second.run_id, first.run_id]
    third = open_store()
    assert len(third.history.runs()) == 2
    rows = third.history.db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    assert len(rows) == 1


def test_a_database_from_a_newer_plait_is_refused(open_store):
    store = open_store()
    _pipeline().run(params={"n": 1}, store=store)
    store.history.db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    store.history.close()
    newer = open_store()
    with pytest.raises(PlaitError, match=r"schema version 999.*upgrade plait"):
        newer.history.runs()


def test_without_a_history_url_a_local_store_records_into_sqlite_inside_it(tmp_path):
    store = Store(tmp_path / "store")
    try:
        result = _pipeline().run(params={"n": 1}, store=store)
        assert (tmp_path / "store" / "history.db").is_file()
        assert store.history.run(result.run_id).status == "succeeded"
    finally:
        store.history.close()


@pytest.mark.parametrize("form", ["plain", "sqlite-url"])
def test_a_plain_path_and_a_sqlite_url_are_the_same_sqlite_history(tmp_path, form):
    path = tmp_path / "elsewhere" / "runs.db"
    url = str(path) if form == "plain" else f"sqlite:///{path}"
    store = Store(tmp_path / "store", history=url)
    try:
        result = _pipeline().run(params={"n": 1}, store=store)
        assert path.is_file()
        assert not (tmp_path / "store" / "history.db").exists()
        assert store.history.run(result.run_id).status == "succeeded"
    finally:
        store.history.close()


def test_a_relative_duckdb_url_is_relative_to_the_working_directory(clean_cwd):
    store = Store(clean_cwd / "store", history="duckdb:///runs.duckdb")
    try:
        result = _pipeline().run(params={"n": 1}, store=store)
        assert (clean_cwd / "runs.duckdb").is_file()
        assert store.history.run(result.run_id).status == "succeeded"
    finally:
        store.history.close()


# -- queries ----------------------------------------------------------------------------------


@pytest.fixture
def three_runs(open_store):
    """Three runs on one store: two of "records" (one failed), one of "other"."""
    store = open_store()
    first = _pipeline().run(params={"n": 1}, store=store, tags=["a"])
    with pytest.raises(RunFailed) as caught:
        _pipeline(broken).run(params={"n": 2}, store=store, tags=["a", "b"])
    second = caught.value.result
    third = _pipeline(name="other").run(params={"n": 3}, store=store)
    return store, first.run_id, second.run_id, third.run_id


def test_runs_lists_newest_first(three_runs):
    store, first, second, third = three_runs
    assert [r.run_id for r in store.history.runs()] == [third, second, first]
    assert [r.status for r in store.history.runs()] == ["succeeded", "failed", "succeeded"]


def test_runs_filters_by_pipeline_status_and_limit(three_runs):
    store, first, second, third = three_runs
    history = store.history
    assert [r.run_id for r in history.runs(pipeline="records")] == [second, first]
    assert [r.run_id for r in history.runs(pipeline="other")] == [third]
    assert history.runs(pipeline="nope") == []
    assert [r.run_id for r in history.runs(status="failed")] == [second]
    assert [r.run_id for r in history.runs(pipeline="records", status="succeeded")] == [first]
    assert [r.run_id for r in history.runs(limit=2)] == [third, second]
    assert [r.run_id for r in history.runs(limit=1)] == [third]


def test_runs_filters_by_tags(three_runs):
    store, first, second, _ = three_runs
    history = store.history
    assert [r.run_id for r in history.runs(tags=["a"])] == [second, first]
    assert [r.run_id for r in history.runs(tags=["a", "b"])] == [second]
    assert [r.run_id for r in history.runs(tags=["b"])] == [second]
    assert history.runs(tags=["c"]) == []
    assert [r.run_id for r in history.runs(tags=["a"], limit=1)] == [second]


def test_runs_filters_by_start_time(three_runs):
    store, first, second, third = three_runs
    history = store.history
    start = {r.run_id: r.start_time for r in history.runs()}
    between = (start[first] + start[second]) / 2
    assert [r.run_id for r in history.runs(since=between)] == [third, second]
    as_datetime = datetime.fromtimestamp(between, UTC)
    assert [r.run_id for r in history.runs(since=as_datetime)] == [third, second]
    later = datetime.now(UTC) + timedelta(days=1)
    assert history.runs(since=later) == []


def _common_prefix(a, b):
    size = 0
    while size < min(len(a), len(b)) and a[size] == b[size]:
        size += 1
    return a[:size]


def test_a_run_is_found_by_a_unique_prefix(three_runs):
    store, first, second, _ = three_runs
    common = _common_prefix(first, second)
    unique = first[: len(common) + 1]
    record = store.history.run(unique)
    assert record.run_id == first
    assert set(record.steps) == {"source", "scaled", "total"}
    assert store.history.resolve(unique) == first
    assert store.history.run(first).run_id == first


def test_an_ambiguous_or_unknown_prefix_is_a_clear_key_error(three_runs):
    store, first, second, _ = three_runs
    common = _common_prefix(first, second)
    assert common  # run ids start with their time: runs close in time share a prefix
    with pytest.raises(KeyError, match="ambiguous"):
        store.history.run(common)
    with pytest.raises(KeyError, match=r"no run 'zzzz'"):
        store.history.run("zzzz")


def test_step_history_lists_one_step_across_runs_newest_first(three_runs):
    store, first, second, third = three_runs
    history = store.history
    executions = history.step_history("total")
    assert [s.run_id for s in executions] == [third, second, first]
    assert all(s.name == "total" for s in executions)
    assert [s.run_id for s in history.step_history("total", pipeline="records")] == [
        second,
        first,
    ]
    assert [s.run_id for s in history.step_history("total", limit=1)] == [third]
    assert [s.run_id for s in history.step_history("broken")] == [second]
    assert history.step_history("broken")[0].status == "failed"
    assert history.step_history("no-such-step") == []


# -- concurrency ------------------------------------------------------------------------------


def test_threads_running_pipelines_on_one_store_are_all_recorded(open_store):
    store = open_store()
    errors: list[BaseException] = []
    ids: list[str] = []
    lock = threading.Lock()

    def work(index):
        try:
            for n in range(3):
                result = _pipeline().run(params={"n": 10 * index + n}, store=store)
                with lock:
                    ids.append(result.run_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = store.history.runs(limit=None)
    assert sorted(r.run_id for r in records) == sorted(ids)
    assert len(ids) == 12
    for run_id in ids:
        record = store.history.run(run_id)
        assert record.status == "succeeded"
        assert {s.name: s.status for s in record.steps.values()} == {
            "source": "ok",
            "scaled": "ok",
            "total": "ok",
        }


WORKER = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path

    from plait import Pipeline, Step, Store, step

    store_dir, history, worker, go = sys.argv[1:5]


    def add_one(previous):
        return previous + 1


    @step
    def s0(seed):
        return seed


    links = [
        Step(add_one, inputs=[f"s{i - 1}"], outputs=[f"s{i}"], name=f"s{i}") for i in range(1, 15)
    ]
    pipeline = Pipeline([s0, *links], name="shared")
    while not Path(go).exists():
        time.sleep(0.001)
    for round_ in range(3):
        result = pipeline.run(params={"seed": 1000 * int(worker) + round_},
                              store=Store(store_dir, history=history))
        print(result.run_id)
    """
)


def test_several_processes_share_one_sqlite_history(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    history = tmp_path / "store" / "history.db"
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "store"), str(history), str(i), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    go.touch()
    outputs = [worker.communicate(timeout=100) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert "locked" not in err
        assert worker.returncode == 0, err
    ids = [line for out, _ in outputs for line in out.split()]
    assert len(ids) == 18
    store = Store(tmp_path / "store", history=str(history))
    try:
        records = store.history.runs(limit=None)
        assert sorted(r.run_id for r in records) == sorted(ids)
        for run_id in ids:
            record = store.history.run(run_id)
            assert record.status == "succeeded"
            assert len(record.steps) == 15
            assert all(s.status == "ok" for s in record.steps.values())
        assert len(store.history.step_history("s14", limit=100)) == 18
    finally:
        store.history.close()


# -- schema version 1 databases (before structure, step params and logs) -------------------

V1_SCHEMA = [  # plait's schema version 1, verbatim ({blob}: BLOB, or BYTEA on PostgreSQL)
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, pipeline TEXT, fingerprint TEXT, status TEXT,
        params TEXT, config TEXT, tags TEXT, started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION, duration DOUBLE PRECISION, host TEXT,
        plait_version TEXT, python_version TEXT, origin_run_id TEXT, executor TEXT,
        error TEXT, inputs {blob})""",
    """CREATE TABLE IF NOT EXISTS steps (
        run_id TEXT, name TEXT, status TEXT, cached INTEGER, reason TEXT,
        attempts INTEGER, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
        duration DOUBLE PRECISION, cache_key TEXT, input_versions TEXT,
        data_versions TEXT, error_type TEXT, error_message TEXT, error_traceback TEXT,
        metrics TEXT, peak_memory BIGINT, fingerprint TEXT,
        PRIMARY KEY (run_id, name))""",
    """CREATE TABLE IF NOT EXISTS data (
        version TEXT, run_id TEXT, step TEXT, name TEXT, role TEXT)""",
    "CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, started_at)",
    "CREATE INDEX IF NOT EXISTS steps_by_name ON steps (name, started_at)",
    "CREATE INDEX IF NOT EXISTS data_by_version ON data (version, role)",
    "CREATE INDEX IF NOT EXISTS data_by_run ON data (run_id)",
    "INSERT INTO meta (key, value) VALUES ('schema_version', '1')",
    "INSERT INTO runs VALUES ('01old', 'records', 'f', 'succeeded', '{\"n\":2}', '{}', '[]', "
    "1000.0, 1001.0, 1.0, 'host', '0.1', '3.11', NULL, 'sequential', NULL, NULL)",
    "INSERT INTO steps VALUES ('01old', 'source', 'ok', 0, 'executed', 1, 1000.0, 1000.5, "
    "0.5, 'k', '{}', '{\"source\":\"v\"}', NULL, NULL, NULL, '{}', NULL, NULL)",
]


def _raw_connection(url: str):
    if url.startswith("sqlite:///"):
        import sqlite3

        return sqlite3.connect(url.removeprefix("sqlite:///")), "BLOB"
    if url.startswith("duckdb:///"):
        import duckdb

        return duckdb.connect(url.removeprefix("duckdb:///")), "BLOB"
    import psycopg

    return psycopg.connect(url), "BYTEA"


def test_a_version_1_database_opens_migrates_and_keeps_its_records(open_store, history_url):
    connection, blob = _raw_connection(history_url)
    cursor = connection.cursor()
    for statement in V1_SCHEMA:
        cursor.execute(statement.replace("{blob}", blob))
    connection.commit()
    connection.close()
    store = open_store()
    old = store.history.run("01old")
    assert old.params == {"n": 2}
    assert old.structure is None
    assert old.steps["source"].params == {}
    assert old.steps["source"].logs == ()
    assert old.steps["source"].data_versions == {"source": "v"}
    from plait.history.db import SCHEMA_VERSION

    rows = store.history.db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    assert rows == [(str(SCHEMA_VERSION),)]
    assert SCHEMA_VERSION >= 5
    result = _pipeline().run(params={"n": 2}, store=store)
    new = store.history.run(result.run_id)
    assert new.structure is not None
    assert [s.name for s in new.structure.order] == ["source", "scaled", "total"]
    # opening it again (a second process, say) finds nothing left to migrate
    store.history.close()
    again = open_store()
    assert [r.run_id for r in again.history.runs()] == [result.run_id, "01old"]


# -- listed records load their steps when asked ------------------------------------------------


def test_listed_records_load_their_steps_on_first_access(open_store):
    store = open_store()
    first = _pipeline().run(params={"n": 2}, store=store)
    second = _pipeline().run(params={"n": 3}, store=store)
    listed = store.history.runs()
    assert [r.run_id for r in listed] == [second.run_id, first.run_id]
    assert not any(r.steps_loaded for r in listed)
    store.history.close()  # loading reopens the connection
    assert list(listed[1].steps) == ["source", "scaled", "total"]
    assert listed[1].steps_loaded
    assert listed[1].steps == store.history.run(first.run_id).steps
    assert listed[1].structure == store.history.run(first.run_id).structure
    assert not listed[0].steps_loaded
    assert listed[1] == store.history.run(first.run_id)


def test_a_listed_run_deleted_before_its_steps_load_raises(open_store):
    store = open_store()
    result = _pipeline().run(params={"n": 2}, store=store)
    (listed,) = store.history.runs()
    store.history.delete_runs([result.run_id])
    with pytest.raises(KeyError, match=r"no longer in"):
        _ = listed.steps


# -- params the steps received -----------------------------------------------------------------


@step
def seeded(source, seed: int = 42, label="x"):
    return [value + seed for value in source]


@step
def reseeded(seeded, seed: int = 7):
    return seeded


def test_defaults_a_step_ran_with_are_recorded_for_the_run_and_the_step(open_store):
    store = open_store()
    result = _pipeline(seeded).run(params={"n": 2}, store=store)
    record = store.history.run(result.run_id)
    assert record.params == {"n": 2, "seed": 42, "label": "x"}
    assert record.steps["seeded"].params == {"seed": 42, "label": "x"}
    assert record.steps["source"].params == {"n": 2}
    assert record.steps["scaled"].params == {}  # fed by a step and the config only
    given = _pipeline(seeded).run(params={"n": 2, "seed": 5}, store=store)
    assert store.history.run(given.run_id).steps["seeded"].params == {"seed": 5, "label": "x"}
    diff = store.history.compare(result.run_id, given.run_id)
    assert diff["params"] == {"seed": (42, 5)}


def test_steps_defaulting_one_name_differently_are_recorded_per_step(open_store):
    store = open_store()
    result = _pipeline(seeded, reseeded).run(params={"n": 2}, store=store)
    record = store.history.run(result.run_id)
    assert record.params == {"n": 2, "label": "x", "seeded.seed": 42, "reseeded.seed": 7}


# -- logs --------------------------------------------------------------------------------------


@step
def talker(n):
    current().logger.info("talker got %d", n)
    with current().capture_output():
        for i in range(3):
            print(f"talker says {i}")
    return n


@step
def other_talker(n):
    current().logger.warning("other got %d", n)
    with current().capture_output():
        for i in range(3):
            print(f"other says {i}")
    return n


@pytest.mark.parametrize("executor", ["sequential", "threads:4", "processes:2"])
def test_log_lines_are_recorded_with_the_step_that_logged_them(open_store, executor, capsys):
    store = open_store()
    result = Pipeline([talker, other_talker], name="talk").run(
        params={"n": 3}, store=store, executor=executor
    )
    record = store.history.run(result.run_id)
    assert record.steps["talker"].logs == (
        "INFO talker got 3",
        "[stdout] talker says 0",
        "[stdout] talker says 1",
        "[stdout] talker says 2",
    )
    assert record.steps["other_talker"].logs == (
        "WARNING other got 3",
        "[stdout] other says 0",
        "[stdout] other says 1",
        "[stdout] other says 2",
    )
    assert record.steps["talker"].logs_dropped == 0
    assert "says" not in capsys.readouterr().out
    assert result.steps["talker"].metrics == {}  # the logs ride along, not as a metric


def test_concurrent_steps_in_threads_keep_their_own_printed_lines(open_store):
    barrier = threading.Barrier(2, timeout=10)

    def speaker(name):
        @step(name=name)
        def speak(n):
            with current().capture_output():
                barrier.wait()
                for i in range(200):
                    print(f"{name} {i}")
            return n

        return speak

    store = open_store()
    before = sys.stdout, sys.stderr
    result = Pipeline([speaker("left"), speaker("right")], name="speakers").run(
        params={"n": 1}, store=store, executor="threads:2"
    )
    record = store.history.run(result.run_id)
    for name in ("left", "right"):
        assert record.steps[name].logs == tuple(f"[stdout] {name} {i}" for i in range(200))
    assert (sys.stdout, sys.stderr) == before  # the redirection is gone with the last step


def test_a_structure_is_kept_once_and_dropped_with_the_last_run_naming_it(open_store):
    store = open_store()
    first = _pipeline().run(params={"n": 2}, store=store)
    second = _pipeline().run(params={"n": 3}, store=store)
    other = _pipeline(sibling).run(params={"n": 3}, store=store)
    assert store.history.db.execute("SELECT COUNT(*) FROM structures") == [(2,)]
    assert store.history.run(first.run_id).structure == store.history.run(second.run_id).structure
    store.history.delete_runs([first.run_id])
    assert store.history.db.execute("SELECT COUNT(*) FROM structures") == [(2,)]
    store.history.delete_runs([second.run_id])
    assert store.history.db.execute("SELECT COUNT(*) FROM structures") == [(1,)]
    assert "sibling" in [s.name for s in store.history.run(other.run_id).structure.order]


# -- records tell the truth after a recompute; map steps keep their element attempts --------


@step
def made(n):
    CALLS["made"] += 1
    return list(range(n))


@step
def used(made):
    return sum(made)


def test_a_hit_recomputed_for_a_damaged_artifact_is_recorded_as_such(open_store, tmp_path):
    store = open_store()
    pipeline = Pipeline([made, used], name="revised")
    first = pipeline.run(params={"n": 4}, store=store)
    version = store.history.run(first.run_id).steps["made"].data_versions["made"]
    [artifact] = [p for p in store_files(tmp_path / "store") if p.name.startswith(version)]
    artifact.write_bytes(b"garbage")
    again = pipeline.run(params={"n": 4}, store=store, force=["used"])
    assert again["used"] == 6
    assert CALLS["made"] == 2
    record = store.history.run(again.run_id).steps["made"]
    assert record.cached is False
    assert record.reason == "artifact damaged, recomputed"
    assert len(store.history.step_history("made")) == 2


@step(map="items", retries=2, backoff=0)
def flaky_element(items):
    CALLS[f"element-{items}"] += 1
    if items == 2 and CALLS[f"element-{items}"] < 2:
        raise ValueError("first try fails")
    return items * 10


def test_a_map_steps_element_attempts_are_recorded(open_store):
    store = open_store()
    result = Pipeline([flaky_element], name="mapped").run(params={"items": [1, 2]}, store=store)
    assert result["flaky_element"] == [10, 20]
    record = store.history.run(result.run_id).steps["flaky_element"]
    assert record.element_attempts == {"0": 1, "1": 2}


def test_a_database_of_the_previous_schema_opens_and_migrates(open_store, history_url):
    connection, blob = _raw_connection(history_url)
    cursor = connection.cursor()
    for statement in V1_SCHEMA:
        cursor.execute(statement.replace("{blob}", blob))
    for statement in (
        "CREATE TABLE IF NOT EXISTS structures (id TEXT PRIMARY KEY, body TEXT)",
        "ALTER TABLE runs ADD COLUMN structure TEXT",
        "ALTER TABLE steps ADD COLUMN params TEXT",
        "ALTER TABLE steps ADD COLUMN logs TEXT",
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
        "UPDATE runs SET status = 'running' WHERE run_id = '01old'",
    ):
        cursor.execute(statement)
    connection.commit()
    connection.close()
    store = open_store()
    old = store.history.run("01old")
    assert old.status == "running"  # no pid recorded: nothing says it died
    assert old.pid is None
    assert old.steps["source"].element_attempts == {}
    result = _pipeline().run(params={"n": 2}, store=store)
    assert store.history.run(result.run_id).pid == __import__("os").getpid()


# -- schema 4: the run's target; the browsing queries ------------------------------------------

RECORDED = _pipeline(name="recorded")  # a module-level global: runs record "test_history:..."

V3_CHANGES = {  # what took a version-1 database to versions 2 and 3, verbatim
    2: [
        "CREATE TABLE IF NOT EXISTS structures (id TEXT PRIMARY KEY, body TEXT)",
        "ALTER TABLE runs ADD COLUMN structure TEXT",
        "ALTER TABLE steps ADD COLUMN params TEXT",
        "ALTER TABLE steps ADD COLUMN logs TEXT",
    ],
    3: [
        "ALTER TABLE runs ADD COLUMN pid BIGINT",
        "ALTER TABLE runs ADD COLUMN pid_start TEXT",
        "ALTER TABLE runs ADD COLUMN heartbeat DOUBLE PRECISION",
        "ALTER TABLE runs ADD COLUMN inputs_signature TEXT",
        "ALTER TABLE steps ADD COLUMN element_attempts TEXT",
    ],
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_database_gains_the_target_column_and_indexes(open_store, history_url, version):
    connection, blob = _raw_connection(history_url)
    cursor = connection.cursor()
    for statement in V1_SCHEMA:
        cursor.execute(statement.replace("{blob}", blob))
    for step_version in range(2, version + 1):
        for statement in V3_CHANGES[step_version]:
            cursor.execute(statement)
    cursor.execute(f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version'")
    connection.commit()
    connection.close()
    store = open_store()
    from plait.history.db import SCHEMA_VERSION

    assert SCHEMA_VERSION >= 5
    rows = store.history.db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    assert rows == [(str(SCHEMA_VERSION),)]
    assert store.history.run("01old").target is None
    result = _pipeline().run(params={"n": 2}, store=store, target="flows.py:records")
    assert store.history.run(result.run_id).target == "flows.py:records"
    store.history.close()
    again = open_store()  # nothing left to migrate
    assert [r.target for r in again.history.runs()] == ["flows.py:records", None]


def test_a_run_records_its_target(open_store):
    store = open_store()
    given = _pipeline().run(params={"n": 1}, store=store, target="/abs/flow.py:records")
    assert store.history.run(given.run_id).target == "/abs/flow.py:records"
    # a module-level global of an importable module: found without being given
    found = RECORDED.run(params={"n": 1}, store=store)
    assert store.history.run(found.run_id).target == f"{__name__}:RECORDED"
    # a pipeline built in a function is no global: no target
    local = _pipeline(name="local").run(params={"n": 1}, store=store)
    assert store.history.run(local.run_id).target is None
    assert store.history.runs(limit=1)[0].target is None


def test_a_resume_records_the_target_of_its_origin(open_store):
    store = open_store()
    with pytest.raises(RunFailed) as caught:
        _pipeline(broken).run(params={"n": 1}, store=store, target="flow.py:p")
    resumed = _pipeline(broken).resume(caught.value.result.run_id, store=store, on_error="continue")
    assert store.history.run(resumed.run_id).target == "flow.py:p"


@pytest.fixture
def many_runs(open_store):
    """Six runs: "records" x4 (one failed, tags), "other" x2; newest last in ``ids``."""
    store = open_store()
    ids = []
    for n, tags in ((1, ["a"]), (2, ["a", "b"]), (3, []), (4, ["b"])):
        ids.append(_pipeline().run(params={"n": n}, store=store, tags=tags).run_id)
    with pytest.raises(RunFailed) as caught:
        _pipeline(broken).run(params={"n": 5}, store=store, tags=["a"])
    ids.append(caught.value.result.run_id)
    ids.append(_pipeline(name="other").run(params={"n": 6}, store=store).run_id)
    return store, ids


def test_runs_pages_searches_and_sorts_in_the_database(many_runs):
    store, ids = many_runs
    history = store.history
    newest = ids[::-1]
    assert [r.run_id for r in history.runs(limit=2, offset=2)] == newest[2:4]
    assert [r.run_id for r in history.runs(limit=None, descending=False)] == ids
    assert [r.run_id for r in history.runs(tags=["a"])] == [ids[4], ids[1], ids[0]]
    assert [r.run_id for r in history.runs(tags=["a", "b"])] == [ids[1]]
    assert [r.run_id for r in history.runs(tags=["a"], limit=1)] == [ids[4]]
    assert [r.run_id for r in history.runs(text="BAD TOTAL")] == [ids[4]]  # the error
    assert [r.run_id for r in history.runs(text="oth")] == [ids[5]]  # the pipeline
    assert [r.run_id for r in history.runs(text="100%_!")] == []  # LIKE characters are text
    by_pipeline = [r.pipeline for r in history.runs(sort="pipeline", descending=False)]
    assert by_pipeline == ["other"] + ["records"] * 5
    assert len(history.runs(sort="duration")) == 6
    first = history.run(ids[0]).start_time
    assert [r.run_id for r in history.runs(until=first)] == [ids[0]]
    with pytest.raises(ValueError, match=r"sort='size' is not one of started, duration"):
        history.runs(sort="size")


def test_run_counts_by_status_follow_the_filters(many_runs):
    store, _ids = many_runs
    history = store.history
    assert history.run_counts() == {"succeeded": 5, "failed": 1}
    assert history.run_counts(pipeline="records", tags=["a"]) == {"succeeded": 2, "failed": 1}
    assert history.run_counts(text="bad total") == {"failed": 1}
    assert history.pipelines() == ["other", "records"]


def test_runs_of_an_origin(many_runs):
    store, ids = many_runs
    resumed = _pipeline(broken).resume(ids[4], store=store, on_error="continue")
    assert [r.run_id for r in store.history.runs(origin=ids[4])] == [resumed.run_id]
    assert store.history.runs(origin=ids[0]) == []


def test_a_runs_steps_a_page_at_a_time(many_runs):
    store, ids = many_runs
    history = store.history
    assert history.step_count(ids[0]) == 3
    assert [s.name for s in history.steps(ids[0])] == ["source", "scaled", "total"]
    assert [s.name for s in history.steps(ids[0], limit=1, offset=1)] == ["scaled"]
    assert history.steps(ids[0][:14], limit=2)[0].name == "source"  # a prefix is enough


def test_a_step_across_runs_with_counts_and_reasons(many_runs):
    store, ids = many_runs
    history = store.history
    executions = history.step_history("total", pipeline="records", limit=2, offset=1)
    assert [s.run_id for s in executions] == [ids[3], ids[2]]
    assert history.step_counts("total", pipeline="records") == {"ok": 5}
    assert history.step_counts("broken", pipeline="records") == {"failed": 1}
    reasons = history.step_reasons("source", pipeline="records")
    assert sum(count for _, count in reasons) == 5
    assert history.step_counts("nope") == {}


def test_producers_consumers_and_lineage_take_a_limit(many_runs):
    store, _ids = many_runs
    history = store.history
    again = _pipeline().run(params={"n": 1}, store=store)  # reuses ids[0]'s values
    version = history.run(again.run_id).steps["total"].data_versions["total"]
    assert len(history.producers(version)) == 2
    assert [s.run_id for s in history.producers(version, limit=1)] == [again.run_id]
    scaled = history.run(again.run_id).steps["scaled"].data_versions["scaled"]
    assert len(history.consumers(scaled, limit=1)) == 1
    bounded = history.lineage(version, limit=2)
    assert [s.name for s in bounded] == ["total", "scaled"]
    assert len(history.lineage(version)) == 6  # every producer, across both runs
