"""``plait run`` and ``plait show`` tell the truth: the values a run ends with, config keys
no step reads, repeated params, invalid graphs, import errors in the user's file, step
selection and planned commands. Every test goes through ``python -m plait`` in a
subprocess, on real files in a temporary directory.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from cli_cases import plait

FLOW = textwrap.dedent(
    """
    from plait import Pipeline, step


    @step(tags=("ingest",))
    def load(n: int) -> list[int]:
        return list(range(n))


    @step(tags="transform")
    def doubled(load: list[int]) -> list[int]:
        return [2 * x for x in load]


    @step(tags=("report", "sum"))
    def total(doubled: list[int]) -> int:
        return sum(doubled)


    @step(tags=("report",))
    def shape(load: list[int]) -> frozenset[int]:
        return frozenset(load)


    @step
    def text(load: list[int]) -> str:
        return "x" * 1000 + "\\nsecond line"


    pipeline = Pipeline([load, doubled, total, shape, text], name="flow")
    """
)


def user_error(completed: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert a clean user error (exit 2, a message, no traceback); return stderr."""
    assert completed.returncode == 2, completed.stderr + completed.stdout
    assert "Traceback" not in completed.stderr
    assert "Error" in completed.stderr
    for needle in needles:
        assert needle in completed.stderr, completed.stderr
    return completed.stderr


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    return tmp_path


def value_lines(stdout: str) -> dict[str, str]:
    """``name = repr`` lines printed after the summary."""
    lines = [line for line in stdout.splitlines() if " = " in line and not line[0].isspace()]
    return dict(line.split(" = ", 1) for line in lines)


# -- 1. the values a run ends with ------------------------------------------------------------
def test_run_prints_the_terminal_outputs_one_per_line(flow):
    completed = plait("run", "flow.py", "-p", "n=4", cwd=flow)
    assert completed.returncode == 0, completed.stderr
    values = value_lines(completed.stdout)
    assert list(values) == ["shape", "text", "total"]  # in run order; load, doubled are read
    assert values["total"] == "12"
    assert values["shape"] == "frozenset({0, 1, 2, 3})"
    assert values["text"].startswith("'xxxx")
    assert len(values["text"]) < 200
    assert values["text"].endswith(
        f"… ({len(repr('x' * 1000 + chr(10) + 'second line'))} characters)"
    )


def test_quiet_hides_the_values_but_not_those_asked_for(flow):
    completed = plait("run", "flow.py", "-p", "n=4", "-q", cwd=flow)
    assert completed.returncode == 0, completed.stderr
    assert "total" in completed.stdout  # the summary is still there
    assert value_lines(completed.stdout) == {}
    asked = plait("run", "flow.py", "-p", "n=4", "-q", "--outputs", "total", cwd=flow)
    assert value_lines(asked.stdout) == {"total": "12"}


def test_json_holds_the_values_and_says_which_are_reprs(flow):
    completed = plait("run", "flow.py", "-p", "n=4", "--json", cwd=flow)
    assert completed.returncode == 0, completed.stderr
    data = json.loads(completed.stdout)
    assert data["status"] == "succeeded"
    assert data["values"]["total"] == 12
    assert data["values"]["shape"] == "frozenset({0, 1, 2, 3})"
    assert data["values_as_repr"] == ["shape"]
    assert data["values"]["text"] == "x" * 1000 + "\nsecond line"


def test_outputs_prints_the_requested_values(flow):
    completed = plait("run", "flow.py", "-p", "n=3", "--outputs", "doubled", cwd=flow)
    assert completed.returncode == 0, completed.stderr
    assert value_lines(completed.stdout) == {"doubled": "[0, 2, 4]"}


# -- 2. config keys no step reads, repeated params -------------------------------------------
CONFIGURED = textwrap.dedent(
    """
    from plait import Pipeline, step


    @step(inputs={"rate": "config.model.rate"})
    def priced(amount: float, rate: float, currency: str) -> str:
        return f"{amount * rate:.1f} {currency}"


    pipeline = Pipeline([priced], config={"model": {"rate": 2.0}, "currency": "EUR"})
    """
)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[model]\nrtae = 3.0\n", ("'model.rtae'", "did you mean 'model.rate'")),
        ('curency = "USD"\n', ("'curency'", "did you mean 'currency'")),
        ('unknown = 1\n[model]\nrate = 1.0\nother = "x"\n', ("'unknown'", "'model.other'")),
    ],
)
def test_config_keys_no_step_reads_are_an_error(tmp_path, text, needles):
    (tmp_path / "flow.py").write_text(CONFIGURED, encoding="utf-8")
    (tmp_path / "over.toml").write_text(text, encoding="utf-8")
    args = ("run", "flow.py", "-p", "amount=2", "--config", "over.toml")
    stderr = user_error(plait(*args, cwd=tmp_path), "no step reads", *needles)
    assert "model.rate" in stderr  # the keys that are read are listed


def test_config_keys_the_steps_read_are_accepted(tmp_path):
    (tmp_path / "flow.py").write_text(CONFIGURED, encoding="utf-8")
    (tmp_path / "over.toml").write_text('currency = "USD"\n[model]\nrate = 3.0\n', "utf-8")
    completed = plait("run", "flow.py", "-p", "amount=2", "--config", "over.toml", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert value_lines(completed.stdout) == {"priced": "'6.0 USD'"}


def test_a_repeated_param_is_an_error(flow):
    user_error(
        plait("run", "flow.py", "-p", "n=3", "-p", "n=4", cwd=flow),
        "--param 'n' is given twice",
    )


# -- 3. show reports validation problems -------------------------------------------------------
CYCLE = textwrap.dedent(
    """
    from plait import Pipeline, step


    @step
    def a(c, seed):
        return c


    @step
    def b(a):
        return a


    @step
    def c(b):
        return b


    @step
    def free(seed):
        return seed


    pipeline = Pipeline([a, b, c, free], name="loop")
    """
)


def test_show_of_a_pipeline_with_a_cycle_reports_it(tmp_path):
    (tmp_path / "loop.py").write_text(CYCLE, encoding="utf-8")
    stderr = user_error(plait("show", "loop.py", cwd=tmp_path), "cycle between steps")
    assert "'loop'" in stderr


def test_show_needs_no_params(flow):
    completed = plait("show", "flow.py", cwd=flow)
    assert completed.returncode == 0, completed.stderr
    assert "total" in completed.stdout


# -- 4. errors raised while importing the user's file -----------------------------------------
@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("from plait import step\n\n\n\n\n\ny = undefined_name + 1\n", ("NameError", "line 7")),
        ("x = 1\n\n\n\n\n\nraise RuntimeError('no data')\n", ("RuntimeError: no data", "line 7")),
        (  # raised inside plait, on behalf of the user's line 4
            'from plait import step\n\n\ndoubled = step(retries=-1, name="d")(lambda x: x)\n',
            ("StepDefinitionError", "line 4", "retries must be"),
        ),
    ],
)
def test_an_import_error_points_at_the_users_file_and_line(tmp_path, text, needles):
    (tmp_path / "bad.py").write_text(text, encoding="utf-8")
    stderr = user_error(plait("run", "bad.py:p", cwd=tmp_path), "bad.py", *needles)
    assert "plait/" not in stderr
    assert "importlib" not in stderr


# -- 5. step selection ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "steps", "values"),
    [
        (("--to-steps", "doubled", "-p", "n=3"), {"load", "doubled"}, {"doubled": [0, 2, 4]}),
        (("--from-steps", "doubled", "-p", "load=[1,2]"), {"doubled", "total"}, {"total": 6}),
        (("--tags", "ingest,transform", "-p", "n=2"), {"load", "doubled"}, {"doubled": [0, 2]}),
        (("--tags", "sum", "-p", "doubled=[5]"), {"total"}, {"total": 5}),
        (
            ("--from-steps", "load", "--to-steps", "doubled", "-p", "n=2"),
            {"load", "doubled"},
            {"doubled": [0, 2]},
        ),
        (("--tags", "report", "--outputs", "total", "-p", "doubled=[1]"), {"total"}, {"total": 1}),
        (  # n is read only by a step outside the selection: ignored, with a note
            ("--from-steps", "doubled", "-p", "load=[1]", "-p", "n=9"),
            {"doubled", "total"},
            {"total": 2},
        ),
    ],
)
def test_selection_runs_only_the_selected_steps(flow, args, steps, values):
    completed = plait("run", "flow.py", "--json", *args, cwd=flow)
    assert completed.returncode == 0, completed.stderr
    data = json.loads(completed.stdout)
    assert set(data["steps"]) == steps
    assert data["values"] == values


def test_a_param_outside_the_selection_is_noted(flow):
    args = ("run", "flow.py", "--from-steps", "doubled", "-p", "load=[1]", "-p", "n=9")
    completed = plait(*args, cwd=flow)
    assert completed.returncode == 0, completed.stderr
    assert "--param n is read only by steps outside the selection" in completed.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--from-steps", "dubled"), ("'dubled'", "did you mean 'doubled'")),
        (("--to-steps", "totl,load"), ("'totl'", "did you mean 'total'")),
        (("--tags", "reprot"), ("'reprot'", "did you mean 'report'")),
        (("--from-steps", "total", "--to-steps", "load"), ("selects no step",)),
        (("--tags", "ingest", "--outputs", "total"), ("'total'", "'total'")),
        (  # the value doubled made is now a param, and nobody gave it
            ("--from-steps", "total"),
            ("'doubled'", "step 'doubled'", "outside the selection", "--param doubled="),
        ),
    ],
)
def test_a_bad_selection_is_a_usage_error(flow, args, needles):
    user_error(plait("run", "flow.py", *args, cwd=flow), *needles)


# -- 6. planned commands ----------------------------------------------------------------------
def test_the_ui_is_no_longer_planned(tmp_path):
    completed = plait("ui", "--help", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "planned" not in completed.stdout + completed.stderr
    assert "--target" in completed.stdout
    assert "PLAIT_TOKEN" in completed.stdout


def test_other_unknown_commands_keep_clicks_error(tmp_path):
    user_error(plait("frobnicate", cwd=tmp_path), "No such command 'frobnicate'")
