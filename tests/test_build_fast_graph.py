"""Building and validating with few objects a step (issue 16): what the lean graph model
must keep true.

A step keeps one tuple of data names (``inputs`` and ``data_inputs`` are dicts made on
read); a graph shares its pipeline's step dict (the pipeline copies it before a change);
a step's sources (``Graph.sourced``, a plan's ``sources``) and the set of names the steps
read (``Plan.consumed``) are derived on use. Each is checked against a reference computed
the plain way, on random graphs too. Nothing here is timed; memory is counted with
tracemalloc, whose figures do not depend on the machine's load.
"""

from __future__ import annotations

import pickle
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait import Pipeline, Step, param, step
from plait.errors import PlaitWarning, StepDefinitionError
from plait.graph import FROM_STEP, Source

# -- a step's wiring -------------------------------------------------------------------


def add(x, y=1):
    return x + y


def gather(a, **more):
    return [a, *more.values()]


@pytest.mark.parametrize(
    ("inputs", "wiring"),
    [
        (None, {"x": "x", "y": "y"}),
        (["a"], {"x": "a", "y": "y"}),
        (["a", "b"], {"x": "a", "y": "b"}),
        ("a", {"x": "a", "y": "y"}),
        ({"y": "b"}, {"x": "x", "y": "b"}),
        (("a",), {"x": "a", "y": "y"}),
    ],
)
def test_inputs_maps_every_parameter_in_order(inputs, wiring):
    made = Step(add, inputs=inputs, name="s")
    assert made.inputs == wiring
    assert list(made.inputs) == ["x", "y"]
    assert made.data_inputs == wiring


def test_inputs_and_data_inputs_are_new_dicts_that_do_not_change_the_step():
    made = Step(add, inputs=["a"], name="s")
    first = made.inputs
    first["x"] = "elsewhere"
    made.data_inputs["x"] = "elsewhere"
    assert made.inputs == {"x": "a", "y": "y"}
    assert Pipeline([made]).run(params={"a": 1, "y": 2})["s"] == 3


def test_data_inputs_leaves_out_bound_entries_and_adds_kwargs_entries():
    with Pipeline() as p:
        x = param("x", int, default=1)
        gather_step = Step(gather, inputs={"a": "x", "b": "x"}, name="gather")
        gather_step(a=x, c=5)
    (made,) = p.steps.values()
    assert made.inputs == {"a": "x"}
    assert made.bound == {"c": 5}
    assert dict(made.data_inputs) == {"a": "x", "b": "x"}
    assert sorted(p.run()["gather"]) == [1, 1, 5]


def test_a_wiring_that_misses_a_parameter_is_refused():
    made = Step(add, name="s")
    with pytest.raises(StepDefinitionError, match=r"must map every parameter .*\['x', 'y'\]"):
        made.inputs = {"x": "a"}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([""], r"inputs= maps 'x' to ''; data names are non-empty strings"),
        ([3], r"inputs= maps 'x' to 3"),
        (["a", "b", "c"], r"inputs= lists 3 names but add takes only 2"),
        ({"z": "a"}, r"inputs= maps 'z', which is not a parameter of add"),
    ],
)
def test_bad_wiring_still_names_the_step_the_input_and_the_fix(inputs, message):
    with pytest.raises(StepDefinitionError, match=message):
        Step(add, inputs=inputs, name="s")


def test_a_one_parameter_step_with_one_input_checks_the_name():
    def one(v):
        return v

    assert Step(one, inputs=["a"], name="s").inputs == {"v": "a"}
    with pytest.raises(StepDefinitionError, match=r"step 's': inputs= maps 'v' to None"):
        Step(one, inputs=[None], name="s")


def test_with_options_and_copies_keep_their_own_wiring():
    made = Step(add, inputs=["a"], name="s")
    other = made.with_options(inputs={"y": "b"}, name="t")
    assert made.inputs == {"x": "a", "y": "y"}
    assert other.inputs == {"x": "x", "y": "b"}
    assert repr(other) == "Step('t', inputs=[x, y=b], outputs=['t'])"


def test_a_step_reads_its_functions_module_and_doc_as_a_wrapper_would():
    @step
    def documented(x):
        """Documented."""
        return x

    assert documented.__doc__ == "Documented."
    assert documented.__module__ == __name__
    assert documented.__name__ == "documented"
    assert documented.__wrapped__(4) == 4
    documented.__doc__ = "Changed."
    assert documented.__doc__ == "Changed."
    assert Step.__module__ == "plait.steps"
    assert Step.__doc__.startswith("A function wired into a pipeline")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps([Step, Step.__module__], protocol)) == [
            Step,
            "plait.steps",
        ]


# -- a graph shares its pipeline's step dict -----------------------------------------------


@step
def one():
    return 1


@step
def two(one):
    return one + 1


@step
def three(two):
    return two + 1


def test_adding_a_step_never_changes_a_graph_already_built():
    p = Pipeline([one, two])
    before = p.graph
    p.add(three)
    assert list(before.steps) == ["one", "two"]
    assert [s.name for s in before.order] == ["one", "two"]
    assert list(p.graph.steps) == ["one", "two", "three"]
    assert p.run()["three"] == 3


def test_ordering_in_a_block_never_changes_a_graph_already_built():
    with Pipeline() as p:
        a = one()
        b = two(a)
        built = p.graph
        c = three(b)
        c >> b  # a cycle: three before two, after two
    assert "three" not in built.steps
    assert built.steps["two"].after == ()
    with pytest.raises(ValueError, match=r"cycle between steps: two -> three -> two"):
        p.validate()


# -- sources and names read, derived on use ------------------------------------------------


def reference_sources(steps: list[Step]) -> dict[str, tuple[Source, ...]]:
    """Each step whose every input is another step's output (not config): its sources."""
    producers = {out: s.name for s in steps for out in s.outputs}
    found = {}
    for item in steps:
        pairs = list(item.data_inputs.items())
        if all(d in producers and not d.startswith("config") for _, d in pairs):
            found[item.name] = tuple(Source(p, d, FROM_STEP, producers[d]) for p, d in pairs)
    return found


def combine(a, b):
    return (a, b)


def single(a):
    return a


@st.composite
def graphs(draw):
    """Steps s0..sn-1 in declaration order; each reads earlier outputs, a param, config."""
    count = draw(st.integers(1, 12))
    steps = []
    for i in range(count):
        pool = [f"s{j}" for j in range(i)] + ["p", "config.k", "config"]
        if draw(st.booleans()):
            steps.append(Step(single, inputs=[draw(st.sampled_from(pool))], name=f"s{i}"))
        else:
            names = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2))
            steps.append(Step(combine, inputs=names, name=f"s{i}"))
    return steps


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_graph_sources_are_what_a_plain_resolution_gives(steps):
    reads_p = any("p" in s.data_inputs.values() for s in steps)
    p = Pipeline(steps, config={"k": 1}, params={"p": 0} if reads_p else None)
    sourced = p.graph.sourced
    expected = reference_sources(steps)
    assert dict(sourced) == expected
    assert len(sourced) == len(expected)
    assert list(sourced) == list(expected)
    for item in steps:
        assert (item.name in sourced) == (item.name in expected)
        assert sourced.get(item.name) == expected.get(item.name)
    plan = p.plan(None, check_params=False)
    assert not plan.problems
    assert set(plan.consumed) == {d for s in steps for d in s.data_inputs.values()}
    run = p.run()
    assert set(run.steps) == {s.name for s in steps}


def test_plan_consumed_is_a_set_of_every_name_read():
    p = Pipeline([one, two, three])
    consumed = p.plan(None).consumed
    assert "one" in consumed
    assert "three" not in consumed
    assert len(consumed) == 2
    assert consumed | {"x"} == {"one", "two", "x"}
    assert sorted(consumed) == ["one", "two"]


def test_an_unused_param_is_still_named_with_a_suggestion():
    p = Pipeline([one, two, three], params={"tow": 1})
    with pytest.raises(
        ValueError, match=r"param 'tow' is not an input of any step \(did you mean 'two'\?\)"
    ):
        p.validate()


# -- few bytes a step ------------------------------------------------------------------------


def link(previous):
    return previous + 1


def test_a_built_and_validated_chain_keeps_few_bytes_a_step():
    """About 390 bytes a step on CPython 3.11 (the step object, its outputs and inputs
    tuples, and one entry in each of a few dicts); 892 before issue 16's work. The bound
    leaves room for other Python versions, not for a dict a step."""
    count = 20_000
    names = [f"s{i}" for i in range(count)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        steps = [Step(one, inputs=[], outputs=[names[0]], name=names[0])]
        steps += [
            Step(link, inputs=[names[i - 1]], outputs=[names[i]], name=names[i])
            for i in range(1, count)
        ]
        p = Pipeline(steps)
        del steps
        p.validate()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert p.order[-1].name == names[-1]
    assert kept / count < 560


# -- warnings are looked for once per function, still named per step ---------------------------


class Model:
    """Not plain data: a cached step that reads it from a global gets a warning."""


SHARED_MODEL = Model()


def predict(x):
    return SHARED_MODEL, x


def test_every_cached_step_of_a_function_that_reads_a_global_is_warned_about():
    p = Pipeline(
        [
            Step(predict, inputs=["a"], name="first"),
            Step(predict, inputs=["b"], name="second"),
            Step(predict, inputs=["c"], name="uncached", cache=False),
            Step(link, inputs=["a"], name="plain"),
        ]
    )
    with pytest.warns(PlaitWarning) as caught:
        p.validate(params={"a": 1, "b": 2, "c": 3})
    warned = sorted(w.message.step for w in caught if isinstance(w.message, PlaitWarning))
    assert warned == ["first", "second"]
    assert "reads the global 'SHARED_MODEL'" in str(caught[0].message)


# -- a plan for some outputs keeps exactly their ancestors ------------------------------------


def reference_ancestors(steps: list[Step], wanted: list[str]) -> list[str]:
    """The steps needed for ``wanted`` (data or step names), by a plain walk."""
    producers = {out: s.name for s in steps for out in s.outputs}
    by_name = {s.name: s for s in steps}
    found: set[str] = set()
    stack = [producers.get(name, name) for name in wanted]
    while stack:
        name = stack.pop()
        if name not in found:
            found.add(name)
            stack.extend(producers[d] for d in by_name[name].data_inputs.values() if d in producers)
    return [s.name for s in steps if s.name in found]


@settings(max_examples=150, deadline=None)
@given(graphs(), st.data())
def test_a_plan_for_some_outputs_keeps_exactly_their_ancestors(steps, data):
    reads_p = any("p" in s.data_inputs.values() for s in steps)
    p = Pipeline(steps, config={"k": 1}, params={"p": 0} if reads_p else None)
    read = {d for s in steps for d in s.data_inputs.values()}
    sinks = [s.name for s in steps if s.name not in read]
    wanted = data.draw(st.sampled_from([sinks, sinks[:-1], [steps[-1].name]]))
    if not wanted:
        return
    p.validate()  # the whole plan first, as a run after validate() finds it
    plan = p.plan(None, wanted, check_params=False)
    kept = set(reference_ancestors(steps, wanted))
    assert [s.name for s in plan.order] == [s.name for s in p.order if s.name in kept]
    assert set(plan.sources) == kept
    for name, value in reference_sources(steps).items():
        if name in kept:
            assert plan.sources[name] == value
