"""``plait why`` on steps that run every time, through ``python -m plait`` in a subprocess.

A sink, a ``cache=False`` step and a step reading a value with no data version run
whatever their upstream steps produce: ``why`` says so with their own reason, and never
checks them "as if the upstream output came out unchanged".
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cli_cases import succeeds as plait

FLOW = textwrap.dedent(
    """
    import threading

    from plait import Pipeline, step


    @step
    def numbers(n: int) -> list[int]:
        return list(range(n))


    @step
    def total(numbers: list[int]) -> int:
        return sum(numbers)


    @step(outputs=[])
    def report(total: int) -> None:
        pass


    @step(cache=False)
    def fresh(total: int) -> int:
        return total


    @step
    def guarded(total: int, guard: object) -> int:
        return total


    pipeline = Pipeline(
        [numbers, total, report, fresh, guarded],
        name="flow",
        params={"guard": threading.Lock()},
    )
    """
)

SINK = "runs every time: a sink (no outputs) is not cached"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    plait("run", "flow.py", "-p", "n=3", "-q", cwd=tmp_path)
    return tmp_path


def verdicts(project: Path, step: str, n: int) -> dict[str, dict[str, object]]:
    rows = json.loads(plait("why", "flow.py", step, "-p", f"n={n}", "--json", cwd=project))
    return {row["step"]: row for row in rows}


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ("report", SINK),
        ("fresh", "cache disabled (cache=False)"),
        ("guarded", "not cached: input 'guard' has no data version"),
    ],
)
@pytest.mark.parametrize("n", [3, 4], ids=["upstream-hits", "upstream-runs"])
def test_a_step_that_runs_every_time_would_run_for_its_own_reason(project, step, reason, n):
    verdict = verdicts(project, step, n)[step]
    assert verdict["decision"] == "run"
    assert str(verdict["reason"]).startswith(reason)
    assert verdict["waits_on"] == []  # nothing upstream can make it a hit


def test_the_text_names_the_sink_reason_even_when_upstream_would_run(project):
    text = plait("why", "flow.py", "report", "-p", "n=4", cwd=project)
    assert text.splitlines()[0] == f"step 'report' would run: {SINK}"
    assert "numbers  RUN" in text
