"""YAML pipelines: plait.load_pipeline, strict calls, schema errors with positions."""

from __future__ import annotations

import textwrap

import pytest

from plait import Registry, load_pipeline, step
from plait.errors import PlaitError
from plait.yaml_pipeline import YamlPipelineError


def numbers(n: int) -> list[int]:
    return list(range(1, n + 1))


def total(numbers: list[int]) -> int:
    return sum(numbers)


@step
def scaled(total: int, factor: int) -> int:
    return total * factor


CALLS: list[str] = []


def flaky(numbers: list[int]) -> int:
    CALLS.append("flaky")
    if len(CALLS) < 2:
        raise OSError("first attempt fails")
    return len(numbers)


def registry() -> Registry:
    reg = Registry()
    reg.register(numbers, "data.numbers")
    reg.register(total, "math.total")
    reg.register(scaled, "math.scaled")
    reg.register(flaky, "math.flaky")
    return reg


BASIC = """\
name: sums
params:
  n: {type: int, default: 3}
config:
  factor: 10
steps:
  - call: data.numbers
  - call: math.total
  - call: math.scaled
"""


def test_a_yaml_pipeline_runs_with_registered_calls():
    p = load_pipeline(BASIC, registry=registry())
    assert p.name == "sums"
    assert [s.name for s in p.order] == ["numbers", "total", "scaled"]
    assert p.run()["scaled"] == 60
    assert p.run(params={"n": 4})["scaled"] == 100


def test_a_yaml_file_is_loaded_from_its_path(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(BASIC)
    assert load_pipeline(path, registry=registry()).run()["total"] == 6
    assert load_pipeline(str(path), registry=registry()).run()["total"] == 6


def test_names_inputs_outputs_and_options_are_applied():
    CALLS.clear()
    text = """\
    name: options
    steps:
      - call: data.numbers
        name: make
        inputs: {n: size}
        outputs: values
        tags: [load]
      - call: math.flaky
        inputs: [values]
        retries: 2
        backoff: 0
        timeout: 5
        version: 2
        cache: false
        after: make
    """
    p = load_pipeline(textwrap.dedent(text), registry=registry())
    make, flaky_step = p.steps["make"], p.steps["flaky"]
    assert make.outputs == ("values",)
    assert make.inputs == {"n": "size"}
    assert make.options.tags == ("load",)
    assert flaky_step.options.retries == 2
    assert flaky_step.options.version == "2"
    assert flaky_step.options.timeout == 5.0
    assert flaky_step.options.cache is False
    assert flaky_step.after == ("make",)
    result = p.run(params={"size": 5})
    assert result["flaky"] == 5
    assert result.steps["flaky"].attempts == 2


def test_map_and_optional_options():
    text = """\
    steps:
      - call: data.numbers
      - call: math.double
        inputs: {x: numbers}
        map: x
        concurrency: 2
        optional: true
        on_upstream: fail
    """
    reg = registry()

    def double(x: int) -> int:
        return 2 * x

    reg.register(double, "math.double")
    p = load_pipeline(textwrap.dedent(text), registry=reg)
    assert p.steps["double"].options.map == "x"
    assert p.steps["double"].options.on_upstream == "fail"
    assert p.run(params={"n": 3})["double"] == [2, 4, 6]


def test_config_values_are_interpolated():
    text = """\
    config:
      base: 4
      factor: ${base}
    steps:
      - call: data.numbers
      - call: math.total
      - call: math.scaled
    """
    p = load_pipeline(textwrap.dedent(text), registry=registry())
    assert p.config == {"base": 4, "factor": 4}
    assert p.run(params={"n": 2})["scaled"] == 12


def test_config_from_files_next_to_the_yaml(tmp_path):
    (tmp_path / "a.yml").write_text("factor: 2\nother: {x: 1}\n")
    (tmp_path / "b.yml").write_text("factor: 3\n")
    (tmp_path / "p.yaml").write_text(
        "config: [a.yml, b.yml]\nsteps:\n  - call: data.numbers\n  - call: math.total\n"
        "  - call: math.scaled\n"
    )
    p = load_pipeline(tmp_path / "p.yaml", registry=registry())
    assert p.config == {"factor": 3, "other": {"x": 1}}


# -- strictness ---------------------------------------------------------------------------
def test_a_call_must_be_registered():
    text = "steps:\n  - call: math.totl\n"
    with pytest.raises(YamlPipelineError) as caught:
        load_pipeline(text, registry=registry())
    assert str(caught.value) == (
        "<text>: 1 problem in the pipeline:\n"
        "  <text>:2:11: steps[0]: call 'math.totl' is not in the registry "
        "(did you mean 'math.total' or 'math.flaky' or 'math.scaled'?)"
    )
    assert isinstance(caught.value, PlaitError)
    assert isinstance(caught.value, ValueError)


def test_importing_a_module_needs_an_allowed_prefix():
    text = "steps:\n  - call: test_yaml_pipeline:numbers\n    name: fetch\n"
    with pytest.raises(
        YamlPipelineError,
        match=r"<text>:2:11: steps\[0\] \(fetch\): call "
        r"'test_yaml_pipeline:numbers' imports module 'test_yaml_pipeline', "
        r"which this pipeline does not allow; add imports: \['test_yaml_pipeline'\] "
        r"to the YAML \(or load_pipeline\(..., imports=\['test_yaml_pipeline'\]\)\)",
    ):
        load_pipeline(text)


def test_an_allowed_prefix_imports_the_function():
    text = (
        "imports: [test_yaml_pipeline]\n"
        "steps:\n  - call: test_yaml_pipeline:numbers\n  - call: test_yaml_pipeline:total\n"
    )
    assert load_pipeline(text).run(params={"n": 3})["total"] == 6
    allowed = "steps:\n  - call: test_yaml_pipeline:numbers\n"
    assert load_pipeline(allowed, imports=["test_yaml_pipeline"]).run(params={"n": 2})[
        "numbers"
    ] == [1, 2]


def test_a_prefix_is_a_whole_module_name():
    text = "imports: [test_yaml]\nsteps:\n  - call: test_yaml_pipeline:numbers\n"
    with pytest.raises(YamlPipelineError, match="which this pipeline does not allow"):
        load_pipeline(text)


def test_a_missing_function_in_an_allowed_module():
    text = "imports: [test_yaml_pipeline]\nsteps:\n  - call: test_yaml_pipeline:numbrs\n"
    with pytest.raises(
        YamlPipelineError,
        match=r"call 'test_yaml_pipeline:numbrs': module 'test_yaml_pipeline' has no "
        r"'numbrs' \(did you mean 'numbers'\?\)",
    ):
        load_pipeline(text)


def test_without_a_registry_a_dotted_call_says_how_to_fix_it():
    with pytest.raises(
        YamlPipelineError,
        match=r"call 'math.total' names a registry entry, "
        r"but no registry was given; pass load_pipeline\(..., registry=reg\)",
    ):
        load_pipeline("steps:\n  - call: math.total\n")


# -- schema errors --------------------------------------------------------------------------
BAD = """\
name: bad
parms:
  n: 3
steps:
  - call: data.numbers
    retires: 2
  - call: math.total
    retries: many
    on_upstream: ignore
  - name: orphan
  - call: math.scaled
    tags: 5
"""


def test_every_schema_problem_is_reported_at_once_with_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(YamlPipelineError) as caught:
        load_pipeline(path, registry=registry())
    error = caught.value
    shown = str(path)
    assert str(error).splitlines() == [
        f"{shown}: 6 problems in the pipeline:",
        f"  {shown}:2:1: unknown key 'parms' (did you mean 'params'?)",
        f"  {shown}:6:5: steps[0]: unknown key 'retires' (did you mean 'retries' or 'expire'?)",
        f"  {shown}:8:14: steps[1]: retries must be an integer >= 0, got 'many'",
        f"  {shown}:9:18: steps[1]: on_upstream must be one of 'skip', 'receive', 'fail', "
        "got 'ignore'",
        f"  {shown}:10:5: steps[2] (orphan): missing key 'call' (what the step runs: a "
        "registry name, or module:function)",
        f"  {shown}:12:11: steps[3]: tags must be a name or a list of names, got 5",
    ]
    assert [(p.line, p.column) for p in error.problems] == [
        (2, 1),
        (6, 5),
        (8, 14),
        (9, 18),
        (10, 5),
        (12, 11),
    ]


def test_the_top_level_must_be_a_mapping_with_steps():
    with pytest.raises(
        YamlPipelineError,
        match=r"<text>:1:1: the pipeline must be a mapping "
        r"with a 'steps' list, got a list",
    ):
        load_pipeline("- a\n- b\n")
    with pytest.raises(YamlPipelineError, match=r"<text>:1:1: missing key 'steps'"):
        load_pipeline("name: x\n")


def test_invalid_yaml_reports_the_parser_position():
    with pytest.raises(
        YamlPipelineError, match=r"<text>:3:1: not valid YAML: did not find expected ',' or ']'"
    ):
        load_pipeline("steps:\n  - call: [unclosed\n")


def test_a_duplicate_key_is_an_error():
    text = "steps:\n  - call: math.total\n    call: data.numbers\n"
    with pytest.raises(
        YamlPipelineError, match=r"<text>:3:5: steps\[0\]: key 'call' is given twice"
    ):
        load_pipeline(text, registry=registry())


def test_param_types_are_checked_and_declared():
    text = "params:\n  n: {type: integr}\nsteps:\n  - call: data.numbers\n"
    with pytest.raises(
        YamlPipelineError,
        match=r"<text>:2:13: params.n: type must be one of "
        r"'int', 'float', 'str', 'bool', 'list', 'dict', 'path', 'any', got "
        r"'integr' \(did you mean 'int'\?\)",
    ):
        load_pipeline(text, registry=registry())
    p = load_pipeline(
        "params:\n  n: {type: int}\nsteps:\n  - call: data.numbers\n", registry=registry()
    )
    from plait.errors import PipelineValidationError

    with pytest.raises(PipelineValidationError, match="n"):
        p.run(params={"n": "three"})


def test_a_step_error_names_the_step_and_its_line():
    text = "steps:\n  - call: math.total\n    inputs: {nmbers: x}\n"
    with pytest.raises(YamlPipelineError, match=r"<text>:2:5: steps\[0\] \(total\): .*nmbers"):
        load_pipeline(text, registry=registry())


def test_two_steps_with_one_name_are_an_error():
    text = "steps:\n  - call: math.total\n  - call: math.total\n"
    with pytest.raises(
        YamlPipelineError,
        match=r"<text>:3:5: steps\[1\] \(total\): .*already "
        r"has a step named 'total'",
    ):
        load_pipeline(text, registry=registry())


# -- registry named by the YAML, datasets (plait.io) ------------------------------------------
REGISTRY = registry()


def test_the_yaml_may_name_its_registry():
    text = "registry: test_yaml_pipeline:REGISTRY\nsteps:\n  - call: data.numbers\n"
    assert load_pipeline(text).run(params={"n": 2})["numbers"] == [1, 2]
    with pytest.raises(
        YamlPipelineError,
        match=r"<text>:1:11: registry: 'test_yaml_pipeline:"
        r"CALLS' is list, not a plait.Registry",
    ):
        load_pipeline("registry: test_yaml_pipeline:CALLS\nsteps:\n  - call: data.numbers\n")


def test_datasets_inline_and_from_a_catalog(tmp_path):
    (tmp_path / "counts.csv").write_text("n\n1\n2\n3\n")
    reg = Registry()

    def biggest(counts) -> int:
        return int(counts["n"].max())

    reg.register(biggest, "stats.biggest")
    inline = f"""\
    datasets:
      counts: {{type: CSV, path: {tmp_path / "counts.csv"}}}
    steps:
      - call: stats.biggest
    """
    assert load_pipeline(textwrap.dedent(inline), registry=reg).run()["biggest"] == 3
    (tmp_path / "catalog.yml").write_text(
        f"counts:\n  type: CSV\n  path: {tmp_path / 'counts.csv'}\n"
    )
    (tmp_path / "p.yaml").write_text("datasets: catalog.yml\nsteps:\n  - call: stats.biggest\n")
    assert load_pipeline(tmp_path / "p.yaml", registry=reg).run()["biggest"] == 3


def _stats_project(folder):
    """A YAML pipeline in ``folder`` whose datasets are under ``folder/data``."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "counts.csv").write_text("n\n1\n2\n3\n")
    (folder / "catalog.yml").write_text(
        "counts: {type: CSV, path: data/counts.csv}\n"
        "biggest: {type: JSON, filepath: data/biggest.json}\n"
    )
    (folder / "stats.py").write_text("def biggest(counts):\n    return int(counts['n'].max())\n")
    steps = "imports: [stats]\nsteps:\n  - call: stats:biggest\n"
    (folder / "catalog.yaml").write_text("datasets: catalog.yml\n" + steps)
    inline = "datasets:\n  counts: {type: CSV, path: data/counts.csv}\n"
    inline += "  biggest: {type: JSON, path: data/biggest.json}\n"
    (folder / "inline.yaml").write_text(inline + steps)


@pytest.mark.parametrize("name", ["catalog.yaml", "inline.yaml"])
def test_dataset_paths_are_relative_to_the_yaml_files_folder(tmp_path, monkeypatch, name):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    _stats_project(project)
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.syspath_prepend(str(project))
    pipeline = load_pipeline(project / name)
    assert pipeline.datasets["counts"].path == str(project / "data" / "counts.csv")
    assert pipeline.run()["biggest"] == 3
    assert (project / "data" / "biggest.json").read_text() == "3"
    assert list(elsewhere.iterdir()) == []


def test_plait_run_of_a_yaml_pipeline_in_another_folder_reads_its_catalog(tmp_path):
    import os
    import subprocess
    import sys

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    _stats_project(project)
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PLAIT_STORE"}
    ran = subprocess.run(
        [sys.executable, "-m", "plait", "run", "../project/catalog.yaml", "-q"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert (project / "data" / "biggest.json").read_text() == "3"


def test_a_bad_dataset_is_reported_at_its_position():
    text = "datasets:\n  counts: {type: CVS, path: x.csv}\nsteps:\n  - call: data.numbers\n"
    with pytest.raises(YamlPipelineError, match=r"<text>:2:11: datasets.counts: .*CVS"):
        load_pipeline(text, registry=registry())


def test_values_are_typed_as_pyyaml_types_them():
    import yaml

    config = """\
    config:
      defaults: &defaults {x: 1, y: 2}
      merged:
        <<: *defaults
        y: 3
      values: [1, 2.5, true, null, ~, 2020-01-01, '3', !!str 4, 0x10, .inf, "", no, 1_000]
      text: |
        two
        lines
      empty:
    """
    text = textwrap.dedent(config) + "steps:\n  - call: data.numbers\n"
    assert load_pipeline(text, registry=registry()).config == yaml.safe_load(text)["config"]


def test_one_document_per_file():
    with pytest.raises(YamlPipelineError, match=r"<text>:3:1: not valid here: a pipeline is one"):
        load_pipeline("steps:\n  - call: data.numbers\n---\nname: x\n", registry=registry())


def test_the_schema_reference_in_the_docs_is_the_schema():
    from pathlib import Path

    from plait.yaml_pipeline._schema import reference

    docs = Path(__file__).parent.parent / "docs" / "yaml.md"
    assert reference() in docs.read_text(encoding="utf-8")
