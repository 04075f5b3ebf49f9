"""The web UI in process (``starlette.testclient``): security, pages, actions.

The history is made by real runs of a real pipeline file (a failed run, its resume, a map
step, logs, hostile text in names, params, errors and tags); the app is
``plait.ui.app(store, token=...)``. The browser test (``test_ui_browser.py``) drives the
real ``plait ui`` process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from plait import Pipeline, Step, Store, step
from plait.ui import app

TOKEN = "test-token-0123456789"
XSS = "<script>alert(1)</script>"

FLOW = textwrap.dedent(
    """
    import os

    from plait import Pipeline, current, step


    @step
    def load(n: int) -> list[int]:
        current().logger.info("loaded %d rows", n)
        return list(range(n))


    @step(map="load")
    def square(load: int) -> int:
        return load * load


    @step
    def total(square: list[int]) -> int:
        if os.environ.get("FLOW_FAIL") == "1":
            raise RuntimeError("total <b>refused</b> the input")
        return sum(square)


    pipeline = Pipeline([load, square, total], name="flow")
    """
)


def _hostile(value: str) -> None:
    raise ValueError(f"<img src=x onerror=alert(2)> {value}")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with real runs: ``failed`` (flow), ``resumed`` (its resume), ``ok`` runs
    with tags, and ``hostile`` (a step named like a script, hostile param/error/tag)."""
    root = tmp_path_factory.mktemp("ui")
    (root / "ui_flow.py").write_text(FLOW, encoding="utf-8")
    sys.path.insert(0, str(root))
    try:
        import ui_flow as flow  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(root))
    store = Store(root / "store")
    os.environ["FLOW_FAIL"] = "1"
    try:
        failed = flow.pipeline.run(params={"n": 4}, store=store, on_error="continue")
    finally:
        del os.environ["FLOW_FAIL"]
    resumed = flow.pipeline.resume(failed.run_id, store=store)
    oks = [
        flow.pipeline.run(params={"n": n}, store=store, tags=["nightly" if n % 2 else "adhoc"])
        for n in range(5, 17)
    ]
    hostile = Pipeline([Step(_hostile, name=XSS)], name="evil<i>").run(
        params={"value": "<svg onload=alert(3)>"},
        store=store,
        on_error="continue",
        tags=["<u>tag</u>"],
    )
    store.close()
    return {
        "root": str(root),
        "store": str(root / "store"),
        "failed": failed.run_id,
        "resumed": resumed.run_id,
        "ok": oks[-1].run_id,
        "first_ok": oks[0].run_id,
        "hostile": hostile.run_id,
        "total_version": oks[-1].steps["total"].data_versions["total"],
        "load_version": oks[-1].steps["load"].data_versions["load"],
    }


@pytest.fixture
def client(history: dict[str, str]) -> Iterator[TestClient]:
    store = Store(history["store"])
    with TestClient(app(store, token=TOKEN, target=f"{history['root']}/ui_flow.py:pipeline")) as c:
        yield c
    store.close()


def signed_in(client: TestClient) -> TestClient:
    response = client.get(f"/runs?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303
    return client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, "no CSRF field in the page"
    return match.group(1)


# -- authentication ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/runs", "/runs/abc", "/static/ui.css", "/compare"])
def test_every_path_needs_the_token(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 401
    assert "token" in response.text
    assert "run" not in response.headers.get("set-cookie", "")


def test_a_wrong_token_is_refused(client):
    response = client.get("/runs?token=wrong", follow_redirects=False)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


def test_the_token_is_exchanged_for_an_httponly_strict_cookie(client):
    response = client.get(f"/runs?status=failed&token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/runs?status=failed"  # the token leaves the URL
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert TOKEN not in cookie  # the cookie is derived from the token, not the token
    assert client.get("/runs").status_code == 200


def test_the_redirect_after_the_token_stays_on_this_site(client):
    response = client.get(f"//evil.example/x?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303
    assert not response.headers["location"].startswith("//")


def test_a_bearer_token_is_accepted(client):
    response = client.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert client.get("/runs", headers={"Authorization": "Bearer nope"}).status_code == 401


# -- CSRF -----------------------------------------------------------------------------------------
def test_a_post_without_the_csrf_token_is_refused(client, history):
    signed_in(client)
    before = client.get("/runs").text.count("<tr")
    for data in ({}, {"csrf": "forged"}):
        response = client.post(f"/runs/{history['failed']}/resume", data=data)
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert client.get("/runs").text.count("<tr") == before  # nothing ran


# -- headers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "authenticated"),
    [("/runs", True), ("/runs", False), ("/static/ui.css", True), ("/nowhere", True)],
)
def test_security_headers_on_every_response(client, path, authenticated):
    if authenticated:
        signed_in(client)
    headers = client.get(path).headers
    csp = headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"


# -- escaping ------------------------------------------------------------------------------------
def test_user_data_is_escaped(client, history):
    signed_in(client)
    run_page = client.get(f"/runs/{history['hostile']}").text
    listing = client.get("/runs").text
    for page in (run_page, listing):
        assert "<script>alert" not in page
        assert "<u>tag</u>" not in page
        assert "&lt;u&gt;tag&lt;/u&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run_page  # the step name
    assert "&lt;img src=x onerror=alert(2)&gt;" in run_page  # the error and traceback
    assert "<img src=x" not in run_page
    assert "&lt;svg onload=alert(3)&gt;" in run_page  # the param
    assert "<svg onload" not in run_page
    assert "evil&lt;i&gt;" in listing  # the pipeline name
    assert "<script" not in run_page  # no script at all, not even ours


# -- static files ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/static/../__init__.py",
        "/static/%2e%2e/__init__.py",
        "/static/..%2f_app.py",
        "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/static/ui.css/../../_app.py",
        "/static/..\\_app.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/",
        "/static/nothing.css",
    ],
)
def test_static_routes_serve_only_the_packaged_files(client, path):
    signed_in(client)
    response = client.get(path)
    assert response.status_code == 404
    assert "import" not in response.text
    assert "root:" not in response.text


def test_the_stylesheet_is_served(client):
    signed_in(client)
    response = client.get("/static/ui.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


# -- the command ---------------------------------------------------------------------------------
def _plait(*args: str, cwd: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("PLAIT_STORE", "PLAIT_TOKEN")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "plait", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_a_non_loopback_host_is_refused_without_an_explicit_token(history, host):
    completed = _plait("ui", "--store", history["store"], "--host", host, cwd=history["root"])
    assert completed.returncode == 2, completed.stderr
    assert "PLAIT_TOKEN" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_importing_plait_does_not_import_the_ui_dependencies(tmp_path):
    probe = (
        "import sys, plait; "
        "print(sorted(m for m in ('starlette', 'jinja2', 'uvicorn') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert completed.stdout.strip() == "[]"


# -- pages -----------------------------------------------------------------------------------------
def run_ids(html: str) -> list[str]:
    return re.findall(r'<a class="run-id" href="/runs/([0-9a-f]+)"', html)


def test_the_runs_page_lists_newest_first_with_totals(client, history):
    signed_in(client)
    page = client.get("/runs").text
    ids = run_ids(page)
    assert ids[0] == history["hostile"]
    assert ids[-1] == history["failed"]
    assert len(ids) == 15
    assert "15 runs" in page
    assert "2 failed" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", 2),
        ("pipeline=flow", 14),
        ("tag=nightly", 6),
        ("tag=adhoc&pipeline=flow", 6),
        ("q=evil", 1),
        ("q=EVIL", 1),
        ("q=%25", 0),  # a LIKE wildcard is searched as text
        ("since=2000-01-01", 15),
        ("until=2000-01-01", 0),
    ],
)
def test_the_runs_page_filters(client, query, expected):
    signed_in(client)
    page = client.get(f"/runs?{query}").text
    assert len(run_ids(page)) == expected
    assert f"{expected} run" in page


def test_the_runs_page_paginates_and_sorts(client, history):
    signed_in(client)
    first = client.get("/runs?per_page=10").text
    second = client.get("/runs?per_page=10&page=2").text
    assert len(run_ids(first)) == 10
    assert len(run_ids(second)) == 5
    assert not set(run_ids(first)) & set(run_ids(second))
    assert 'href="/runs?per_page=10&amp;page=2"' in first
    oldest = client.get("/runs?sort=started&order=asc").text
    assert run_ids(oldest)[0] == history["failed"]
    assert client.get("/runs?sort=nonsense").status_code == 400
    assert client.get("/runs?since=yesterday").status_code == 400


def test_the_run_page_shows_graph_timeline_steps_errors_and_logs(client, history):
    signed_in(client)
    page = client.get(f"/runs/{history['failed']}").text
    assert 'class="plait-graph"' in page
    assert 'class="plait-timeline"' in page
    for name in ("load", "square", "total"):
        assert f">{name}<" in page
    assert "RuntimeError" in page
    assert "total &lt;b&gt;refused&lt;/b&gt; the input" in page
    assert "Traceback" in page
    assert "loaded 4 rows" in page  # the step's log
    assert f'href="/runs/{history["resumed"]}"' in page  # resumed by
    resumed = client.get(f"/runs/{history['resumed']}").text
    assert f'href="/runs/{history["failed"]}"' in resumed  # the origin run
    assert "n" in resumed
    assert client.get(f"/runs/{history['failed'][:16]}").status_code == 200  # a prefix
    assert client.get("/runs/ffffffffff").status_code == 404


def test_a_large_run_shows_its_steps_a_page_at_a_time(tmp_path):
    steps = [Step(lambda: 0, name="s0000", outputs=["d0000"])]
    steps += [
        Step(
            lambda x: x + 1, name=f"s{i:04d}", inputs={"x": f"d{i - 1:04d}"}, outputs=[f"d{i:04d}"]
        )
        for i in range(1, 520)
    ]
    store = Store(tmp_path / "big")
    run_id = Pipeline(steps, name="big").run(store=store).run_id
    with TestClient(app(store, token=TOKEN)) as big:
        signed_in(big)
        first = big.get(f"/runs/{run_id}").text
        second = big.get(f"/runs/{run_id}?page=2").text
    store.close()
    assert "graphs are drawn up to 400 nodes" in first
    assert 'class="plait-timeline"' in first
    assert first.count('name="steps" value=') == 500
    assert second.count('name="steps" value=') == 20
    assert "steps 1 to 500 of 520" in first
    assert 'value="s0519"' in second


def test_the_step_page_shows_one_step_across_runs(client):
    signed_in(client)
    page = client.get("/steps/flow/total").text
    assert "<svg" in page
    assert "failed" in page
    assert "ok" in page
    assert "14 executions" in page
    assert client.get("/steps/flow/nothing").status_code == 404


def test_the_lineage_page_links_producers_and_consumers(client, history):
    signed_in(client)
    page = client.get(f"/lineage/{history['total_version']}").text
    assert "total" in page
    assert f'href="/runs/{history["ok"]}' in page
    assert "/lineage/" in page  # upstream values are links
    load_page = client.get(f"/lineage/{history['load_version']}").text
    assert "square" in load_page  # a consumer downstream
    assert client.get("/lineage/0000").status_code == 404


def test_the_compare_page_shows_two_or_more_runs(client, history):
    signed_in(client)
    runs = ",".join([history["failed"], history["resumed"], history["ok"]])
    page = client.get(f"/compare?runs={runs}").text
    for run_id in (history["failed"], history["resumed"], history["ok"]):
        assert run_id[:10] in page
    assert "total" in page
    assert "16" in page  # the param n of the last run
    assert client.get("/compare?runs=abc").status_code == 400
    form = client.get(f"/compare?runs={history['failed']}&runs={history['ok']}")
    assert form.status_code == 200


# -- actions --------------------------------------------------------------------------------------
def test_resume_asks_for_confirmation_then_creates_a_new_run(client, history):
    signed_in(client)
    confirm = client.get(f"/runs/{history['failed']}/resume")
    assert confirm.status_code == 200
    assert 'method="post"' in confirm.text
    response = client.post(
        f"/runs/{history['failed']}/resume",
        data={"csrf": csrf_of(confirm.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    new_id = response.headers["location"].removeprefix("/runs/")
    assert new_id not in (history["failed"], history["resumed"])
    page = client.get(f"/runs/{new_id}").text
    assert f'href="/runs/{history["failed"]}"' in page
    assert new_id in run_ids(client.get("/runs").text)


def test_rerun_of_chosen_steps(client, history):
    signed_in(client)
    confirm = client.get(f"/runs/{history['ok']}/rerun?steps=total")
    assert confirm.status_code == 200
    response = client.post(
        f"/runs/{history['ok']}/rerun",
        data={"csrf": csrf_of(confirm.text), "steps": "total"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    new_page = client.get(response.headers["location"]).text
    assert "succeeded" in new_page


def test_actions_need_a_target(history):
    store = Store(history["store"])
    assert store.history.run(history["hostile"]).target is None  # built in a function
    with TestClient(app(store, token=TOKEN)) as bare:
        signed_in(bare)
        page = bare.get(f"/runs/{history['hostile']}/resume").text
        assert "records no target" in page
        assert "--target" in page
        response = bare.post(f"/runs/{history['hostile']}/resume", data={"csrf": csrf_of(page)})
        assert response.status_code == 409
        assert "records no target" in response.text
    store.close()


def plait_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m plait ARGS`` in ``cwd``."""
    environment = {k: v for k, v in os.environ.items() if k != "PLAIT_STORE"} | env
    return subprocess.run(
        [sys.executable, "-m", "plait", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_actions_use_the_target_plait_run_recorded(tmp_path):
    (tmp_path / "cli_flow.py").write_text(FLOW, encoding="utf-8")
    done = plait_cli(
        "run", "cli_flow.py:pipeline", "--param", "n=3", "--store", "store", "-q",
        cwd=tmp_path, FLOW_FAIL="1",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    store = Store(tmp_path / "store")
    failed = store.history.runs()[0]
    assert failed.status == "failed"
    assert failed.target == f"{tmp_path / 'cli_flow.py'}:pipeline"  # made absolute
    with TestClient(app(store, token=TOKEN)) as bare:  # no --target: the recorded one
        signed_in(bare)
        assert failed.target in bare.get(f"/runs/{failed.run_id}").text
        page = bare.get(f"/runs/{failed.run_id}/resume").text
        assert "problem" not in page
        assert failed.target in page
        response = bare.post(
            f"/runs/{failed.run_id}/resume", data={"csrf": csrf_of(page)}, follow_redirects=False
        )
        assert response.status_code == 303
        new_id = response.headers["location"].removeprefix("/runs/")
    resumed = store.history.run(new_id)
    assert resumed.origin_run_id == failed.run_id
    assert resumed.status == "succeeded"
    assert resumed.target == failed.target
    store.close()


def test_a_recorded_target_that_cannot_load_is_refused_clearly(tmp_path):
    (tmp_path / "gone_flow.py").write_text(FLOW, encoding="utf-8")
    done = plait_cli(
        "run", "gone_flow.py:pipeline", "--param", "n=2", "--store", "store", "-q",
        cwd=tmp_path, FLOW_FAIL="1",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (tmp_path / "gone_flow.py").unlink()
    store = Store(tmp_path / "store")
    run_id = store.history.runs()[0].run_id
    with TestClient(app(store, token=TOKEN)) as bare:
        signed_in(bare)
        page = bare.get(f"/runs/{run_id}/resume").text
        response = bare.post(f"/runs/{run_id}/resume", data={"csrf": csrf_of(page)})
        assert response.status_code == 409
        assert "cannot load the recorded target" in response.text
        assert "--target" in response.text
    store.close()


def test_a_pipeline_object_is_a_target_too(history):
    pipeline = Pipeline([Step(_hostile, name="other")], name="other")
    store = Store(history["store"])
    with TestClient(app(store, token=TOKEN, target=pipeline)) as other:
        signed_in(other)
        page = other.get(f"/runs/{history['failed']}/resume").text
        assert "other" in page  # the target runs another pipeline: refused
        response = other.post(f"/runs/{history['failed']}/resume", data={"csrf": csrf_of(page)})
        assert response.status_code == 409
    store.close()


def test_the_page_reads_a_store_it_did_not_write(tmp_path):
    store = Store(tmp_path / "empty")
    with TestClient(app(store, token=TOKEN)) as empty:
        signed_in(empty)
        page = empty.get("/runs").text
        assert "0 runs" in page
    store.close()


def test_path_objects_are_accepted(history):
    with TestClient(app(Path(history["store"]), token=TOKEN)) as by_path:
        signed_in(by_path)
        assert by_path.get("/runs").status_code == 200


# -- every history backend ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_the_pages_and_actions_work_on_every_history_backend(tmp_path, request, history, backend):
    """The UI reads the history only through ``History``'s methods: DuckDB and PostgreSQL
    answer as SQLite does (the module's other tests)."""
    flow = sys.modules["ui_flow"]  # imported by the ``history`` fixture
    if backend == "duckdb":
        url = f"duckdb:///{tmp_path / 'history.duckdb'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    store = Store(tmp_path / "store", history=url)
    os.environ["FLOW_FAIL"] = "1"
    try:
        failed = flow.pipeline.run(params={"n": 3}, store=store, on_error="continue")
    finally:
        del os.environ["FLOW_FAIL"]
    oks = [
        flow.pipeline.run(params={"n": n}, store=store, tags=["nightly" if n % 2 else "adhoc"])
        for n in range(4, 8)
    ]
    version = oks[-1].steps["total"].data_versions["total"]
    assert store.history.run(failed.run_id).target == "ui_flow:pipeline"  # a module global
    with TestClient(app(store, token=TOKEN)) as client:
        signed_in(client)
        listing = client.get("/runs").text
        assert set(run_ids(listing)) == {failed.run_id, *(r.run_id for r in oks)}
        assert run_ids(client.get("/runs?q=REFUSED").text) == [failed.run_id]
        nightly = run_ids(client.get("/runs?tag=nightly&status=succeeded&per_page=1").text)
        assert nightly == [oks[-1].run_id]
        assert client.get("/runs?sort=duration&order=asc&page=2&per_page=2").status_code == 200
        assert "refused" in client.get(f"/runs/{failed.run_id}").text
        assert client.get("/steps/flow/total").status_code == 200
        assert client.get(f"/lineage/{version}").status_code == 200
        assert client.get(f"/compare?runs={failed.run_id},{oks[0].run_id}").status_code == 200
        page = client.get(f"/runs/{failed.run_id}/resume").text
        response = client.post(
            f"/runs/{failed.run_id}/resume", data={"csrf": csrf_of(page)}, follow_redirects=False
        )
        assert response.status_code == 303
        new_id = response.headers["location"].removeprefix("/runs/")
        assert f'href="/runs/{new_id}"' in client.get(f"/runs/{failed.run_id}").text
    assert store.history.run(new_id).status == "succeeded"
    store.history.close()


def test_the_run_page_shows_each_steps_peak_memory(tmp_path):
    from plait.observe import ProfileHook

    @step
    def big() -> int:
        return len(bytearray(3 << 20))  # about 3 MiB at its peak

    @step
    def small(big: int) -> int:
        return big + 1

    store = Store(tmp_path / "mem")
    run_id = Pipeline([big, small], name="mem").run(store=store, hooks=[ProfileHook()]).run_id
    plain = Pipeline([big, small], name="mem").run(store=store, force=True).run_id
    with TestClient(app(store, token=TOKEN)) as ui:
        signed_in(ui)
        page = ui.get(f"/runs/{run_id}").text
        unprofiled = ui.get(f"/runs/{plain}").text
    store.close()
    assert "<th>Peak memory</th>" in page
    row = page[page.index('value="big"') :]
    row = row[: row.index("</tr>")]
    assert re.search(r"[34](\.\d)? MiB", row), row
    assert "<th>Peak memory</th>" not in unprofiled  # no column when nothing was measured
