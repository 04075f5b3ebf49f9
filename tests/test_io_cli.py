"""``plait datasets list TARGET``, through ``python -m plait`` in a subprocess."""

from __future__ import annotations

import textwrap

from cli_cases import plait as _plait

PIPELINE = textwrap.dedent(
    """
    from plait import Pipeline, step
    from plait.io import CSV, JSON


    @step
    def headcount(companies):
        return int(companies["employees"].sum())


    @step
    def unused_by_run(headcount):
        return headcount


    pipeline = Pipeline(
        [headcount],
        datasets={
            "companies": CSV("data/companies.csv"),
            "headcount": JSON("data/headcount.json", versioned=True),
        },
    )
    """
)


def test_datasets_list_shows_each_dataset(tmp_path):
    (tmp_path / "pipe.py").write_text(PIPELINE)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "companies.csv").write_text("employees\n3\n4\n")
    listed = _plait("datasets", "list", "pipe.py:pipeline", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["name", "role", "type", "exists", "last", "version", "path"]
    companies = lines[1].split()
    assert companies[:4] == ["companies", "source", "CSV", "yes"]
    assert companies[-1] == "data/companies.csv"
    assert lines[2].split() == ["headcount", "sink", "JSON", "no", "-", "data/headcount.json"]
    ran = _plait("run", "pipe.py:pipeline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    after = _plait("datasets", "list", "pipe.py:pipeline", cwd=tmp_path).stdout.splitlines()
    row = after[2].split()
    assert row[:3] == ["headcount", "sink", "JSON"]
    assert row[3] == "yes"
    assert len(row[4]) == 20  # the version: the id of the run that saved it


def test_datasets_list_of_a_pipeline_without_datasets(tmp_path):
    (tmp_path / "pipe.py").write_text(
        "from plait import Pipeline, step\n\n@step\ndef a():\n    return 1\n\n"
        "pipeline = Pipeline([a])\n"
    )
    listed = _plait("datasets", "list", "pipe.py:pipeline", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "pipeline 'pipeline' has no datasets"


YAML_PIPELINE = textwrap.dedent(
    """
    name: people
    config: conf
    datasets: catalog.yml
    steps:
      - call: steps:headcount
        inputs: [companies, config.unit]
        outputs: headcount
    imports: [steps]
    """
)


def _yaml_project(tmp_path):
    (tmp_path / "steps.py").write_text(
        "def headcount(companies, unit):\n    return f'{len(companies)} {unit}'\n"
    )
    (tmp_path / "pipe.yaml").write_text(YAML_PIPELINE)
    (tmp_path / "catalog.yml").write_text(
        "companies: {type: CSV, path: data/companies.csv}\n"
        "headcount: {type: Text, path: data/headcount.txt}\n"
    )
    for env, unit in (("base", "people"), ("prod", "staff")):
        (tmp_path / "conf" / env).mkdir(parents=True)
        (tmp_path / "conf" / env / "parameters.yml").write_text(f"unit: {unit}\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "companies.csv").write_text("employees\n3\n4\n")


def test_datasets_list_takes_an_env(tmp_path):
    _yaml_project(tmp_path)
    listed = _plait("datasets", "list", "pipe.yaml", "--env", "prod", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert names == ["companies", "headcount"]


def test_datasets_list_with_an_unknown_env_is_a_usage_error(tmp_path):
    _yaml_project(tmp_path)
    listed = _plait("datasets", "list", "pipe.yaml", "--env", "prdo", cwd=tmp_path)
    assert listed.returncode == 2, listed.stdout
    assert "did you mean 'prod'" in listed.stderr


def test_datasets_list_reads_the_projects_conf_like_run(tmp_path):
    (tmp_path / "pipe.py").write_text(PIPELINE)
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "base" / "parameters.yml").write_text("unit: [unclosed\n")
    listed = _plait("datasets", "list", "pipe.py:pipeline", cwd=tmp_path)
    ran = _plait("run", "pipe.py:pipeline", cwd=tmp_path)
    assert ran.returncode == 2
    assert listed.returncode == 2, listed.stdout
    assert "parameters.yml" in listed.stderr
