"""A step's fingerprint follows its code however the code was loaded.

One pipeline file is loaded four ways, each in a fresh process: imported as a module, run
as ``__main__``, loaded from its path without being registered in ``sys.modules`` (as many
tools load user code), and run by ``plait run FILE.py:pipeline``. Every way must see the
same fingerprint and the same cache key, and every way must see an edit of a helper, of a
helper class or of a module constant the step reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plait import Store

FLOW = """
import sys

from plait import Pipeline, step

THRESHOLD = {threshold}


class Scaler:
    def apply(self, x):
        return x * {factor}


def helper(x):
    return Scaler().apply(x) + {offset}


@step
def compute(x):
    return helper(x) + THRESHOLD


pipeline = Pipeline([compute], name="flow", params={{"x": 1}})

if __name__ == "__main__":
    from plait_loading_report import report

    report(pipeline, sys.argv[1])
"""

# imported by every mode: run the pipeline on a store and print what the test compares
REPORT = """
import json


def report(pipeline, store):
    result = pipeline.run(store=store)
    step = result.steps["compute"]
    print(json.dumps({
        "fingerprint": pipeline.fingerprint,
        "key": step.cache_key,
        "cached": step.cached,
        "reason": step.reason,
        "value": result["compute"],
    }))
"""

IMPORTED = """
import sys

import flow
from plait_loading_report import report

report(flow.pipeline, sys.argv[1])
"""

FROM_FILE = """
import importlib.util
import sys

from plait_loading_report import report

spec = importlib.util.spec_from_file_location("loaded_flow", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)  # deliberately not registered in sys.modules
assert "loaded_flow" not in sys.modules
report(module.pipeline, sys.argv[1])
"""

MODES = ("import", "main", "file", "plait-run")
BASE = {"threshold": 1, "factor": 2, "offset": 1}
EDITS = {
    "helper": {"offset": 5},
    "helper-class": {"factor": 3},
    "constant": {"threshold": 2},
}


def _project(directory: Path, **values: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flow.py").write_text(FLOW.format(**{**BASE, **values}))
    (directory / "plait_loading_report.py").write_text(REPORT)
    return directory


def _run(mode: str, project: Path, store: Path) -> dict[str, object]:
    """Run the project's pipeline in a fresh process, loaded the ``mode`` way."""
    path = os.pathsep.join(p for p in (str(project), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
    flow = str(project / "flow.py")
    commands = {
        "import": [sys.executable, "-c", IMPORTED, str(store)],
        "main": [sys.executable, flow, str(store)],
        "file": [sys.executable, "-c", FROM_FILE, str(store), flow],
        "plait-run": [
            sys.executable,
            "-m",
            "plait",
            "run",
            "flow.py:pipeline",
            "--store",
            str(store),
            "--json",
            "-q",
        ],
    }
    completed = subprocess.run(
        commands[mode],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    if mode != "plait-run":
        found: dict[str, object] = json.loads(completed.stdout)
        return found
    result = json.loads(completed.stdout)
    step = result["steps"]["compute"]
    opened = Store(str(store))
    try:
        record = opened.history.run(result["run_id"])
    finally:
        opened.close()
    return {
        "fingerprint": record.fingerprint,
        "key": step["cache_key"],
        "cached": step["cached"],
        "reason": step["reason"],
    }


def test_the_same_file_has_one_fingerprint_however_it_is_loaded(tmp_path):
    project = _project(tmp_path / "project")
    seen = {mode: _run(mode, project, tmp_path / f"store-{mode}") for mode in MODES}
    assert len({found["fingerprint"] for found in seen.values()}) == 1, seen
    assert len({found["key"] for found in seen.values()}) == 1, seen


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_an_edit_changes_the_fingerprint_in_every_loading_mode(tmp_path, mode, edit):
    store = tmp_path / "store"
    before = _run(mode, _project(tmp_path / "before"), store)
    after = _run(mode, _project(tmp_path / "after", **EDITS[edit]), store)
    assert after["fingerprint"] != before["fingerprint"]
    assert not after["cached"]
    assert after["reason"] == "code changed"


def test_a_run_in_one_loading_mode_is_reused_by_the_others(tmp_path):
    # what a resume after a killed `plait run` needs: the same code is the same cache entry
    project = _project(tmp_path / "project")
    store = tmp_path / "store"
    first = _run("plait-run", project, store)
    assert not first["cached"]
    for mode in ("import", "main", "file"):
        again = _run(mode, project, store)
        assert again["cached"], (mode, again)
        assert again["value"] == 1 * 2 + 1 + 1


def test_a_module_constant_edit_in_a_new_process_reruns_the_step(tmp_path):
    store = tmp_path / "store"
    project = _project(tmp_path / "project")
    first = _run("import", project, store)
    assert first["value"] == 4
    (project / "flow.py").write_text(FLOW.format(**{**BASE, "threshold": 2}))
    edited = _run("import", project, store)
    assert not edited["cached"]
    assert edited["reason"] == "code changed"
    assert edited["value"] == 5


def test_plait_run_prints_the_same_code_for_the_same_file_twice(tmp_path):
    project = _project(tmp_path / "project")
    first = _run("plait-run", project, tmp_path / "store")
    again = _run("plait-run", project, tmp_path / "store")
    assert again["cached"]
    assert again["fingerprint"] == first["fingerprint"]
