"""Retention: ``store.gc(keep_last=..., older_than=..., keep_lineage=...)``.

Old run records are dropped, then the cache entries only they kept alive, then every
artifact no remaining entry references; ``keep_lineage=True`` scrubs the values but keeps
the records. What survives is proven by call counters (a kept value is a cache hit, a
dropped one is recomputed) and by the artifacts left in the store directory. Every test
runs on the three history backends (``history_url``).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from plait import Pipeline, step
from plait.errors import PlaitError
from store_cases import store_files

CALLS: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


@step
def load(n):
    CALLS["load"] += 1
    return list(range(n))


@step
def odd(load):
    CALLS["odd"] += 1
    return [2 * value + 1 for value in load]


@step
def title():
    CALLS["title"] += 1
    return "LABEL"


def _pipeline(name="kept"):
    return Pipeline([load, odd, title], name=name)


def _artifacts(store) -> set[str]:
    """Data versions of the artifacts in a local store (files under ``objects``, and the
    small ones inline in ``index.db``)."""
    return {p.name.split(".")[0] for p in store_files(Path(store.url))}


def _versions(result) -> set[str]:
    return {v for s in result.steps.values() for v in s.data_versions.values()}


@pytest.fixture
def three_runs(open_store):
    """Runs with n = 1, 2, 3; ``title`` is computed by the first and a hit in the others."""
    store = open_store()
    runs = [_pipeline().run(params={"n": n}, store=store) for n in (1, 2, 3)]
    assert Counter(load=3, odd=3, title=1) == CALLS
    CALLS.clear()
    return store, runs


def test_keep_last_drops_old_records_and_what_only_they_kept(three_runs):
    store, (first, second, third) = three_runs
    assert _artifacts(store) == set().union(*map(_versions, (first, second, third)))
    store.gc(keep_last=1)
    assert [r.run_id for r in store.history.runs()] == [third.run_id]
    for old in (first, second):
        with pytest.raises(KeyError, match="no run"):
            store.history.run(old.run_id)
    assert [s.run_id for s in store.history.step_history("odd")] == [third.run_id]
    # only the values the kept run used are left, title's included (written by run 1)
    assert _artifacts(store) == _versions(third)
    # the kept run's values still hit; a dropped run's values are recomputed
    again = _pipeline().run(params={"n": 3}, store=store)
    assert all(s.cached for s in again.steps.values())
    assert Counter() == CALLS
    _pipeline().run(params={"n": 1}, store=store)
    assert Counter(load=1, odd=1) == CALLS


def test_keep_last_counts_runs_per_pipeline(open_store):
    store = open_store()
    a_runs = [_pipeline("a").run(params={"n": n}, store=store) for n in (1, 2)]
    b_runs = [_pipeline("b").run(params={"n": n}, store=store) for n in (3, 4)]
    store.gc(keep_last=1)
    kept = {r.run_id for r in store.history.runs()}
    assert kept == {a_runs[-1].run_id, b_runs[-1].run_id}
    assert _artifacts(store) == _versions(a_runs[-1]) | _versions(b_runs[-1])


def test_keep_lineage_keeps_the_records_but_scrubs_the_values(three_runs):
    store, (first, second, third) = three_runs
    store.gc(keep_last=1, keep_lineage=True)
    assert [r.run_id for r in store.history.runs()] == [
        third.run_id,
        second.run_id,
        first.run_id,
    ]
    old_value = first.steps["odd"].data_versions["odd"]
    assert {(r.run_id, r.name) for r in store.history.lineage(old_value)} == {
        (first.run_id, "odd"),
        (first.run_id, "load"),
    }
    assert [p.run_id for p in store.history.producers(old_value)] == [first.run_id]
    assert old_value not in _artifacts(store)
    assert _artifacts(store) == _versions(third)
    with pytest.raises(PlaitError, match="no longer in the store"):
        _pipeline().debug(first.run_id, "odd", store=store)
    _pipeline().run(params={"n": 1}, store=store)
    assert Counter(load=1, odd=1) == CALLS


@pytest.mark.parametrize("as_timedelta", [False, True], ids=["seconds", "timedelta"])
def test_older_than_drops_runs_started_before_the_cutoff(open_store, as_timedelta):
    store = open_store()
    old = [_pipeline().run(params={"n": n}, store=store) for n in (1, 2)]
    boundary = time.time()
    time.sleep(0.3)  # the margin between the old runs and the new one
    new = _pipeline().run(params={"n": 3}, store=store)
    age = time.time() - boundary - 0.15  # older than the old runs, younger than the new one
    store.gc(older_than=timedelta(seconds=age) if as_timedelta else age)
    assert [r.run_id for r in store.history.runs()] == [new.run_id]
    assert _artifacts(store) == _versions(new)
    for result in old:
        with pytest.raises(KeyError):
            store.history.run(result.run_id)


def test_older_than_keeps_recent_runs(three_runs):
    store, _ = three_runs
    before = _artifacts(store)
    store.gc(older_than=timedelta(days=1))
    assert len(store.history.runs()) == 3
    assert _artifacts(store) == before
    for n in (1, 2, 3):
        _pipeline().run(params={"n": n}, store=store)
    assert Counter() == CALLS


def test_gc_without_limits_only_removes_unreferenced_artifacts(three_runs):
    store, _ = three_runs
    before = _artifacts(store)
    stray = Path(store.url, "objects", "ff", "ff" * 16 + ".pickle")
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"orphan")
    store.gc()
    assert not stray.exists()
    assert _artifacts(store) == before
    assert len(store.history.runs()) == 3
    for n in (1, 2, 3):
        _pipeline().run(params={"n": n}, store=store)
    assert Counter() == CALLS


def test_a_collected_run_cannot_be_resumed(three_runs):
    store, (first, _, _) = three_runs
    store.gc(keep_last=1)
    with pytest.raises(KeyError, match="no run"):
        _pipeline().resume(first.run_id, store=store)
