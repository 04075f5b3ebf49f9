"""History schema 7 (issue 16): the index ``steps_by_name_run`` is gone, every reader
still finds what it found, and a schema-6 database migrates on SQLite, DuckDB and
PostgreSQL."""

from __future__ import annotations

from plait import Pipeline, Step


def _double(v):
    return 2 * v


def _add_one(v):
    return v + 1


def _pipeline(name: str = "fast") -> Pipeline:
    return Pipeline(
        [
            Step(_double, inputs={"v": "x"}, outputs=["doubled"], name="double"),
            Step(_add_one, inputs={"v": "doubled"}, outputs=["result"], name="add_one"),
        ],
        name=name,
    )


def _indexes(db) -> set[str]:
    """The names of the indexes on the ``steps`` table, on each backend."""
    name = db.dialect.name
    if name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'steps'"
    elif name.startswith("duckdb"):
        sql = "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'steps'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'steps'"
    return {str(row[0]) for row in db.execute(sql)}


def _downgrade_to_6(store) -> None:
    """Make the store's history what the release with schema 6 wrote."""
    db = store.history.db
    db.execute("CREATE INDEX IF NOT EXISTS steps_by_name_run ON steps (name, run_id)")
    db.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    assert "steps_by_name_run" in _indexes(db)
    store.history.close()


def test_a_new_history_has_no_steps_by_name_run_index(open_store):
    from plait.history.db import SCHEMA_VERSION

    assert SCHEMA_VERSION == 7
    store = open_store()
    _pipeline().run(params={"x": 1}, store=store)
    indexes = _indexes(store.history.db)
    assert "steps_by_name_run" not in indexes
    assert "steps_by_name" in indexes
    store.history.close()
    again = open_store()  # reconnecting does not bring it back
    assert "steps_by_name_run" not in _indexes(again.history.db)


def test_a_schema_6_database_migrates_and_its_readers_still_answer(open_store):
    store = open_store()
    old = _pipeline().run(params={"x": 1}, store=store)
    _downgrade_to_6(store)
    again = open_store()
    db = again.history.db
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'") == [("7",)]
    assert "steps_by_name_run" not in _indexes(db)
    record = again.history.run(old.run_id)
    assert record.steps["add_one"].data_versions == old.steps["add_one"].data_versions
    new = _pipeline().run(params={"x": 10}, store=again)  # executes: new inputs
    hit = _pipeline().run(params={"x": 10}, store=again)  # every step a cache hit
    assert all(step.cached for step in hit.steps.values())
    history = again.history
    # one step across runs, with and without the pipeline filter (the reads the index served)
    newest = [r.run_id for r in history.step_history("add_one", "fast")]
    assert newest == [hit.run_id, new.run_id, old.run_id]
    assert history.step_counts("add_one", "fast") == {"ok": 2, "cached": 1}
    assert history.step_counts("add_one") == {"ok": 2, "cached": 1}
    assert dict(history.step_reasons("add_one", "fast"))["cache hit"] == 1
    # lineage: the hit's output has both producers, newest first, and its input's producer
    version = hit.steps["add_one"].data_versions["result"]
    assert [r.run_id for r in history.producers(version)] == [hit.run_id, new.run_id]
    doubled = hit.steps["double"].data_versions["doubled"]
    assert [r.run_id for r in history.consumers(doubled)] == [hit.run_id, new.run_id]
    assert {(r.run_id, r.name) for r in history.lineage(version)} == {
        (hit.run_id, "add_one"),
        (new.run_id, "add_one"),
        (hit.run_id, "double"),
        (new.run_id, "double"),
    }
    # a run's steps, deleting a run
    assert [s.name for s in history.steps(hit.run_id)] == ["double", "add_one"]
    assert history.delete_runs([old.run_id]) == 1
    assert [r.run_id for r in history.step_history("add_one")] == [hit.run_id, new.run_id]
