"""Random DAGs and random edits: the cache never gives a false hit nor a needless miss.

A DAG of up to 8 integer steps reads params, config values and earlier steps' outputs.
After a first run on a store, random mutations are applied one after another (a param, a
config value, a step's function swapped for another module-level variant, a version
label), and every cached run is compared with a fresh run without a store (no false hit)
and with a model of the cache keys (a step whose code, label and input values were all seen
before must be a hit: no needless miss).
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings

from hypothesis import given, settings
from hypothesis import strategies as st

from plait import Pipeline, Step

# When a test fails, hypothesis's pytest plugin imports libcst (if installed) to suggest a
# patch; libcst's import emits a DeprecationWarning (mypy_extensions.TypedDict), which
# filterwarnings=error turns into an INTERNALERROR that hides the real failure. Import it
# now with that warning ignored, so a failure is reported as a failure.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.filterwarnings("ignore", "mypy_extensions.TypedDict", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

# -- the step bodies: separate module-level functions, so a swap is a real code change ------


def add(a, b):
    return a + b


def subtract(a, b):
    return a - b


def multiply(a, b):
    return (a * b) % 1009


def parity(a, b):
    return (a + b) % 2  # often unchanged by an edit upstream: early cutoff


def larger(a, b):
    return max(a, b)


VARIANTS = (add, subtract, multiply, parity, larger)
PARAMS = ("p0", "p1", "p2")
CONFIG = ("c0", "c1")
MAX_STEPS = 8


@st.composite
def scenarios(draw, *, labelled: bool = True):
    size = draw(st.integers(min_value=1, max_value=MAX_STEPS))
    external = [*PARAMS, *(f"config.{c}" for c in CONFIG)]
    wiring = []
    for i in range(size):
        sources = external + [f"s{j}" for j in range(i)]
        wiring.append((draw(st.sampled_from(sources)), draw(st.sampled_from(sources))))
    small = st.integers(min_value=-5, max_value=5)
    variants = [draw(st.integers(0, len(VARIANTS) - 1)) for _ in range(size)]
    revisions = [draw(st.integers(0, 2)) if labelled else None for _ in range(size)]
    params = {name: draw(small) for name in PARAMS}
    config = {name: draw(small) for name in CONFIG}
    mutation = st.one_of(
        st.tuples(st.just("param"), st.sampled_from(PARAMS), small),
        st.tuples(st.just("config"), st.sampled_from(CONFIG), small),
        st.tuples(st.just("variant"), st.integers(0, size - 1), st.integers(0, len(VARIANTS) - 1)),
        st.tuples(st.just("version"), st.integers(0, size - 1), st.integers(0, 2)),
    )
    mutations = draw(st.lists(mutation, min_size=1, max_size=3)) if labelled else []
    return wiring, variants, revisions, params, config, mutations


def _label(i, revision):
    # the step's index keeps the keys of same-code, same-input steps apart (collisions
    # between such steps are the subject of test_random_dags_with_repeated_steps below)
    return None if revision is None else f"s{i}-r{revision}"


def _pipeline(wiring, variants, revisions, config):
    steps = [
        Step(
            VARIANTS[variants[i]],
            inputs={"a": a, "b": b},
            outputs=[f"s{i}"],
            name=f"s{i}",
        ).with_options(version=_label(i, revisions[i]))
        for i, (a, b) in enumerate(wiring)
    ]
    return Pipeline(steps, config=dict(config))


def _used_params(wiring, params):
    used = {source for pair in wiring for source in pair}
    return {k: v for k, v in params.items() if k in used}


def _model(wiring, variants, revisions, params, config):
    """Each step's value and the ingredients of its cache key."""
    values: dict[str, int] = {}
    keys: dict[str, tuple] = {}

    def value_of(source):
        if source.startswith("config."):
            return config[source.removeprefix("config.")]
        return params[source] if source in params else values[source]

    for i, (a, b) in enumerate(wiring):
        left, right = value_of(a), value_of(b)
        values[f"s{i}"] = VARIANTS[variants[i]](left, right)
        keys[f"s{i}"] = (i, variants[i], revisions[i], left, right)
    return values, keys


def _apply(mutation, variants, revisions, params, config):
    kind, target, value = mutation
    if kind == "param":
        params[target] = value
    elif kind == "config":
        config[target] = value
    elif kind == "variant":
        variants[target] = value
    else:
        revisions[target] = value


def _check_run(store, wiring, variants, revisions, params, config, seen):
    pipeline = _pipeline(wiring, variants, revisions, config)
    run_params = _used_params(wiring, params)
    cached = pipeline.run(params=run_params, store=store)
    fresh = pipeline.run(params=run_params)
    values, keys = _model(wiring, variants, revisions, params, config)
    assert fresh.outputs == values
    assert cached.outputs == fresh.outputs, "a cached run returned a stale value (false hit)"
    for name, key in keys.items():
        assert cached.steps[name].cached == (key in seen), (
            f"{name}: cached={cached.steps[name].cached}, key seen before={key in seen} "
            f"({cached.steps[name].reason})"
        )
    seen.update(keys.values())


@settings(max_examples=30, deadline=None)
@given(scenarios())
def test_random_edits_never_give_a_false_hit_nor_a_needless_miss(scenario):
    wiring, variants, revisions, params, config, mutations = scenario
    seen: set[tuple] = set()
    with tempfile.TemporaryDirectory() as store:
        _check_run(store, wiring, variants, revisions, params, config, seen)
        for mutation in mutations:
            _apply(mutation, variants, revisions, params, config)
            _check_run(store, wiring, variants, revisions, params, config, seen)


@settings(max_examples=20, deadline=None)
@given(scenarios(labelled=False), st.integers(-5, 5))
def test_random_dags_with_repeated_steps_never_give_a_false_hit(scenario, new_value):
    # without labels, two steps may share a function and read the same data (under the
    # same or swapped parameters): each must still get its own, right value
    wiring, variants, revisions, params, config, _ = scenario
    pipeline = _pipeline(wiring, variants, revisions, config)
    with tempfile.TemporaryDirectory() as store:
        for run_params in (params, params, {**params, "p0": new_value}):
            used = _used_params(wiring, run_params)
            result = pipeline.run(params=used, store=store)
            assert result.outputs == pipeline.run(params=used).outputs
