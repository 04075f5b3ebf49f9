"""``plait new NAME``: a small project that runs with ``plait run`` at once.

The skeleton shows the project layout the rest of plait expects: ``[tool.plait]`` in
``pyproject.toml`` (store, env, conf), ``conf/base`` and ``conf/local``, a package whose
module defines two steps, a :class:`~plait.Registry` and a Python pipeline, a YAML pipeline
over that registry with a ``catalog.yml`` of datasets, and a test. Files are written only
into the new folder, which must not exist yet.
"""

from __future__ import annotations

import keyword
from pathlib import Path

import click

from plait.cli._errors import EXIT_OK, CommandError

__all__ = ["new_command", "skeleton"]

_PYPROJECT = """\
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["plait[config]"]

[tool.plait]
store = ".plait"      # runs and cached results (plait runs, plait ui)
env = "local"         # conf/local is merged over conf/base (--env prod for conf/prod)
conf = "conf"

[tool.pytest.ini_options]
pythonpath = ["."]
"""

_PARAMETERS = """\
# Settings every env shares; conf/<env>/*.yml override them key by key.
numbers_options:
  count: 10
  label: ${{numbers_options.count}} numbers   # interpolation (OmegaConf)
"""

_MODULE = '''\
"""The {name} pipeline: two steps, a registry for YAML pipelines, a Python pipeline."""

from __future__ import annotations

from plait import Pipeline, Registry, step

registry = Registry()


@registry.register("{name}.make_numbers")
@step(inputs={{"count": "config.numbers_options.count"}}, outputs="numbers")
def make_numbers(count: int) -> list[int]:
    """1 .. count."""
    return list(range(1, count + 1))


@registry.register("{name}.report")
@step
def report(numbers: list[int]) -> str:
    """A line about the numbers."""
    return f"mean of {{len(numbers)}} numbers: {{sum(numbers) / len(numbers)}}"


# plait run {name}.pipeline:pipeline reads conf/ (base + env) into its config
pipeline = Pipeline([make_numbers, report], name="{name}")
'''

_YAML = """\
# plait run pipeline.yaml  (--env prod, --set numbers_options.count=4)
name: {name}
registry: {name}.pipeline:registry   # where the calls below are looked up
config: conf                        # conf/base + conf/<env>
datasets: catalog.yml               # report is also saved to data/report.txt
steps:
  - call: {name}.make_numbers
  - call: {name}.report
    retries: 1
"""

_CATALOG = """\
# Datasets (plait.io): an output named here is saved after its step, an input no step
# makes is loaded from its file. Paths are relative to where plait runs.
report:
  type: Text
  path: data/report.txt
"""

_TEST = '''\
"""Steps are plain functions; the pipeline runs in memory with a test config."""

from plait import load_pipeline

from {name}.pipeline import make_numbers, pipeline, registry, report


def test_steps_are_plain_functions():
    assert make_numbers(3) == [1, 2, 3]
    assert report([1, 2, 3]) == "mean of 3 numbers: 2.0"


def test_the_pipeline_runs():
    result = pipeline.run(config={{"numbers_options": {{"count": 4}}}})
    assert result["report"] == "mean of 4 numbers: 2.5"


def test_the_yaml_pipeline_loads():
    loaded = load_pipeline("pipeline.yaml", registry=registry)
    assert [s.name for s in loaded.order] == ["make_numbers", "report"]
'''

_README = """\
# {name}

```console
$ plait run pipeline.yaml                # the YAML pipeline
$ plait run {name}.pipeline:pipeline     # the same steps, as Python
$ plait run pipeline.yaml --set numbers_options.count=4 --env local
$ pytest
```

`conf/base/` holds the settings every environment shares; `conf/local/` (the default env)
overrides them on this machine; keep secrets in `conf/local/credentials.yml`.
"""


def skeleton(name: str) -> dict[str, str]:
    """The files of a new project called ``name``: relative path -> text."""
    return {
        "pyproject.toml": _PYPROJECT.format(name=name),
        "README.md": _README.format(name=name),
        "conf/base/parameters.yml": _PARAMETERS.format(name=name),
        "conf/local/.gitkeep": "",
        f"{name}/__init__.py": f'"""The {name} project."""\n',
        f"{name}/pipeline.py": _MODULE.format(name=name),
        "pipeline.yaml": _YAML.format(name=name),
        "catalog.yml": _CATALOG,
        "tests/test_pipeline.py": _TEST.format(name=name),
    }


@click.command("new")
@click.argument("name")
def new_command(name: str) -> int:
    """Make a project NAME: conf/, a pipeline module, a YAML pipeline and a test."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise CommandError(
            f"{name!r} is not a valid Python package name",
            "use letters, digits and underscores, not starting with a digit (e.g. my_project)",
        )
    root = Path(name)
    if root.exists():
        raise CommandError(f"{str(root)!r} already exists", "choose another name or folder")
    for relative, text in skeleton(name).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    click.echo(f"made {root}/: cd {name} && plait run pipeline.yaml")
    return EXIT_OK
