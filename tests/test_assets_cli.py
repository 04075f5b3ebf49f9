"""The catalog, experiments and projects through the command line on every history
backend (``[tool.plait] history`` = a SQLite, DuckDB or PostgreSQL URL)."""

from __future__ import annotations

import json
import textwrap

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
