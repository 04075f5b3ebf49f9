"""The command line for projects: plait new, YAML targets, --env and --set.

Everything through ``python -m plait`` in a subprocess, in a temporary directory.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cli_cases import plait


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("projects")
    made = plait("new", "demo", cwd=root)
    assert made.returncode == 0, made.stderr
    return root / "demo"


def test_new_makes_a_project_skeleton(demo):
    files = sorted(str(p.relative_to(demo)) for p in demo.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "catalog.yml",
        "conf/base/parameters.yml",
        "conf/local/.gitkeep",
        "demo/__init__.py",
        "demo/pipeline.py",
        "pipeline.yaml",
        "pyproject.toml",
        "tests/test_pipeline.py",
    ]
    assert "[tool.plait]" in (demo / "pyproject.toml").read_text()


def test_the_new_project_runs_at_once_python_and_yaml(demo):
    python = plait("run", "demo.pipeline:pipeline", "-q", cwd=demo)
    assert python.returncode == 0, python.stderr
    assert "succeeded" in python.stdout
    yaml = plait("run", "pipeline.yaml", cwd=demo)
    assert yaml.returncode == 0, yaml.stderr
    assert "report = 'mean of 10 numbers: 5.5'" in yaml.stdout
    assert (demo / ".plait").is_dir()  # the store of [tool.plait]
    assert (demo / "data/report.txt").read_text() == "mean of 10 numbers: 5.5"  # catalog.yml


def test_set_overrides_one_config_value(demo):
    result = plait(
        "run", "pipeline.yaml", "--set", "numbers_options.count=4", "-q", "--json", cwd=demo
    )
    assert result.returncode == 0, result.stderr
    assert '"report": "mean of 4 numbers: 2.5"' in result.stdout


def test_env_selects_a_conf_folder(demo):
    (demo / "conf/prod").mkdir(exist_ok=True)
    (demo / "conf/prod/parameters.yml").write_text("numbers_options:\n  count: 2\n")
    result = plait("run", "pipeline.yaml", "--env", "prod", "--json", cwd=demo)
    assert result.returncode == 0, result.stderr
    assert '"report": "mean of 2 numbers: 1.5"' in result.stdout
    unknown = plait("run", "pipeline.yaml", "--env", "prd", cwd=demo)
    assert unknown.returncode == 2
    assert "no env 'prd'" in unknown.stderr
    assert "did you mean 'prod'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_the_project_tests_pass(demo):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=demo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_show_and_why_take_a_yaml_target(demo):
    shown = plait("show", "pipeline.yaml", cwd=demo)
    assert shown.returncode == 0, shown.stderr
    assert "numbers" in shown.stdout
    assert "report" in shown.stdout
    ran = plait("run", "pipeline.yaml", "-q", cwd=demo)  # why reads an existing store
    assert ran.returncode == 0, ran.stderr
    why = plait("why", "pipeline.yaml", "report", cwd=demo)
    assert why.returncode == 0, why.stderr


def test_new_refuses_an_existing_folder_and_a_bad_name(tmp_path):
    (tmp_path / "taken").mkdir()
    taken = plait("new", "taken", cwd=tmp_path)
    assert taken.returncode == 2
    assert "already exists" in taken.stderr
    bad = plait("new", "my-project!", cwd=tmp_path)
    assert bad.returncode == 2
    assert "not a valid Python package name" in bad.stderr


def test_a_bad_yaml_target_exits_2_with_positions(tmp_path):
    (tmp_path / "p.yaml").write_text("steps:\n  - call: math.total\n    retires: 1\n")
    result = plait("run", "p.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "p.yaml:3:5: steps[0]: unknown key 'retires' (did you mean 'retries'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_set_key_no_step_reads_is_a_usage_error(tmp_path):
    (tmp_path / "flow.py").write_text(
        textwrap.dedent(
            """
            from plait import Pipeline, step

            @step(inputs={"size": "config.model.size"})
            def fit(size: float) -> float:
                return size

            pipeline = Pipeline([fit], config={"model": {"size": 0.2}})
            """
        )
    )
    ok = plait("run", "flow.py", "--set", "model.size=0.5", "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert '"fit": 0.5' in ok.stdout
    bad = plait("run", "flow.py", "--set", "model.sise=0.5", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--set model.sise=0.5: no step reads 'model.sise' (did you mean 'model.size'?)" in (
        bad.stderr
    )
