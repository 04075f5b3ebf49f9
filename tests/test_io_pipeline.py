"""Pipelines with datasets: sources loaded lazily once per run and versioned by content,
sinks saved after their step (and not again on a hit unless the file went missing or
changed), versioned sinks, validation, and what the history records."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from plait import Pipeline, Store, step
from plait.errors import PipelineValidationError
from plait.io import CSV, JSON, Text, run_datasets

CALLS: list[str] = []


@step
def totals(companies: pd.DataFrame) -> pd.DataFrame:
    CALLS.append("totals")
    return companies.groupby("country", as_index=False)["employees"].sum()


@step
def report(totals: pd.DataFrame) -> str:
    CALLS.append("report")
    return "\n".join(f"{r.country}: {r.employees}" for r in totals.itertuples())


@step
def headcount(companies: pd.DataFrame) -> int:
    CALLS.append("headcount")
    return int(companies["employees"].sum())


class Counting(CSV):
    """A CSV dataset that counts its loads and saves (the real thing, counted)."""

    loads = 0
    saves = 0

    def load(self):
        type(self).loads += 1
        return super().load()

    def save(self, data, *, version=None):
        type(self).saves += 1
        return super().save(data, version=version)


class KedroStyle:
    """Kedro's dataset protocol and nothing else: load() and save(data)."""

    def __init__(self, path):
        self._filepath = path
        self.saved = []

    def load(self):
        with open(self._filepath, encoding="utf-8") as handle:
            return handle.read()

    def save(self, data):
        self.saved.append(data)
        with open(self._filepath, "w", encoding="utf-8") as handle:
            handle.write(data)


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    Counting.loads = Counting.saves = 0


@pytest.fixture
def raw(tmp_path):
    path = tmp_path / "data" / "companies.csv"
    path.parent.mkdir()
    path.write_text("country,employees\nfr,10\nde,5\nfr,2\n")
    return path


def _pipeline(raw, tmp_path, **extra):
    datasets = {"companies": Counting(raw), "report": Text(tmp_path / "out" / "report.txt")}
    datasets.update(extra)
    return Pipeline([totals, report, headcount], datasets=datasets, name="companies")


def test_a_source_is_loaded_once_and_a_sink_saved(raw, tmp_path):
    result = _pipeline(raw, tmp_path).run()
    assert result["report"] == "de: 5\nfr: 12"
    assert result["headcount"] == 17
    assert Counting.loads == 1  # two steps read it, one load
    assert (tmp_path / "out" / "report.txt").read_text() == "de: 5\nfr: 12"


def test_an_unchanged_source_hits_and_is_not_even_loaded(raw, tmp_path):
    store = Store(tmp_path / "store")
    _pipeline(raw, tmp_path).run(store=store)
    CALLS.clear()
    second = _pipeline(raw, tmp_path).run(store=store)
    assert all(record.cached for record in second.steps.values())
    assert CALLS == []
    assert Counting.loads == 1  # only by the first run


def test_a_content_edit_with_the_mtime_put_back_is_seen(raw, tmp_path):
    store = Store(tmp_path / "store")
    _pipeline(raw, tmp_path).run(store=store)
    before = os.stat(raw)
    raw.write_text("country,employees\nfr,10\nde,5\nfr,3\n")  # same size
    os.utime(raw, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(raw).st_size == before.st_size
    CALLS.clear()
    second = _pipeline(raw, tmp_path).run(store=store)
    assert second["headcount"] == 18
    assert second.steps["totals"].reason == "input 'companies' changed"
    assert sorted(CALLS) == ["headcount", "report", "totals"]


def test_a_sink_is_not_saved_again_on_a_hit_unless_missing_or_changed(raw, tmp_path):
    store = Store(tmp_path / "store")
    out = tmp_path / "out" / "totals.csv"
    sink = {"totals": Counting(out)}
    _pipeline(raw, tmp_path, **sink).run(store=store)
    assert Counting.saves == 1
    _pipeline(raw, tmp_path, **sink).run(store=store)
    assert Counting.saves == 1
    out.unlink()
    third = _pipeline(raw, tmp_path, **sink).run(store=store)
    assert third.steps["totals"].cached
    assert Counting.saves == 2
    assert out.read_text().startswith("country,employees")
    out.write_text("tampered\n")
    _pipeline(raw, tmp_path, **sink).run(store=store)
    assert Counting.saves == 3
    assert out.read_text().startswith("country,employees")


def test_a_versioned_sink_writes_under_the_run_id_and_loads_the_latest(raw, tmp_path):
    store = Store(tmp_path / "store")
    model = JSON(tmp_path / "out" / "headcount.json", versioned=True)
    first = _pipeline(raw, tmp_path, headcount=model).run(store=store)
    assert model.versions() == [first.run_id]
    assert model.load_path() == str(
        tmp_path / "out" / "headcount.json" / first.run_id / "headcount.json"
    )
    _pipeline(raw, tmp_path, headcount=model).run(store=store)  # a hit: nothing new
    assert model.versions() == [first.run_id]
    third = _pipeline(raw, tmp_path, headcount=model).run(store=store, force=True)
    assert model.versions() == [first.run_id, third.run_id]
    assert model.load() == 17


def test_a_kedro_protocol_object_is_a_source_and_a_sink(tmp_path):
    source = tmp_path / "words.txt"
    source.write_text("a b c")

    @step
    def count(words: str) -> str:
        return str(len(words.split()))

    sink = KedroStyle(str(tmp_path / "count.txt"))
    datasets = {"words": KedroStyle(str(source)), "count": sink}
    store = Store(tmp_path / "store")
    result = Pipeline([count], datasets=datasets).run(store=store)
    assert result["count"] == "3"
    assert sink.saved == ["3"]
    again = Pipeline([count], datasets=datasets).run(store=store)
    assert again.steps["count"].cached
    assert sink.saved == ["3"]


def test_without_a_store_sources_and_sinks_still_work(raw, tmp_path):
    _pipeline(raw, tmp_path).run()
    assert (tmp_path / "out" / "report.txt").exists()


# -- validation ---------------------------------------------------------------------------


def test_an_unused_dataset_is_reported(raw, tmp_path):
    p = _pipeline(raw, tmp_path, totls=CSV(tmp_path / "t.csv"))
    with pytest.raises(
        PipelineValidationError,
        match=r"dataset 'totls' \(CSV\('.*t\.csv'\)\) is neither read nor written by any step "
        r"\(did you mean 'totals'\?\)",
    ):
        p.validate()


def test_a_missing_source_file_names_the_path_and_the_step(tmp_path):
    p = Pipeline([headcount], datasets={"companies": CSV(tmp_path / "nope.csv")})
    with pytest.raises(
        PipelineValidationError,
        match=r"step 'headcount': input 'companies' is read from CSV\('.*nope\.csv'\), and "
        r"'.*nope\.csv' does not exist",
    ):
        p.run()


def test_two_datasets_on_one_path_are_reported(raw, tmp_path):
    p = _pipeline(raw, tmp_path, totals=CSV(raw))
    with pytest.raises(
        PipelineValidationError,
        match=r"datasets 'companies' and 'totals' are both on '.*companies\.csv'",
    ):
        p.validate()


def test_a_dataset_named_like_a_param_is_ambiguous(raw, tmp_path):
    with pytest.raises(
        PipelineValidationError,
        match=r"step 'headcount': input 'companies' is both a param and a dataset",
    ):
        Pipeline([headcount], datasets={"companies": CSV(raw)}).validate(params={"companies": 1})


# -- history ----------------------------------------------------------------------------


def test_the_run_record_names_each_dataset_with_its_path_and_version(raw, tmp_path):
    from plait.store.hashing import file_version

    store = Store(tmp_path / "store")
    result = _pipeline(raw, tmp_path).run(store=store)
    record = store.history.run(result.run_id)
    assert record.steps["totals"].input_versions["companies"] == file_version(raw)
    datasets = {d["name"]: d for d in run_datasets(store, result.run_id)}
    assert datasets["companies"] == {
        "name": "companies",
        "role": "source",
        "type": "Counting",
        "path": str(raw),
        "version": file_version(raw),
    }
    assert datasets["report"]["role"] == "sink"
    assert datasets["report"]["version"] == file_version(tmp_path / "out" / "report.txt")


# -- derived pipelines ----------------------------------------------------------------------


def test_combined_pipelines_keep_both_datasets(raw, tmp_path):
    first = Pipeline([totals], datasets={"companies": CSV(raw)})
    second = Pipeline([report], datasets={"report": Text(tmp_path / "report.txt")})
    result = (first + second).run()
    assert result["report"] == "de: 5\nfr: 12"
    assert (tmp_path / "report.txt").read_text() == "de: 5\nfr: 12"


def test_a_selection_keeps_its_datasets_and_reads_a_left_out_sink_from_its_file(raw, tmp_path):
    out = tmp_path / "totals.csv"
    p = _pipeline(raw, tmp_path, totals=CSV(out))
    p.run()
    CALLS.clear()
    tail = p.select(from_steps="report")  # totals is left out: its file feeds report
    assert tail.run()["report"] == "de: 5\nfr: 12"
    assert CALLS == ["report"]
    out.unlink()
    with pytest.raises(PipelineValidationError, match=r"input 'totals' is read from CSV"):
        tail.run()


def test_a_source_that_cannot_be_loaded_fails_its_step_not_the_run(tmp_path):
    from plait.io import Parquet

    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")

    @step
    def rows(table):
        return len(table)

    @step
    def other():
        return 1

    p = Pipeline([rows, other], datasets={"table": Parquet(bad)})
    result = p.run(on_error="continue", store=tmp_path / "store")
    assert result["other"] == 1
    failed = result.steps["rows"]
    assert failed.status == "failed"
    assert failed.reason == "loading a dataset failed"
    assert "loading dataset 'table' (Parquet(" in failed.error.message


def test_a_failed_save_fails_the_step_and_the_next_run_saves_again(raw, tmp_path):
    out = tmp_path / "out" / "totals.csv"
    out.mkdir(parents=True)  # a folder where the file should go: the save fails
    store = Store(tmp_path / "store")
    result = _pipeline(raw, tmp_path, totals=CSV(out)).run(store=store, on_error="continue")
    failed = result.steps["totals"]
    assert failed.status == "failed"
    assert "step 'totals': saving output 'totals' to CSV(" in failed.error.message
    assert result.steps["report"].status == "skipped"
    out.rmdir()
    again = _pipeline(raw, tmp_path, totals=CSV(out)).run(store=store)
    assert again.steps["totals"].cached  # its entry stayed; the file is saved now
    assert out.read_text().startswith("country,employees")
