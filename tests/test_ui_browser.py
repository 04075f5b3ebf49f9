"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against a real
``plait ui`` process (``python -m plait ui`` on 127.0.0.1, a free port, the token from
``PLAIT_TOKEN``) over a history made by real runs: a failed run, its resume, runs with a
map step and logs.

Checked: every page loads with no console error (so the CSP blocks none of the UI's own
assets), filters and pagination, lineage navigation, compare, and a resume that creates a
new run. A screenshot of each page is saved in the test's tmp dir; with
``PLAIT_UI_SCREENSHOTS=DIR`` they are also copied to ``DIR/ui-*.png`` (how
``docs/img/ui-*.png`` were made). The server is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright

from plait import Store

CHROMIUM = os.environ.get("PLAIT_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TOKEN = "browser-test-token-9f2c1e"

FLOW = textwrap.dedent(
    """
    import os
    import time

    from plait import Pipeline, current, step


    @step
    def load(n: int) -> list[int]:
        current().logger.info("loaded %d rows", n)
        return list(range(n))


    @step(map="load")
    def square(load: int) -> int:
        time.sleep(0.002)
        return load * load


    @step
    def total(square: list[int]) -> int:
        if os.environ.get("FLOW_FAIL") == "1":
            raise RuntimeError("total cannot add <these> numbers")
        current().log_metric("count", len(square))
        return sum(square)


    @step
    def report(total: int, n: int) -> str:
        return f"{n} rows, total {total}"


    pipeline = Pipeline([load, square, total, report], name="browser_flow")
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A history of real runs and a ``plait ui`` process serving it."""
    root = tmp_path_factory.mktemp("ui_browser")
    (root / "browser_flow.py").write_text(FLOW, encoding="utf-8")
    sys.path.insert(0, str(root))
    try:
        import browser_flow as flow  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(root))
    store = Store(root / "store")
    runs = [flow.pipeline.run(params={"n": n}, store=store, tags=["nightly"]) for n in (3, 4)]
    os.environ["FLOW_FAIL"] = "1"
    try:
        failed = flow.pipeline.run(params={"n": 5}, store=store, on_error="continue")
        failed_again = flow.pipeline.run(params={"n": 6}, store=store, on_error="continue")
    finally:
        del os.environ["FLOW_FAIL"]
    resumed = flow.pipeline.resume(failed.run_id, store=store)
    store.close()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PLAIT_STORE", "FLOW_FAIL")}
    env["PLAIT_TOKEN"] = TOKEN
    log = (root / "server.log").open("w", encoding="utf-8")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "plait", "ui", "--port", str(port)),
            *("--store", "store", "--target", "browser_flow.py:pipeline"),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert server.stdout is not None
        announced = server.stdout.readline() + server.stdout.readline()
        assert f"http://127.0.0.1:{port}/runs?token={TOKEN}" in announced, announced
        yield {
            "base": f"http://127.0.0.1:{port}",
            "shots": str(root / "shots"),
            "failed": failed.run_id,
            "failed_again": failed_again.run_id,
            "resumed": resumed.run_id,
            "ok": runs[-1].run_id,
        }
    finally:
        server.terminate()
        try:
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate(timeout=10)
        log.close()
    assert server.returncode is not None  # no leftover server
    errors = (root / "server.log").read_text(encoding="utf-8")
    assert "Traceback" not in errors, errors


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium is needed at {CHROMIUM}: run .ci/system.sh (Debian's chromium package) "
            "or set PLAIT_TEST_CHROMIUM",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, site: dict[str, str]) -> Iterator[tuple[Page, list[str]]]:
    """One signed-in page, and the console errors seen on it."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))

    def failed(request: Request) -> None:
        # a navigation cancels what the last page still loads (its favicon): not an error;
        # a CSP refusal is a console error, seen above
        if request.failure != "net::ERR_ABORTED":
            errors.append(f"failed: {request.url} {request.failure}")

    opened.on("requestfailed", failed)
    opened.goto(f"{site['base']}/runs?token={TOKEN}")
    assert "token=" not in opened.url  # the token left the address bar
    yield opened, errors
    context.close()


def shot(page: Page, site: dict[str, str], name: str) -> None:
    folder = Path(site["shots"])
    folder.mkdir(exist_ok=True)
    path = folder / f"ui-{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 5_000
    wanted = os.environ.get("PLAIT_UI_SCREENSHOTS")
    if wanted:
        shutil.copy(path, Path(wanted) / path.name)


def test_the_ui_in_a_browser(page, site):
    page, errors = page
    base = site["base"]

    # runs: all of them, then a filter through the form, then pagination
    page.goto(f"{base}/runs")
    assert page.locator("a.run-id").count() == 5
    assert page.get_by_text("5 runs").is_visible()
    shot(page, site, "runs")
    page.select_option("select[name=status]", "failed")
    page.get_by_role("button", name="Apply").click()
    assert "status=failed" in page.url
    assert page.locator("a.run-id").count() == 2  # a resumed run stays failed: its resume is new
    page.goto(f"{base}/runs?per_page=2")
    assert page.locator("a.run-id").count() == 2
    page.get_by_role("link", name="next →").click()
    assert "page=2" in page.url
    assert page.locator("a.run-id").count() == 2
    assert page.get_by_text("page 2 of 3").is_visible()

    # a failed run: graph, timeline, error, logs, the run it was resumed as
    page.goto(f"{base}/runs/{site['failed_again']}")
    graph = page.locator("svg.plait-graph")
    assert graph.is_visible()
    assert graph.locator("text", has_text="total").first.is_visible()
    assert page.locator("svg.plait-timeline").is_visible()
    assert page.get_by_text("total cannot add <these> numbers").first.is_visible()
    shot(page, site, "run")
    assert not page.get_by_text("loaded 6 rows").first.is_visible()  # folded
    page.locator("summary", has_text="Logs of load").click()
    assert page.get_by_text("loaded 6 rows").first.is_visible()

    # one step across runs
    page.locator("table.steps").get_by_role("link", name="total", exact=True).click()
    assert "/steps/browser_flow/total" in page.url
    assert page.locator("svg.chart").is_visible()
    assert page.get_by_text("5 executions").is_visible()
    shot(page, site, "step")

    # lineage: from the output of `total` to its producer's input, then upstream again
    page.goto(f"{base}/runs/{site['ok']}")
    page.locator("table.steps a.version", has_text="total:").click()
    assert "/lineage/" in page.url
    assert page.get_by_role("heading", name="Produced by").is_visible()
    first = page.url
    page.locator("table.steps a.version", has_text="square:").first.click()
    assert page.url != first
    assert page.locator("code", has_text="square").first.is_visible()
    shot(page, site, "lineage")

    # compare: tick two runs on the runs page
    page.goto(f"{base}/runs")
    page.check(f"input[value='{site['ok']}']")
    page.check(f"input[value='{site['failed_again']}']")
    page.get_by_role("button", name="Compare the ticked runs").click()
    assert "/compare" in page.url
    assert page.locator("tr.differ").count() >= 2  # the param n and the steps that differ
    shot(page, site, "compare")

    # resume a failed run: the confirmation, then the new run, linked to its origin
    page.goto(f"{base}/runs/{site['failed_again']}")
    page.get_by_role("link", name="Resume this run…").click()
    assert page.locator("form[method=post] input[name=csrf]").count() == 1
    shot(page, site, "resume")
    page.get_by_role("button", name="Resume").click()
    page.wait_for_url(lambda url: "/runs/" in url and site["failed_again"] not in url)
    assert page.locator("a.origin").get_attribute("href") == f"/runs/{site['failed_again']}"
    assert page.locator("h1 .status-succeeded").is_visible()
    new_id = page.url.rsplit("/", 1)[1]
    page.goto(f"{base}/runs")
    assert page.locator("a.run-id").first.inner_text() == new_id
    assert page.get_by_text("6 runs").is_visible()

    assert errors == []


def test_the_server_refuses_a_browser_without_the_token(browser, site):
    context = browser.new_context()
    fresh = context.new_page()
    response = fresh.goto(f"{site['base']}/runs")
    assert response is not None
    assert response.status == 401
    context.close()


def test_the_server_process_takes_a_bearer_token(site):
    request = urllib.request.Request(
        f"{site['base']}/runs", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
