"""Steps: declaration forms, wiring by name, config access, outputs, options."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pydantic
import pytest

from plait import Pipeline, Step, step
from plait.errors import PlaitError

# -- declaration forms ---------------------------------------------------------------


def test_bare_decorator_names_the_output_after_the_function():
    @step
    def clean(raw):
        return raw + 1

    assert isinstance(clean, Step)
    assert Pipeline([clean]).run(params={"raw": 1})["clean"] == 2


def test_decorator_with_arguments():
    @step(name="tidy")
    def clean(raw):
        return raw * 2

    result = Pipeline([clean]).run(params={"raw": 3})
    assert result["tidy"] == 6
    assert set(result.steps) == {"tidy"}


def test_step_constructor_with_positional_inputs_outputs_and_name():
    def add(x, y):
        return x + y

    add_step = Step(add, inputs=["a", "b"], outputs=["sum"], name="plus")
    result = Pipeline([add_step]).run(params={"a": 2, "b": 5})
    assert result["sum"] == 7
    assert set(result.steps) == {"plus"}


# -- wiring --------------------------------------------------------------------------


def test_parameter_names_wire_to_outputs_of_other_steps():
    @step
    def raw():
        return 10

    @step
    def clean(raw):
        return raw + 1

    @step
    def report(raw, clean):
        return (raw, clean)

    assert Pipeline([report, clean, raw]).run()["report"] == (10, 11)


def test_positional_inputs_list_maps_only_the_first_parameters():
    def combine(first, second, third):
        return (first, second, third)

    combine_step = Step(combine, inputs=["a", "b"], outputs=["combined"], name="combine")
    result = Pipeline([combine_step]).run(params={"a": 1, "b": 2, "third": 3})
    assert result["combined"] == (1, 2, 3)


def test_inputs_dict_maps_named_parameters_to_data_names():
    @step
    def raw_data():
        return [1, 2]

    @step(inputs={"df": "raw_data"}, outputs="features")
    def featurize(df, scale):
        return [v * scale for v in df]

    result = Pipeline([raw_data, featurize]).run(params={"scale": 10})
    assert result["features"] == [10, 20]


def test_var_keyword_parameter_receives_unmatched_inputs_dict_entries():
    @step(inputs={"extra": "x", "more": "y"})
    def gather(base, **rest):
        return (base, rest)

    result = Pipeline([gather]).run(params={"base": 0, "x": 1, "y": 2})
    assert result["gather"] == (0, {"extra": 1, "more": 2})


def test_parameter_default_used_when_no_source_has_the_name():
    @step
    def scaled(value, factor=3):
        return value * factor

    assert Pipeline([scaled]).run(params={"value": 2})["scaled"] == 6


def test_inputs_dict_naming_an_unknown_parameter_is_an_error_with_suggestion():
    def featurize(df):
        return df

    with pytest.raises(PlaitError, match=r"did you mean 'df'"):
        Step(featurize, inputs={"dff": "raw"}, name="featurize")


# -- config --------------------------------------------------------------------------


@dataclasses.dataclass
class ModelSettings:
    lr: float
    layers: int


@dataclasses.dataclass
class Settings:
    model: ModelSettings
    seed: int


class PydanticModelSettings(pydantic.BaseModel):
    lr: float
    layers: int


class PydanticSettings(pydantic.BaseModel):
    model: PydanticModelSettings
    seed: int


class PlainSettings:
    def __init__(self) -> None:
        self.model = SimpleNamespace(lr=0.5, layers=3)
        self.seed = 7


CONFIGS = {
    "dict": lambda: {"model": {"lr": 0.5, "layers": 3}, "seed": 7},
    "dataclass": lambda: Settings(ModelSettings(lr=0.5, layers=3), seed=7),
    "pydantic": lambda: PydanticSettings(model=PydanticModelSettings(lr=0.5, layers=3), seed=7),
    "object": PlainSettings,
    "namespace": lambda: SimpleNamespace(model=SimpleNamespace(lr=0.5, layers=3), seed=7),
}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_config_input_receives_the_whole_config(kind):
    config = CONFIGS[kind]()

    @step
    def show(config):
        return config

    assert Pipeline([show], config=config).run()["show"] is config


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_dotted_config_path_reads_a_nested_value(kind):
    @step(inputs={"rate": "config.model.lr", "depth": "config.model.layers"})
    def train(rate, depth):
        return (rate, depth)

    result = Pipeline([train], config=CONFIGS[kind]()).run()
    assert result["train"] == (0.5, 3)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_bare_name_reads_a_top_level_config_key(kind):
    @step
    def seeded(seed):
        return seed * 2

    assert Pipeline([seeded], config=CONFIGS[kind]()).run()["seeded"] == 14


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_dotted_config_path_that_does_not_exist_is_an_error_not_none(kind, recorder):
    @step(inputs={"rate": "config.model.learning_rate"})
    def train(rate):
        recorder.hit("train")
        return rate

    pipeline = Pipeline([train], config=CONFIGS[kind]())
    with pytest.raises(PlaitError, match=r"config\.model\.learning_rate"):
        pipeline.run()
    assert recorder.calls["train"] == 0


# -- outputs -------------------------------------------------------------------------


def test_several_outputs_from_a_tuple():
    @step(outputs=["low", "high"])
    def split(values):
        return [v for v in values if v < 3], [v for v in values if v >= 3]

    result = Pipeline([split]).run(params={"values": [1, 5, 2, 4]})
    assert (result["low"], result["high"]) == ([1, 2], [5, 4])


def test_several_outputs_from_a_dict_keyed_by_name():
    @step(outputs=["low", "high"])
    def split(values):
        return {"high": max(values), "low": min(values)}

    result = Pipeline([split]).run(params={"values": [1, 5, 2]})
    assert (result["low"], result["high"]) == (1, 5)


@pytest.mark.parametrize(
    "value",
    [(1, 2), {"x": 1}, [3, 4], None],
    ids=["tuple", "dict-keyed-by-its-name", "list", "none"],
)
def test_one_element_outputs_list_means_the_return_value_is_that_output(value):
    @step(outputs=["x"])
    def make():
        return value

    assert Pipeline([make]).run()["x"] == value


def test_outputs_given_as_a_string_is_one_output():
    @step(outputs="pair")
    def make():
        return (1, 2)

    assert Pipeline([make]).run()["pair"] == (1, 2)


def test_sink_with_no_outputs_runs_and_produces_no_value(recorder):
    @step
    def data():
        return 3

    @step(outputs=[])
    def write(data):
        recorder.hit(f"write {data}")

    result = Pipeline([data, write]).run()
    assert recorder.events == ["write 3"]
    assert result.steps["write"].status == "ok"
    assert "write" not in result.outputs


def test_after_orders_steps_without_passing_data(recorder):
    @step(outputs=[])
    def announce():
        recorder.hit("announce")

    @step(after=["announce"])
    def work():
        recorder.hit("work")
        return 1

    Pipeline([work, announce]).run()
    assert recorder.events == ["announce", "work"]


def test_after_accepts_a_step_object(recorder):
    @step(outputs=[])
    def announce():
        recorder.hit("announce")

    @step(after=[announce])
    def work():
        recorder.hit("work")

    Pipeline([work, announce]).run()
    assert recorder.events == ["announce", "work"]


# -- with_options --------------------------------------------------------------------


def test_with_options_name_renames_the_default_output():
    @step
    def double(x):
        return 2 * x

    renamed = double.with_options(name="twice")
    result = Pipeline([renamed]).run(params={"x": 4})
    assert result["twice"] == 8
    assert "double" not in result.outputs
    assert set(result.steps) == {"twice"}


def test_with_options_name_keeps_explicit_outputs():
    @step(outputs=["doubled"])
    def double(x):
        return 2 * x

    result = Pipeline([double.with_options(name="twice")]).run(params={"x": 4})
    assert result["doubled"] == 8
    assert set(result.steps) == {"twice"}


def test_with_options_returns_a_copy_and_leaves_the_original_alone():
    @step
    def double(x):
        return 2 * x

    double.with_options(name="twice")
    assert Pipeline([double]).run(params={"x": 1})["double"] == 2


def _identity(x):
    return x


@pytest.mark.parametrize(
    ("factory", "hint"),
    [
        (lambda: step(retires=2)(_identity), "retries"),
        (lambda: Step(_identity, name="same", optinal=True), "optional"),
        (lambda: step(_identity).with_options(timout=3), "timeout"),
        (lambda: step(_identity).with_options(on_upstrem="skip"), "on_upstream"),
    ],
    ids=["decorator", "constructor", "with_options", "with_options-long-name"],
)
def test_unknown_option_suggests_the_close_one(factory, hint):
    with pytest.raises(PlaitError, match=rf"did you mean '{hint}'"):
        factory()


# -- a step is still the plain function -----------------------------------------------


def test_step_is_callable_as_the_plain_function_outside_a_pipeline():
    @step(outputs=["low", "high"])
    def split(values, threshold=3):
        return [v for v in values if v < threshold], [v for v in values if v >= threshold]

    assert split([1, 4, 2], threshold=2) == ([1], [4, 2])


async def _async_double(x):
    return 2 * x


def test_async_step_called_outside_a_pipeline_returns_the_coroutine_result():
    import asyncio

    double = step(_async_double)
    assert asyncio.run(double(3)) == 6


def test_same_function_as_two_steps_under_two_names():
    def double(x):
        return 2 * x

    first = Step(double, name="first", inputs=["seed"])
    second = Step(double, name="second", inputs=["first"])
    result = Pipeline([second, first]).run(params={"seed": 3})
    assert (result["first"], result["second"]) == (6, 12)


def test_redefining_a_step_like_a_rerun_notebook_cell_just_works():
    @step
    def clean(raw):
        return raw + 1

    first = Pipeline([clean])

    @step
    def clean(raw):
        return raw * 10

    second = Pipeline([clean])
    assert first.run(params={"raw": 2})["clean"] == 3
    assert second.run(params={"raw": 2})["clean"] == 20


@pytest.mark.parametrize(
    "factory",
    [lambda: Step(lambda x: x), lambda: step(lambda x: x), lambda: step()(lambda x: x)],
    ids=["Step", "step", "step()"],
)
def test_lambda_without_name_is_a_clear_error(factory):
    with pytest.raises(PlaitError, match=r"name="):
        factory()


def test_lambda_with_a_name_is_a_step():
    inc = Step(lambda x: x + 1, name="inc")
    assert Pipeline([inc]).run(params={"x": 1})["inc"] == 2


@pytest.mark.parametrize(
    ("given", "expected"),
    [("etl", ("etl",)), (["etl", "daily"], ("etl", "daily")), ((), ())],
)
def test_tags_are_normalised_to_a_tuple(given, expected):
    tagged = Step(lambda x: x, name="t", tags=given)
    assert tagged.options.tags == expected


def test_a_tag_must_be_a_non_empty_string():
    with pytest.raises(PlaitError, match="tags must be non-empty strings"):
        Step(lambda x: x, name="t", tags=["ok", ""])
