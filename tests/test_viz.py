"""Drawings of pipelines and runs: text, Mermaid, DOT and self-contained HTML."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from plait import Pipeline, Step, Store, current, step
from plait.errors import RunFailed

# -- steps shared by the tests -------------------------------------------------------------


@step
def load(path):
    return [3, 1, 2]


@step
def clean(load):
    return sorted(load)


@step(outputs=["X_train", "X_test"], inputs={"test_size": "config.test_size"})
def split(clean, test_size):
    return clean[test_size:], clean[:test_size]


@step
def train(X_train):
    return sum(X_train)


@step(after=["load"])
def report(X_test):
    return len(X_test)


@step
def explode(train):
    raise ValueError("boom")


@step
def after_explode(explode):
    return explode


@step(map="items")
def square(items):
    current().log_metric("seen", items)
    return items * items


@step
async def fetch(square):
    return square


@step(dynamic=True)
def expand(fetch):
    return Pipeline([inner_total])


@step
def inner_total(fetch):
    return sum(fetch)


@step(optional=True, outputs=[])
def notify(expand):
    return None


@step(on_failure=lambda exc, **inputs: -1)
def flaky(train):
    raise RuntimeError("flaky")


CONFIG = {"test_size": 1}


def training() -> Pipeline:
    return Pipeline([load, clean, split, train, report], name="training", config=CONFIG)


def failing() -> Pipeline:
    return Pipeline(
        [load, clean, split, train, explode, after_explode, report], name="fails", config=CONFIG
    )


def namespaced() -> Pipeline:
    prep = Pipeline([load, clean], name="prep")
    sub = prep.as_step(name="prep", inputs={"path": "path"}, outputs={"clean": "clean"})
    return Pipeline([sub, split, train], name="outer", config=CONFIG)


# -- helpers -------------------------------------------------------------------------------

_MERMAID_NODE = re.compile(r'^\s*([A-Za-z_]\w*)\(\[?"([^"]*)"')
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_DOT_NODE = re.compile(rf"^\s*({_QUOTED})\s*\[")
_DOT_EDGE = re.compile(rf"^\s*({_QUOTED})\s*->\s*({_QUOTED})")
_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", re.IGNORECASE)
_VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}


def mermaid_nodes(chart: str) -> dict[str, str]:
    """Node label (its first line, unescaped) -> node id."""
    nodes = {}
    for line in chart.splitlines():
        match = _MERMAID_NODE.match(line)
        if match:
            label = match.group(2).split("<br/>")[0]
            for code, char in (("#quot;", '"'), ("#lt;", "<"), ("#gt;", ">"), ("#35;", "#")):
                label = label.replace(code, char)
            nodes[label] = match.group(1)
    return nodes


def mermaid_class(chart: str, outcome: str) -> set[str]:
    members: set[str] = set()
    for line in chart.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "class" and parts[2] == outcome:
            members.update(parts[1].split(","))
    return members


def check_dot(source: str) -> None:
    """Structural checks, then a real parse when Graphviz is at hand."""
    unquoted = re.sub(_QUOTED, '""', source)
    assert unquoted.count("{") == unquoted.count("}")
    depth = 0
    for char in unquoted:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    declared = {m.group(1) for line in source.splitlines() if (m := _DOT_NODE.match(line))}
    edges = [m.groups() for line in source.splitlines() if (m := _DOT_EDGE.match(line))]
    assert edges
    for start, end in edges:
        assert start in declared, start
        assert end in declared, end
    for line in unquoted.splitlines()[1:-1]:
        assert line.rstrip().endswith((";", "{", "}")), line
    try:
        import pydot
    except ImportError:
        pydot = None
    if pydot is not None:
        assert pydot.graph_from_dot_data(source)
    elif shutil.which("dot"):
        done = subprocess.run(
            ["dot", "-Tsvg"], input=source, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert "<svg" in done.stdout


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> closes nothing"
        assert self.stack.pop() == tag, f"</{tag}> closes the wrong element"


def check_html(page: str) -> list[str]:
    """Balanced tags, no external resource; returns the tags seen."""
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    assert not _EXTERNAL.search(page)
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page
    assert "<link" not in page
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", page))
    return checker.tags


# -- text ----------------------------------------------------------------------------------


def test_ascii_lists_steps_in_order_with_inputs_and_outputs():
    text = training().to_ascii()
    lines = text.splitlines()
    assert lines[0] == "pipeline 'training': 5 steps; inputs: config.test_size, path"
    assert re.fullmatch(r"\[1\] load\s+\(path\) -> load", lines[1])
    assert re.fullmatch(r"\[3\] split\s+\(clean, config\.test_size\) -> X_train, X_test", lines[3])
    assert re.fullmatch(r"\[5\] report\s+\(X_test\) -> report  \[after: load\]", lines[5])


def test_ascii_marks_async_map_dynamic_and_optional_steps():
    text = Pipeline([square, fetch, expand, notify]).to_ascii()
    assert "[map over items]" in text
    assert "(square) -> fetch  [async]" in text
    assert "(fetch) -> expand  [dynamic]" in text
    assert "(expand) -> (no outputs)  [optional]" in text


def test_ascii_of_an_empty_pipeline():
    assert Pipeline(name="empty").to_ascii() == "pipeline 'empty': no steps"


# -- Mermaid -------------------------------------------------------------------------------


def test_mermaid_has_every_step_and_labelled_edges():
    chart = training().to_mermaid()
    assert chart.startswith("flowchart LR\n")
    nodes = mermaid_nodes(chart)
    assert {"load", "clean", "split", "train", "report", "path", "config"} <= set(nodes)
    assert f'{nodes["load"]} -->|"load"| {nodes["clean"]}' in chart
    assert f'{nodes["split"]} -->|"X_train"| {nodes["train"]}' in chart
    assert f'{nodes["config"]} -->|"test_size"| {nodes["split"]}' in chart
    assert f"{nodes['load']} -.-> {nodes['report']}" in chart  # after= is dashed


def test_mermaid_draws_inputs_as_stadiums():
    chart = training().to_mermaid()
    assert re.search(r'^\s*in_path\(\["path"\]\):::input$', chart, re.MULTILINE)
    assert re.search(r'^\s*in_config\(\["config"\]\):::input$', chart, re.MULTILINE)


def test_mermaid_namespace_becomes_a_subgraph():
    chart = namespaced().to_mermaid()
    assert re.search(r'^\s*subgraph \w+\["prep"\]$', chart, re.MULTILINE)
    block = chart.split('["prep"]', 1)[1].split("\n    end", 1)[0]
    assert '("prep.load")' in block
    assert '("prep.clean")' in block
    assert '("split")' not in block


def test_mermaid_ids_are_safe_and_labels_escaped():
    odd = Step(lambda raw: raw, inputs=["raw"], outputs=["out"], name='clean-up "v2" #1 é.x')
    other = Step(lambda raw: raw, inputs=["raw"], outputs=["out2"], name="clean up v2 1 é x")
    chart = Pipeline([odd, other]).to_mermaid()
    nodes = mermaid_nodes(chart)
    ids = list(nodes.values())
    assert len(set(ids)) == len(ids) == 3
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", node_id) for node_id in ids)
    assert nodes['clean-up "v2" #1 é.x'] != nodes["clean up v2 1 é x"]
    assert "clean-up #quot;v2#quot; #35;1 é.x" in chart


def test_run_mermaid_colours_each_step_by_outcome():
    result = failing().run(params={"path": "p"}, on_error="continue")
    chart = result.to_mermaid()
    nodes = mermaid_nodes(chart)
    assert {nodes["load"], nodes["clean"], nodes["train"]} <= mermaid_class(chart, "ok")
    assert mermaid_class(chart, "failed") == {nodes["explode"]}
    assert mermaid_class(chart, "skipped") == {nodes["after_explode"]}
    assert re.search(r"^\s*classDef failed fill:#\w+", chart, re.MULTILINE)
    assert f'{nodes["train"]} -->|"train"| {nodes["explode"]}' in chart


def test_run_mermaid_marks_fallback_and_not_run_steps():
    fallback = Pipeline([load, clean, split, train, flaky], config=CONFIG).run(params={"path": 1})
    chart = fallback.to_mermaid()
    assert mermaid_class(chart, "fallback") == {mermaid_nodes(chart)["flaky"]}

    with pytest.raises(RunFailed) as failure:
        failing().run(params={"path": "p"})
    chart = failure.value.result.to_mermaid()
    nodes = mermaid_nodes(chart)
    assert nodes["after_explode"] in mermaid_class(chart, "not_run")
    assert "stroke-dasharray" in chart


def test_cached_steps_are_blue_and_their_data_versions_listed(tmp_path):
    pipeline = training()
    pipeline.run(params={"path": "p"}, store=Store(tmp_path))
    result = pipeline.run(params={"path": "p"}, store=Store(tmp_path))
    chart = result.to_mermaid()
    nodes = mermaid_nodes(chart)
    assert mermaid_class(chart, "cached") == {nodes[name] for name in result.steps}
    assert "classDef cached fill:" in chart
    page = result.to_html()
    digest = result.steps["split"].data_versions["X_train"]
    assert f'<code title="{digest}">X_train: {digest[:12]}</code>' in page


def test_run_without_its_graph_draws_the_steps_only():
    result = training().run(params={"path": "p"})
    result.graph = None
    chart = result.to_mermaid()
    assert set(mermaid_nodes(chart)) == set(result.steps)
    assert "-->" not in chart
    assert "<svg" in result.to_html()


def test_dynamic_inner_steps_are_drawn_in_their_namespace():
    result = Pipeline([square, fetch, expand, notify]).run(params={"items": [1, 2]})
    chart = result.to_mermaid()
    nodes = mermaid_nodes(chart)
    assert "expand.inner_total" in nodes
    assert re.search(r'^\s*subgraph \w+\["expand"\]$', chart, re.MULTILINE)
    assert f"{nodes['expand']} -.-> {nodes['expand.inner_total']}" in chart


# -- DOT -----------------------------------------------------------------------------------


def test_dot_is_valid_and_has_every_step_and_edge():
    source = training().to_dot()
    check_dot(source)
    assert source.startswith('digraph "training" {')
    assert '"s_split" -> "s_train" [label="X_train"];' in source
    assert '"s_load" -> "s_report" [style=dashed];' in source
    assert '"in_config" [label="config", shape=ellipse' in source
    for name in ("load", "clean", "split", "train", "report"):
        assert f'[label="{name}"' in source


def test_dot_namespace_becomes_a_cluster():
    source = namespaced().to_dot()
    check_dot(source)
    cluster = source.split('subgraph "cluster_prep" {', 1)[1].split("\n    }", 1)[0]
    assert '[label="prep.load"]' in cluster
    assert '[label="prep.clean"]' in cluster


def test_dot_quotes_and_escapes_odd_names():
    odd = Step(lambda raw: raw, inputs=["raw"], outputs=["out"], name='say "hi" \\ {x}')
    sink = Step(lambda out: None, inputs=["out"], outputs=[], name="sink")
    source = Pipeline([odd, sink], name='p "1"').to_dot()
    check_dot(source)
    assert 'digraph "p \\"1\\"" {' in source
    assert '[label="say \\"hi\\" \\\\ {x}"]' in source


# -- HTML ----------------------------------------------------------------------------------


def test_pipeline_html_is_an_inline_svg_drawing():
    fragment = training()._repr_html_()
    tags = check_html(fragment)
    assert tags.count("svg") == 1
    assert tags.count("rect") == 7  # five steps, two inputs
    for name in ("load", "clean", "split", "train", "report"):
        assert f"<title>{name}</title>" in fragment
    assert "<title>split → train: X_train</title>" in fragment
    assert 'stroke-dasharray="5 4"' in fragment  # the after= edge


def test_pipeline_html_escapes_names():
    odd = Step(lambda raw: raw, inputs=["raw"], outputs=["out"], name="<b>bold</b>")
    fragment = Pipeline([odd])._repr_html_()
    check_html(fragment)
    assert "<b>" not in fragment
    assert "&lt;b&gt;bold&lt;/b&gt;" in fragment


def test_run_report_is_one_self_contained_page():
    result = failing().run(params={"path": "p"}, on_error="continue")
    page = result.to_html()
    tags = check_html(page)
    assert page.startswith("<!DOCTYPE html>")
    assert tags.count("svg") == 2  # the graph and the timeline
    assert result.run_id in page
    assert "fails" in page
    assert "failed" in page
    for name in result.steps:
        assert f"<code>{name}</code>" in page


def test_run_report_shows_the_error_message_and_traceback():
    result = failing().run(params={"path": "p"}, on_error="continue")
    page = result.to_html()
    details = page.split('<tr class="plait-error-row">', 1)[1].split("</tr>", 1)[0]
    assert "<details open><summary><strong>ValueError</strong>: boom</summary>" in details
    assert "<pre>Traceback (most recent call last):" in details
    assert "raise ValueError(&quot;boom&quot;)" in details


def test_run_report_timeline_has_one_bar_per_step_that_ran():
    result = failing().run(params={"path": "p"}, on_error="continue")
    page = result.to_html()
    timed = [rec for rec in result.steps.values() if rec.start_time is not None]
    assert page.count('<g class="plait-bar">') == len(timed)
    assert "<title>explode: failed, started at +" in page


def test_run_report_lists_metrics_versions_and_failed_elements():
    @step(map="items", min_success_ratio=0.5)
    def halve(items):
        if items == 0:
            raise ZeroDivisionError("element zero")
        current().log_metric("last", items)
        return 1 / items

    result = Pipeline([halve]).run(params={"items": [2, 0, 4]})
    page = result.to_html()
    check_html(page)
    assert "<code>last = 4</code>" in page
    assert "<code>1</code>: <details><summary><strong>ZeroDivisionError</strong>" in page
    assert "element zero" in page


def test_run_fragment_is_the_body_only():
    result = training().run(params={"path": "p"})
    fragment = result._repr_html_()
    check_html(fragment)
    assert fragment.startswith('<div class="plait-view plait-report"')
    assert "<html" not in fragment
    assert "<!DOCTYPE" not in fragment
    assert fragment in result.to_html()


def _gather(**inputs):
    return len(inputs)


def random_pipeline(seed: int, size: int = 40) -> Pipeline:
    rng = random.Random(seed)
    steps = []
    for index in range(size):
        sources = rng.sample(range(index), k=min(index, rng.randint(0, 3)))
        inputs = {f"p{source}": f"d{source}" for source in sources}
        if rng.random() < 0.3:
            inputs["knob"] = f"knob{rng.randint(0, 2)}"
        after = [f"s{rng.randrange(index)}"] if index and rng.random() < 0.2 else []
        steps.append(
            Step(_gather, inputs=inputs, outputs=[f"d{index}"], name=f"s{index}", after=after)
        )
    return Pipeline(steps, name=f"random{seed}")


@pytest.mark.parametrize("seed", range(5))
def test_layout_places_nodes_inside_the_drawing_without_overlaps(seed):
    pipeline = random_pipeline(seed)
    fragment = pipeline._repr_html_()
    check_html(fragment)
    width, height = map(float, re.search(r'viewBox="0 0 (\S+) (\S+)"', fragment).groups())
    rects = [
        tuple(map(float, found))
        for found in re.findall(r'<rect x="(\S+)" y="(\S+)" width="(\S+)" height="(\S+)"', fragment)
    ]
    assert len(rects) == len(pipeline.order) + fragment.count("plait-input")
    for x, y, w, h in rects:
        assert x >= 0
        assert y >= 0
        assert x + w <= width
        assert y + h <= height
    for i, (x1, y1, w1, h1) in enumerate(rects):
        for x2, y2, w2, h2 in rects[i + 1 :]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1
    for edge in re.findall(r'<path d="M(\S+),\S+ C', fragment):
        assert 0 <= float(edge) <= width
    check_dot(pipeline.to_dot())


def test_big_graphs_are_listed_not_drawn():
    chain = [Step(lambda x: x, inputs=["x0"], outputs=["x1"], name="s1")]
    chain += [
        Step(lambda x: x, inputs=[f"x{i}"], outputs=[f"x{i + 1}"], name=f"s{i + 1}")
        for i in range(1, 600)
    ]
    pipeline = Pipeline(chain)
    assert "drawings stop at" in pipeline._repr_html_()
    assert pipeline.to_mermaid().count(" -->") == 600
    assert len(pipeline.to_ascii().splitlines()) == 601


def test_a_long_chain_is_drawn_in_linear_time():
    # Quadratic work would take minutes here and hit the test timeout.
    size = 50_000
    chain = [
        Step(_gather, inputs={"x": f"x{i}"}, outputs=[f"x{i + 1}"], name=f"s{i}")
        for i in range(size)
    ]
    pipeline = Pipeline(chain)
    assert len(pipeline.to_ascii().splitlines()) == size + 1
    assert pipeline.to_mermaid().count(" -->") == size
    assert pipeline.to_dot().count(" -> ") == size
    fragment = pipeline._repr_html_()
    assert "drawings stop at" in fragment
    assert f"... and {size - 1000} more (see to_ascii())" in fragment


_DRAW_ALL = """
from plait import Pipeline, Step

def f(**inputs):
    return 1

steps = [
    Step(f, inputs={"a": "config.x.y", "b": "seed"}, outputs=["d0"], name="ns.one"),
    Step(f, inputs={"a": "d0", "b": "config"}, outputs=["d1"], name="ns.inner.two"),
    Step(f, inputs={"a": "d0"}, outputs=["d2"], name="three", after=["ns.one"]),
    Step(f, inputs={"a": "d1", "b": "d2", "c": "knob"}, outputs=[], name="four"),
]
p = Pipeline(steps, name="det")
print(p.to_ascii(), p.to_mermaid(), p.to_dot(), p._repr_html_())
"""


def test_drawings_are_deterministic_across_hash_seeds():
    outputs = {
        subprocess.run(
            [sys.executable, "-c", _DRAW_ALL],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
    assert "subgraph" in outputs.pop()


# -- one clock for the timeline and the table ---------------------------------------------------
def _took(page: str) -> dict[str, str]:
    return dict(
        re.findall(r"<title>([^<:]+): [a-z ]+, started at \+[^,]+, took ([^<]+)</title>", page)
    )


def _table_durations(page: str) -> dict[str, str]:
    rows = re.findall(
        r'<tr id="[^"]*" class="plait-[a-z_]+"><td[^>]*><code>([^<]+)</code></td>'
        r'.*?<td class="plait-num">\d+</td><td class="plait-num">([^<]+)</td>',
        page,
    )
    return dict(rows)


@step
def bulky(size: int) -> bytes:
    return os.urandom(size)  # stored after the function returns: that time counts too


@step
def measured(bulky: bytes) -> int:
    current().logger.info("measured %d bytes", len(bulky))
    return len(bulky)


def test_the_timeline_and_the_table_show_the_same_durations(tmp_path):
    result = Pipeline([bulky, measured]).run(params={"size": 40_000_000}, store=Store(tmp_path))
    page = result.to_html()
    took, table = _took(page), _table_durations(page)
    assert set(took) == set(table) == {"bulky", "measured"}
    assert took == table


def test_the_report_shows_each_steps_log_lines(tmp_path):
    result = Pipeline([bulky, measured]).run(params={"size": 10}, store=Store(tmp_path))
    page = result.to_html()
    check_html(page)
    logs = page.split('<tr class="plait-logs-row">', 1)[1].split("</tr>", 1)[0]
    assert "Logs of <code>measured</code> (1 line)" in logs
    assert "INFO measured 10 bytes" in logs
    assert page.count('<tr class="plait-logs-row">') == 1
