"""The command line, end to end: every command through ``python -m plait`` in a subprocess,
against a real store in a temporary directory.

User errors must exit 2 with a message and a fix, never a traceback; a failed run exits 1.
Read-only commands share one recorded project (``project``) to keep subprocess start-ups
few; commands that change the store get a project of their own.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

FLOW = textwrap.dedent(
    '''
    """A small pipeline for the CLI tests."""
    from plait import Pipeline, current, step


    @step
    def numbers(n: int) -> list[int]:
        return list(range(n))


    @step
    def total(numbers: list[int], scale: float) -> float:
        current().log_metric("count", len(numbers))
        current().logger.info("adding %d numbers", len(numbers))
        return sum(numbers) * scale


    @step
    def check(total: float, limit) -> str:
        if total > limit:
            raise ValueError(f"total {total} is over the limit {limit}")
        return f"{total} is fine"


    pipeline = Pipeline(
        [numbers, total, check], name="flow", params={"scale": 1.0, "limit": 1000}
    )
    '''
)

TYPED = textwrap.dedent(
    """
    import enum
    from pathlib import Path
    from typing import Literal

    from plait import Pipeline, step


    class Colour(enum.Enum):
        red = "r"
        blue = "b"


    @step
    def typed(
        count: int,
        ratio: float,
        flag: bool,
        label: str,
        colour: Colour,
        where: Path,
        maybe: int | None,
        items: list[int],
        level: Literal["low", "high"],
        loose,
    ) -> str:
        values = [count, ratio, flag, label, colour, where, maybe, items, level, loose]
        return " ".join(f"{type(v).__name__}:{v!r}" for v in values)


    pipeline = Pipeline([typed], name="typed")
    """
)


def plait(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m plait ARGS`` in ``cwd``, with no store configured by the environment."""
    full_env = {k: v for k, v in os.environ.items() if k != "PLAIT_STORE"}
    full_env["COLUMNS"] = "200"
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "plait", *args],
        cwd=cwd,
        env=full_env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def user_error(completed: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert a clean user error (exit 2, a message, no traceback); return stderr."""
    assert completed.returncode == 2, completed.stderr + completed.stdout
    assert "Traceback" not in completed.stderr
    assert "Error" in completed.stderr
    for needle in needles:
        assert needle in completed.stderr, completed.stderr
    return completed.stderr


def write_flow(folder: Path, text: str = FLOW, name: str = "flow.py") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def run_ids(cwd: Path, *extra: str) -> list[str]:
    listed = plait("runs", "list", "--json", *extra, cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    return [record["run_id"] for record in json.loads(listed.stdout)]


@dataclass
class Project:
    """A folder with ``flow.py`` and a store holding a succeeded and a failed run."""

    path: Path
    ok_run: str
    failed_run: str


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    folder = tmp_path_factory.mktemp("project")
    write_flow(folder)
    ok = plait("run", "flow.py:pipeline", "-p", "n=10", cwd=folder)
    assert ok.returncode == 0, ok.stderr
    failed = plait("run", "flow.py", "--param", "n=100", cwd=folder)
    assert failed.returncode == 1, failed.stderr
    failed_run, ok_run = run_ids(folder)
    return Project(folder, ok_run, failed_run)


# -- help and entry points --------------------------------------------------------------------
def test_help_lists_every_command_and_the_exit_codes(tmp_path):
    completed = plait("--help", cwd=tmp_path)
    assert completed.returncode == 0
    for command in ("run", "show", "runs", "why", "debug", "lineage", "cache"):
        assert f"  {command} " in completed.stdout
    assert "2 usage or validation error" in completed.stdout


def test_an_unknown_command_is_a_usage_error(tmp_path):
    completed = plait("rnu", "flow.py", cwd=tmp_path)
    assert completed.returncode == 2
    assert "No such command 'rnu'" in completed.stderr
    assert "Traceback" not in completed.stderr


# -- plait run --------------------------------------------------------------------------------
def test_a_run_records_in_dot_plait_and_a_second_run_hits_the_cache(tmp_path):
    write_flow(tmp_path)
    first = plait("run", "flow.py:pipeline", "-p", "n=10", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "succeeded" in first.stdout
    assert "numbers ok in" in first.stderr  # plain progress lines: not a terminal
    assert (tmp_path / ".plait" / "history.db").is_file()
    second = plait("run", "flow.py:pipeline", "-p", "n=10", cwd=tmp_path)
    assert second.returncode == 0
    assert second.stdout.count("cache hit") == 3
    assert "numbers cached" in second.stderr


def test_a_failed_run_exits_1_with_the_step_error_and_writes_the_report(project, tmp_path):
    report = tmp_path / "report.html"
    completed = plait(
        "run", "flow.py", "-p", "n=200", "--report", str(report), "-q", cwd=project.path
    )
    assert completed.returncode == 1
    assert "failed" in completed.stdout
    assert "step 'check' failed: ValueError: total 19900.0 is over the limit 1000" in (
        completed.stderr
    )
    page = report.read_text(encoding="utf-8")
    assert "<svg" in page
    assert "over the limit" in page


def test_params_are_typed_by_the_annotation_of_the_step_that_reads_them(tmp_path):
    write_flow(tmp_path, TYPED)
    completed = plait(
        "run",
        "flow.py",
        *("-p", "count=7", "-p", "ratio=0.5", "-p", "flag=yes", "-p", "label=42"),
        *("-p", "colour=blue", "-p", "where=data/x.csv", "-p", "maybe=none"),
        *("-p", "items=[1, 2]", "-p", "level=high", "-p", 'loose={"a": 1}'),
        "--outputs",
        "typed",
        "-q",
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    line = next(x for x in completed.stdout.splitlines() if x.startswith("typed = "))
    assert line == (
        "typed = \"int:7 float:0.5 bool:True str:'42' Colour:<Colour.blue: 'b'> "
        "PosixPath:PosixPath('data/x.csv') NoneType:None list:[1, 2] str:'high' "
        "dict:{'a': 1}\""
    )


@pytest.mark.parametrize(
    ("param", "needles"),
    [
        ("count=seven", ("expects int", "--param count=7")),
        ("colour=green", ("expects Colour", "not one of ['red', 'blue']")),
        ("level=medium", ("not one of ['low', 'high']",)),
        ("count", ("is not NAME=VALUE",)),
    ],
)
def test_a_bad_param_value_is_a_usage_error(tmp_path, param, needles):
    write_flow(tmp_path, TYPED)
    user_error(plait("run", "flow.py", "-p", param, cwd=tmp_path), *needles)


def test_a_missing_param_names_it_and_the_fix(tmp_path):
    write_flow(tmp_path)
    stderr = user_error(plait("run", "flow.py", cwd=tmp_path), "'n'", "--param NAME=VALUE")
    assert "invalid" in stderr


def test_a_misspelt_param_gets_a_suggestion(tmp_path):
    write_flow(tmp_path)
    user_error(
        plait("run", "flow.py", "-p", "n=3", "-p", "scael=2", cwd=tmp_path),
        "'scael'",
        "did you mean 'scale'",
    )


@pytest.mark.parametrize(
    ("target", "needles"),
    [
        ("missing.py:pipeline", ("no file 'missing.py'",)),
        ("flow.py:pipelin", ("no attribute 'pipelin'", "did you mean 'pipeline'")),
        ("no_such_module:pipeline", ("no module 'no_such_module'",)),
        ("broken.py:pipeline", ("SyntaxError", "broken.py, line 2")),
        ("raises.py:pipeline", ("ZeroDivisionError", "raises.py, line 1")),
        ("flow.py:numbers", ()),  # a step is a one-step pipeline: n is missing
    ],
)
def test_a_bad_target_is_a_usage_error_without_traceback(tmp_path, target, needles):
    write_flow(tmp_path)
    (tmp_path / "broken.py").write_text("x = 1\ndef (:\n", encoding="utf-8")
    (tmp_path / "raises.py").write_text("1 / 0\n", encoding="utf-8")
    user_error(plait("run", target, cwd=tmp_path), *needles)


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    (tmp_path / "raises.py").write_text("1 / 0\n", encoding="utf-8")
    completed = plait("--debug", "run", "raises.py", cwd=tmp_path)
    assert completed.returncode == 2
    assert "Traceback" in completed.stderr
    assert "ZeroDivisionError" in completed.stderr


def test_config_files_are_merged_over_the_pipeline_config(tmp_path):
    write_flow(
        tmp_path,
        textwrap.dedent(
            """
            from plait import Pipeline, step

            @step(inputs={"rate": "config.model.rate"})
            def priced(amount: float, rate: float, currency: str) -> str:
                return f"{amount * rate:.1f} {currency}"

            pipeline = Pipeline(
                [priced], config={"model": {"rate": 2.0, "other": 1}, "currency": "EUR"}
            )
            """
        ),
    )
    (tmp_path / "over.toml").write_text("[model]\nrate = 3.0\n", encoding="utf-8")
    (tmp_path / "over.yaml").write_text("currency: USD\n", encoding="utf-8")
    (tmp_path / "bad.json").write_text("{nope", encoding="utf-8")
    toml = plait(
        "run",
        "flow.py",
        "-p",
        "amount=2",
        "--config",
        "over.toml",
        "--outputs",
        "priced",
        "-q",
        cwd=tmp_path,
    )
    assert "priced = '6.0 EUR'" in toml.stdout, toml.stderr
    yaml = plait(
        "run",
        "flow.py",
        "-p",
        "amount=2",
        "--config",
        "over.yaml",
        "--outputs",
        "priced",
        "-q",
        cwd=tmp_path,
    )
    assert "priced = '4.0 USD'" in yaml.stdout, yaml.stderr
    user_error(
        plait("run", "flow.py", "-p", "amount=2", "--config", "bad.json", cwd=tmp_path),
        "'bad.json' is not valid json",
    )
    user_error(
        plait("run", "flow.py", "--config", "absent.toml", cwd=tmp_path),
        "cannot read config file 'absent.toml'",
    )


def test_a_module_target_with_a_factory_and_a_dataclass_config(tmp_path):
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "flows.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass, field
            from plait import Pipeline, step

            @dataclass(frozen=True)
            class Model:
                rate: float = 2.0

            @dataclass(frozen=True)
            class Config:
                model: Model = field(default_factory=Model)
                currency: str = "EUR"

            @step
            def priced(amount: float, config: Config) -> str:
                return f"{amount * config.model.rate:.1f} {config.currency}"

            def make() -> Pipeline:
                return Pipeline([priced], config=Config())

            def broken() -> Pipeline:
                raise RuntimeError("no database")
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "over.json").write_text('{"model": {"rate": 5}}', encoding="utf-8")
    (tmp_path / "typo.json").write_text('{"modle": {"rate": 5}}', encoding="utf-8")
    args = ("-p", "amount=2", "--outputs", "priced", "-q")
    made = plait("run", "mypkg.flows:make", *args, "--config", "over.json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "priced = '10.0 EUR'" in made.stdout
    user_error(
        plait("run", "mypkg.flows:make", *args, "--config", "typo.json", cwd=tmp_path),
        "'modle'",
        "did you mean 'model'",
    )
    user_error(
        plait("run", "mypkg.flows:broken", *args, cwd=tmp_path),
        "RuntimeError: no database",
    )


def test_outputs_json_and_threads(project):
    completed = plait(
        "run",
        "flow.py",
        "-p",
        "n=10",
        "--outputs",
        "total",
        "--json",
        "-e",
        "threads:2",
        cwd=project.path,
    )
    assert completed.returncode == 0, completed.stderr
    data = json.loads(completed.stdout)
    assert data["status"] == "succeeded"
    assert data["outputs"] == ["total"]
    assert set(data["steps"]) == {"numbers", "total"}  # pruned to what total needs


def test_an_unknown_executor_is_a_usage_error(project):
    user_error(
        plait("run", "flow.py", "-p", "n=10", "-e", "fibers", cwd=project.path),
        "unknown executor 'fibers'",
    )


def test_force_a_step_or_everything(tmp_path):
    write_flow(tmp_path)
    assert plait("run", "flow.py", "-p", "n=10", "-q", cwd=tmp_path).returncode == 0
    one = plait("run", "flow.py", "-p", "n=10", "-q", "--force", "total", cwd=tmp_path)
    rows = {line.split()[0]: line for line in one.stdout.splitlines()[2:]}
    assert "forced" in rows["total"]
    assert "cache hit" in rows["numbers"]
    assert "cache hit" in rows["check"]  # same total: early cutoff
    every = plait("run", "flow.py", "-p", "n=10", "-q", "--force", cwd=tmp_path)
    assert every.stdout.count("forced") == 3
    user_error(
        plait("run", "flow.py", "-p", "n=10", "--force", "totl", cwd=tmp_path),
        "'totl'",
        "did you mean 'total'",
    )


def test_on_error_continue_runs_the_independent_branch(tmp_path):
    write_flow(
        tmp_path,
        textwrap.dedent(
            """
            from plait import Pipeline, step

            @step
            def bad() -> int:
                raise RuntimeError("bad branch")

            @step
            def after_bad(bad: int) -> int:
                return bad

            @step
            def good() -> int:
                return 1

            pipeline = Pipeline([bad, after_bad, good], name="branches")
            """
        ),
    )
    completed = plait("run", "flow.py", "--on-error", "continue", "-q", cwd=tmp_path)
    assert completed.returncode == 1
    rows = {line.split()[0]: line.split()[1] for line in completed.stdout.splitlines()[2:]}
    assert rows == {"bad": "failed", "after_bad": "skipped", "good": "ok"}


def test_the_store_comes_from_the_option_the_environment_or_pyproject(tmp_path):
    write_flow(tmp_path)
    plait("run", "flow.py", "-p", "n=1", "-q", "--store", "opt", cwd=tmp_path)
    plait("run", "flow.py", "-p", "n=1", "-q", cwd=tmp_path, env={"PLAIT_STORE": "env"})
    (tmp_path / "pyproject.toml").write_text('[tool.plait]\nstore = "cfg"\n', encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    write_flow(sub)
    plait("run", "flow.py", "-p", "n=1", "-q", cwd=sub)  # the nearest pyproject.toml, above
    for store in ("opt", "env", "cfg"):
        assert (tmp_path / store / "history.db").is_file(), store
    assert not (tmp_path / ".plait").exists()
    assert not (sub / ".plait").exists()


def test_verbose_shows_the_steps_logging(project):
    quiet = plait("run", "flow.py", "-p", "n=3", "-q", "--force", cwd=project.path)
    loud = plait("run", "flow.py", "-p", "n=3", "-q", "--force", "-v", cwd=project.path)
    assert "adding 3 numbers" not in quiet.stderr
    assert "INFO plait.step.total: adding 3 numbers" in loud.stderr


def test_profile_prints_each_steps_peak_memory(project):
    completed = plait("run", "flow.py", "-p", "n=3", "-q", "--force", "--profile", cwd=project.path)
    assert completed.returncode == 0, completed.stderr
    profile = completed.stdout.split("profile:\n", 1)[1]
    assert [line.split()[0] for line in profile.splitlines()[1:4]] == [
        "numbers",
        "total",
        "check",
    ]
    assert "MiB" in profile


def test_a_terminal_gets_the_live_display(project):
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "plait", "run", "flow.py", "-p", "n=4", "--force"],
        cwd=project.path,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = output.decode()
    assert "\x1b[" in text  # drawn with terminal control codes
    assert "done" in text
    assert "cached" in text
    assert "succeeded in" in text
    assert "numbers ok in" not in text  # no plain lines on a terminal


def test_ctrl_c_exits_130_and_records_the_run_as_cancelled(tmp_path):
    marker = tmp_path / "started"
    write_flow(
        tmp_path,
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            from plait import Pipeline, step

            @step
            def slow() -> int:
                Path({str(marker)!r}).write_text("x")
                time.sleep(60)
                return 1

            pipeline = Pipeline([slow], name="slow")
            """
        ),
    )
    env = {k: v for k, v in os.environ.items() if k != "PLAIT_STORE"}
    process = subprocess.Popen(
        [sys.executable, "-m", "plait", "run", "flow.py", "-q"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert marker.exists()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert len(run_ids(tmp_path, "--status", "cancelled")) == 1


# -- plait show -------------------------------------------------------------------------------
def test_show_draws_every_format(project, tmp_path):
    ascii_ = plait("show", "flow.py", cwd=project.path)
    assert ascii_.stdout.startswith("pipeline 'flow': 3 steps")
    mermaid = plait("show", "flow.py", "-f", "mermaid", cwd=project.path)
    assert mermaid.stdout.startswith("flowchart LR")
    dot = plait("show", "flow.py:pipeline", "--format", "dot", cwd=project.path)
    assert dot.stdout.startswith("digraph")
    svg_path = tmp_path / "flow.svg"
    svg = plait("show", "flow.py", "-f", "svg", "-o", str(svg_path), cwd=project.path)
    assert svg.returncode == 0
    root = ET.parse(svg_path).getroot()  # a well-formed standalone SVG file
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"numbers", "total", "check"} <= texts


# -- plait why --------------------------------------------------------------------------------
def test_why_explains_from_the_cache_without_running(tmp_path):
    write_flow(tmp_path)
    assert plait("run", "flow.py", "-p", "n=10", "-q", cwd=tmp_path).returncode == 0
    before = sorted(p.name for p in (tmp_path / ".plait" / "objects").rglob("*"))
    hit = plait("why", "flow.py", "check", "-p", "n=10", cwd=tmp_path)
    assert hit.returncode == 0, hit.stderr
    assert hit.stdout.startswith("step 'check' would not run: cache hit")
    changed = plait("why", "flow.py", "check", "-p", "n=11", cwd=tmp_path)
    lines = changed.stdout.splitlines()
    assert lines[0].startswith("step 'check' may run")
    assert "numbers" in lines[-2]
    assert "RUN" in lines[-2]
    assert "input 'n' changed" in lines[-2]
    assert "total" in lines[-1]
    assert "maybe" in lines[-1]
    flow = (tmp_path / "flow.py").read_text(encoding="utf-8")
    (tmp_path / "flow.py").write_text(flow.replace("if total > limit", "if limit < total"))
    edited = plait("why", "flow.py", "check", "-p", "n=10", "--json", cwd=tmp_path)
    verdicts = {row["step"]: (row["decision"], row["reason"]) for row in json.loads(edited.stdout)}
    assert verdicts["check"] == ("run", "code changed")
    assert verdicts["total"][0] == "hit"
    assert sorted(p.name for p in (tmp_path / ".plait" / "objects").rglob("*")) == before
    user_error(plait("why", "flow.py", "chek", "-p", "n=10", cwd=tmp_path), "did you mean 'check'")


def test_why_needs_an_existing_store(tmp_path):
    write_flow(tmp_path)
    user_error(plait("why", "flow.py", "check", "-p", "n=1", cwd=tmp_path), "no plait store")
    assert not (tmp_path / ".plait").exists()


# -- plait runs -------------------------------------------------------------------------------
def test_runs_list_show_and_compare(project, tmp_path):
    listed = plait("runs", cwd=project.path)
    assert listed.returncode == 0
    assert project.ok_run in listed.stdout
    assert project.failed_run in listed.stdout
    failed_only = run_ids(project.path, "--status", "failed", "--pipeline", "flow")
    assert project.failed_run in failed_only
    assert project.ok_run not in failed_only
    shown = plait("runs", "show", project.failed_run[:14], cwd=project.path)
    assert shown.returncode == 0
    assert shown.stdout.startswith(f"run {project.failed_run} of 'flow': failed")
    params = next(line for line in shown.stdout.splitlines() if "params:" in line)
    assert "n=100" in params
    assert "limit=1000" in params
    assert "ValueError: total 4950.0 is over the limit 1000" in shown.stdout
    assert "total: count=100" in shown.stdout  # metrics
    compared = plait("runs", "compare", project.ok_run, project.failed_run, cwd=project.path)
    assert "n: 10 -> 100" in compared.stdout
    assert "code: same" in compared.stdout
    as_json = plait(
        "runs", "compare", project.ok_run, project.failed_run, "--json", cwd=project.path
    )
    assert json.loads(as_json.stdout)["status"] == ["succeeded", "failed"]


def test_runs_show_writes_an_html_report_from_the_record(project, tmp_path):
    page = tmp_path / "run.html"
    completed = plait(
        "runs", "show", project.failed_run, "--html", str(page), "-t", "flow.py", cwd=project.path
    )
    assert completed.returncode == 0, completed.stderr
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert project.failed_run in html
    assert "over the limit" in html
    assert html.count("<svg") == 2  # the graph and the timeline
    assert "plait-edge" in html  # edges drawn from the target's pipeline


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("runs", "show", "zzzz"), ("no run 'zzzz'", "plait runs list")),
        (("runs", "show", "0"), ("ambiguous",)),
        (("runs", "compare", "0", "zzzz"), ("ambiguous",)),
        (("lineage", "ffffffffffff"), ("no recorded value",)),
        (("runs", "resume", "zzzz", "-t", "flow.py"), ("no run 'zzzz'",)),
        (("debug", "zzzz", "total", "-t", "flow.py"), ("no run 'zzzz'",)),
    ],
)
def test_unknown_runs_and_versions_are_usage_errors(project, args, needles):
    user_error(plait(*args, cwd=project.path), *needles)


def test_commands_on_a_missing_store_say_so(tmp_path):
    for args in (("runs",), ("cache", "list"), ("lineage", "abc")):
        user_error(plait(*args, cwd=tmp_path), "no plait store at '.plait'")
    assert not (tmp_path / ".plait").exists()


def test_resume_reruns_what_failed_and_reuses_the_rest(tmp_path):
    write_flow(tmp_path)
    assert plait("run", "flow.py", "-p", "n=100", "-q", cwd=tmp_path).returncode == 1
    (failed,) = run_ids(tmp_path)
    # Without -t the run's recorded target runs: unchanged, it fails the same way.
    again = plait("runs", "resume", failed, "-q", cwd=tmp_path)
    assert again.returncode == 1, again.stderr
    assert "over the limit" in again.stdout + again.stderr
    flow = (tmp_path / "flow.py").read_text(encoding="utf-8")
    (tmp_path / "flow.py").write_text(flow.replace("total > limit", "total > 10 * limit"))
    resumed = plait("runs", "resume", failed[:16], "--target", "flow.py", "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    rows = {line.split()[0]: line for line in resumed.stdout.splitlines()[2:]}
    assert "cache hit" in rows["numbers"]
    assert "cache hit" in rows["total"]
    assert "ok" in rows["check"]
    assert "yes" not in rows["check"]
    newest = json.loads(plait("runs", "list", "--json", "-n", "1", cwd=tmp_path).stdout)[0]
    assert newest["origin_run_id"] == failed
    rerun = plait("runs", "rerun", failed, "--step", "total", "-t", "flow.py", "-q", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    rows = {line.split()[0]: line for line in rerun.stdout.splitlines()[2:]}
    assert "cache hit" in rows["numbers"]
    assert "forced" in rows["total"]
    assert "forced" in rows["check"]
    user_error(
        plait("runs", "rerun", failed, "-s", "totl", "-t", "flow.py", cwd=tmp_path),
        "did you mean 'total'",
    )


# -- plait debug ------------------------------------------------------------------------------
def test_debug_calls_the_step_on_its_recorded_inputs(project):
    completed = plait("debug", project.failed_run, "total", "-t", "flow.py", cwd=project.path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "total = 4950.0"


def test_debug_of_a_failing_step_shows_its_error_and_exits_1(project):
    completed = plait("debug", project.failed_run[:15], "check", "-t", "flow.py", cwd=project.path)
    assert completed.returncode == 1
    assert "step 'check' raised ValueError: total 4950.0 is over the limit 1000" in (
        completed.stderr
    )
    assert 'flow.py", line 21, in check' in completed.stderr  # from the step's own frame


def test_debug_pdb_stops_at_the_first_line_of_the_step(project):
    completed = plait(
        "debug",
        project.failed_run,
        "total",
        "-t",
        "flow.py",
        "--pdb",
        cwd=project.path,
        stdin="p sorted(locals())\np numbers[:3]\nc\n",
    )
    assert completed.returncode == 0, completed.stderr
    assert "(Pdb) ['numbers', 'scale']" in completed.stdout
    assert "(Pdb) [0, 1, 2]" in completed.stdout
    assert completed.stdout.rstrip().endswith("total = 4950.0")


def test_debug_of_an_unknown_step_is_a_usage_error(project):
    user_error(
        plait("debug", project.ok_run, "totl", "-t", "flow.py", cwd=project.path),
        "did you mean 'total'",
    )


# -- plait lineage ----------------------------------------------------------------------------
def test_lineage_from_a_version_prefix(project):
    record = json.loads(plait("runs", "show", project.ok_run, "--json", cwd=project.path).stdout)
    version = record["steps"]["total"]["data_versions"]["total"]
    completed = plait("lineage", version[:10], cwd=project.path)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0] == f"data version {version}"
    made, read = completed.stdout.split("read by:\n")
    made_by = {line.split()[1].rstrip(":") for line in made.splitlines()[2:]}
    assert made_by == {"total", "numbers"}
    assert {line.split()[1] for line in read.splitlines()} == {"check"}


# -- plait cache ------------------------------------------------------------------------------
def test_cache_list_gc_and_clear(tmp_path):
    write_flow(tmp_path)
    for n in ("1", "2", "3"):
        assert plait("run", "flow.py", "-p", f"n={n}", "-q", cwd=tmp_path).returncode == 0
    listed = plait("cache", "list", cwd=tmp_path)
    assert listed.stdout.splitlines()[-1].startswith("9 entries")
    only = json.loads(plait("cache", "list", "--step", "total", "--json", cwd=tmp_path).stdout)
    assert [entry["step"] for entry in only] == ["total"] * 3
    user_error(plait("cache", "gc", "--older-than", "soon", cwd=tmp_path), "not a duration")
    gc = plait("cache", "gc", "--keep-last", "1", cwd=tmp_path)
    assert gc.stdout.startswith("removed 2 runs, 6 cache entries"), gc.stdout
    assert len(run_ids(tmp_path)) == 1
    user_error(plait("cache", "clear", cwd=tmp_path), "--yes")
    cleared = plait("cache", "clear", "--yes", cwd=tmp_path)
    assert cleared.returncode == 0
    assert "no cache entries" in plait("cache", "list", cwd=tmp_path).stdout
    assert len(run_ids(tmp_path)) == 1  # history is kept
