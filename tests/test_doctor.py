"""``plait doctor`` finds what is wrong with a store and ``--repair`` fixes it.

Each test damages a real store (files flipped, truncated, deleted, planted; ``index.db``
and ``history.db`` overwritten) made by ``python -m plait run`` in a subprocess, then
checks that ``doctor`` reports it (exit 1), ``doctor --repair`` fixes it, a second
``doctor`` is clean (exit 0) and a warm run returns the right values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cli_cases import plait
from plait import Store
from plait.store.doctor import check
from store_cases import InlineArtifact

pytestmark = pytest.mark.faults

FLOW = textwrap.dedent(
    """
    from plait import Pipeline, step


    @step
    def numbers(n: int) -> list[int]:
        return list(range(n))


    @step
    def total(numbers: list[int]) -> int:
        return sum(numbers)


    @step
    def summary(numbers: list[int], total: int) -> dict:
        return {"count": len(numbers), "total": total}


    pipeline = Pipeline([numbers, total, summary], name="flow")
    """
)
VALUES = {"summary": {"count": 4, "total": 6}}
AN_HOUR_AGO = time.time() - 3600


def warm_run(folder: Path) -> dict[str, bool]:
    """Run again; check the values; return which steps were cache hits."""
    completed = plait("run", "flow.py", "-p", "n=4", "-q", "--json", cwd=folder)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["values"] == VALUES
    return {name: step["cached"] for name, step in result["steps"].items()}


def doctor(folder: Path, *args: str, code: int) -> str:
    completed = plait("doctor", *args, cwd=folder)
    assert completed.returncode == code, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    return completed.stdout


def heal(folder: Path, *needles: str) -> str:
    """doctor reports every needle; --repair fixes; doctor is clean afterwards."""
    before = sorted(str(p) for p in folder.rglob("*"))
    found = doctor(folder, code=1)
    assert sorted(str(p) for p in folder.rglob("*")) == before, "a check changes nothing"
    for needle in needles:
        assert needle in found, found
    repaired = doctor(folder, "--repair", code=0)
    assert doctor(folder, code=0).startswith("store"), "a clean store says so"
    return repaired


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    completed = plait("run", "flow.py", "-p", "n=4", "-q", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    return tmp_path


def artifacts(folder: Path) -> dict[str, Path | InlineArtifact]:
    """Each step's output artifact, from the store's entries: a file, or (small) a row
    inline in ``index.db`` (which reads, writes and unlinks like one)."""
    root = folder / ".plait"
    with Store(root) as store:
        found = {
            entry.step: ref.path for entry in store.entries() for ref in entry.outputs.values()
        }
    return {
        step: root / path if (root / path).is_file() else InlineArtifact(root / "index.db", path)
        for step, path in found.items()
    }


def test_a_healthy_store_is_clean(project):
    out = doctor(project, code=0)
    assert "healthy" in out
    report = json.loads(doctor(project, "--json", code=0))
    assert report["healthy"] is True
    assert report["problems"] == []
    with Store(project / ".plait") as store:
        assert check(store).healthy


def test_damaged_truncated_and_missing_artifacts(project):
    paths = artifacts(project)
    flipped = bytearray(paths["numbers"].read_bytes())
    flipped[1] ^= 0xFF
    paths["numbers"].write_bytes(bytes(flipped))
    paths["total"].write_bytes(paths["total"].read_bytes()[:-1])
    paths["summary"].unlink()
    with Store(project / ".plait") as store:
        kinds = sorted(problem.kind for problem in check(store).problems)
    assert kinds == ["artifact-damaged", "artifact-damaged", "artifact-missing"]
    repaired = heal(project, paths["numbers"].name, paths["total"].name, "missing")
    assert "dropped" in repaired
    assert not paths["numbers"].exists()
    assert warm_run(project) == {"numbers": False, "total": False, "summary": False}
    assert warm_run(project) == {"numbers": True, "total": True, "summary": True}


def test_orphans_and_leftover_temporary_files(project):
    orphan = project / ".plait" / "objects" / "ab" / ("ab" * 16 + ".pickle")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"planted")
    temp = project / ".plait" / "objects" / "ab" / ".x.json.1234abcd.tmp"
    temp.write_bytes(b"half a write")
    fresh = project / ".plait" / "objects" / "ab" / ".y.json.5678abcd.tmp"
    fresh.write_bytes(b"a write in progress")  # young: another process may be writing it
    for path in (orphan, temp):
        os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    heal(project, "orphan", orphan.name, temp.name)
    assert not orphan.exists()
    assert not temp.exists()
    assert fresh.exists()
    assert warm_run(project) == {"numbers": True, "total": True, "summary": True}


@pytest.mark.parametrize("damage", ["garbage", "deleted"])
def test_a_lost_index_is_rebuilt_from_the_history_and_the_artifacts(project, damage):
    index = project / ".plait" / "index.db"
    paths = artifacts(project)
    if damage == "garbage":
        index.write_bytes(b"this is not a database" * 300)
    else:
        index.unlink()
    assert all(isinstance(path, InlineArtifact) for path in paths.values())
    repaired = heal(project, "index.db")
    assert "rebuilt" in repaired
    # These small artifacts were kept inline in index.db and went with it: every step is
    # recomputed (never a wrong value). Files are adopted again: see
    # test_store_fast_inline.py::test_a_lost_index_adopts_the_artifact_files_again.
    assert warm_run(project) == {"numbers": False, "total": False, "summary": False}
    assert warm_run(project) == {"numbers": True, "total": True, "summary": True}


def test_a_signed_store_index_is_not_rebuilt_from_unsigned_records(project):
    (project / ".plait" / "index.db").unlink()
    env_store = Store(project / ".plait", secret="s3cret")
    with env_store as store:
        report = check(store)
    assert any(problem.kind == "index-missing" for problem in report.problems)
    assert any("secret" in problem.repair for problem in report.problems)


def test_a_damaged_history_is_set_aside_and_its_readable_rows_recovered(project):
    script = "\n".join(
        [
            "from plait import Store",
            "import flow",
            "store = Store('.plait')",
            "for n in range(5, 60):",
            "    flow.pipeline.run(params={'n': n}, store=store)",
            "store.close()",
        ]
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    history = project / ".plait" / "history.db"
    data = bytearray(history.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    data[middle : middle + 2 * page] = os.urandom(2 * page)
    history.write_bytes(bytes(data))
    repaired = heal(project, "history.db")
    assert "recovered" in repaired
    aside = list((project / ".plait").glob("history.db.damaged-*"))
    assert len(aside) == 1
    listed = plait("runs", "list", "-n", "100", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    # Which rows the two damaged pages held depends on the schema's page layout (they may
    # be index pages, whose rows are rebuilt): some or all of the 56 runs come back.
    assert 0 < len(runs) <= 56
    assert warm_run(project) == {"numbers": True, "total": True, "summary": True}


def test_doctor_on_a_missing_store_is_a_usage_error(tmp_path):
    completed = plait("doctor", "--store", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert completed.returncode == 2, completed.stderr
    assert "no plait store" in completed.stderr
    assert list(tmp_path.iterdir()) == []
