"""The catalog, experiments and projects through the command line: on every history
backend (``[tool.plait] history`` = a SQLite, DuckDB or PostgreSQL URL), then each view
(``runs list --experiment``, ``runs compare``, ``assets``, projects) on the default one."""

from __future__ import annotations

import json
import textwrap

import pytest

from cli_cases import plait, succeeds

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


def _project(tmp_path, history_url, project):
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.plait]\nproject = "{project}"\nhistory = "{history_url}"\n'
    )


def test_the_cli_on_every_history_backend(tmp_path, history_url):
    _project(tmp_path, history_url, "pricing")
    for alpha in ("1", "3", "2"):
        succeeds("run", "flow.py:pipeline", "--param", f"alpha={alpha}", cwd=tmp_path)
    assert not (tmp_path / ".plait" / "history.db").exists() or history_url.startswith("sqlite")
    table = succeeds(
        "runs", "list", "--experiment", "pricing", "--sort", "r2", "--desc", cwd=tmp_path
    )
    assert [line.split()[-1] for line in table.splitlines()[1:]] == ["0.9", "0.8", "0.7"]
    ids = [line.split()[0] for line in succeeds("runs", "list", cwd=tmp_path).splitlines()[1:]]
    assert len(ids) == 3
    compared = succeeds("runs", "compare", *ids, cwd=tmp_path)
    assert "C = run" in compared
    assert "params that differ:" in compared
    models = json.loads(succeeds("assets", "list", "--kind", "model", "--json", cwd=tmp_path))
    assert [m["project"] for m in models] == ["pricing"] * 3
    oldest = models[-1]
    succeeds("assets", "tag", "train", oldest["run_id"], "production", cwd=tmp_path)
    loaded = succeeds("assets", "load", "train", "production", cwd=tmp_path)
    assert loaded.strip() == "{'alpha': 1.0}"
    shown = succeeds("assets", "show", "train", "production", cwd=tmp_path)
    assert "aliases:    production" in shown
    succeeds("cache", "gc", "--keep-last", "1", cwd=tmp_path)
    assert (
        len(json.loads(succeeds("assets", "list", "--kind", "model", "--json", cwd=tmp_path))) == 2
    )
    assert succeeds("assets", "load", "train", "production", cwd=tmp_path).strip() == (
        "{'alpha': 1.0}"
    )

    # another project on the same store and history sees none of it by default
    _project(tmp_path, history_url, "churn")
    assert "no assets of project 'churn'" in succeeds("assets", "list", cwd=tmp_path)
    assert "no run matched" in succeeds("runs", "list", "--experiment", "pricing", cwd=tmp_path)
    assert len(succeeds("assets", "list", "--all-projects", cwd=tmp_path).splitlines()) == 5
    missing = plait("assets", "load", "train", cwd=tmp_path)
    assert missing.returncode == 2
    assert "project 'churn'" in missing.stderr
    assert "Traceback" not in missing.stderr


# -- the CLI views, on the default (SQLite) history ------------------------------------------


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
