"""History without a store: ``run(history=...)`` records runs, data versions and lineage
and keeps no value (every step runs each time).

On every history backend (the ``history_url`` fixture: SQLite, DuckDB, PostgreSQL), on
``"memory"`` and a ``History`` object, on local and remote executors, and through the
command line's ``runs list``.
"""

from __future__ import annotations

import pytest

import executor_cases
from plait import Pipeline, Store, step
from plait.errors import UsageError
from plait.history import History
from store_cases import CALLS

REASON = "not cached: no store (history only)"


@pytest.fixture(autouse=True)
def _reset():
    CALLS.reset()


@step
def load(n):
    CALLS.hit("load")
    return list(range(n))


@step
def total(load):
    CALLS.hit("total")
    return sum(load)


PIPELINE = Pipeline([load, total], name="numbers")


def test_runs_are_recorded_with_their_data_versions_and_nothing_is_stored(history_url, tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    first = PIPELINE.run(params={"n": 4}, history=history_url)
    second = PIPELINE.run(params={"n": 4}, history=history_url)
    assert first["total"] == second["total"] == 6
    assert CALLS["load"] == CALLS["total"] == 2  # nothing is reused
    assert {record.reason for record in second.steps.values()} == {REASON}
    history = History(history_url)
    try:
        runs = history.runs(pipeline="numbers")
        assert [run.run_id for run in runs] == [second.run_id, first.run_id]
        assert all(run.status == "succeeded" for run in runs)
        recorded = history.run(first.run_id)
        versions = recorded.steps["total"].data_versions
        assert versions == first.steps["total"].data_versions
        assert versions["total"]  # a data version, with no store
        assert history.run(second.run_id).steps["total"].data_versions == versions
    finally:
        history.close()
    made = sorted(p.name for p in tmp_path.iterdir() if p.name not in before)
    assert all(name.startswith("history") for name in made), made  # no store directory


def test_lineage_works_without_a_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    result = PIPELINE.run(params={"n": 3}, history=url)
    history = History(url)
    try:
        (version,) = result.steps["total"].data_versions.values()
        upstream = history.lineage(version)
        assert [record.name for record in upstream] == ["total", "load"]
        assert {record.run_id for record in upstream} == {result.run_id}
    finally:
        history.close()


def test_a_failed_run_is_recorded_as_failed(tmp_path):
    @step
    def broken(load):
        raise ValueError("no")

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    result = Pipeline([load, broken]).run(params={"n": 1}, history=url, on_error="continue")
    history = History(url)
    try:
        record = history.run(result.run_id)
        assert record.status == "failed"
        assert {name: s.status for name, s in record.steps.items()} == {
            "load": "ok",
            "broken": "failed",
        }
    finally:
        history.close()


def test_memory_and_history_objects(tmp_path):
    from plait.run.history_only import open_history

    first = PIPELINE.run(params={"n": 2}, history="memory")
    second = PIPELINE.run(params={"n": 2}, history="memory")
    memory = open_history("memory")
    assert {r.run_id for r in memory.runs()} >= {first.run_id, second.run_id}
    mine = History(f"sqlite:///{tmp_path / 'mine.db'}")
    try:
        third = PIPELINE.run(params={"n": 2}, history=mine)
        assert [r.run_id for r in mine.runs()] == [third.run_id]
    finally:
        mine.close()


executor = executor_cases.executor
process_pool = executor_cases.process_pool


def listed(n):
    return list(range(n))


def added(listed):
    return sum(listed)


PLAIN = Pipeline([step(listed), step(added)])  # no counter: steps travel to other processes


def test_every_executor_records_data_versions_without_a_store(executor, tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    local = PLAIN.run(params={"n": 5}, history=url)
    result = PLAIN.run(params={"n": 5}, history=url, executor=executor)
    assert result["added"] == 10
    for name in ("listed", "added"):
        assert result.steps[name].data_versions == local.steps[name].data_versions
        assert result.steps[name].data_versions[name]


def test_history_and_a_store_together_is_refused_with_the_fix(tmp_path):
    with pytest.raises(UsageError, match=r"give the store its history: Store\(url, history="):
        PIPELINE.run(params={"n": 1}, history="memory", store=Store(tmp_path / "s"))


def test_runs_list_on_the_command_line_reads_a_store_less_history(tmp_path):
    from cli_cases import succeeds

    url = f"sqlite:///{tmp_path / '.plait' / 'history.db'}"
    result = PIPELINE.run(params={"n": 2}, history=url)
    output = succeeds("runs", "list", "--store", ".plait", cwd=tmp_path)
    assert result.run_id in output
    assert "numbers" in output
