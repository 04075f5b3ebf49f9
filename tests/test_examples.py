"""Smoke tests of what users copy first: the examples and the code blocks of the docs.

Each example runs as a script in a subprocess, in an empty directory; each ```python block
of README.md, docs/index.md, docs/concepts.md, docs/cookbook.md and docs/datasets.md runs
in a fresh namespace there too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOCS = [
    "README.md",
    "docs/index.md",
    "docs/concepts.md",
    "docs/cookbook.md",
    "docs/datasets.md",
    "docs/configuration.md",
    "docs/yaml.md",
]


def run_script(path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PLAIT_STORE"}
    completed = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


def test_the_ml_example_selects_and_scores_a_model(tmp_path):
    completed = run_script(EXAMPLES / "ml" / "pipeline.py", cwd=tmp_path)
    assert "cross-validated accuracy on the training wines:" in completed.stdout
    best = re.search(r"best: (.+) · test accuracy (\d\.\d+)", completed.stdout)
    assert best is not None, completed.stdout
    assert float(best.group(2)) > 0.8
    row = next(r for r in completed.stdout.splitlines() if r.startswith("cross_validate"))
    # one call per candidate (a map step counts its elements' calls)
    assert row.split()[:4] == ["cross_validate", "ok", "6", "el."]


def test_the_async_example_fetches_from_its_own_server(tmp_path):
    completed = run_script(EXAMPLES / "async_fetch" / "pipeline.py", "--count", "120", cwd=tmp_path)
    assert "fetched 120 items (0 missing)" in completed.stdout
    assert "total price: 1935.0" in completed.stdout


def test_the_notebook_style_example(tmp_path):
    completed = run_script(EXAMPLES / "notebook_style.py", cwd=tmp_path)
    assert "pipeline 'temperatures': 5 steps" in completed.stdout
    assert "starting the analysis" in completed.stdout
    assert completed.stdout.rstrip().endswith("smoothing kept the mean and shrank the spread")


def test_the_housing_example_writes_its_report(tmp_path):
    completed = run_script(EXAMPLES / "housing" / "pipeline.py", "--report", "r.md", cwd=tmp_path)
    assert "R²" in completed.stdout
    assert (tmp_path / "r.md").read_text(encoding="utf-8").startswith("# Housing price model")


def test_the_housing_example_hits_the_cache_the_second_time(tmp_path):
    script = EXAMPLES / "housing" / "pipeline.py"
    first = run_script(script, "--store", "store", "--report", "r.md", cwd=tmp_path)
    assert "cache hit" not in first.stdout
    second = run_script(script, "--store", "store", "--report", "r.md", cwd=tmp_path)
    table = second.stdout.split("\n\n", 1)[0].splitlines()[2:]
    hits = [row.split()[0] for row in table if "cache hit" in row]
    assert hits == ["load", "clean", "featurize", "split", "fit", "evaluate"]


def test_the_spaceflights_example_reads_and_writes_its_datasets(tmp_path):
    script = EXAMPLES / "spaceflights" / "pipeline.py"
    first = run_script(script, "--store", "store", cwd=tmp_path)
    assert "R² 0.9" in first.stdout
    data = tmp_path / "spaceflights" / "data"
    assert (data / "03_primary" / "model_input_table.parquet").exists()
    assert len(list((data / "06_models" / "regressor.pickle").iterdir())) == 1
    second = run_script(script, "--store", "store", cwd=tmp_path)
    table = second.stdout.split("\n\n", 1)[0].splitlines()[2:]
    assert all("cache hit" in row for row in table), second.stdout
    reviews = data / "01_raw" / "reviews.csv"
    reviews.write_text(reviews.read_text().replace("\n60000,99.0,", "\n60000,61.0,"))
    third = run_script(script, "--store", "store", cwd=tmp_path)
    rows = {r.split()[0]: r for r in third.stdout.split("\n\n", 1)[0].splitlines()[2:]}
    assert "cache hit" in rows["preprocessed_shuttles"]
    assert "input 'reviews' changed" in rows["model_input_table"]
    assert len(list((data / "06_models" / "regressor.pickle").iterdir())) == 2


def _python_blocks() -> list[tuple[str, int, str]]:
    blocks = []
    for name in DOCS:
        text = (ROOT / name).read_text(encoding="utf-8")
        found = re.findall(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
        blocks.extend((name, index, code) for index, code in enumerate(found))
    return blocks


BLOCKS = _python_blocks()


def test_the_docs_have_code_blocks():
    assert {name for name, _, _ in BLOCKS} == set(DOCS)


@pytest.mark.parametrize(("name", "index", "code"), BLOCKS, ids=[f"{n}[{i}]" for n, i, _ in BLOCKS])
def test_a_code_block_of_the_docs_runs(name, index, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAIT_STORE", raising=False)
    namespace = {"__name__": "__main__"}
    exec(compile(code, f"{name}[{index}]", "exec"), namespace)
