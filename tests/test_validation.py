"""Validation: every problem found before anything runs, reported at once, with fixes."""

from __future__ import annotations

import logging
import re
import types
import typing
import warnings
from typing import Any, Optional

import pytest

from plait import Pipeline, Step, step
from plait.errors import PipelineValidationError, PlaitError, PlaitWarning, RunFailed


def _problems_text(error: PipelineValidationError) -> str:
    return "\n".join(str(problem) for problem in error.problems)


def _invalid(build) -> PipelineValidationError:
    """The validation error raised by building ``build()`` and validating it."""
    with pytest.raises(PipelineValidationError) as info:
        build().validate()
    return info.value


def test_validation_error_is_a_plait_error_and_a_value_error():
    assert issubclass(PipelineValidationError, PlaitError)
    assert issubclass(PipelineValidationError, ValueError)


# -- missing inputs ------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["validate", "run"])
def test_missing_input_names_the_step_and_suggests_the_close_name(entry, recorder):
    @step
    def clean(raw):
        recorder.hit("clean")
        return raw

    @step
    def summarize(claen):
        recorder.hit("summarize")
        return claen

    pipeline = Pipeline([clean, summarize], params={"raw": 1})
    with pytest.raises(PipelineValidationError) as info:
        pipeline.validate() if entry == "validate" else pipeline.run()
    text = _problems_text(info.value)
    assert "summarize" in text
    assert "'claen'" in text
    assert "did you mean 'clean'" in text
    assert len(info.value.problems) == 1
    assert recorder.calls == {}


def test_missing_input_from_a_dict_mapping_names_the_data_name():
    @step(inputs={"df": "raw_dta"})
    def featurize(df):
        return df

    @step
    def raw_data():
        return 1

    with pytest.raises(PipelineValidationError, match=r"featurize") as info:
        Pipeline([raw_data, featurize]).run()
    assert "did you mean 'raw_data'" in str(info.value)


# -- sources that would shadow each other --------------------------------------------


@step
def load():
    return 1


@step
def use(load):
    return load


@step
def use_x(x):
    return x


def test_two_producers_of_one_name_is_an_error():
    other = Step(lambda: 2, name="other_load", outputs=["load"])
    error = _invalid(lambda: Pipeline([load, other, use]))
    text = _problems_text(error)
    assert "'load'" in text
    assert "other_load" in text


@pytest.mark.parametrize("consumed", [True, False], ids=["consumed", "unconsumed"])
def test_param_named_like_a_step_output_is_an_error(consumed):
    steps = [load, use] if consumed else [load]
    error = _invalid(lambda: Pipeline(steps, params={"load": 5}))
    assert "'load'" in _problems_text(error)


def test_run_time_param_named_like_a_step_output_is_an_error(recorder):
    @step
    def counted_load():
        recorder.hit("load")
        return 1

    with pytest.raises(PipelineValidationError, match=r"'counted_load'"):
        Pipeline([counted_load]).run(params={"counted_load": 5})
    assert recorder.calls == {}


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: Pipeline([load, use], config={"load": 3}), "load"),
        (lambda: Pipeline([use_x], params={"x": 1}, config={"x": 2}), "x"),
    ],
    ids=["output-and-config", "param-and-config"],
)
def test_consumed_name_that_is_also_a_config_key_is_an_error(build, name):
    error = _invalid(build)
    assert f"'{name}'" in _problems_text(error)


def test_run_time_param_that_is_also_a_consumed_config_key_is_an_error():
    with pytest.raises(PipelineValidationError, match=r"'x'"):
        Pipeline([use_x], config={"x": 2}).run(params={"x": 1})


def test_config_key_named_like_an_output_nobody_consumes_by_name_is_fine():
    assert Pipeline([load], config={"load": 3}).run()["load"] == 1


# -- params nobody consumes ----------------------------------------------------------


def test_typo_in_a_run_time_param_is_reported_with_a_suggestion(recorder):
    @step
    def scaled(value):
        recorder.hit("scaled")
        return value

    with pytest.raises(PipelineValidationError) as info:
        Pipeline([scaled]).run(params={"valeu": 1})
    text = _problems_text(info.value)
    assert "'valeu'" in text
    assert "did you mean 'value'" in text
    assert recorder.calls == {}


def test_unconsumed_pipeline_param_is_an_error():
    error = _invalid(lambda: Pipeline([use_x], params={"x": 1, "seeed": 2}))
    assert "'seeed'" in _problems_text(error)


def test_params_pruned_away_by_outputs_are_not_an_error():
    @step
    def a(x):
        return x

    @step
    def b(y):
        return y

    result = Pipeline([a, b]).run(params={"x": 1, "y": 2}, outputs=["a"])
    assert result.outputs == {"a": 1}


# -- cycles --------------------------------------------------------------------------


def _normalised_cycle(cycle: list[str], start: str) -> list[str]:
    if len(cycle) > 1 and cycle[0] == cycle[-1]:
        cycle = cycle[:-1]
    i = cycle.index(start)
    return cycle[i:] + cycle[:i]


def _cycle_steps():
    @step
    def a(c):
        return c

    @step
    def b(a):
        return a

    @step
    def c(b):
        return b

    @step
    def tail(c):
        return c

    return a, b, c, tail


@pytest.mark.parametrize("rotation", [0, 1, 2, 3])
def test_cycle_is_reported_in_data_flow_order(rotation):
    steps = list(_cycle_steps())
    steps = steps[rotation:] + steps[:rotation]
    error = _invalid(lambda: Pipeline(steps))
    assert error.cycle is not None
    assert _normalised_cycle(list(error.cycle), "a") == ["a", "b", "c"]
    text = _problems_text(error)
    assert all(name in text for name in "abc")


def test_cycle_is_found_before_any_step_runs(recorder):
    @step
    def start():
        recorder.hit("start")
        return 1

    @step
    def ping(start, pong):
        recorder.hit("ping")
        return start

    @step
    def pong(ping):
        recorder.hit("pong")
        return ping

    with pytest.raises(PipelineValidationError) as info:
        Pipeline([start, ping, pong]).run()
    assert _normalised_cycle(list(info.value.cycle), "ping") == ["ping", "pong"]
    assert recorder.calls == {}


# -- config paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "config"),
    [
        ("config.model.lr", {"model": {"rate": 1}}),
        ("config.model.lr", {"training": {"lr": 1}}),
        ("config.missing", {"model": {}}),
    ],
)
def test_config_path_that_does_not_exist_is_a_validation_error(path, config):
    @step(inputs={"lr": path})
    def train(lr):
        return lr

    error = _invalid(lambda: Pipeline([train], config=config))
    text = _problems_text(error)
    assert path in text
    assert "train" in text


def test_config_path_with_no_config_at_all_is_a_validation_error():
    @step(inputs={"lr": "config.lr"})
    def train(lr):
        return lr

    with pytest.raises(PipelineValidationError, match=r"config\.lr"):
        Pipeline([train]).run()


def test_config_path_to_a_none_value_is_fine():
    @step(inputs={"lr": "config.model.lr"})
    def train(lr):
        return ("lr", lr)

    assert Pipeline([train], config={"model": {"lr": None}}).run()["train"] == ("lr", None)


# -- output arity (at run time) ------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [(1, 2, 3), (1,), 5, "ab", {"a": 1, "c": 2}, {"a": 1}],
    ids=["three-values", "one-value", "non-tuple", "string", "wrong-dict-keys", "short-dict"],
)
def test_output_arity_mismatch_fails_naming_the_step(value, recorder):
    @step(outputs=["a", "b"])
    def split():
        return value

    @step
    def after_split(a):
        recorder.hit("after_split")
        return a

    with pytest.raises(RunFailed, match=r"'split'") as info:
        Pipeline([split, after_split]).run()
    assert info.value.step == "split"
    assert isinstance(info.value.__cause__, PlaitError)
    assert isinstance(info.value.__cause__, ValueError)
    assert "split" in str(info.value.__cause__)
    assert info.value.result.steps["split"].status == "failed"
    assert recorder.calls == {}


def test_output_arity_mismatch_never_assigns_the_whole_value_to_the_first_name():
    @step(outputs=["a", "b"])
    def split():
        return (1, 2, 3)

    result = Pipeline([split]).run(on_error="continue")
    assert not result.ok
    assert "a" not in result.outputs
    with pytest.raises(KeyError, match=r"failed"):
        result["a"]


# -- types ---------------------------------------------------------------------------

UNANNOTATED = object()


def _typed_pair(produced: object, consumed: object) -> list[Step]:
    def value():
        return 1

    def use_value(value):
        return value

    if produced is not UNANNOTATED:
        value.__annotations__["return"] = produced
    if consumed is not UNANNOTATED:
        use_value.__annotations__["value"] = consumed
    return [Step(value), Step(use_value)]


TYPE_CASES = [
    # produced, consumed, compatible
    (int, str, False),
    (list[int], list[str], False),
    (dict[str, int], dict[str, str], False),
    (str, int, False),
    (Optional[int], int, True),  # noqa: UP045 - the spelling is the point
    (int | None, int, True),
    (int, Optional[int], True),  # noqa: UP045
    (dict[str, int], dict[str, int], True),
    (int, float, True),
    (bool, int, True),
    (list[int], list, True),
    (list, list[int], True),
    (int, UNANNOTATED, True),
    (UNANNOTATED, str, True),
    (Any, str, True),
    (int, Any, True),
    (int, typing.Union[int, str], True),  # noqa: UP007
]


def _type_id(case: tuple[object, object, bool]) -> str:
    def show(t: object) -> str:
        return "unannotated" if t is UNANNOTATED else getattr(t, "__name__", None) or repr(t)

    produced, consumed, ok = case
    return f"{show(produced)}->{show(consumed)}:{'ok' if ok else 'error'}"


@pytest.mark.parametrize(
    ("produced", "consumed"),
    [case[:2] for case in TYPE_CASES if not case[2]],
    ids=[_type_id(case) for case in TYPE_CASES if not case[2]],
)
def test_impossible_types_between_output_and_input_are_an_error(produced, consumed):
    error = _invalid(lambda: Pipeline(_typed_pair(produced, consumed)))
    text = _problems_text(error)
    assert "use_value" in text
    assert "'value'" in text


@pytest.mark.parametrize(
    ("produced", "consumed"),
    [case[:2] for case in TYPE_CASES if case[2]],
    ids=[_type_id(case) for case in TYPE_CASES if case[2]],
)
def test_compatible_or_unknown_types_never_complain(produced, consumed):
    pipeline = Pipeline(_typed_pair(produced, consumed))
    pipeline.validate()
    assert pipeline.run()["use_value"] == 1


def test_unannotated_functions_work():
    @step
    def numbers():
        return [1, 2, 3]

    @step
    def total(numbers):
        return sum(numbers)

    assert Pipeline([numbers, total]).run()["total"] == 6


# -- everything at once --------------------------------------------------------------


def test_every_problem_is_reported_in_one_error(recorder):
    @step
    def good():
        recorder.hit("good")
        return 1

    @step
    def ping(pong):
        return pong

    @step
    def pong(ping):
        return ping

    def number() -> int:
        return 1

    def shout(number: str) -> str:
        return number

    twin = Step(lambda: 2, name="twin", outputs=["good"])

    @step(inputs={"lr": "config.lr"})
    def train(lr, god):
        return lr

    pipeline = Pipeline(
        [good, ping, pong, Step(number), Step(shout), twin, train],
        config={"rate": 1},
    )
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run()
    error = info.value
    text = _problems_text(error)
    assert len(error.problems) >= 5
    assert error.cycle is not None
    for fragment in ("'good'", "twin", "shout", "config.lr", "'god'", "did you mean 'good'"):
        assert fragment in text, fragment
    assert "\n" in str(error)
    assert recorder.calls == {}


def test_validate_passes_quietly_for_a_valid_pipeline(recorder):
    # the counter is a side effect: cache=False, or validate() rightly warns that a cached
    # step reads a closure variable its fingerprint does not cover
    @step(cache=False)
    def counted():
        recorder.hit("counted")
        return 1

    Pipeline([counted, use.with_options(inputs={"load": "counted"})]).validate()
    assert recorder.calls == {}


# -- warnings: values a cached step reads that its fingerprint does not cover --------------


class Model:
    """A user object held in a module global."""


MODEL = Model()
SETTINGS = types.SimpleNamespace(rate=0.1)
LARGE = list(range(2_000))
LIMIT = 3
NAMES = ("a", "b")
PATTERN = re.compile(r"\d+")
LOG = logging.getLogger(__name__)
SEEN: list[int] = []


def uses_model(x):
    return (MODEL, x)


def double(x):
    return 2 * x


@pytest.mark.parametrize(
    ("body", "name", "type_name"),
    [
        (lambda x: (MODEL, x), "MODEL", "Model"),
        (lambda x: SETTINGS.rate * x, "SETTINGS", "SimpleNamespace"),
        (lambda x: LARGE[x], "LARGE", "list"),
    ],
    ids=["object", "namespace", "large-list"],
)
def test_a_cached_step_reading_an_untracked_global_warns(body, name, type_name):
    pipeline = Pipeline([Step(body, inputs=["x"], outputs=["y"], name="predict")])
    with pytest.warns(PlaitWarning) as caught:
        assert pipeline.validate(params={"x": 1}) is pipeline
    [warning] = [w.message for w in caught]
    assert isinstance(warning, PlaitWarning)
    assert (warning.step, warning.name) == ("predict", name)
    message = str(warning)
    assert f"step 'predict' reads the global {name!r}, a {type_name}" in message
    assert "not part of its fingerprint" in message
    assert "make it an input or a param" in message


def test_a_global_read_by_a_project_helper_warns_naming_the_helper():
    @step
    def predict(x):
        return uses_model(x)

    with pytest.warns(
        PlaitWarning, match=r"step 'predict' reads the global 'MODEL' \(through 'uses_model'\)"
    ):
        Pipeline([predict]).validate(params={"x": 1})


def test_a_closure_object_read_by_a_cached_step_warns():
    seen: list[int] = []

    @step
    def remember(x):
        seen.append(x)
        return x

    with pytest.warns(
        PlaitWarning, match=r"step 'remember' reads the closure variable 'seen', a list"
    ):
        Pipeline([remember]).validate(params={"x": 1})


def test_a_global_the_step_appends_to_warns():
    @step
    def remember(x):
        SEEN.append(x)
        return x

    with pytest.warns(PlaitWarning, match=r"reads the global 'SEEN', a list"):
        Pipeline([remember]).validate(params={"x": 1})


def _quiet(pipeline: Pipeline, **params: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline.validate(params=params)


def test_code_constants_and_machinery_never_warn():
    factor = 2

    @step
    def tidy(x: Optional[int]) -> int:  # noqa: UP045 - typing object read at run time
        LOG.debug("tidy %s", x)
        value = typing.cast(int, x)
        text = re.sub(PATTERN, "", str(value)) + "".join(NAMES)
        return double(len(text)) + LIMIT * factor + abs(value)

    _quiet(Pipeline([tidy]), x=1)


def test_steps_that_are_not_cached_never_warn():
    @step(cache=False)
    def predict(x):
        return (MODEL, x)

    @step(inputs=["predict"], outputs=[])
    def publish(predict):
        SEEN.append(len(predict))

    _quiet(Pipeline([predict, publish]), x=1)


def test_an_invalid_pipeline_raises_before_any_warning():
    @step
    def predict(x, missing_input):
        return (MODEL, x, missing_input)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PipelineValidationError, match="missing_input"):
            Pipeline([predict]).validate(params={"x": 1})
