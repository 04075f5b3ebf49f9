"""Store maintenance knows datasets: ``gc`` and ``clear`` drop their records, ``doctor``
checks them (and does not take them for orphans)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plait import Store
from plait.io import run_datasets
from plait.store.doctor import check, repair

FLOW = textwrap.dedent(
    """
    from plait import Pipeline, step
    from plait.io import CSV, JSON


    @step
    def headcount(companies) -> int:
        return int(companies["employees"].sum())


    pipeline = Pipeline(
        [headcount],
        name="people",
        datasets={
            "companies": CSV("companies.csv"),
            "headcount": JSON("headcount.json"),
        },
    )
    """
)


def _plait(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PLAIT_STORE", "PLAIT_SECRET")}
    return subprocess.run(
        [sys.executable, "-m", "plait", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two runs of a pipeline with a source and a sink (the file edited between them)."""
    (tmp_path / "flow.py").write_text(FLOW)
    for employees in ("3\n4\n", "5\n6\n"):
        (tmp_path / "companies.csv").write_text("employees\n" + employees)
        done = _plait("run", "flow.py:pipeline", "--store", ".plait", "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    return tmp_path


def _runs(store: Store) -> list[str]:
    return [record.run_id for record in store.history.runs(limit=None)]


def _files(root: Path, folder: str) -> list[str]:
    base = root / ".plait" / folder
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def test_gc_drops_the_dataset_records_of_the_runs_it_drops(project):
    with Store(project / ".plait") as store:
        newest, oldest = _runs(store)
        assert run_datasets(store, oldest)
        counts = store.gc(keep_last=1)
        assert counts["runs"] == 1
        assert run_datasets(store, oldest) == []
        assert [d["name"] for d in run_datasets(store, newest)] == ["companies", "headcount"]
    assert all(path.startswith(newest) for path in _files(project, "datasets/runs"))


def test_gc_keeping_lineage_keeps_the_dataset_records(project):
    with Store(project / ".plait") as store:
        _, oldest = _runs(store)
        store.gc(keep_last=1, keep_lineage=True)
        assert run_datasets(store, oldest)


def test_clear_clears_what_datasets_remember_but_keeps_the_runs_records(project):
    assert _files(project, "datasets/files")
    assert _files(project, "datasets/sinks")
    with Store(project / ".plait") as store:
        newest, _ = _runs(store)
        store.clear()
        assert run_datasets(store, newest), "run history is kept"
    assert _files(project, "datasets/files") == []
    assert _files(project, "datasets/sinks") == []


def test_doctor_does_not_report_dataset_records(project):
    shown = _plait("doctor", "--store", ".plait", cwd=project)
    assert shown.returncode == 0, shown.stdout
    with Store(project / ".plait") as store:
        assert check(store).healthy


def test_doctor_reports_and_repairs_an_unreadable_dataset_record(project):
    runs = project / ".plait" / "datasets" / "runs"
    damaged = next(runs.rglob("*.json"))
    damaged.write_bytes(b'{"name": "compan')
    sink = next((project / ".plait" / "datasets" / "sinks").glob("*.json"))
    sink.write_text(json.dumps(["not", "a", "record"]))
    shown = _plait("doctor", "--store", ".plait", "--json", cwd=project)
    assert shown.returncode == 1, shown.stdout
    problems = json.loads(shown.stdout)["problems"]
    assert sorted(p["kind"] for p in problems) == ["dataset-record-damaged"] * 2
    where = {p["path"] for p in problems}
    assert str(damaged.relative_to(project / ".plait")) in where
    assert all(p["repair"] == "delete it" for p in problems)
    with Store(project / ".plait") as store:
        report = repair(store)
        assert report.healthy, report.problems
        assert len(report.actions) == 2
    assert not damaged.exists()
    assert not sink.exists()
    again = _plait("run", "flow.py:pipeline", "--store", ".plait", "-q", cwd=project)
    assert again.returncode == 0, again.stderr
    assert _plait("doctor", "--store", ".plait", cwd=project).returncode == 0
