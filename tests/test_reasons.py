"""Reasons tell the truth: why each step ran, hit the cache or was recomputed.

Every test runs a real pipeline on a real store in ``tmp_path`` and damages the store on
disk the way a user (or a full disk) would; where the command line prints the reason
(``plait runs show``, ``plait why``), it is checked there too, through ``python -m plait``.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from cli_cases import plait as _plait
from plait import Pipeline, RunResult, Store, current, step
from plait.errors import PlaitError, UsageError
from store_cases import damage, store_files

CALLS: Counter[str] = Counter()
SINK_REASON = "runs every time: a sink (no outputs) is not cached"
DAMAGED_REASON = "artifact damaged, recomputed"


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


@step
def base(x: int) -> int:
    CALLS["base"] += 1
    return x + 1


@step
def grown(base: int) -> list[int]:
    CALLS["grown"] += 1
    return [base] * 500


@step
def total(grown: list[int]) -> int:
    CALLS["total"] += 1
    return sum(grown)


@step(outputs=[])
def announce(total: int) -> None:
    CALLS["announce"] += 1


STEPS = [base, grown, total, announce]


def _run(store: Path, **options) -> RunResult:
    return Pipeline(STEPS, name="reasons").run(params={"x": 1}, store=store, **options)


def _reasons(result: RunResult) -> dict[str, tuple[bool, str]]:
    return {name: (record.cached, record.reason) for name, record in result.steps.items()}


def _shown(result: RunResult, store: Path) -> dict[str, str]:
    """``plait runs show RUN``: each step's line, by step name."""
    shown = _plait("runs", "show", result.run_id, "--store", str(store), cwd=store.parent)
    assert shown.returncode == 0, shown.stderr
    lines = {}
    for line in shown.stdout.splitlines():
        words = line.split()
        if words and words[0] in result.steps:
            lines[words[0]] = line
    return lines


def _damage(store: Path, version: str) -> None:
    """Cut an artifact in half, as a full disk or a killed copy would leave it."""
    (artifact,) = [p for p in store_files(store) if p.name.startswith(f"{version}.")]
    damage(artifact, "truncate")  # a file, or an artifact kept inline in index.db


def _drop_index(store: Path) -> None:
    for path in store.glob("index.db*"):
        path.unlink()


# -- sinks -----------------------------------------------------------------------------------
def test_a_sink_says_it_runs_every_time_because_it_has_no_outputs(tmp_path):
    store = tmp_path / "store"
    first, second = _run(store), _run(store)
    for result in (first, second):
        assert result.steps["announce"].cached is False
        assert result.steps["announce"].reason == SINK_REASON
    assert CALLS["announce"] == 2
    assert SINK_REASON in _shown(second, store)["announce"]


def test_a_step_with_outputs_and_cache_false_says_cache_is_disabled(tmp_path):
    @step(cache=False)
    def fresh(x: int) -> int:
        return x

    for _ in range(2):
        result = Pipeline([fresh]).run(params={"x": 1}, store=tmp_path / "store")
        assert result.steps["fresh"].reason == "cache disabled (cache=False)"


def test_a_sink_cached_on_purpose_hits_like_any_step(tmp_path):
    @step(outputs=[], cache=True)
    def once(x: int) -> None:
        CALLS["once"] += 1

    for _ in range(2):
        result = Pipeline([once]).run(params={"x": 1}, store=tmp_path / "store")
    assert CALLS["once"] == 1
    assert result.steps["once"].reason == "cache hit"


def _flow(folder: Path) -> None:
    (folder / "flow.py").write_text(
        textwrap.dedent(
            """
            from plait import Pipeline, step

            @step
            def numbers(n: int) -> list[int]:
                return list(range(n))

            @step(outputs=[])
            def show(numbers: list[int]) -> None:
                pass

            pipeline = Pipeline([numbers, show], name="flow")
            """
        )
    )


def test_plait_why_says_a_sink_runs_every_time(tmp_path):
    _flow(tmp_path)
    ran = _plait("run", "flow.py", "-p", "n=3", "-q", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    why = _plait("why", "flow.py", "show", "-p", "n=3", cwd=tmp_path)
    assert why.returncode == 0, why.stderr
    assert why.stdout.startswith(f"step 'show' would run: {SINK_REASON}")


# -- damaged artifacts -------------------------------------------------------------------------
def test_a_damaged_artifact_read_by_a_consumer_is_recomputed_and_not_cached(tmp_path):
    store = tmp_path / "store"
    first = _run(store)
    _run(store)
    _damage(store, first.steps["grown"].data_versions["grown"])
    third = _run(store, outputs=["total"])  # `total` hits; `announce` reads it, not `grown`
    assert third.steps["grown"].cached is True  # nothing loaded it: its damage is unseen
    fourth = _run(store, force=["total"])  # `total` runs: it loads `grown`, finds it damaged
    assert fourth["total"] == 1000
    assert fourth.steps["grown"].cached is False
    assert fourth.steps["grown"].reason == DAMAGED_REASON
    assert fourth.steps["grown"].attempts == 1
    assert fourth.steps["base"].cached is True  # its artifact was fine
    assert CALLS["grown"] == 2
    assert DAMAGED_REASON in _shown(fourth, store)["grown"]
    fifth = _run(store)
    assert fifth.steps["grown"].cached is True
    assert fifth.steps["grown"].reason == "cache hit"
    assert CALLS["grown"] == 2


def test_a_damaged_artifact_of_a_requested_value_is_recomputed_and_not_cached(tmp_path):
    store = tmp_path / "store"
    first = _run(store)
    _damage(store, first.steps["grown"].data_versions["grown"])
    second = _run(store)  # every value is requested: `grown` is loaded at the end
    assert second["grown"] == [2] * 500
    assert _reasons(second)["grown"] == (False, DAMAGED_REASON)
    assert CALLS["grown"] == 2


# -- a missing or damaged cache index --------------------------------------------------------
def test_a_new_store_is_not_mistaken_for_one_whose_index_went_missing(tmp_path, caplog):
    # The first lookup of a new store finds no index (a read creates none); the artifacts
    # written next must not make the index opened afterwards look "missing".
    caplog.set_level("WARNING", logger="plait.store")
    first = _run(tmp_path / "store")
    assert [r.getMessage() for r in caplog.records] == []
    assert _reasons(first)["base"] == (False, "no entry (first run)")
    assert _run(tmp_path / "store").steps["base"].reason == "cache hit"


def test_a_missing_cache_index_is_named_as_the_reason(tmp_path):
    store = tmp_path / "store"
    _run(store)
    _drop_index(store)
    second = _run(store)
    reason = "no entry: the cache index was missing and has been rebuilt"
    for name in ("base", "grown", "total"):
        assert _reasons(second)[name] == (False, reason)
    assert second.steps["announce"].reason == SINK_REASON
    assert reason in _shown(second, store)["base"]
    third = _run(store)
    assert all(third.steps[name].reason == "cache hit" for name in ("base", "grown", "total"))


def test_plait_why_names_a_missing_index_and_leaves_it_missing(tmp_path):
    _flow(tmp_path)
    ran = _plait("run", "flow.py", "-p", "n=3", "-q", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    _drop_index(tmp_path / ".plait")
    why = _plait("why", "flow.py", "numbers", "-p", "n=3", cwd=tmp_path)
    assert why.returncode == 0, why.stderr
    reason = "no entry: the cache index was missing and has been rebuilt"
    assert why.stdout.startswith(f"step 'numbers' would run: {reason}")
    assert not (tmp_path / ".plait" / "index.db").exists()  # a read-only command
    again = _plait("run", "flow.py", "-p", "n=3", "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / ".plait" / "index.db").exists()


def test_a_missing_index_does_not_hide_a_real_change(tmp_path):
    store = tmp_path / "store"
    _run(store)
    _drop_index(store)
    result = Pipeline(STEPS, name="reasons").run(params={"x": 2}, store=store)
    assert result.steps["base"].reason == "input 'x' changed"


def test_a_damaged_cache_index_is_set_aside_and_rebuilt(tmp_path):
    store = tmp_path / "store"
    _run(store)
    _drop_index(store)
    (store / "index.db").write_bytes(b"this is not a database" * 100)
    second = _run(store)
    assert second.ok
    reason = "no entry: the cache index was damaged and has been rebuilt"
    assert _reasons(second)["base"] == (False, reason)
    assert list(store.glob("index.db.damaged-*"))  # kept for inspection, never read again
    third = _run(store)
    assert third.steps["base"].reason == "cache hit"


def test_a_step_that_failed_after_the_index_was_rebuilt_is_not_blamed_on_it(tmp_path):
    store = Store(tmp_path / "store")
    fail = [False, True, False]

    @step
    def shaky(x: int) -> int:
        if fail.pop(0):
            raise ValueError("this time it fails")
        return x

    Pipeline([shaky]).run(params={"x": 1}, store=store)
    store.close()
    _drop_index(tmp_path / "store")
    failed = Pipeline([shaky]).run(params={"x": 1}, store=store, on_error="continue")
    assert failed.steps["shaky"].status == "failed"
    again = Pipeline([shaky]).run(params={"x": 1}, store=store)  # same store object
    assert again.steps["shaky"].reason == "no entry (the last execution stored no result)"


def test_a_new_store_is_not_a_rebuilt_index(tmp_path):
    result = _run(tmp_path / "store")
    assert result.steps["base"].reason == "no entry (first run)"


# -- map steps: element attempts ---------------------------------------------------------------
@step(map="items", retries=2, backoff=0.01)
def flaky(items: int) -> int:
    CALLS[f"flaky-{items}"] += 1
    if items == 20 and current().attempt < 3:
        raise ConnectionError("element 20 fails twice")
    return items * 2


def test_a_map_step_counts_element_attempts_apart_from_its_own(tmp_path):
    store = tmp_path / "store"
    first = Pipeline([flaky]).run(params={"items": [10, 20, 30]}, store=store)
    record = first.steps["flaky"]
    assert first["flaky"] == [20, 40, 60]
    assert record.attempts == 1
    assert record.element_attempts == {0: 1, 1: 3, 2: 1}
    assert record.to_dict()["element_attempts"] == {"0": 1, "1": 3, "2": 1}
    warm = Pipeline([flaky]).run(params={"items": [10, 20, 30, 40]}, store=store)
    record = warm.steps["flaky"]
    assert record.attempts == 1
    assert record.element_attempts == {0: 0, 1: 0, 2: 0, 3: 1}  # 0: from the cache
    assert record.reason == "3 of 4 elements from the cache"


def test_a_dict_map_keys_element_attempts_by_key():
    result = Pipeline([flaky]).run(params={"items": {"a": 10, "b": 20}})
    assert result.steps["flaky"].element_attempts == {"a": 1, "b": 3}
    assert result.steps["flaky"].attempts == 1


# -- values that were not requested ------------------------------------------------------------
def test_a_pruned_output_says_it_was_not_requested_and_how_to_request_it():
    result = Pipeline(STEPS).run(params={"x": 1}, outputs=["base"])
    assert result["base"] == 2
    with pytest.raises(KeyError, match=r"'total' was not requested.*outputs=\[") as info:
        result["total"]
    assert "step 'total'" in str(info.value)
    assert "no value named" not in str(info.value)
    assert CALLS["total"] == 0
    with pytest.raises(KeyError, match=r"no value named 'totl'.*did you mean 'total'"):
        result["totl"]


# -- executor strings ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec", ["threads:-1", "threads:0", "processes:-3", "processes:0", "threads:x"]
)
def test_a_worker_count_below_one_is_a_usage_error(spec):
    with pytest.raises(UsageError, match=rf"executor {spec!r}.*worker count") as info:
        Pipeline(STEPS).run(params={"x": 1}, executor=spec)
    assert isinstance(info.value, PlaitError)
    assert isinstance(info.value, ValueError)
    assert CALLS.total() == 0
