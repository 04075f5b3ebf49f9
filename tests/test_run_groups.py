"""What a run is recorded with to group it (history schema 5): the trigger that started it,
its experiment, the pipeline's version and the store's project, on every history backend,
with the ``runs(...)`` filters, ``plait runs list`` and the migration of a schema-4 database.
"""

from __future__ import annotations

import json

from cli_cases import succeeds
from plait import Pipeline, Store, step
from plait.history.db import SCHEMA_VERSION
from plait.run.runner import new_run_id, run_pipeline


@step
def doubled(n: int) -> int:
    return 2 * n


def _pipeline(**options: str) -> Pipeline:
    return Pipeline([doubled], name="groups", **options)


_RUN_OPTIONS = {
    "outputs": None,
    "executor": "sequential",
    "force": False,
    "on_error": "raise",
    "tags": None,
    "hooks": (),
    "config": None,
    "max_concurrency": None,
}


def _triggered(pipeline: Pipeline, store: Store, trigger: dict[str, str], **more: str) -> str:
    result = run_pipeline(
        pipeline, params={"n": 1}, store=store, trigger=trigger, **more, **{**_RUN_OPTIONS}
    )
    return result.run_id


def test_a_direct_run_records_its_experiment_version_and_project(open_store):
    store = open_store()
    plain = _pipeline().run(params={"n": 1}, store=store)
    record = store.history.run(plain.run_id)
    assert (record.trigger, record.experiment, record.version, record.project) == (
        None,
        "groups",  # the experiment defaults to the pipeline's name
        None,
        None,
    )
    projected = Store(store.url, history=store.history.url, project="pricing")
    versioned = _pipeline(experiment="trials", version="1.2.0").run(
        params={"n": 2}, store=projected
    )
    record = projected.history.run(versioned.run_id)
    assert (record.experiment, record.version, record.project) == ("trials", "1.2.0", "pricing")
    assert record.to_dict(steps=False)["version"] == "1.2.0"
    projected.history.close()


def test_a_triggered_run_records_its_trigger_and_the_run_id_it_was_given(open_store):
    store = open_store()
    chosen = new_run_id()
    trigger = {"kind": "cron", "name": "hourly", "event_id": "2026-12-06T10:00:00Z"}
    run_id = _triggered(_pipeline(), store, trigger, run_id=chosen)
    assert run_id == chosen
    assert store.history.run(chosen).trigger == trigger


def test_runs_filter_by_trigger_name_or_kind_experiment_version_and_project(open_store):
    store = open_store()
    hourly = _triggered(_pipeline(), store, {"kind": "cron", "name": "hourly", "event_id": "1"})
    hook = _triggered(_pipeline(), store, {"kind": "webhook", "name": "/run", "event_id": "r1"})
    odd = _triggered(  # a name with LIKE's wildcards in it matches only itself
        _pipeline(), store, {"kind": "cron", "name": "a_b%", "event_id": "2"}
    )
    plain = _pipeline(version="2").run(params={"n": 3}, store=store).run_id
    other = Store(store.url, history=store.history.url, project="elsewhere")
    elsewhere = _pipeline(experiment="trials").run(params={"n": 4}, store=other).run_id
    other.history.close()

    def ids(**filters: str) -> set[str]:
        return {r.run_id for r in store.history.runs(limit=None, **filters)}  # type: ignore[arg-type]

    assert ids(trigger="hourly") == {hourly}
    assert ids(trigger="cron") == {hourly, odd}
    assert ids(trigger="webhook") == {hook}
    assert ids(trigger="a_b%") == {odd}
    assert ids(trigger="axb%") == set()
    assert ids(version="2") == {plain}
    assert ids(experiment="trials") == {elsewhere}
    assert ids(experiment="groups") == {hourly, hook, odd, plain}
    assert ids(project="elsewhere") == {elsewhere}
    assert store.history.run_counts(trigger="cron") == {"succeeded": 2}


def test_plait_runs_list_filters_by_the_new_groups(tmp_path):
    store = Store(tmp_path / ".plait", project="pricing")
    first = _triggered(
        _pipeline(version="1.1.0"), store, {"kind": "every", "name": "every 5s", "event_id": "3"}
    )
    second = _pipeline(version="1.2.0").run(params={"n": 5}, store=store).run_id
    store.close()
    listed = succeeds("runs", "list", "--version", "1.1.0", "--json", cwd=tmp_path)
    assert [r["run_id"] for r in json.loads(listed)] == [first]
    (record,) = json.loads(
        succeeds("runs", "list", "--trigger", "every 5s", "--json", cwd=tmp_path)
    )
    assert record["trigger"] == {"kind": "every", "name": "every 5s", "event_id": "3"}
    assert record["project"] == "pricing"
    both = succeeds("runs", "list", "--project", "pricing", "--json", cwd=tmp_path)
    assert {r["run_id"] for r in json.loads(both)} == {first, second}
    none = succeeds("runs", "list", "--experiment", "nothing", cwd=tmp_path)
    assert "no run matched --experiment nothing" in none


_V5_COLUMNS = ("trigger", "experiment", "version", "project")


def _downgrade_to_4(store: Store) -> None:
    """Make the store's history what the release with schema 4 wrote."""
    db = store.history.db
    # DuckDB drops no column of an indexed table: drop the runs' indexes too (version 4's
    # come back when the database is opened, as they would be there)
    indexes = ["by_time", "by_pipeline", "by_origin", "by_status"]
    for index in [*indexes, "by_experiment", "by_version", "by_project"]:
        db.execute(f"DROP INDEX IF EXISTS runs_{index}")
    for column in _V5_COLUMNS:
        db.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    store.history.close()


def test_a_schema_4_database_migrates_and_keeps_its_runs(open_store):
    assert SCHEMA_VERSION >= 5
    store = open_store()
    old = _pipeline().run(params={"n": 6}, store=store).run_id
    _downgrade_to_4(store)
    again = open_store()
    record = again.history.run(old)
    assert (record.trigger, record.experiment, record.version, record.project) == (
        None,
        None,  # recorded before plait kept experiments
        None,
        None,
    )
    assert record.params == {"n": 6}
    rows = again.history.db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    assert rows == [(str(SCHEMA_VERSION),)]
    new = _triggered(_pipeline(version="3"), again, {"kind": "cron", "name": "h", "event_id": "4"})
    assert again.history.run(new).version == "3"
    assert {r.run_id for r in again.history.runs(trigger="h")} == {new}


def test_an_empty_trigger_filter_matches_nothing_rather_than_everything(open_store):
    store = open_store()
    _triggered(_pipeline(), store, {"kind": "cron", "name": "h", "event_id": "5"})
    assert store.history.runs(trigger="") == []
