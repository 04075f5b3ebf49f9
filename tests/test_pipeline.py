"""Pipelines: assembly, composition, subsets, the handle style, order and fingerprint."""

from __future__ import annotations

import pytest

from plait import Pipeline, Step, param, step
from plait.errors import PipelineValidationError, PlaitError


@step
def raw():
    return [3, 1, 2]


@step
def clean(raw):
    return sorted(raw)


@step
def total(clean):
    return sum(clean)


@step
def biggest(clean):
    return max(clean)


@step
def report(total, biggest):
    return f"{total}/{biggest}"


def _is_topological(order: list[str], deps: dict[str, set[str]]) -> bool:
    position = {name: i for i, name in enumerate(order)}
    return all(position[dep] < position[name] for name, ds in deps.items() for dep in ds)


DIAMOND_DEPS = {
    "raw": set(),
    "clean": {"raw"},
    "total": {"clean"},
    "biggest": {"clean"},
    "report": {"total", "biggest"},
}

# -- assembly ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps",
    [
        [raw, clean, total, biggest, report],
        [report, biggest, total, clean, raw],
        [total, report, raw, biggest, clean],
    ],
    ids=["forward", "reversed", "shuffled"],
)
def test_assembly_from_a_list_in_any_order(steps, order_names):
    pipeline = Pipeline(steps)
    assert _is_topological(order_names(pipeline), DIAMOND_DEPS)
    assert sorted(order_names(pipeline)) == sorted(DIAMOND_DEPS)
    assert pipeline.run()["report"] == "6/3"


def test_default_name_is_pipeline():
    assert Pipeline([raw]).name == "pipeline"
    assert Pipeline([raw], name="training").name == "training"


def test_add_returns_the_pipeline_for_chaining():
    pipeline = Pipeline([raw])
    assert pipeline.add(clean) is pipeline
    pipeline.add(total).add(biggest).add(report)
    assert pipeline.run()["report"] == "6/3"


def test_plus_composes_into_a_new_pipeline(order_names):
    prep = Pipeline([raw, clean])
    stats = Pipeline([total, biggest, report])
    full = prep + stats
    assert full is not prep
    assert full is not stats
    assert full.run()["report"] == "6/3"
    assert sorted(order_names(prep)) == ["clean", "raw"]
    assert sorted(order_names(stats)) == ["biggest", "report", "total"]


def test_plus_with_two_producers_of_one_name_is_an_error():
    other_clean = Step(lambda raw: raw, name="other_clean", outputs=["clean"])
    with pytest.raises(PipelineValidationError, match=r"'clean'"):
        (Pipeline([raw, clean]) + Pipeline([other_clean])).validate()


def test_duplicate_step_names_are_an_error():
    with pytest.raises(PlaitError, match=r"'clean'"):
        Pipeline([raw, clean, clean.with_options(outputs=["again"])]).validate()


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (["total"], {"raw", "clean", "total"}),
        (["biggest"], {"raw", "clean", "biggest"}),
        (["clean"], {"raw", "clean"}),
        (["report"], set(DIAMOND_DEPS)),
    ],
)
def test_subset_keeps_only_the_steps_needed(outputs, expected, order_names):
    full = Pipeline([raw, clean, total, biggest, report])
    sub = full.subset(outputs=outputs)
    assert set(order_names(sub)) == expected
    assert set(order_names(full)) == set(DIAMOND_DEPS)
    assert sub.run()[outputs[0]] == full.run()[outputs[0]]


# -- the handle style ----------------------------------------------------------------


@step
def double(x):
    return 2 * x


@step
def add(a, b):
    return a + b


def test_handle_style_block_builds_the_graph(recorder):
    @step(outputs=[])
    def announce():
        recorder.hit("announce")

    @step
    def tracked_double(x):
        recorder.hit("double")
        return 2 * x

    with Pipeline("etl") as pipeline:
        x = param("x", int, default=5)
        d = tracked_double.with_options(name="d")(x=x)
        add(a=x, b=d)
        log = announce()
        log >> d

    assert pipeline.name == "etl"
    result = pipeline.run()
    assert (result["d"], result["add"]) == (10, 15)
    assert recorder.events == ["announce", "double"]


def test_handle_style_param_default_is_overridden_at_run_time():
    with Pipeline("etl") as pipeline:
        x = param("x", int, default=5)
        add(a=x, b=double(x=x))
    assert pipeline.run()["add"] == 15
    assert pipeline.run(params={"x": 1})["add"] == 3
    assert pipeline(x=2)["add"] == 6


def test_handle_style_non_handle_arguments_are_bound_constants():
    with Pipeline() as pipeline:
        x = param("x", int, default=5)
        add(a=x, b=100)
    assert pipeline.run()["add"] == 105


def test_handle_style_second_use_needs_with_options_name():
    with Pipeline() as pipeline:
        x = param("x", int, default=3)
        once = double(x=x)
        double.with_options(name="twice")(x=once)
    result = pipeline.run()
    assert (result["double"], result["twice"]) == (6, 12)


def test_handle_style_step_is_plain_function_again_after_the_block():
    with Pipeline():
        double(x=param("x", int, default=1))
    assert double(21) == 42


def test_handle_style_rshift_orders_steps_without_data(recorder):
    @step(outputs=[])
    def first():
        recorder.hit("first")

    @step(outputs=[])
    def second():
        recorder.hit("second")

    with Pipeline() as pipeline:
        b = second()
        a = first()
        a >> b
    pipeline.run()
    assert recorder.events == ["first", "second"]


# -- order ---------------------------------------------------------------------------


def test_order_is_topological_and_repeatable(order_names):
    pipeline = Pipeline([report, biggest, total, clean, raw])
    first = order_names(pipeline)
    assert _is_topological(first, DIAMOND_DEPS)
    assert order_names(pipeline) == first
    assert order_names(Pipeline([report, biggest, total, clean, raw])) == first


def test_order_includes_after_edges(order_names):
    @step(after=["late_named"])
    def needs_other():
        return 1

    @step
    def late_named():
        return 2

    names = order_names(Pipeline([needs_other, late_named]))
    assert names.index("late_named") < names.index("needs_other")


def _increment(previous):
    return previous + 1


def test_a_100000_step_chain_builds_orders_and_runs(order_names):
    length = 100_000
    steps = [Step(lambda: 0, name="s0", outputs=["v0"])]
    steps += [
        Step(_increment, inputs=[f"v{i - 1}"], outputs=[f"v{i}"], name=f"s{i}")
        for i in range(1, length)
    ]
    pipeline = Pipeline(steps[::-1])
    order = order_names(pipeline)
    assert order[0] == "s0"
    assert order[-1] == f"s{length - 1}"
    result = pipeline.run(outputs=[f"v{length - 1}"])
    assert result[f"v{length - 1}"] == length - 1


# -- fingerprint ---------------------------------------------------------------------


def _pipeline_v1():
    @step
    def clean(raw):
        return raw + 1

    return Pipeline([clean])


def _pipeline_v1_commented():
    @step
    def clean(raw):
        """Add one."""
        # a comment does not change what the step computes
        return raw + 1

    return Pipeline([clean])


def _pipeline_v2():
    @step
    def clean(raw):
        return raw + 2

    return Pipeline([clean])


def test_fingerprint_is_stable_for_the_same_code():
    assert _pipeline_v1().fingerprint == _pipeline_v1().fingerprint


def test_fingerprint_changes_when_a_step_body_changes():
    assert _pipeline_v1().fingerprint != _pipeline_v2().fingerprint


def test_fingerprint_ignores_comments_and_docstrings():
    assert _pipeline_v1().fingerprint == _pipeline_v1_commented().fingerprint


def test_fingerprint_changes_when_the_structure_changes():
    assert Pipeline([raw, clean]).fingerprint != Pipeline([raw, clean, total]).fingerprint


def test_fingerprint_changes_for_a_redefined_notebook_cell():
    @step
    def clean(raw):
        return raw + 1

    first = Pipeline([clean]).fingerprint

    @step
    def clean(raw):
        return raw - 1

    assert Pipeline([clean]).fingerprint != first


# -- selection ---------------------------------------------------------------------------------
@step(tags=["report"])
def summary(total, biggest):
    return f"{total}/{biggest}"


@step(tags=["report", "slow"])
def chart(clean):
    return len(clean)


def _reporting() -> Pipeline:
    return Pipeline([raw, clean, total, biggest, summary, chart], params={"unused_here": 1})


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({"from_steps": "clean"}, ["clean", "total", "biggest", "summary", "chart"]),
        ({"from_steps": ["total", "biggest"]}, ["total", "biggest", "summary"]),
        ({"to_steps": "total"}, ["raw", "clean", "total"]),
        ({"to_steps": ["total", "chart"]}, ["raw", "clean", "total", "chart"]),
        ({"tags": "report"}, ["summary", "chart"]),
        ({"tags": ["slow"], "from_steps": "clean"}, ["chart"]),
        ({"from_steps": "clean", "to_steps": "summary"}, ["clean", "total", "biggest", "summary"]),
        ({"outputs": "total"}, ["raw", "clean", "total"]),
        ({"from_steps": "clean", "outputs": ["total"]}, ["clean", "total"]),
        ({}, ["raw", "clean", "total", "biggest", "summary", "chart"]),
    ],
)
def test_select_keeps_the_steps_every_selector_picks(selection, expected):
    selected = _reporting().select(**selection)
    assert list(selected.steps) == expected


def test_select_returns_a_new_pipeline_and_keeps_the_original():
    whole = _reporting()
    part = whole.select(to_steps="total")
    assert part is not whole
    assert len(whole) == 6
    assert part.name == whole.name
    assert part.run()["total"] == 6


def test_values_from_left_out_steps_become_params_of_the_selection():
    part = _reporting().select(from_steps="total", to_steps="total")
    with pytest.raises(PipelineValidationError, match="input 'clean' comes from step 'clean'"):
        part.run()
    assert part.run(params={"clean": [1, 2]})["total"] == 3


def test_a_param_only_left_out_steps_read_is_not_an_error():
    @step
    def source(n):
        return list(range(n))

    @step
    def count(source):
        return len(source)

    part = Pipeline([source, count]).select(from_steps="count")
    assert part.run(params={"source": [1], "n": 5})["count"] == 1


def test_select_drops_ordering_on_left_out_steps():
    @step
    def first():
        return 1

    @step(after=[first])
    def second():
        return 2

    assert Pipeline([first, second]).select(from_steps="second").run()["second"] == 2


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"from_steps": "claen"}, r"no step named 'claen' \(did you mean 'clean'\?\)"),
        ({"to_steps": ["total", "nope"]}, r"no step named 'nope'"),
        ({"tags": "reprot"}, r"no step is tagged 'reprot' \(did you mean 'report'\?\)"),
        ({"outputs": "totl"}, r"no step produces 'totl' \(did you mean 'total'\?\)"),
        ({"from_steps": "summary", "to_steps": "raw"}, r"selects no step"),
        ({"tags": "slow", "outputs": "total"}, r"output 'total' is made by step 'total'"),
    ],
)
def test_a_bad_selection_says_what_is_wrong(selection, message):
    from plait.errors import UsageError

    with pytest.raises(UsageError, match=message):
        _reporting().select(**selection)
