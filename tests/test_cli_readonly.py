"""Commands that only read never create a file: not a store, not a database, not a journal.

Each test lists every file under a temporary directory before and after a read-only
command (``python -m plait`` in a subprocess) and compares the two listings.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from cli_cases import plait

FLOW = textwrap.dedent(
    """
    from plait import Pipeline, step


    @step
    def numbers(n: int) -> list[int]:
        return list(range(n))


    @step
    def total(numbers: list[int]) -> int:
        return sum(numbers)


    pipeline = Pipeline([numbers, total], name="flow")
    """
)

READ_ONLY = [
    ("runs", "list"),
    ("runs", "show", "0123"),
    ("runs", "compare", "0123", "4567"),
    ("lineage", "abcdef12"),
    ("cache", "list"),
]


def listing(root: Path) -> list[str]:
    """Every file and directory under ``root``, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def usage_error(completed: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert completed.returncode == 2, completed.stderr + completed.stdout
    assert "Traceback" not in completed.stderr
    for needle in needles:
        assert needle in completed.stderr, completed.stderr
    return completed.stderr


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with one recorded run in ``./.plait``."""
    folder = tmp_path_factory.mktemp("recorded")
    (folder / "flow.py").write_text(FLOW, encoding="utf-8")
    completed = plait("run", "flow.py", "-p", "n=4", "-q", cwd=folder)
    assert completed.returncode == 0, completed.stderr
    return folder


@pytest.mark.parametrize("args", READ_ONLY)
def test_a_directory_that_is_not_a_store_is_refused_and_left_alone(tmp_path, args):
    (tmp_path / "notes.txt").write_text("not a store", encoding="utf-8")
    before = listing(tmp_path)
    usage_error(
        plait(*args, "--store", str(tmp_path), cwd=tmp_path),
        f"{str(tmp_path)!r} is not a plait store",
        "plait run",
    )
    assert listing(tmp_path) == before


@pytest.mark.parametrize("args", READ_ONLY)
def test_a_missing_store_is_refused_and_not_created(tmp_path, args):
    usage_error(plait(*args, cwd=tmp_path), "no plait store at '.plait'", "plait run")
    usage_error(plait("runs", cwd=tmp_path), "no plait store at '.plait'")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("spelling", ["file://{root}/missing", "{root}/missing"])
def test_a_missing_store_given_as_a_url_or_path_is_not_created(tmp_path, spelling):
    location = spelling.format(root=tmp_path)
    for args in READ_ONLY:
        usage_error(plait(*args, "--store", location, cwd=tmp_path), "no plait store at")
    assert listing(tmp_path) == []


def test_reading_a_store_without_a_history_creates_no_database(recorded, tmp_path):
    store = tmp_path / "store"
    (store / "objects").mkdir(parents=True)
    before = listing(tmp_path)
    listed = plait("runs", "list", "--store", str(store), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "no runs recorded" in listed.stdout
    cached = plait("cache", "list", "--store", str(store), cwd=tmp_path)
    assert cached.returncode == 0, cached.stderr
    assert "no cache entries" in cached.stdout
    usage_error(plait("lineage", "abcdef12", "--store", str(store), cwd=tmp_path))
    assert listing(tmp_path) == before


def test_reading_a_recorded_store_leaves_its_files_as_they_were(recorded):
    before = listing(recorded)
    for args in (("runs",), ("cache", "list"), ("runs", "list", "--json")):
        completed = plait(*args, cwd=recorded)
        assert completed.returncode == 0, completed.stderr
    assert listing(recorded) == before


def test_run_still_creates_the_store(tmp_path):
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    store = tmp_path / "deep" / "store"
    completed = plait("run", "flow.py", "-p", "n=3", "-q", "--store", str(store), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert (store / "history.db").is_file()
    assert (store / "index.db").is_file()
    listed = plait("runs", "list", "--store", str(store), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "flow" in listed.stdout
