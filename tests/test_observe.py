"""Built-in hooks: progress display, OpenTelemetry tracing (real SDK) and memory profiling."""

from __future__ import annotations

import io
import re
import tracemalloc

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from plait import Pipeline, Store, current, step
from plait.observe import OpenTelemetryHook, ProfileHook, ProgressHook

BIG = 20_000_000


@step
def source(n: int) -> list[int]:
    return list(range(n))


@step
def doubled(source: list[int]) -> list[int]:
    return [2 * x for x in source]


@step
def broken(source: list[int]) -> int:
    raise ValueError(f"cannot take {len(source)} numbers")


@step
def after_broken(broken: int) -> int:
    return broken


def mixed() -> Pipeline:
    return Pipeline([source, doubled, broken, after_broken], name="mixed")


# -- progress ---------------------------------------------------------------------------------
def test_plain_progress_writes_a_line_per_event():
    out = io.StringIO()
    mixed().run(params={"n": 3}, hooks=[ProgressHook(out)], on_error="continue")
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines[0].startswith("run ")
    assert lines[0].endswith("of 'mixed' started (sequential)")
    assert "source started" in lines
    assert any(line.startswith("doubled ok in ") for line in lines)
    assert any(
        line.startswith("broken FAILED after ") and "ValueError: cannot take 3 numbers" in line
        for line in lines
    )
    assert "after_broken skipped: upstream step 'broken' failed" in lines
    assert lines[-1].endswith(": 2 ok, 1 failed, 1 skipped")
    assert " failed in " in lines[-1]


def test_plain_progress_shows_cache_hits(tmp_path):
    store = Store(tmp_path / "store")
    pipeline = Pipeline([source, doubled], name="cached")
    pipeline.run(params={"n": 3}, store=store)
    out = io.StringIO()
    pipeline.run(params={"n": 3}, store=store, hooks=[ProgressHook(out, live=False)])
    text = out.getvalue()
    assert "source cached" in text
    assert "doubled cached" in text
    assert "started" not in text.split("\n", 1)[1]  # cache hits never start
    assert text.rstrip().endswith(": 2 cached")


def test_live_progress_draws_counts_and_ends_with_the_outcome():
    out = io.StringIO()
    hook = ProgressHook(out, live=True, total=4)
    mixed().run(params={"n": 3}, hooks=[hook], on_error="continue")
    text = out.getvalue()
    assert "\x1b[" in text  # drawn for a terminal
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "✗ broken failed: ValueError: cannot take 3 numbers" in text
    assert "failed in" in text
    lines = hook.render_lines()  # the final state of the view
    assert "4/4 steps" in lines[0]
    assert "4/4" in lines[1]  # the bar
    assert "2 done" in lines[2]
    assert "1 failed" in lines[2]
    assert "1 skipped" in lines[2]
    assert "0 running" in lines[2]


def test_auto_progress_is_plain_when_the_stream_is_not_a_terminal():
    out = io.StringIO()
    Pipeline([source]).run(params={"n": 1}, hooks=[ProgressHook(out)])
    assert "\x1b[" not in out.getvalue()
    assert "source ok in" in out.getvalue()


# -- OpenTelemetry ----------------------------------------------------------------------------
@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = OpenTelemetryHook(tracer_provider=provider)

    def finished():
        return {span.name: span for span in exporter.get_finished_spans()}

    yield hook, finished
    provider.shutdown()


def test_one_span_per_run_and_a_child_per_step(spans):
    hook, finished = spans
    result = mixed().run(params={"n": 3}, hooks=[hook], on_error="continue")
    found = finished()
    assert set(found) == {
        "plait.run mixed",
        "plait.step source",
        "plait.step doubled",
        "plait.step broken",
        "plait.step after_broken",
    }
    run = found["plait.run mixed"]
    assert run.parent is None
    assert run.attributes["plait.run_id"] == result.run_id
    assert run.attributes["plait.status"] == "failed"
    assert run.attributes["plait.steps.ok"] == 2
    assert run.attributes["plait.params.n"] == "3"
    assert run.status.status_code is StatusCode.ERROR
    for name in ("source", "doubled", "broken", "after_broken"):
        child = found[f"plait.step {name}"]
        assert child.parent.span_id == run.context.span_id
        assert child.context.trace_id == run.context.trace_id
    ok = found["plait.step doubled"].attributes
    assert ok["plait.status"] == "ok"
    assert ok["plait.outcome"] == "Ok"
    assert ok["plait.cached"] is False
    assert ok["plait.attempts"] == 1
    assert ok["plait.duration_s"] >= 0
    skipped = found["plait.step after_broken"].attributes
    assert (skipped["plait.status"], skipped["plait.outcome"]) == ("skipped", "Skipped")


def test_a_failed_step_records_its_exception(spans):
    hook, finished = spans
    mixed().run(params={"n": 3}, hooks=[hook], on_error="continue")
    span = finished()["plait.step broken"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["plait.outcome"] == "Err"
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "cannot take 3 numbers"
    assert "in broken" in event.attributes["exception.stacktrace"]


def test_spans_carry_cache_hits_attempts_and_metrics(spans, tmp_path):
    hook, finished = spans
    calls = []

    @step(retries=1, backoff=0)
    def flaky(source: list[int]) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("first attempt fails")
        current().log_metric("size", len(source))
        return len(source)

    store = Store(tmp_path / "store")
    Pipeline([source, flaky], name="p").run(params={"n": 4}, store=store, hooks=[hook])
    first = finished()["plait.step flaky"].attributes
    assert first["plait.attempts"] == 2
    assert first["plait.metric.size"] == 4
    assert len(first["plait.data_version.flaky"]) > 8
    Pipeline([source, flaky], name="p").run(params={"n": 4}, store=store, hooks=[hook])
    second = finished()["plait.step flaky"].attributes  # the later span of that name
    assert second["plait.cached"] is True
    assert second["plait.reason"] == "cache hit"
    assert len(calls) == 2


def test_without_a_provider_the_global_one_is_used_and_nothing_breaks():
    result = mixed().run(params={"n": 2}, hooks=[OpenTelemetryHook()], on_error="continue")
    assert result.steps["doubled"].ok


# -- profiling --------------------------------------------------------------------------------
@step
def big(n: int) -> int:
    block = bytearray(BIG)
    return len(block) + n


@step
def small(big: int) -> int:
    return big + 1


def test_profile_records_peak_memory_in_metrics_and_history(tmp_path):
    store = Store(tmp_path / "store")
    was_tracing = tracemalloc.is_tracing()
    result = Pipeline([big, small], name="mem").run(
        params={"n": 1}, hooks=[ProfileHook()], store=store
    )
    assert tracemalloc.is_tracing() == was_tracing  # stopped again if the hook started it
    peak = result.steps["big"].metrics["peak_memory_bytes"]
    assert peak >= BIG
    assert result.steps["small"].metrics["peak_memory_bytes"] < BIG
    assert isinstance(result.steps["big"].metrics["rss_delta_bytes"], int)
    recorded = store.history.run(result.run_id).steps["big"]
    assert recorded.metrics["peak_memory_bytes"] == peak


def test_profile_measures_threads_too():
    result = Pipeline([big, small]).run(params={"n": 1}, hooks=[ProfileHook()], executor="threads")
    assert result.steps["big"].metrics["peak_memory_bytes"] >= BIG


def test_profile_can_be_limited_to_steps_flagged_for_it():
    flagged = big.with_options(profile=True)
    result = Pipeline([flagged, small]).run(params={"n": 1}, hooks=[ProfileHook(only_flagged=True)])
    assert result.steps["big"].metrics["peak_memory_bytes"] >= BIG
    assert "peak_memory_bytes" not in result.steps["small"].metrics


def test_profile_leaves_cache_hits_alone(tmp_path):
    store = Store(tmp_path / "store")
    Pipeline([big, small]).run(params={"n": 1}, store=store)
    result = Pipeline([big, small]).run(params={"n": 1}, hooks=[ProfileHook()], store=store)
    assert result.steps["big"].cached
    assert "peak_memory_bytes" not in result.steps["big"].metrics


def test_profile_skips_steps_run_in_other_processes():
    result = Pipeline([big]).run(params={"n": 1}, hooks=[ProfileHook()], executor="processes:1")
    assert result["big"] == BIG + 1
    assert "peak_memory_bytes" not in result.steps["big"].metrics
