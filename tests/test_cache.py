"""Cache behaviour with a real local store: hits, exact invalidation, early cutoff, reasons.

Every claim is proven with call counters (``CALLS``) and visible on the results
(``StepResult.cached``, ``.reason``, ``.cache_key``, ``.data_versions``).
"""

from __future__ import annotations

import re

import pydantic
import pytest

from plait import Pipeline, Step, Store, step
from plait.errors import RunFailed, UsageError
from store_cases import CALLS, HEX32, bump, count

# -- a small pipeline: load -> total -> scaled -> report <- label ----------------------------


@step
def load(n):
    CALLS.hit("load")
    return list(range(n))


@step
def total(load):
    CALLS.hit("total")
    return sum(load)


@step
def scaled(total, factor):
    CALLS.hit("scaled")
    return total * factor


@step
def label(name):
    CALLS.hit("label")
    return name.upper()


@step
def report(scaled, label):
    CALLS.hit("report")
    return f"{label}:{scaled}"


STEPS = [load, total, scaled, label, report]
PARAMS = {"n": 4, "factor": 10, "name": "sum"}
ALL = ("load", "total", "scaled", "label", "report")


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.reset()


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def _run(store, steps=STEPS, **kwargs):
    params = {**PARAMS, **kwargs.pop("params", {})}
    return Pipeline(steps).run(params=params, store=store, **kwargs)


def _executed(result):
    return {name for name, record in result.steps.items() if not record.cached}


def test_first_run_computes_and_says_why(store):
    result = _run(store)
    assert result["report"] == "SUM:60"
    assert all(CALLS[name] == 1 for name in ALL)
    for record in result.steps.values():
        assert not record.cached
        assert record.reason.startswith("no entry")


def test_second_identical_run_hits_every_step(store):
    first = _run(store)
    second = _run(store)
    assert second.outputs == first.outputs
    assert all(record.cached for record in second.steps.values())
    assert all(record.reason == "cache hit" for record in second.steps.values())
    assert all(CALLS[name] == 1 for name in ALL)


def test_a_store_object_and_a_path_share_the_cache(store):
    _run(store)
    result = _run(Store(store))
    assert _executed(result) == set()
    result = Pipeline(STEPS, store=str(store)).run(params=PARAMS)
    assert _executed(result) == set()
    assert CALLS.total() == len(ALL)


def test_plait_store_environment_variable_is_used(store, monkeypatch):
    monkeypatch.setenv("PLAIT_STORE", str(store))
    Pipeline(STEPS).run(params=PARAMS)
    result = Pipeline(STEPS).run(params=PARAMS)
    assert _executed(result) == set()
    assert any(store.iterdir())


def test_cache_keys_and_data_versions_are_filled(store):
    for result in (_run(store), _run(store)):
        for name, record in result.steps.items():
            assert re.fullmatch(HEX32, record.cache_key), name
            assert set(record.data_versions) == {name}
            assert re.fullmatch(HEX32, record.data_versions[name]), name


def test_hits_report_the_same_keys_and_data_versions(store):
    first, second = _run(store), _run(store)
    for name in ALL:
        assert second.steps[name].cache_key == first.steps[name].cache_key
        assert second.steps[name].data_versions == first.steps[name].data_versions


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"n": 5}, {"load", "total", "scaled", "report"}),
        ({"factor": 11}, {"scaled", "report"}),
        ({"name": "total"}, {"label", "report"}),
        ({"n": 5, "name": "total"}, set(ALL)),
    ],
    ids=["n", "factor", "name", "n-and-name"],
)
def test_changing_a_param_reruns_exactly_its_consumers_and_descendants(store, change, expected):
    _run(store)
    CALLS.reset()
    result = _run(store, params=change)
    assert _executed(result) == expected
    assert {name for name in ALL if CALLS[name]} == expected
    fresh = Pipeline(STEPS).run(params={**PARAMS, **change})
    assert result.outputs == fresh.outputs


def test_reason_names_the_changed_input(store):
    _run(store)
    result = _run(store, params={"factor": 11})
    assert result.steps["scaled"].reason == "input 'factor' changed"
    assert result.steps["report"].reason == "input 'scaled' changed"
    assert result.steps["total"].reason == "cache hit"


def test_changing_a_param_back_hits_the_older_entries(store):
    _run(store)
    _run(store, params={"n": 7})
    CALLS.reset()
    result = _run(store)
    assert _executed(result) == set()
    assert CALLS.total() == 0
    assert result["report"] == "SUM:60"


def test_dict_params_in_another_order_hit(store):
    @step
    def keys(options):
        CALLS.hit("keys")
        return sorted(options)

    Pipeline([keys]).run(params={"options": {"a": 1, "b": 2}}, store=store)
    result = Pipeline([keys]).run(params={"options": {"b": 2, "a": 1}}, store=store)
    assert result.steps["keys"].cached
    assert CALLS["keys"] == 1


def test_list_and_tuple_params_do_not_share_entries(store):
    @step
    def kind(value):
        CALLS.hit("kind")
        return type(value).__name__

    first = Pipeline([kind]).run(params={"value": [1, 2]}, store=store)
    second = Pipeline([kind]).run(params={"value": (1, 2)}, store=store)
    third = Pipeline([kind]).run(params={"value": 1.0}, store=store)
    fourth = Pipeline([kind]).run(params={"value": 1}, store=store)
    fifth = Pipeline([kind]).run(params={"value": True}, store=store)
    assert [r["kind"] for r in (first, second, third, fourth, fifth)] == [
        "list",
        "tuple",
        "float",
        "int",
        "bool",
    ]
    assert CALLS["kind"] == 5


# -- early cutoff ---------------------------------------------------------------------------


@step
def parity(n):
    CALLS.hit("parity")
    return n % 2


@step
def describe(parity):
    CALLS.hit("describe")
    return "odd" if parity else "even"


def test_early_cutoff_an_upstream_with_identical_output_does_not_rerun_downstream(store):
    Pipeline([parity, describe]).run(params={"n": 2}, store=store)
    result = Pipeline([parity, describe]).run(params={"n": 4}, store=store)
    assert not result.steps["parity"].cached
    assert result.steps["describe"].cached
    assert CALLS["parity"] == 2
    assert CALLS["describe"] == 1
    assert result["describe"] == "even"
    result = Pipeline([parity, describe]).run(params={"n": 5}, store=store)
    assert not result.steps["describe"].cached
    assert result["describe"] == "odd"


def test_early_cutoff_after_a_code_change_with_identical_output(store):
    def total_rewritten(load):
        CALLS.hit("total")
        result = 0
        for item in load:
            result += item
        return result

    _run(store)
    CALLS.reset()
    rewritten = Step(total_rewritten, inputs=["load"], outputs=["total"], name="total")
    result = _run(store, steps=[load, rewritten, scaled, label, report])
    assert _executed(result) == {"total"}
    assert result.steps["total"].reason == "code changed"
    assert CALLS["total"] == 1
    assert CALLS["scaled"] == CALLS["report"] == 0


# -- code changes -----------------------------------------------------------------------------


def test_changed_step_code_reruns_the_step_and_its_descendants(store):
    def total_plus_one(load):
        CALLS.hit("total")
        return sum(load) + 1

    _run(store)
    CALLS.reset()
    changed = Step(total_plus_one, inputs=["load"], outputs=["total"], name="total")
    result = _run(store, steps=[load, changed, scaled, label, report])
    assert _executed(result) == {"total", "scaled", "report"}
    assert result.steps["total"].reason == "code changed"
    assert result.steps["scaled"].reason == "input 'total' changed"
    assert result["report"] == "SUM:70"
    assert CALLS["load"] == CALLS["label"] == 0


def test_version_label_change_reruns_the_step(store):
    _run(store)
    CALLS.reset()
    result = _run(store, steps=[load, total.with_options(version="2"), scaled, label, report])
    assert _executed(result) == {"total"}  # same output: its descendants cut off
    assert result.steps["total"].reason == "version changed"
    again = _run(store, steps=[load, total.with_options(version="2"), scaled, label, report])
    assert _executed(again) == set()
    assert CALLS["total"] == 1


# -- config ---------------------------------------------------------------------------------


@step(inputs={"value": "config.a.b"})
def read_ab(value):
    CALLS.hit("read_ab")
    return value * 2


@step(inputs={"value": "config.a.c"})
def read_ac(value):
    CALLS.hit("read_ac")
    return value * 3


@step(inputs={"section": "config.a"})
def read_a(section):
    CALLS.hit("read_a")
    return sorted(section)


@step
def read_top(d):
    CALLS.hit("read_top")
    return d + 1


CONFIG_STEPS = [read_ab, read_ac, read_a, read_top]
CONFIG = {"a": {"b": 1, "c": 2}, "d": 3}


def _config_run(store, config):
    return Pipeline(CONFIG_STEPS, config=config).run(store=store)


@pytest.mark.parametrize(
    ("config", "expected", "reason"),
    [
        ({"a": {"b": 10, "c": 2}, "d": 3}, {"read_ab", "read_a"}, "config.a.b changed"),
        ({"a": {"b": 1, "c": 20}, "d": 3}, {"read_ac", "read_a"}, "config.a.c changed"),
        ({"a": {"b": 1, "c": 2}, "d": 30}, {"read_top"}, None),
        ({"a": {"c": 2, "b": 1}, "d": 3}, set(), None),
    ],
    ids=["a.b", "a.c", "d", "reordered"],
)
def test_changing_one_config_value_reruns_only_the_steps_that_read_it(
    store, config, expected, reason
):
    _config_run(store, CONFIG)
    CALLS.reset()
    result = _config_run(store, config)
    assert _executed(result) == expected
    assert {name for name in CALLS.counts if CALLS[name]} == expected
    if reason is not None:
        changed = next(iter(expected - {"read_a"}))
        assert result.steps[changed].reason == reason
        assert result.steps["read_a"].reason == "config.a changed"


def test_config_given_at_run_time_is_part_of_the_key(store):
    pipeline = Pipeline(CONFIG_STEPS, config=CONFIG)
    pipeline.run(store=store)
    result = pipeline.run(store=store, config={"a": {"b": 5, "c": 2}, "d": 3})
    assert _executed(result) == {"read_ab", "read_a"}
    assert result["read_ab"] == 10


# -- force ---------------------------------------------------------------------------------


def test_force_true_reruns_everything(store):
    _run(store)
    result = _run(store, force=True)
    assert _executed(result) == set(ALL)
    assert all(CALLS[name] == 2 for name in ALL)
    assert all(record.reason == "forced" for record in result.steps.values())


def test_force_a_step_reruns_it_and_cuts_off_when_its_output_is_unchanged(store):
    _run(store)
    CALLS.reset()
    result = _run(store, force=["total"])
    assert _executed(result) == {"total"}
    assert result.steps["total"].reason == "forced"
    assert CALLS["total"] == 1
    assert CALLS.total() == 1


def test_force_a_step_whose_output_changes_reruns_what_depends_on_it(store, tmp_path):
    @step
    def stamp(folder):
        bump(folder, "stamp")
        return count(folder, "stamp")  # a new value on every execution

    @step
    def use(stamp):
        CALLS.hit("use")
        return stamp * 100

    @step
    def other(folder):
        CALLS.hit("other")
        return folder

    steps = [stamp, use, other]
    params = {"folder": str(tmp_path)}
    Pipeline(steps).run(params=params, store=store)
    result = Pipeline(steps).run(params=params, store=store, force=["stamp"])
    assert _executed(result) == {"stamp", "use"}
    assert result["use"] == 200
    assert CALLS["other"] == 1


def test_force_a_single_name_as_a_string(store):
    _run(store)
    CALLS.reset()
    result = _run(store, force="label")
    assert _executed(result) == {"label"}


def test_force_an_unknown_step_is_an_error(store):
    with pytest.raises(UsageError, match="'nope', which is not a step"):
        _run(store, force=["nope"])


# -- cache=False, None, failures, fallbacks ---------------------------------------------------


def test_cache_false_steps_rerun_every_time_while_others_hit(store):
    uncached = total.with_options(cache=False)
    steps = [load, uncached, scaled, label, report]
    _run(store, steps=steps)
    CALLS.reset()
    result = _run(store, steps=steps)
    assert _executed(result) == {"total"}
    assert CALLS["total"] == 1
    assert CALLS.total() == 1  # its output is the same: downstream hits
    third = _run(store, steps=steps)
    assert _executed(third) == {"total"}
    assert CALLS["total"] == 2


def test_none_is_cacheable(store):
    @step
    def nothing(n):
        CALLS.hit("nothing")

    @step
    def after(nothing):
        CALLS.hit("after")
        return nothing is None

    first = Pipeline([nothing, after]).run(params={"n": 1}, store=store)
    second = Pipeline([nothing, after]).run(params={"n": 1}, store=store)
    assert first["nothing"] is None
    assert second["nothing"] is None
    assert second["after"] is True
    assert second.steps["nothing"].cached
    assert second.steps["after"].cached
    assert CALLS["nothing"] == CALLS["after"] == 1


def test_failures_are_not_cached(store, tmp_path):
    @step
    def flaky(folder):
        bump(folder, "flaky")
        if count(folder, "flaky") == 1:
            raise ValueError("first call fails")
        return "ok"

    params = {"folder": str(tmp_path)}
    with pytest.raises(RunFailed):
        Pipeline([flaky]).run(params=params, store=store)
    result = Pipeline([flaky]).run(params=params, store=store)
    assert result["flaky"] == "ok"
    assert not result.steps["flaky"].cached
    assert count(tmp_path, "flaky") == 2


def test_fallback_values_are_never_cached(store, tmp_path):
    def fallback(exc, folder):
        return "fallback"

    @step(on_failure=fallback)
    def fragile(folder):
        bump(folder, "fragile")
        if count(folder, "fragile") == 1:
            raise ValueError("first call fails")
        return "real"

    params = {"folder": str(tmp_path)}
    first = Pipeline([fragile]).run(params=params, store=store)
    assert first["fragile"] == "fallback"
    second = Pipeline([fragile]).run(params=params, store=store)
    assert second["fragile"] == "real"
    assert not second.steps["fragile"].cached
    third = Pipeline([fragile]).run(params=params, store=store)
    assert third.steps["fragile"].cached
    assert third["fragile"] == "real"


class _Switch:
    broken = False


@step(cache=False)
def source_of_truth(n):
    CALLS.hit("source_of_truth")
    if _Switch.broken:
        raise ConnectionError("the source is down")
    return n * 2


@step
def consumer(source_of_truth):
    CALLS.hit("consumer")
    return source_of_truth + 1


def test_a_cached_downstream_never_masks_a_failed_dependency(store, monkeypatch):
    steps = [source_of_truth, consumer]
    first = Pipeline(steps).run(params={"n": 1}, store=store)
    assert first["consumer"] == 3
    monkeypatch.setattr(_Switch, "broken", True)
    result = Pipeline(steps).run(params={"n": 1}, store=store, on_error="continue")
    assert result.steps["source_of_truth"].status == "failed"
    assert result.steps["consumer"].status != "ok"
    assert not result.steps["consumer"].cached
    assert "consumer" not in result.outputs
    assert not result.ok
    with pytest.raises(RunFailed) as caught:
        Pipeline(steps).run(params={"n": 1}, store=store)
    assert caught.value.step == "source_of_truth"


def test_a_forced_upstream_that_now_fails_does_not_serve_its_consumer_from_cache(store):
    @step
    def checked(n):
        CALLS.hit("checked")
        if CALLS["checked"] > 1:
            raise RuntimeError("broken now")
        return n

    @step
    def downstream(checked):
        CALLS.hit("downstream")
        return checked * 10

    Pipeline([checked, downstream]).run(params={"n": 1}, store=store)
    result = Pipeline([checked, downstream]).run(
        params={"n": 1}, store=store, force=["checked"], on_error="continue"
    )
    assert result.steps["checked"].status == "failed"
    assert result.steps["downstream"].status == "skipped"
    assert not result.steps["downstream"].cached
    assert CALLS["downstream"] == 1


def test_an_upstream_that_now_raises_for_new_input_fails_the_run(store):
    @step
    def strict(n):
        CALLS.hit("strict")
        if n < 0:
            raise ValueError("negative")
        return 0  # the same output for every accepted n

    @step
    def after_strict(strict):
        CALLS.hit("after_strict")
        return strict

    Pipeline([strict, after_strict]).run(params={"n": 1}, store=store)
    result = Pipeline([strict, after_strict]).run(
        params={"n": -1}, store=store, on_error="continue"
    )
    assert result.steps["strict"].status == "failed"
    assert result.steps["after_strict"].status == "skipped"
    assert "after_strict" not in result.outputs


# -- input files ----------------------------------------------------------------------------


def _read(path):
    CALLS.hit("read")
    with open(path) as handle:
        return handle.read().upper()


def test_input_file_content_change_reruns_the_step(store, tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("hello")
    reader = step(name="read", input_files=[str(data)])(_read)
    steps = [reader]
    params = {"path": str(data)}
    assert Pipeline(steps).run(params=params, store=store)["read"] == "HELLO"
    assert Pipeline(steps).run(params=params, store=store).steps["read"].cached
    data.write_text("world")
    result = Pipeline(steps).run(params=params, store=store)
    assert result["read"] == "WORLD"
    assert not result.steps["read"].cached
    assert "data.txt" in result.steps["read"].reason
    assert "changed" in result.steps["read"].reason
    assert CALLS["read"] == 2
    data.write_text("hello")  # back to the first content: the first entry serves
    assert Pipeline(steps).run(params=params, store=store).steps["read"].cached
    assert CALLS["read"] == 2


# -- map steps --------------------------------------------------------------------------------


@step(map="items")
def square(items, offset):
    CALLS.hit("square")
    return items * items + offset


def test_map_steps_cache_per_element(store):
    Pipeline([square]).run(params={"items": [1, 2, 3], "offset": 0}, store=store)
    assert CALLS["square"] == 3
    result = Pipeline([square]).run(params={"items": [1, 2, 3, 4], "offset": 0}, store=store)
    assert result["square"] == [1, 4, 9, 16]
    assert CALLS["square"] == 4
    result = Pipeline([square]).run(params={"items": [4, 3, 2, 1], "offset": 0}, store=store)
    assert result["square"] == [16, 9, 4, 1]
    assert result.steps["square"].cached
    assert CALLS["square"] == 4


def test_map_step_shared_input_change_recomputes_every_element(store):
    Pipeline([square]).run(params={"items": [1, 2], "offset": 0}, store=store)
    result = Pipeline([square]).run(params={"items": [1, 2], "offset": 1}, store=store)
    assert result["square"] == [2, 5]
    assert CALLS["square"] == 4


def test_map_over_a_dict_caches_per_element(store):
    Pipeline([square]).run(params={"items": {"a": 1, "b": 2}, "offset": 0}, store=store)
    result = Pipeline([square]).run(
        params={"items": {"a": 1, "b": 2, "c": 3}, "offset": 0}, store=store
    )
    assert result["square"] == {"a": 1, "b": 4, "c": 9}
    assert CALLS["square"] == 3


# -- outputs and lazy loading -------------------------------------------------------------------


@step(outputs=["low", "high"])
def bounds(load):
    CALLS.hit("bounds")
    return min(load), max(load)


def test_requested_outputs_of_a_fully_cached_run_have_the_right_values(store):
    steps = [*STEPS, bounds]
    _run(store, steps=steps)
    CALLS.reset()
    result = _run(store, steps=steps, outputs=["report", "total", "high"])
    assert CALLS.total() == 0
    assert result.outputs == {"report": "SUM:60", "total": 6, "high": 3}
    assert result["high"] == 3
    assert all(record.cached for record in result.steps.values())


def test_a_cached_step_feeds_an_executing_one(store):
    _run(store)
    CALLS.reset()
    result = _run(store, params={"factor": 2}, outputs=["report"])
    assert result["report"] == "SUM:12"
    assert CALLS["scaled"] == 1
    assert CALLS["total"] == 0


def test_every_output_of_a_cached_run_is_returned(store):
    first = _run(store)
    second = _run(store)
    assert second.outputs == first.outputs
    assert second.outputs == {
        "load": [0, 1, 2, 3],
        "total": 6,
        "scaled": 60,
        "label": "SUM",
        "report": "SUM:60",
    }


# -- executors ------------------------------------------------------------------------------


@step
def counted(n, folder):
    bump(folder, "counted")
    return n + 1


@step
def counted_after(counted, folder):
    bump(folder, "counted_after")
    return counted * 2


@pytest.mark.parametrize("executor", ["sequential", "threads:4", "processes:2"])
def test_second_run_hits_on_every_executor(store, tmp_path, executor):
    params = {"n": 1, "folder": str(tmp_path)}
    steps = [counted, counted_after]
    first = Pipeline(steps).run(params=params, store=store, executor=executor)
    second = Pipeline(steps).run(params=params, store=store, executor=executor)
    assert first["counted_after"] == second["counted_after"] == 4
    assert all(record.cached for record in second.steps.values())
    assert count(tmp_path, "counted") == count(tmp_path, "counted_after") == 1


# -- what a step is wired to is part of its key ------------------------------------------------


def _minus(a, b):
    CALLS.hit("minus")
    return a - b


def test_the_same_function_as_two_steps_under_two_names(store):
    first = Step(_minus, inputs=["x", "y"], outputs=["first"], name="first")
    second = Step(_minus, inputs=["x", "y"], outputs=["second"], name="second")

    @step
    def combined(first, second):
        return (first, second)

    steps = [first, second, combined]
    result = Pipeline(steps).run(params={"x": 5, "y": 2}, store=store)
    assert result["combined"] == (3, 3)
    again = Pipeline(steps).run(params={"x": 5, "y": 2}, store=store)
    assert again["combined"] == (3, 3)
    assert all(record.cached for record in again.steps.values())


def test_swapping_which_data_feeds_which_parameter_reruns(store):
    def run(inputs):
        item = Step(_minus, inputs=inputs, outputs=["difference"], name="difference")
        return Pipeline([item]).run(params={"x": 10, "y": 3}, store=store)

    assert run(["x", "y"])["difference"] == 7
    swapped = run(["y", "x"])
    assert swapped["difference"] == -7
    assert not swapped.steps["difference"].cached


def _span(values):
    CALLS.hit("span")
    return min(values), max(values)


def test_renaming_outputs_does_not_serve_values_under_the_wrong_names(store):
    def run(outputs):
        item = Step(_span, inputs=["values"], outputs=outputs, name="span")
        return Pipeline([item]).run(params={"values": [1, 5]}, store=store)

    assert run(["low", "high"]).outputs == {"low": 1, "high": 5}
    swapped = run(["high", "low"])
    assert swapped.outputs == {"high": 1, "low": 5}


def test_a_second_run_with_an_empty_map_hits_every_step(store):
    Pipeline([square]).run(params={"items": [], "offset": 0}, store=store)
    result = Pipeline([square]).run(params={"items": [], "offset": 0}, store=store)
    assert result["square"] == []
    assert result.steps["square"].cached


# -- async steps and sinks ------------------------------------------------------------------


@step
async def fetched(n):
    CALLS.hit("fetched")
    return {"n": n}


@step(outputs=[])
def sink(fetched):
    CALLS.hit("sink")


def test_async_steps_are_cached(store):
    first = Pipeline([fetched]).run(params={"n": 2}, store=store)
    second = Pipeline([fetched]).run(params={"n": 2}, store=store)
    assert first["fetched"] == second["fetched"] == {"n": 2}
    assert second.steps["fetched"].cached
    assert CALLS["fetched"] == 1


def test_sinks_run_every_time_while_their_inputs_hit(store):
    for _ in range(3):
        result = Pipeline([fetched, sink]).run(params={"n": 2}, store=store)
    assert result.steps["fetched"].cached
    assert not result.steps["sink"].cached
    assert CALLS["fetched"] == 1
    assert CALLS["sink"] == 3


class Section(pydantic.BaseModel):
    b: int
    c: int


class Settings(pydantic.BaseModel):
    a: Section
    d: int


def test_config_objects_invalidate_only_the_readers_of_the_changed_attribute(store):
    pipeline = Pipeline(CONFIG_STEPS, config=Settings(a=Section(b=1, c=2), d=3))
    pipeline.run(store=store)
    CALLS.reset()
    result = pipeline.run(store=store, config=Settings(a=Section(b=1, c=5), d=3))
    assert _executed(result) == {"read_ac", "read_a"}
    assert result.steps["read_ac"].reason == "config.a.c changed"
    assert result["read_ac"] == 15
