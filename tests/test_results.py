"""Results: RunResult and StepResult fields, reports, and KeyErrors that explain."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from plait import Err, Ok, Pipeline, RunResult, Skipped, StepResult, step
from plait.errors import RunFailed


@step
def numbers(n):
    return list(range(1, n + 1))


@step
def total(numbers):
    return sum(numbers)


@step(outputs=["mean", "largest"])
def stats(numbers, total):
    return total / len(numbers), max(numbers)


@step
def broken(numbers):
    raise ValueError(f"cannot handle {len(numbers)} numbers")


@step
def after_broken(broken):
    return broken


@step(when=lambda n: n > 100)
def huge(n):
    return n


@step
def unusual(n):
    return {1, 2, object()}  # not JSON-serialisable: values stay out of to_dict()


SUCCESS = [numbers, total, stats]
FAILURE = [numbers, total, broken, after_broken]


def _succeeded(**run_options) -> RunResult:
    return Pipeline(SUCCESS, name="quickstart").run(params={"n": 4}, **run_options)


def _failed() -> RunResult:
    return Pipeline(FAILURE).run(params={"n": 4}, on_error="continue")


# -- RunResult -----------------------------------------------------------------------


def test_run_result_of_a_successful_run():
    result = _succeeded()
    assert isinstance(result, RunResult)
    assert isinstance(result.run_id, str)
    assert result.run_id
    assert result.status == "succeeded"
    assert result.ok is True
    assert result["total"] == 10
    assert (result["mean"], result["largest"]) == (2.5, 4)
    assert {"numbers": [1, 2, 3, 4], "total": 10, "mean": 2.5, "largest": 4}.items() <= (
        result.outputs.items()
    )
    assert set(result.steps) == {"numbers", "total", "stats"}
    assert all(isinstance(record, StepResult) for record in result.steps.values())
    assert isinstance(result.duration, float)
    assert result.duration >= 0


def test_run_result_of_a_failed_run():
    result = _failed()
    assert result.status == "failed"
    assert result.ok is False
    assert result["total"] == 10


def test_each_run_has_its_own_run_id():
    pipeline = Pipeline(SUCCESS)
    ids = {pipeline.run(params={"n": 2}).run_id for _ in range(5)}
    assert len(ids) == 5


def test_raise_for_status_passes_a_successful_run():
    result = _succeeded()
    result.raise_for_status()


def test_raise_for_status_raises_run_failed_for_a_failed_run():
    result = _failed()
    with pytest.raises(RunFailed, match=r"'broken'") as info:
        result.raise_for_status()
    assert info.value.result is result
    assert info.value.step == "broken"
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("build", [_succeeded, _failed], ids=["succeeded", "failed"])
def test_summary_names_every_step_and_its_status(build):
    result = build()
    summary = result.summary()
    assert isinstance(summary, str)
    for name, record in result.steps.items():
        assert name in summary
        assert record.status in summary


def test_summary_shows_the_error_of_a_failed_step():
    assert "cannot handle 4 numbers" in _failed().summary()


@pytest.mark.parametrize(
    "build",
    [
        _succeeded,
        _failed,
        lambda: Pipeline([unusual, huge]).run(params={"n": 1}),
    ],
    ids=["succeeded", "failed", "odd-values-and-skips"],
)
def test_to_dict_is_json_serialisable(build):
    result = build()
    data = result.to_dict()
    text = json.dumps(data)
    assert result.run_id in text
    assert data["run_id"] == result.run_id
    assert data["status"] == result.status
    assert set(data["steps"]) == set(result.steps)


def test_to_dict_carries_the_error_of_a_failed_step():
    data = _failed().to_dict()
    assert "cannot handle 4 numbers" in json.dumps(data["steps"]["broken"])


# -- StepResult ----------------------------------------------------------------------


def test_step_result_of_a_step_that_ran():
    result = _succeeded()
    record = result.steps["total"]
    assert record.name == "total"
    assert record.status == "ok"
    assert record.outcome == Ok(10)
    assert record.cached is False
    assert isinstance(record.reason, str)
    assert record.fallback is False
    assert record.attempts == 1
    assert record.error is None
    assert record.duration >= 0
    assert isinstance(record.started_at, datetime)
    assert isinstance(record.finished_at, datetime)
    assert record.started_at <= record.finished_at
    assert isinstance(record.data_versions, dict)
    assert record.metrics == {}
    assert record.failed_elements == {}


def test_step_results_record_start_times_in_dependency_order():
    result = _succeeded()
    steps = result.steps
    assert steps["numbers"].finished_at <= steps["total"].started_at
    assert steps["total"].finished_at <= steps["stats"].started_at


def test_step_result_of_a_failed_step():
    record = _failed().steps["broken"]
    assert record.status == "failed"
    assert isinstance(record.outcome, Err)
    assert isinstance(record.outcome.error, ValueError)
    assert record.attempts == 1
    assert record.error.type == "ValueError"
    assert record.error.message == "cannot handle 4 numbers"
    assert "ValueError" in record.error.traceback
    assert "raise ValueError" in record.error.traceback


def test_step_result_of_a_skipped_step():
    record = _failed().steps["after_broken"]
    assert record.status == "skipped"
    assert isinstance(record.outcome, Skipped)
    assert record.attempts == 0
    assert record.error is None
    assert record.reason


def test_step_result_of_a_when_skip_says_why():
    record = Pipeline([huge]).run(params={"n": 1}).steps["huge"]
    assert record.status == "skipped"
    assert isinstance(record.outcome, Skipped)
    assert record.outcome.reason
    assert record.attempts == 0


# -- KeyError that says why ----------------------------------------------------------


def test_missing_value_of_a_failed_step_says_it_failed():
    with pytest.raises(KeyError, match=r"'broken'.*failed|failed.*'broken'"):
        _failed()["broken"]


def test_missing_value_of_a_skipped_step_says_it_was_skipped():
    with pytest.raises(KeyError, match=r"skipped"):
        _failed()["after_broken"]


def test_missing_value_that_was_not_requested_says_so():
    result = _succeeded(outputs=["mean"])
    assert result["mean"] == 2.5
    with pytest.raises(KeyError, match=r"not requested"):
        result["total"]


def test_missing_value_with_no_such_name_suggests_the_close_one():
    with pytest.raises(KeyError, match=r"did you mean 'total'"):
        _succeeded()["totl"]


def test_missing_value_with_no_such_name_and_nothing_close():
    with pytest.raises(KeyError, match=r"'zzz'"):
        _succeeded()["zzz"]
