"""Branches and joins: ``when=``, ``on_upstream``, ``optional`` and skip reasons.

Every test runs on every executor: the policies live in the scheduler and must not
depend on where steps run.
"""

from __future__ import annotations

import pytest

import executor_cases
from plait import Err, Ok, Pipeline, Skipped, step
from plait.errors import RunFailed

executor = executor_cases.executor
process_pool = executor_cases.process_pool


@step
def measure(x):
    return x


@step(when=lambda measure: measure > 10)
def big(measure):
    return f"big {measure}"


@step(when=lambda measure: measure <= 10)
def small(measure):
    return f"small {measure}"


@step(on_upstream="receive")
def join(big, small):
    taken = [outcome for outcome in (big, small) if isinstance(outcome, Ok)]
    skipped = [outcome for outcome in (big, small) if isinstance(outcome, Skipped)]
    assert len(taken) == 1
    assert len(skipped) == 1
    return taken[0].value


@step
def after_big(big):
    return big.upper()


BRANCHES = [measure, big, small, join, after_big]


@pytest.mark.parametrize(("x", "taken", "not_taken"), [(50, "big", "small"), (3, "small", "big")])
def test_complementary_when_branches_and_a_receiving_join(executor, x, taken, not_taken):
    result = Pipeline(BRANCHES).run(params={"x": x}, executor=executor)
    assert result.ok
    assert result.steps[taken].status == "ok"
    assert result.steps[not_taken].status == "skipped"
    assert result.steps["join"].status == "ok"
    assert result["join"] == f"{taken} {x}"
    with pytest.raises(KeyError):
        result[not_taken]


def test_the_join_receives_ok_and_skipped_objects(executor):
    @step(on_upstream="receive")
    def describe(big, small, x):
        return (type(big).__name__, type(small).__name__, x)

    result = Pipeline([measure, big, small, describe]).run(params={"x": 50}, executor=executor)
    # Outcomes of steps arrive as objects; params stay plain values.
    assert result["describe"] == ("Ok", "Skipped", 50)


def test_the_join_sees_the_skip_reason(executor):
    @step(on_upstream="receive")
    def reason_of(small):
        assert isinstance(small, Skipped)
        return small.reason

    result = Pipeline([measure, small, reason_of]).run(params={"x": 50}, executor=executor)
    assert "when" in result["reason_of"]


def test_a_when_skip_records_its_reason(executor):
    result = Pipeline(BRANCHES).run(params={"x": 3}, executor=executor)
    record = result.steps["big"]
    assert record.status == "skipped"
    assert isinstance(record.outcome, Skipped)
    assert "when" in record.reason


def test_a_skip_propagates_and_the_reason_names_the_upstream(executor):
    result = Pipeline(BRANCHES).run(params={"x": 3}, executor=executor)
    record = result.steps["after_big"]
    assert record.status == "skipped"
    assert isinstance(record.outcome, Skipped)
    assert "big" in record.reason
    assert result.ok  # skips are not failures


def test_a_skip_propagates_through_a_chain(executor):
    @step
    def after_after(after_big):
        return after_big

    result = Pipeline([*BRANCHES, after_after]).run(params={"x": 3}, executor=executor)
    assert result.steps["after_after"].status == "skipped"
    assert "after_big" in result.steps["after_after"].reason


def test_on_upstream_fail_fails_below_a_skipped_branch(executor):
    @step(on_upstream="fail")
    def needs_big(big):
        return big

    result = Pipeline([measure, big, needs_big]).run(
        params={"x": 3}, executor=executor, on_error="continue"
    )
    record = result.steps["needs_big"]
    assert record.status == "failed"
    assert record.error.type == "UpstreamFailed"
    assert "big" in record.reason
    assert result.status == "failed"


def test_on_upstream_fail_raises_run_failed(executor):
    @step(on_upstream="fail")
    def needs_big(big):
        return big

    with pytest.raises(RunFailed) as caught:
        Pipeline([measure, big, needs_big]).run(params={"x": 3}, executor=executor)
    assert caught.value.step == "needs_big"
    assert type(caught.value.__cause__).__name__ == "UpstreamFailed"


@step
def explode(x):
    raise ValueError(f"exploded on {x}")


def test_a_receiving_step_gets_err_for_a_failed_upstream(executor):
    @step(on_upstream="receive")
    def inspect_outcome(explode):
        assert isinstance(explode, Err)
        return (type(explode.error).__name__, str(explode.error))

    result = Pipeline([explode, inspect_outcome]).run(
        params={"x": 1}, executor=executor, on_error="continue"
    )
    assert result["inspect_outcome"] == ("ValueError", "exploded on 1")


def test_a_default_step_below_a_failure_is_skipped_naming_it(executor):
    @step
    def below(explode):
        return explode

    result = Pipeline([explode, below]).run(params={"x": 1}, executor=executor, on_error="continue")
    assert result.steps["below"].status == "skipped"
    assert "explode" in result.steps["below"].reason


def test_an_optional_step_failing_is_seen_as_skipped_downstream(executor):
    @step(optional=True)
    def enrich(x):
        raise ValueError("enrichment service down")

    @step(on_upstream="receive")
    def report(enrich, x):
        return type(enrich).__name__

    @step
    def plain(enrich):
        return enrich

    result = Pipeline([enrich, report, plain]).run(params={"x": 1}, executor=executor)
    assert result.ok
    assert result.steps["enrich"].status == "failed"
    assert result["report"] == "Skipped"
    assert result.steps["plain"].status == "skipped"


def test_after_ordering_propagates_a_skip(executor):
    @step(after=["big"])
    def ordered(x):
        return x

    result = Pipeline([measure, big, ordered]).run(params={"x": 3}, executor=executor)
    assert result.steps["ordered"].status == "skipped"
    assert "big" in result.steps["ordered"].reason


def test_a_when_predicate_that_raises_fails_the_step(executor):
    def predicate(measure):
        raise RuntimeError("predicate broke")

    @step(when=predicate)
    def guarded(measure):
        return measure

    result = Pipeline([measure, guarded]).run(
        params={"x": 1}, executor=executor, on_error="continue"
    )
    assert result.steps["guarded"].status == "failed"
    assert result.steps["guarded"].error.type == "RuntimeError"


# -- branches share the upstream value -------------------------------------------------


@step
def record_source():
    return {"rows": [1, 2, 3], "name": "source"}


@step(when=lambda record_source: len(record_source["rows"]) == 3)
def branch_add(record_source):
    # Builds a new value; never touches the upstream one.
    return {**record_source, "rows": [*record_source["rows"], 4]}


@step(when=lambda record_source: record_source["name"] == "source")
def branch_copy(record_source):
    return dict(record_source)


@step
def branch_view(record_source):
    return list(record_source["rows"])


def test_two_branches_see_the_same_upstream_value(executor):
    result = Pipeline([record_source, branch_add, branch_copy, branch_view]).run(executor=executor)
    original = {"rows": [1, 2, 3], "name": "source"}
    assert result["branch_add"] == {"rows": [1, 2, 3, 4], "name": "source"}
    assert result["branch_copy"] == original
    assert result["branch_view"] == [1, 2, 3]
    # The engine itself (branching, predicates, outcome objects) never changes the value.
    assert result["record_source"] == original
    assert result.steps["record_source"].outcome == Ok(original)


def test_a_receiving_join_gets_the_upstream_value_unchanged(executor):
    @step(on_upstream="receive")
    def inspect_source(record_source, branch_add):
        return (record_source.value, branch_add.value)

    result = Pipeline([record_source, branch_add, inspect_source]).run(executor=executor)
    source, added = result["inspect_source"]
    assert source == {"rows": [1, 2, 3], "name": "source"}
    assert added == {"rows": [1, 2, 3, 4], "name": "source"}
