"""Experiments: the experiment table, best run, runs compare of several runs, pipeline
versions and compare_with, on every history backend (the CLI views: ``test_assets_cli``)."""

from __future__ import annotations

import pytest

from plait import Metrics, Pipeline, Store, current, step
from plait.errors import PlaitError


@step
def fit(alpha: float, depth: int = 3, config=None) -> dict:
    return {"alpha": alpha, "depth": depth}


@step
def score(fit: dict) -> Metrics:
    current().log_metric("seconds", 1.0)
    return Metrics({"r2": 1 - fit["alpha"] / 10, "rmse": fit["alpha"] * 2})


def _pipeline(**kw):
    kw.setdefault("name", "pricing-flow")
    return Pipeline([fit, score], config={"features": ["a", "b"]}, **kw)


@pytest.fixture
def store(open_store):
    return open_store()


def test_the_experiment_table_shows_what_differs_and_the_metrics(store):
    p = _pipeline(experiment="pricing")
    ids = [p.run(params={"alpha": a}, store=store, tags=[f"a{a}"]).run_id for a in (1.0, 3.0, 2.0)]
    table = store.history.experiment("pricing")
    assert [r.run_id for r in table.rows] == ids[::-1]  # newest first
    assert table.params == ("alpha",)  # depth (a default every run shares) is left out
    assert table.metrics == ("seconds", "r2", "rmse")
    assert [r.metrics["r2"] for r in table.sort("r2").rows] == [0.9, 0.8, 0.7]
    assert [r.params["alpha"] for r in table.sort("rmse", descending=False).rows] == [1, 2, 3]
    assert table.rows[0].tags == ("a2.0",)
    text = table.sort("r2").to_text()
    assert text.splitlines()[0].split() == [
        "run_id",
        "status",
        "version",
        "params.alpha",
        "seconds",
        "r2",
        "rmse",
    ]
    assert text.splitlines()[1].split()[0] == ids[0][:12]
    with pytest.raises(PlaitError, match=r"no metric 'r22'.*did you mean 'r2'"):
        table.sort("r22")


def test_the_experiment_defaults_to_the_pipeline_name(store):
    _pipeline().run(params={"alpha": 1.0}, store=store)
    assert len(store.history.experiment("pricing-flow")) == 1
    with pytest.raises(PlaitError, match=r"no runs of experiment 'pricing-flwo'.*did you mean"):
        store.history.experiment("pricing-flwo")


def test_best_run_in_one_call(store):
    p = _pipeline(experiment="pricing")
    runs = {a: p.run(params={"alpha": a}, store=store).run_id for a in (2.0, 1.0, 3.0)}
    assert store.history.best("pricing", "r2", mode="max").run_id == runs[1.0]
    assert store.history.best("pricing", "rmse", mode="min").run_id == runs[1.0]
    assert store.history.best("pricing", "r2", mode="min").run_id == runs[3.0]
    with pytest.raises(PlaitError, match="mode is 'max' or 'min'"):
        store.history.best("pricing", "r2", mode="top")  # type: ignore[arg-type]


def test_a_cached_run_shows_the_metrics_of_the_execution_it_reused(store):
    p = _pipeline(experiment="pricing")
    p.run(params={"alpha": 1.0}, store=store)
    again = p.run(params={"alpha": 1.0}, store=store)
    assert again.steps["score"].cached
    row = store.history.experiment("pricing").rows[0]
    assert row.run_id == again.run_id
    assert row.metrics["r2"] == 0.9


def test_compare_many_runs_lists_metrics_params_config_and_code(store):
    a = _pipeline().run(params={"alpha": 1.0}, store=store)
    b = _pipeline().run(params={"alpha": 2.0}, store=store)

    @step
    def score(fit: dict) -> Metrics:  # new code
        return Metrics({"r2": 0.5})

    c = Pipeline([fit, score], name="pricing-flow", config={"features": ["a"]}).run(
        params={"alpha": 2.0}, store=store
    )
    diff = store.history.compare_many([a.run_id, b.run_id, c.run_id])
    assert diff["params"] == {"alpha": [1.0, 2.0, 2.0]}
    both, one = {"features": ["a", "b"]}, {"features": ["a"]}
    assert diff["config"] == {"config": [both, both, one]}  # fit reads the whole config
    assert diff["metrics"]["r2"] == [0.9, 0.8, 0.5]
    assert diff["steps"]["score"]["same_code"] is False
    assert diff["steps"]["fit"]["same_code"] is True
    two = store.history.compare(a.run_id, c.run_id)
    assert two["steps"]["score"]["same_code"] is False
    assert two["metrics"][0]["r2"] == 0.9


def test_config_differences_are_compared(store):
    @step
    def read(features: list) -> int:
        return len(features)

    a = Pipeline([read], name="cfg", config={"features": ["a"]}).run(store=store)
    b = Pipeline([read], name="cfg", config={"features": ["a", "b"]}).run(store=store)
    assert store.history.compare(a.run_id, b.run_id)["config"] == {"features": (["a"], ["a", "b"])}
    assert store.history.experiment("cfg").config == ("features",)


def test_versions_are_recorded_and_compare_with_a_recorded_version(store):
    _pipeline(version="1.1.0").run(params={"alpha": 1.0}, store=store)
    assert _pipeline(version="1.2.0").compare_with("1.1.0", store=store) == []

    @step
    def score(fit: dict) -> float:
        return 0.0

    changed = Pipeline([fit, score], name="pricing-flow", params={"alpha": 5.0}, version="1.2.0")
    rows = [(c.step, c.what) for c in changed.compare_with("1.1.0", store=store)]
    assert rows == [("score", "code"), (None, "params.alpha")]
    with pytest.raises(PlaitError, match=r"no recorded run .* version '0.9'.*\['1.1.0'\]"):
        changed.compare_with("0.9", store=store)


# -- projects ------------------------------------------------------------------------------
def test_two_projects_share_a_store_without_seeing_each_other(tmp_path, history_url):
    pricing = Store(tmp_path / "s", history=history_url, project="pricing")
    churn = Store(tmp_path / "s", history=history_url, project="churn")
    everyone = Store(tmp_path / "s", history=history_url)
    other = Store(tmp_path / "s", history=history_url, project="other")
    try:
        a = _pipeline(experiment="exp").run(params={"alpha": 1.0}, store=pricing)
        b = _pipeline(experiment="exp").run(params={"alpha": 2.0}, store=churn)
        assert pricing.history.run(a.run_id).project == "pricing"
        assert [v.run_id for v in pricing.catalog.find()] == [a.run_id]
        assert [v.run_id for v in churn.catalog.find()] == [b.run_id]
        assert len(pricing.catalog.find(all_projects=True)) == 2
        assert len(everyone.catalog.find()) == 2
        assert [r.run_id for r in pricing.history.experiment("exp").rows] == [a.run_id]
        assert [r.run_id for r in churn.history.experiment("exp").rows] == [b.run_id]
        assert len(pricing.history.experiment("exp", all_projects=True)) == 2
        assert len(everyone.history.experiment("exp")) == 2
        assert pricing.history.best("exp", "r2").run_id == a.run_id
        assert pricing.catalog.get("score").project == "pricing"
        with pytest.raises(KeyError, match=r"no asset 'score'.*project 'other'"):
            other.catalog.get("score")
    finally:
        for s in (pricing, churn, everyone, other):
            s.close()
