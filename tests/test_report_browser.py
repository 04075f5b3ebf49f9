"""The HTML report in a real headless browser (Debian's Chromium, driven by Playwright).

Needs Debian's Chromium (``.ci/system.sh`` installs it) and ``pip install playwright`` (no
browser download: Playwright drives the system's ``/usr/bin/chromium``). Checked: the page
loads without a console error, the graph's SVG is visible, a failed step's error message is
visible.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from plait import Pipeline, current, step

CHROMIUM = os.environ.get("PLAIT_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _ensure_chromium() -> None:
    """Chromium comes from Debian (.ci/system.sh installs it); a test never installs it."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium is needed at {CHROMIUM}: run .ci/system.sh (Debian's chromium package) "
            "or set PLAIT_TEST_CHROMIUM",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def open_page(browser: Browser, path: Path) -> tuple[Page, list[str]]:
    """Open ``path`` in a new page; return it and the console errors seen while loading."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
    page.goto(path.as_uri(), wait_until="load")
    return page, errors


@step
def load(rows: int) -> list[int]:
    current().log_metric("rows", rows)
    return list(range(rows))


@step
def parse(load: list[int]) -> dict[str, Any]:
    raise ValueError(f"row {len(load)} has <b>no</b> price column")


@step
def stats(load: list[int]) -> int:
    return sum(load)


@step
def report(parse: dict[str, Any], stats: int) -> str:
    return f"{parse} {stats}"


def test_the_report_of_a_failed_run_renders(browser, tmp_path):
    result = Pipeline([load, parse, stats, report], name="reporting").run(
        params={"rows": 7}, on_error="continue"
    )
    path = tmp_path / "report.html"
    path.write_text(result.to_html(), encoding="utf-8")
    page, errors = open_page(browser, path)
    graph = page.locator("svg.plait-graph")
    assert graph.count() == 1
    assert graph.is_visible()
    box = graph.bounding_box()
    assert box is not None
    assert box["width"] > 100
    assert box["height"] > 40
    for name in ("load", "parse", "stats", "report"):
        assert graph.locator("text", has_text=name).first.is_visible()
    message = page.get_by_text("row 7 has <b>no</b> price column").first  # escaped, as text
    assert message.is_visible()
    assert page.locator("b", has_text="no").count() == 0  # user text never becomes markup
    assert page.get_by_text("ValueError").first.is_visible()
    assert page.get_by_text(result.run_id).first.is_visible()
    assert errors == []
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_report_of_a_recorded_run_renders(browser, tmp_path):
    (tmp_path / "flow.py").write_text(
        textwrap.dedent(
            """
            from plait import Pipeline, step

            @step
            def first(n: int) -> int:
                return n

            @step
            def second(first: int) -> int:
                raise RuntimeError(f"second cannot use {first}")

            pipeline = Pipeline([first, second], name="recorded")
            """
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "PLAIT_STORE"}
    command = [sys.executable, "-m", "plait"]
    ran = subprocess.run(
        [*command, "run", "flow.py", "-p", "n=3", "-q", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )
    assert ran.returncode == 1, ran.stderr
    run_id = ran.stdout.split('"run_id": "', 1)[1].split('"', 1)[0]
    shown = subprocess.run(
        [*command, "runs", "show", run_id, "--html", "run.html", "-t", "flow.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )
    assert shown.returncode == 0, shown.stderr
    page, errors = open_page(browser, tmp_path / "run.html")
    assert page.locator("svg.plait-graph").is_visible()
    assert page.locator("svg.plait-graph .plait-edge").count() >= 1
    assert page.get_by_text("second cannot use 3").first.is_visible()
    assert errors == []


def test_a_recorded_runs_report_shows_its_edges_and_logs_without_the_code(browser, tmp_path):
    (tmp_path / "flow.py").write_text(
        textwrap.dedent(
            """
            from plait import Pipeline, current, step

            @step
            def first(n: int) -> int:
                current().logger.info("first got %d", n)
                return n

            @step
            def second(first: int) -> int:
                with current().capture_output():
                    print("second printed this")
                raise RuntimeError(f"second cannot use {first}")

            pipeline = Pipeline([first, second], name="recorded")
            """
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "PLAIT_STORE"}
    command = [sys.executable, "-m", "plait"]
    ran = subprocess.run(
        [*command, "run", "flow.py", "-p", "n=3", "-q", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )
    assert ran.returncode == 1, ran.stderr
    run_id = ran.stdout.split('"run_id": "', 1)[1].split('"', 1)[0]
    (tmp_path / "flow.py").unlink()  # the record alone draws the report
    shown = subprocess.run(
        [*command, "runs", "show", run_id, "--html", "run.html"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )
    assert shown.returncode == 0, shown.stderr
    page, errors = open_page(browser, tmp_path / "run.html")
    assert page.locator("svg.plait-graph .plait-edge").count() >= 2  # n -> first -> second
    assert page.locator("svg.plait-graph .plait-edge title").first.text_content()
    # a failed step's logs are open; another's open with a click
    assert page.get_by_text("[stdout] second printed this").is_visible()
    assert not page.get_by_text("INFO first got 3").is_visible()
    page.get_by_text("Logs of first").click()
    assert page.get_by_text("INFO first got 3").is_visible()
    assert errors == []
