"""Lineage reaches files: ``plait lineage`` and ``plait runs show`` name the datasets of
a run (the spaceflights example's catalog, run with a store)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from cli_cases import plait as _plait
from plait import Store

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "spaceflights"


@pytest.fixture(scope="module")
def spaceflights(tmp_path_factory):
    """A spaceflights project run once with a store: (folder, store path, run id)."""
    folder = tmp_path_factory.mktemp("spaceflights")
    shutil.copytree(EXAMPLE / "data" / "01_raw", folder / "data" / "01_raw")
    spec = importlib.util.spec_from_file_location("spaceflights_lineage", EXAMPLE / "pipeline.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    result = module.build(folder).run(store=folder / ".plait")
    assert result.ok
    return folder, folder / ".plait", result.run_id


def _version(store: Path, run_id: str, step: str, output: str) -> str:
    with Store(store) as opened:
        return str(opened.history.run(run_id).steps[step].data_versions[output])


def test_lineage_of_a_model_input_goes_back_to_the_raw_csv(spaceflights):
    folder, store, run_id = spaceflights
    x_train = _version(store, run_id, "split_data", "X_train")
    shown = _plait("lineage", x_train[:16], "--store", str(store), cwd=folder)
    assert shown.returncode == 0, shown.stderr
    assert "datasets:" in shown.stdout
    raw = folder / "data" / "01_raw"
    for name in ("companies", "shuttles", "reviews"):
        line = next(row for row in shown.stdout.splitlines() if row.split()[:1] == [name])
        assert line.split()[1:3] == ["source", "CSV"], line
        assert str(raw / f"{name}.csv") in line
    table = next(r for r in shown.stdout.splitlines() if r.split()[:1] == ["model_input_table"])
    assert table.split()[1:3] == ["sink", "Parquet"]


def test_lineage_of_a_source_file_version_names_the_file(spaceflights):
    folder, store, run_id = spaceflights
    with Store(store) as opened:
        record = opened.history.run(run_id).steps["preprocessed_companies"]
        version = str(record.input_versions["companies"])
    shown = _plait("lineage", version, "--store", str(store), "--json", cwd=folder)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    [dataset] = [d for d in data["datasets"] if d["version"] == version]
    assert dataset["name"] == "companies"
    assert dataset["role"] == "source"
    assert dataset["type"] == "CSV"
    assert dataset["path"] == str(folder / "data" / "01_raw" / "companies.csv")
    assert data["consumers"], "the step that read the file"


def test_runs_show_lists_the_runs_datasets(spaceflights):
    folder, store, run_id = spaceflights
    shown = _plait("runs", "show", run_id[:10], "--store", str(store), cwd=folder)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    section = text[text.index("datasets:") :].splitlines()[1:]
    names = [row.split()[0] for row in section if row.strip()]
    assert names[:3] == ["companies", "reviews", "shuttles"]
    assert "regressor" in names
    companies = section[0].split()
    assert companies[1] == "source"
    assert companies[2] == str(folder / "data" / "01_raw" / "companies.csv")
    as_json = json.loads(
        _plait("runs", "show", run_id, "--store", str(store), "--json", cwd=folder).stdout
    )
    assert {d["name"] for d in as_json["datasets"]} >= {"companies", "regressor", "metrics"}
