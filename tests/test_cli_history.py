"""The history commands tell the truth: ``plait runs list/show/compare`` and ``plait lineage``
through ``python -m plait`` in a subprocess, on a real store in a temporary directory.

One recorded project (``project``) is shared by the read-only tests: run A with the
defaults, run B with ``seed`` given and a config file. The steps' pipeline order
(numbers, noisy, scaled, chatty, alpha) differs from their alphabetical order.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli_cases import plait

FLOW = textwrap.dedent(
    '''
    """A pipeline whose steps default a param, log, print and log a lot."""
    from plait import Pipeline, current, step


    @step
    def numbers(n: int) -> list[int]:
        return list(range(n))


    @step
    def noisy(numbers: list[int], seed: int = 42) -> list[int]:
        log = current().logger
        log.debug("debug is not kept")
        log.info("shuffling %d numbers with seed %d", len(numbers), seed)
        with current().capture_output():
            print("printed by noisy")
            print("to stderr", file=__import__("sys").stderr)
        print("printed outside the capture")
        return [x + seed for x in numbers]


    @step(inputs={"rate": "config.rate"})
    def scaled(noisy: list[int], rate: float) -> list[float]:
        return [x * rate for x in noisy]


    @step
    def chatty(scaled: list[float]) -> int:
        for i in range(1500):
            current().logger.warning("line %d", i)
        return len(scaled)


    @step
    def alpha(chatty: int) -> int:
        return chatty


    pipeline = Pipeline(
        [numbers, noisy, scaled, chatty, alpha], name="flow", config={"rate": 2.0}
    )
    '''
)
ORDER = ["numbers", "noisy", "scaled", "chatty", "alpha"]


def ok(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 0, completed.stderr + completed.stdout
    assert "Traceback" not in completed.stderr
    return completed.stdout


def user_error(completed: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert completed.returncode == 2, completed.stderr + completed.stdout
    assert "Traceback" not in completed.stderr
    for needle in needles:
        assert needle in completed.stderr, completed.stderr
    return completed.stderr


@dataclass
class Project:
    path: Path
    run_a: str  # defaults
    run_b: str  # seed=7, rate 3.0 from a config file
    printed: str  # what run A printed


def _json_after_prints(text: str) -> dict:
    return json.loads(text[text.index("{") :])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    folder = tmp_path_factory.mktemp("history")
    (folder / "flow.py").write_text(FLOW, encoding="utf-8")
    (folder / "over.toml").write_text("rate = 3.0\n", encoding="utf-8")
    first = plait("run", "flow.py", "-p", "n=3", "-q", "--json", cwd=folder)
    second = plait(
        "run", "flow.py", "-p", "n=3", "-p", "seed=7", "--config", "over.toml", "-q", "--json",
        cwd=folder,
    )  # fmt: skip
    run_a = _json_after_prints(ok(first))["run_id"]
    run_b = _json_after_prints(ok(second))["run_id"]
    printed = first.stdout[: first.stdout.index("{")] + first.stderr  # not the JSON result
    return Project(folder, run_a, run_b, printed)


def show_json(project: Project, run_id: str) -> dict:
    return json.loads(ok(plait("runs", "show", run_id, "--json", cwd=project.path)))


# -- 1. defaults are recorded -----------------------------------------------------------------
def test_runs_show_records_a_defaulted_param_with_its_value(project):
    shown = ok(plait("runs", "show", project.run_a, cwd=project.path))
    params = next(line for line in shown.splitlines() if line.strip().startswith("params:"))
    assert "seed=42" in params
    assert "n=3" in params
    record = show_json(project, project.run_a)
    assert record["params"] == {"n": 3, "seed": 42}
    assert record["steps"]["noisy"]["params"] == {"seed": 42}
    assert record["steps"]["numbers"]["params"] == {"n": 3}


def test_runs_compare_shows_a_default_against_a_given_value(project):
    compared = ok(plait("runs", "compare", project.run_a, project.run_b, cwd=project.path))
    assert "seed: 42 -> 7" in compared


def test_lineage_shows_the_defaulted_param_of_the_step_upstream(project):
    record = show_json(project, project.run_a)
    version = record["steps"]["scaled"]["data_versions"]["scaled"]
    lineage = ok(plait("lineage", version[:12], cwd=project.path))
    noisy = next(line for line in lineage.splitlines() if f"{project.run_a}  noisy: " in line)
    assert "seed=42" in noisy
    as_json = json.loads(ok(plait("lineage", version[:12], "--json", cwd=project.path)))
    by_step = {s["name"]: s for s in as_json["lineage"] if s["run_id"] == project.run_a}
    assert by_step["noisy"]["params"] == {"seed": 42}


# -- 3. list filters, compare config and order ----------------------------------------------
def test_runs_list_with_no_match_names_the_filter(project):
    listed = ok(plait("runs", "list", "--status", "failed", cwd=project.path))
    assert "no run matched --status failed" in listed
    assert "no runs recorded" not in listed
    both = ok(plait("runs", "list", "--status", "failed", "--pipeline", "flow", cwd=project.path))
    assert "--pipeline flow --status failed" in both


def test_runs_list_json_does_not_pretend_runs_have_no_steps(project):
    listed = json.loads(ok(plait("runs", "list", "--json", cwd=project.path)))
    assert [r["run_id"] for r in listed] == [project.run_b, project.run_a]
    assert all("steps" not in r for r in listed)


def test_runs_compare_shows_config_differences_and_steps_in_pipeline_order(project):
    compared = ok(plait("runs", "compare", project.run_a, project.run_b, cwd=project.path))
    assert "config values that differ:" in compared
    assert "config.rate: 2.0 -> 3.0" in compared
    table = compared.split("STEP", 1)[1].splitlines()[1:]
    assert [line.split()[0] for line in table] == ORDER
    diff = json.loads(
        ok(plait("runs", "compare", project.run_a, project.run_b, "--json", cwd=project.path))
    )
    assert diff["config"] == {"config.rate": [2.0, 3.0]}
    assert list(diff["steps"]) == ORDER


def test_runs_show_lists_steps_in_the_order_they_ran(project):
    shown = ok(plait("runs", "show", project.run_a, cwd=project.path))
    table = shown.split("STEP", 1)[1].splitlines()[1:6]
    assert [line.split()[0] for line in table] == ORDER


# -- 4. logs ----------------------------------------------------------------------------------
def test_runs_show_logs_of_one_step(project):
    logs = ok(plait("runs", "show", project.run_a, "--logs", "noisy", cwd=project.path))
    assert "INFO shuffling 3 numbers with seed 42" in logs
    assert "[stdout] printed by noisy" in logs
    assert "[stderr] to stderr" in logs
    assert "debug is not kept" not in logs
    assert "printed outside the capture" not in logs
    # captured output is kept instead of printed; the rest prints as usual
    assert "printed by noisy" not in project.printed
    assert "printed outside the capture" in project.printed


def test_runs_show_logs_are_bounded_and_say_so(project):
    logs = ok(plait("runs", "show", project.run_a, "--logs", "chatty", cwd=project.path))
    lines = logs.splitlines()
    assert "500 earlier lines not kept" in logs
    assert lines[-1].strip() == "WARNING line 1499"
    assert sum("WARNING line" in line for line in lines) == 1000
    record = show_json(project, project.run_a)
    assert record["steps"]["chatty"]["logs_dropped"] == 500


def test_runs_show_logs_of_every_step_and_the_hint(project):
    logs = ok(plait("runs", "show", project.run_a, "--logs", cwd=project.path))
    headers = [line for line in logs.splitlines() if line.startswith("== ")]
    assert headers == ["== noisy (ok)", "== chatty (ok)"]
    shown = ok(plait("runs", "show", project.run_a, cwd=project.path))
    assert "noisy (3 lines)" in shown
    assert f"plait runs show {project.run_a} --logs" in shown


def test_runs_show_logs_of_an_unknown_step_is_a_usage_error(project):
    user_error(
        plait("runs", "show", project.run_a, "--logs", "noisey", cwd=project.path),
        "no step 'noisey'",
        "did you mean 'noisy'",
    )


# -- 2. the HTML report from the record --------------------------------------------------------
def _edges(page: str) -> set[str]:
    return set(re.findall(r'<g class="plait-edge"><title>([^<]*)</title>', page))


def test_runs_show_html_draws_edges_from_the_record_without_a_target(project):
    page = project.path / "run.html"
    ok(plait("runs", "show", project.run_a, "--html", str(page), cwd=project.path))
    text = page.read_text(encoding="utf-8")
    edges = _edges(text)
    assert len(edges) >= 5, edges
    assert any("noisy" in e and "scaled" in e for e in edges), edges
    # the same edges as with the pipeline's code
    other = project.path / "run-t.html"
    ok(
        plait(
            "runs", "show", project.run_a, "--html", str(other), "-t", "flow.py", cwd=project.path
        )
    )
    assert _edges(other.read_text(encoding="utf-8")) == edges
    assert "shuffling 3 numbers with seed 42" in text
    assert "500 earlier lines not kept" in text


# -- resume and rerun end like plait run; runs show shows map elements' attempts -------------

REPLAYED = textwrap.dedent(
    """
    from pathlib import Path

    from plait import Pipeline, step


    @step
    def numbers(n: int) -> list[int]:
        return list(range(n))


    @step(map="numbers", retries=1, backoff=0)
    def doubled(numbers: int) -> int:
        flag = Path("tried-" + str(numbers))
        if numbers == 1 and not flag.exists():
            flag.touch()
            raise ValueError("first try fails")
        return numbers * 2


    @step
    def answer(doubled: list[int]) -> int:
        if not Path("release").exists():
            raise RuntimeError("not yet")
        return sum(doubled)


    PIPELINE = Pipeline([numbers, doubled, answer], name="replayed")
    """
)


def test_resume_and_rerun_print_the_terminal_values_and_show_element_attempts(tmp_path):
    (tmp_path / "flow.py").write_text(REPLAYED, encoding="utf-8")
    failed = plait("run", "flow.py", "-p", "n=3", "-q", cwd=tmp_path)
    assert failed.returncode == 1
    run_id = next(
        line.split()[0] for line in ok(plait("runs", "list", cwd=tmp_path)).splitlines()[1:]
    )
    shown = plait("runs", "show", run_id, cwd=tmp_path).stdout
    assert "doubled: 3 elements, 4 calls; retried: 1=2" in shown
    (tmp_path / "release").touch()
    resumed = ok(plait("runs", "resume", run_id, "-t", "flow.py", cwd=tmp_path))
    assert "answer = 6" in resumed
    rerun = ok(plait("runs", "rerun", run_id, "-s", "answer", "-t", "flow.py", cwd=tmp_path))
    assert "answer = 6" in rerun
    quiet = ok(plait("runs", "rerun", run_id, "-s", "answer", "-t", "flow.py", "-q", cwd=tmp_path))
    assert "answer = 6" not in quiet


def test_resume_and_rerun_use_the_target_the_run_recorded(tmp_path):
    (tmp_path / "flow.py").write_text(REPLAYED, encoding="utf-8")
    assert plait("run", "flow.py", "-p", "n=3", "-q", cwd=tmp_path).returncode == 1
    run_id = next(
        line.split()[0] for line in ok(plait("runs", "list", cwd=tmp_path)).splitlines()[1:]
    )
    (tmp_path / "release").touch()
    resumed = ok(plait("runs", "resume", run_id, cwd=tmp_path))  # no -t: the recorded one
    assert "answer = 6" in resumed
    rerun = ok(plait("runs", "rerun", run_id, "-s", "answer", cwd=tmp_path))
    assert "answer = 6" in rerun


def test_resume_of_a_run_with_no_recorded_target_asks_for_one(tmp_path):
    from plait import Pipeline, Store, step

    @step
    def one() -> int:
        return 1

    store = Store(tmp_path / ".plait")
    run_id = Pipeline([one]).run(store=store).run_id
    store.close()
    refused = plait("runs", "resume", run_id, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "records no target" in refused.stderr
    assert "-t" in refused.stderr
    assert "Traceback" not in refused.stderr
