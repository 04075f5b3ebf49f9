"""Lineage across runs: who produced a value, who consumed it, how it came to be; and
comparing two runs.

Every test runs on the three history backends (``history_url``). Values are identified by
their data versions (content hashes), so a value produced in one run and read in another
(by a cache hit downstream, or passed to another pipeline as a param) links the two runs.
"""

from __future__ import annotations

import pytest

from plait import Pipeline, current, step

# -- raw -> features -> model -> report;  label is a branch off raw's param ----------------------


@step
def raw(n):
    return list(range(n))


@step
def features(raw):
    return [value * 2 for value in raw]


@step
def model(features, alpha):
    current().log_metric("score", alpha * len(features))
    return sum(features) * alpha


@step
def report(model, label):
    return f"{label}: {model}"


@step
def label(name):
    return name.upper()


TRAINING = [raw, features, model, report, label]
PARAMS = {"n": 4, "alpha": 2, "name": "run"}


# a second pipeline that takes a value produced by the first as a param
@step
def audit(model):
    return model + 1


@pytest.fixture
def two_runs(open_store):
    """Run 1 computes everything; run 2 changes only ``alpha``, so raw and features are
    cache hits and model re-runs on the features computed in run 1."""
    store = open_store()
    pipeline = Pipeline(TRAINING, name="training")
    first = pipeline.run(params=PARAMS, store=store)
    second = pipeline.run(params={**PARAMS, "alpha": 3}, store=store)
    return store, first, second


def test_producers_of_a_value_include_the_execution_that_computed_it(two_runs):
    store, first, second = two_runs
    version = first.steps["features"].data_versions["features"]
    assert second.steps["features"].data_versions["features"] == version
    producers = store.history.producers(version)
    assert {p.name for p in producers} == {"features"}
    computed = [p for p in producers if not p.cached]
    assert [(p.run_id, p.name) for p in computed] == [(first.run_id, "features")]
    assert all(version in p.data_versions.values() for p in producers)


def test_consumers_of_a_value_span_both_runs(two_runs):
    store, first, second = two_runs
    version = first.steps["features"].data_versions["features"]
    consumers = store.history.consumers(version)
    executed = {(c.run_id, c.name) for c in consumers if not c.cached}
    assert executed == {(first.run_id, "model"), (second.run_id, "model")}
    assert {c.name for c in consumers} == {"model"}
    for record in consumers:
        assert record.input_versions["features"] == version


def test_an_unknown_data_version_has_no_producers_consumers_or_lineage(two_runs):
    store, _, _ = two_runs
    unknown = "0" * 32
    assert store.history.producers(unknown) == []
    assert store.history.consumers(unknown) == []
    assert store.history.lineage(unknown) == []


def test_lineage_walks_upstream_across_runs(two_runs):
    store, first, second = two_runs
    version = second.steps["report"].data_versions["report"]
    lineage = store.history.lineage(version)
    assert lineage[0].name == "report"
    assert lineage[0].run_id == second.run_id
    names = {record.name for record in lineage}
    assert names == {"report", "model", "features", "raw", "label"}
    # the model of run 2 is in it, the model of run 1 (a different value) is not
    models = {record.run_id for record in lineage if record.name == "model"}
    assert models == {second.run_id}
    # features and raw were computed in run 1: their computation is part of the lineage
    computed = {(r.run_id, r.name) for r in lineage if not r.cached}
    assert (first.run_id, "features") in computed
    assert (first.run_id, "raw") in computed


def test_lineage_stops_at_the_value_and_excludes_downstream_and_siblings(two_runs):
    store, first, _ = two_runs
    version = first.steps["features"].data_versions["features"]
    lineage = store.history.lineage(version)
    assert {record.name for record in lineage} == {"features", "raw"}
    assert lineage[0].name == "features"


def test_lineage_follows_a_value_handed_to_another_pipeline(two_runs):
    store, _, second = two_runs
    value = second["model"]
    audited = Pipeline([audit], name="audit").run(params={"model": value}, store=store)
    model_version = second.steps["model"].data_versions["model"]
    assert audited.steps["audit"].cache_key is not None
    consumers = store.history.consumers(model_version)
    assert (audited.run_id, "audit") in {(c.run_id, c.name) for c in consumers}
    lineage = store.history.lineage(audited.steps["audit"].data_versions["audit"])
    assert lineage[0].run_id == audited.run_id
    assert {(r.run_id, r.name) for r in lineage} >= {
        (audited.run_id, "audit"),
        (second.run_id, "model"),
    }
    assert {r.name for r in lineage} == {"audit", "model", "features", "raw"}


def test_compare_shows_what_changed_between_two_runs(two_runs):
    store, first, second = two_runs
    diff = store.history.compare(first.run_id, second.run_id)
    assert diff["runs"] == (first.run_id, second.run_id)
    assert diff["params"] == {"alpha": (2, 3)}
    assert diff["status"] == ("succeeded", "succeeded")
    fingerprint = store.history.run(first.run_id).fingerprint
    assert diff["fingerprint"] == (fingerprint, fingerprint)
    steps = diff["steps"]
    assert set(steps) == {"raw", "features", "model", "report", "label"}
    for name in ("raw", "features", "label"):
        assert steps[name]["status"] == ("ok", "ok")
        assert steps[name]["cached"] == (False, True)
        assert steps[name]["same_output"] is True
    for name in ("model", "report"):
        assert steps[name]["cached"] == (False, False)
        assert steps[name]["same_output"] is False
        left, right = steps[name]["data_versions"]
        assert left == first.steps[name].data_versions
        assert right == second.steps[name].data_versions
        assert left != right
    assert steps["model"]["metrics"] == ({"score": 8}, {"score": 12})
    duration_a, duration_b = steps["model"]["duration"]
    assert isinstance(duration_a, float)
    assert isinstance(duration_b, float)
    assert duration_a >= 0
    assert duration_b >= 0


def test_compare_shows_a_step_missing_from_one_run_and_a_failure(open_store):
    store = open_store()

    @step
    def fragile(model, limit):
        if model > limit:
            raise ValueError(f"model {model} over {limit}")
        return model

    small = Pipeline(TRAINING, name="training").run(params=PARAMS, store=store)
    bigger = Pipeline([*TRAINING, fragile], name="training").run(
        params={**PARAMS, "limit": 1}, store=store, on_error="continue"
    )
    diff = store.history.compare(small.run_id, bigger.run_id)
    assert diff["status"] == ("succeeded", "failed")
    assert diff["params"] == {"limit": (None, 1)}
    assert diff["steps"]["fragile"]["status"] == (None, "failed")
    assert diff["steps"]["fragile"]["same_output"] is False
    assert diff["fingerprint"][0] != diff["fingerprint"][1]


def test_compare_accepts_unique_prefixes_and_rejects_unknown_runs(two_runs):
    store, first, second = two_runs
    diff = store.history.compare(first.run_id[:-1], second.run_id)
    assert diff["runs"] == (first.run_id, second.run_id)
    with pytest.raises(KeyError, match="no run"):
        store.history.compare(first.run_id, "zz-not-a-run")


def test_compare_lists_steps_in_pipeline_order_and_config_differences(open_store):
    store = open_store()

    @step(inputs={"scale": "config.scale"})
    def aardvark(model, scale):  # alphabetically first, last in the pipeline
        return model * scale

    pipeline = Pipeline([*TRAINING, aardvark], name="training", config={"scale": 2})
    first = pipeline.run(params=PARAMS, store=store)
    second = pipeline.run(params=PARAMS, config={"scale": 5}, store=store)
    diff = store.history.compare(first.run_id, second.run_id)
    assert list(diff["steps"]) == [s.name for s in pipeline.order]
    assert list(diff["steps"])[-1] == "aardvark"
    assert diff["config"] == {"config.scale": (2, 5)}
    assert diff["params"] == {}


def test_lineage_records_carry_the_defaults_their_steps_ran_with(open_store):
    store = open_store()

    @step
    def tuned(features, rate=0.5):
        return [value * rate for value in features]

    result = Pipeline([raw, features, tuned], name="tuned").run(params={"n": 3}, store=store)
    upstream = store.history.lineage(result.steps["tuned"].data_versions["tuned"])
    by_name = {record.name: record for record in upstream}
    assert by_name["tuned"].params == {"rate": 0.5}
    assert by_name["raw"].params == {"n": 3}
    assert by_name["features"].params == {}
