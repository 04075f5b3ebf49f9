"""Step logs on results: ``StepResult.logs``, ``to_dict()`` and the CLI that shows them.

What a step logs through ``current().logger`` (INFO and above) or prints inside
``current().capture_output()`` comes back on its ``StepResult``; a map step gathers its
elements' lines, each prefixed by the element's index or key. The CLI tests run
``python -m plait`` in a subprocess on a real store in a temporary directory.
"""

from __future__ import annotations

import json
import textwrap

from cli_cases import succeeds as plait
from plait import Pipeline, Store, current, step


@step
def chatty(n: int) -> int:
    current().logger.info("got %d", n)
    current().logger.debug("debug is not kept")
    with current().capture_output():
        print("printed")
    return n + 1


@step(map="items")
def each(items: int) -> int:
    current().logger.info("element %d", items)
    return items * 2


@step
def quiet(chatty: int) -> int:
    return chatty


def test_step_result_logs_are_the_lines_the_step_logged_and_printed():
    result = Pipeline([chatty, quiet]).run(params={"n": 1})
    assert result.steps["chatty"].logs == ["INFO got 1", "[stdout] printed"]
    assert result.steps["quiet"].logs == []


def test_map_step_logs_carry_every_element_prefixed_by_its_index():
    result = Pipeline([each]).run(params={"items": [3, 4]})
    assert result.steps["each"].logs == ["[0] INFO element 3", "[1] INFO element 4"]


def test_to_dict_holds_the_logs_as_json():
    result = Pipeline([chatty, each]).run(params={"n": 1, "items": [3]})
    step_dict = result.steps["chatty"].to_dict()
    assert (step_dict["logs"], step_dict["logs_dropped"]) == (["INFO got 1", "[stdout] printed"], 0)
    run_dict = json.loads(json.dumps(result.to_dict()))
    assert run_dict["steps"]["each"]["logs"] == ["[0] INFO element 3"]


def test_a_cache_hit_has_no_logs(tmp_path):
    store = Store(tmp_path / "store")
    first = Pipeline([chatty]).run(params={"n": 1}, store=store)
    second = Pipeline([chatty]).run(params={"n": 1}, store=store)
    assert first.steps["chatty"].logs == ["INFO got 1", "[stdout] printed"]
    assert (second.steps["chatty"].cached, second.steps["chatty"].logs) == (True, [])


def test_logs_beyond_the_bound_are_counted_as_dropped():
    @step
    def flood() -> int:
        for i in range(1200):
            current().logger.warning("line %d", i)
        return 0

    record = Pipeline([flood]).run().steps["flood"]
    assert record.logs[-1] == "WARNING line 1199"
    assert record.to_dict()["logs_dropped"] == 1200 - len(record.logs)


# -- the command line ---------------------------------------------------------------------
FLOW = textwrap.dedent(
    """
    from plait import Pipeline, current, step


    @step(map="items")
    def each(items: int) -> int:
        current().logger.info("element %d", items)
        return items * 2


    @step
    def total(each: list[int]) -> int:
        current().logger.warning("summing %d values", len(each))
        return sum(each)


    pipeline = Pipeline([each, total], name="flow", params={"items": [1, 2, 3]})
    """
)


def test_run_json_shows_each_steps_logs(tmp_path):
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    data = json.loads(plait("run", "flow.py", "-q", "--json", cwd=tmp_path))
    assert data["steps"]["each"]["logs"] == [
        "[0] INFO element 1",
        "[1] INFO element 2",
        "[2] INFO element 3",
    ]
    assert data["steps"]["total"]["logs"] == ["WARNING summing 3 values"]


def test_runs_show_logs_prints_a_map_steps_element_lines(tmp_path):
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    run_id = json.loads(plait("run", "flow.py", "-q", "--json", cwd=tmp_path))["run_id"]
    shown = plait("runs", "show", run_id, "--logs", "each", cwd=tmp_path)
    for line in ("[0] INFO element 1", "[1] INFO element 2", "[2] INFO element 3"):
        assert line in shown
    assert "summing" not in shown
