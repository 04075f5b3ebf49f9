"""The ML example uses assets, an experiment and a frozen version (examples/ml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plait import Store
from plait.snapshot import Snapshot

ROOT = Path(__file__).resolve().parent.parent


def _python(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in ``cwd``, without any ``PLAIT_`` variable; it must succeed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT_")}
    completed = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


@pytest.mark.slow
def test_the_ml_example_catalogues_assets_and_tables_its_experiment(tmp_path):
    completed = _python(
        str(ROOT / "examples" / "ml" / "pipeline.py"),
        *("--store", "store", "--seeds", "0,1", "--freeze", "wine.json"),
        *("--executor", "sequential"),
        cwd=tmp_path,
        timeout=300,
    )
    out = completed.stdout
    header = next(line for line in out.splitlines() if line.startswith("run_id"))
    assert header.split() == [
        "run_id",
        "status",
        "version",
        "params.seed",
        "accuracy",
        "macro_f1",
        "n_test",
    ]
    assert "wine-model versions in the catalog: 2" in out
    snapshot = Snapshot.load(tmp_path / "wine.json")
    assert snapshot.version == "1.0.0"
    assert snapshot.experiment == "wine-selection"
    with Store(tmp_path / "store") as store:
        models = store.catalog.find(kind="model", name="wine-model")
        assert len(models) == 2
        assert models[0].metadata["class"] == "sklearn.pipeline.Pipeline"
        assert models[0].experiment == "wine-selection"
        assert {v.name for v in store.catalog.find()} == {"wine-model", "wine-split", "test_scores"}
        assert hasattr(store.catalog.load("wine-model"), "predict")
        table = store.history.experiment("wine-selection")
        assert table.params == ("seed",)
        best = store.history.best("wine-selection", "accuracy")
        assert best.version == "1.0.0"


def test_the_code_of_docs_assets_runs(tmp_path):
    import re

    text = (ROOT / "docs" / "assets.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        _python("-c", block, cwd=tmp_path, timeout=120)
