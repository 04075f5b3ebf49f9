"""Sub-pipelines: ``Pipeline.as_step`` inlines a pipeline under a namespace.

Running tests take every executor: inlined steps are ordinary steps of the parent and
must run (and be recorded) the same way everywhere.
"""

from __future__ import annotations

import pytest

import executor_cases
from plait import Pipeline, step
from plait.errors import PlaitError, RunFailed

executor = executor_cases.executor
process_pool = executor_cases.process_pool


@step
def clean(raw, factor):
    return [value * factor for value in raw if value is not None]


@step
def size(clean):
    return len(clean)


# The inner pipeline carries its own constant param: callers never pass "factor".
prep = Pipeline([clean, size], name="prep", params={"factor": 2})


@step(outputs="raw_a")
def load_a():
    return [1, None, 2]


@step(outputs="raw_b")
def load_b():
    return [10]


@step
def combine(clean_a, clean_b):
    return clean_a + clean_b


def two_preps() -> Pipeline:
    return Pipeline(
        [
            load_a,
            load_b,
            prep.as_step("a", inputs={"raw": "raw_a"}, outputs={"clean": "clean_a"}),
            prep.as_step("b", inputs={"raw": "raw_b"}, outputs={"clean": "clean_b"}),
            combine,
        ],
        name="parent",
    )


def test_one_sub_pipeline_used_twice_under_two_namespaces(executor):
    result = two_preps().run(executor=executor)
    assert result.ok
    assert result["clean_a"] == [2, 4]
    assert result["clean_b"] == [20]
    assert result["combine"] == [2, 4, 20]


def test_inner_steps_are_recorded_under_their_namespace(executor):
    result = two_preps().run(executor=executor)
    assert {"a.clean", "a.size", "b.clean", "b.size"} <= set(result.steps)
    assert "clean" not in result.steps
    assert "size" not in result.steps
    for name in ("a.clean", "a.size", "b.clean", "b.size"):
        assert result.steps[name].status == "ok"
        assert result.steps[name].name == name


def test_unmapped_inner_values_are_addressable_by_namespace(executor):
    result = two_preps().run(executor=executor)
    assert result["a.size"] == 2
    assert result["b.size"] == 1


def test_a_parent_step_can_consume_a_namespaced_inner_value(executor):
    @step(inputs={"left": "a.size", "right": "b.size"})
    def sizes(left, right):
        return (left, right)

    result = two_preps().add(sizes).run(executor=executor, outputs=["sizes"])
    assert result["sizes"] == (2, 1)


def test_inner_constants_and_config_are_kept(executor):
    @step
    def scaled(value, scale, factor):
        return value * scale * factor

    @step(inputs={"limit": "config.limits.high"})
    def capped(scaled, limit):
        return min(scaled, limit)

    inner = Pipeline(
        [scaled, capped],
        name="inner",
        params={"factor": 10},
        config={"scale": 3, "limits": {"high": 100}},
    )

    @step(outputs="value")
    def source():
        return 2

    parent = Pipeline(
        [source, inner.as_step("calc", outputs={"capped": "result"})],
        config={"other": "parent config"},
    )
    result = parent.run(executor=executor)
    assert result["calc.scaled"] == 60
    assert result["result"] == 60

    result = parent.run(executor=executor, outputs=["result"])
    assert result["result"] == 60


def test_inner_config_paths_are_bound_when_inlined(executor):
    @step(inputs={"limit": "config.limit"})
    def capped(value, limit):
        return min(value, limit)

    inner = Pipeline([capped], config={"limit": 5})
    parent = Pipeline([inner.as_step("cap", outputs={"capped": "out"})])
    assert parent.run(params={"value": 9}, executor=executor)["out"] == 5
    assert parent.run(params={"value": 4}, executor=executor)["out"] == 4


def test_free_inner_inputs_resolve_in_the_parent(executor):
    @step
    def above(threshold, numbers):
        return [n for n in numbers if n > threshold]

    inner = Pipeline([above])
    parent = Pipeline([inner.as_step("filter", inputs={"numbers": "data"})])
    result = parent.run(params={"threshold": 2, "data": [1, 2, 3, 4]}, executor=executor)
    assert result["filter.above"] == [3, 4]


def test_a_namespace_other_than_the_name(executor):
    result = Pipeline(
        [load_a, prep.as_step("prep", inputs={"raw": "raw_a"}, namespace="first")]
    ).run(executor=executor)
    assert result["first.clean"] == [2, 4]
    assert result["first.size"] == 2
    assert "first.clean" in result.steps


def test_nested_sub_pipelines_nest_their_namespaces(executor):
    middle = Pipeline([prep.as_step("inner", inputs={"raw": "raw"})], name="middle")
    parent = Pipeline([load_a, middle.as_step("outer", inputs={"raw": "raw_a"})])
    result = parent.run(executor=executor)
    assert result["outer.inner.clean"] == [2, 4]
    assert result["outer.inner.size"] == 2
    assert "outer.inner.size" in result.steps


def test_a_failing_inner_step_fails_the_run_naming_it(executor):
    @step
    def fragile(raw):
        raise ValueError("bad raw data")

    inner = Pipeline([fragile])
    parent = Pipeline([load_a, inner.as_step("check", inputs={"raw": "raw_a"})])
    with pytest.raises(RunFailed) as caught:
        parent.run(executor=executor)
    assert caught.value.step == "check.fragile"
    assert isinstance(caught.value.__cause__, ValueError)


def test_options_of_inner_steps_survive_inlining(executor):
    @step(map="raw")
    def doubled(raw):
        return raw * 2

    @step(on_failure=lambda exc, **inputs: "fallback")
    def fails(doubled):
        raise ValueError("inner failure")

    inner = Pipeline([doubled, fails])
    result = Pipeline([inner.as_step("m", inputs={"raw": "numbers"})]).run(
        params={"numbers": [1, 2, 3]}, executor=executor
    )
    assert result["m.doubled"] == [2, 4, 6]
    assert result["m.fails"] == "fallback"
    assert result.steps["m.fails"].fallback is True


# -- presentation and definition errors ------------------------------------------------


def test_mermaid_draws_one_subgraph_per_namespace():
    text = two_preps().to_mermaid()
    assert text.count("subgraph") == 2
    subgraph_lines = [line for line in text.splitlines() if "subgraph" in line]
    assert any('"a"' in line for line in subgraph_lines), subgraph_lines
    assert any('"b"' in line for line in subgraph_lines), subgraph_lines
    assert "a.clean" in text
    assert "b.clean" in text


def test_dot_draws_one_cluster_per_namespace():
    text = two_preps().to_dot()
    cluster_lines = [line for line in text.splitlines() if "subgraph" in line]
    assert len(cluster_lines) == 2
    assert all("cluster" in line for line in cluster_lines)


def test_config_is_not_a_valid_namespace():
    with pytest.raises(PlaitError, match="config"):
        prep.as_step("config")


def test_mapping_a_name_the_inner_pipeline_does_not_have_is_an_error():
    with pytest.raises(PlaitError, match="claen"):
        Pipeline([load_a, prep.as_step("a", outputs={"claen": "x"})])
