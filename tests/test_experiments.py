"""Experiments: the experiment table, best run, runs compare of several runs, pipeline
versions and compare_with, on every history backend; and the CLI views."""

from __future__ import annotations

import json
import textwrap

import pytest

from cli_cases import plait, succeeds
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


# -- command line --------------------------------------------------------------------------
FLOW = """
from plait import Metrics, Model, Pipeline, step

@step
def train(alpha: float) -> Model:
    return {"alpha": alpha}

@step
def score(train: dict) -> Metrics:
    return Metrics({"r2": 1 - train["alpha"] / 10})

pipeline = Pipeline([train, score], name="flow", experiment="pricing", version="1.0")
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    for alpha in ("1", "3", "2"):
        succeeds("run", "flow.py:pipeline", "--param", f"alpha={alpha}", cwd=tmp_path)
    return tmp_path


def test_cli_runs_list_experiment_sorted_by_a_metric(project):
    out = succeeds("runs", "list", "--experiment", "pricing", "--sort", "r2", "--desc", cwd=project)
    lines = out.splitlines()
    assert lines[0].split() == ["run_id", "status", "version", "params.alpha", "r2"]
    assert [line.split()[-1] for line in lines[1:]] == ["0.9", "0.8", "0.7"]
    ascending = succeeds("runs", "list", "--experiment", "pricing", "--sort", "r2", cwd=project)
    assert [line.split()[-1] for line in ascending.splitlines()[1:]] == ["0.7", "0.8", "0.9"]
    data = json.loads(
        succeeds("runs", "list", "--experiment", "pricing", "--sort", "r2", "--json", cwd=project)
    )
    assert data["params"] == ["alpha"]
    assert len(data["rows"]) == 3
    bad = plait("runs", "list", "--sort", "r2", cwd=project)
    assert bad.returncode == 2
    assert "--experiment NAME --sort r2" in bad.stderr
    assert "Traceback" not in bad.stderr
    typo = plait("runs", "list", "--experiment", "pricing", "--sort", "r22", cwd=project)
    assert typo.returncode == 2
    assert "did you mean 'r2'" in typo.stderr
    assert len(succeeds("runs", "list", "--version", "1.0", cwd=project).splitlines()) == 4
    assert "no run matched" in succeeds("runs", "list", "--version", "2.0", cwd=project)


def test_cli_runs_compare_three_runs(project):
    ids = [line.split()[0] for line in succeeds("runs", "list", cwd=project).splitlines()[1:]]
    out = succeeds("runs", "compare", *ids, cwd=project)
    assert "C = run" in out
    assert "metrics:" in out
    assert "params that differ:" in out
    assert "r2" in out
    assert "alpha" in out
    assert "STATUS C" in out
    assert "CODE" in out
    two = succeeds("runs", "compare", ids[0], ids[1], cwd=project)
    assert "metrics:" in two
    assert "CODE" in two


def test_cli_assets_list_show_load_tag(project):
    listed = succeeds("assets", "list", cwd=project)
    assert listed.splitlines()[0].split()[:3] == ["NAME", "KIND", "VERSION"]
    assert sum(line.startswith("train ") for line in listed.splitlines()) == 3
    models = json.loads(succeeds("assets", "list", "--kind", "model", "--json", cwd=project))
    oldest = models[-1]
    shown = succeeds("assets", "show", "train", oldest["run_id"][:-2], cwd=project)
    assert oldest["version"] in shown
    assert "lineage" in shown
    assert succeeds("assets", "load", "train", cwd=project).strip() == "{'alpha': 2.0}"
    tagged = succeeds("assets", "tag", "train", oldest["version"][:12], "production", cwd=project)
    assert "production" in tagged
    assert succeeds("assets", "load", "train", "production", cwd=project).strip() == (
        "{'alpha': 1.0}"
    )
    out = project / "m.json"
    succeeds("assets", "load", "train", "production", "-o", str(out), cwd=project)
    assert json.loads(out.read_text()) == {"alpha": 1.0}
    assert "production" in succeeds("assets", "list", "--tag", "production", cwd=project)
    missing = plait("assets", "show", "trian", cwd=project)
    assert missing.returncode == 2
    assert "did you mean 'train'" in missing.stderr
    assert "Traceback" not in missing.stderr
    succeeds("cache", "gc", "--keep-last", "1", cwd=project)
    assert succeeds("assets", "load", "train", "production", cwd=project).strip() == (
        "{'alpha': 1.0}"
    )
    succeeds("assets", "untag", "train", "production", cwd=project)


def test_cli_lists_only_the_configured_project(tmp_path):
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    (tmp_path / "pyproject.toml").write_text('[tool.plait]\nproject = "pricing"\n')
    succeeds("run", "flow.py:pipeline", "--param", "alpha=1", cwd=tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.plait]\nproject = "churn"\n')
    succeeds("run", "flow.py:pipeline", "--param", "alpha=2", cwd=tmp_path)
    runs = succeeds("runs", "list", cwd=tmp_path).splitlines()[1:]
    assert len(runs) == 1
    assert len(succeeds("runs", "list", "--all-projects", cwd=tmp_path).splitlines()[1:]) == 2
    assets = succeeds("assets", "list", cwd=tmp_path).splitlines()[1:]
    assert {line.split()[0] for line in assets} == {"train", "score"}
    assert len(assets) == 2
    every = succeeds("assets", "list", "--all-projects", cwd=tmp_path).splitlines()[1:]
    assert len(every) == 4
    table = succeeds("runs", "list", "--experiment", "pricing", cwd=tmp_path).splitlines()[1:]
    assert len(table) == 1
