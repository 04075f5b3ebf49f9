"""serve(): the overlap policies, failing runs, graceful and forced stops, and what the
history records of each triggered run."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from events_cases import Gate, Idle, running
from plait import Pipeline, step
from plait.errors import UsageError
from plait.events import Event, Every, Server

GATE = Gate()


@step
def gated(n: int = 0) -> int:
    GATE.enter()
    return n


@step
def fragile(n: int = 0) -> int:
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n


@pytest.fixture(autouse=True)
def fresh_gate() -> None:
    global GATE
    GATE = Gate()
    globals()["GATE"] = GATE


def _event(n: int) -> Event:
    return Event("manual", "manual", f"e{n}", {"n": n})


def _finish(server: Server, submissions: list) -> list[str]:
    async def wait_all() -> list[str]:
        return [await s.wait() for s in submissions]

    assert server._loop is not None
    return asyncio.run_coroutine_threadsafe(wait_all(), server._loop).result(60)


def test_overlap_skip_drops_events_while_a_run_runs() -> None:
    server = Server(Pipeline([gated], name="g"), [Idle()], overlap="skip")
    with running(server):
        first = server.submit_threadsafe(_event(1))
        GATE.wait_for(1)
        second = server.submit_threadsafe(_event(2))
        assert (first.status, second.status) == ("running", "skipped")
        assert "overlap='skip'" in (second.error or "")
        GATE.open()
        assert _finish(server, [first, second]) == ["succeeded", "skipped"]
    assert server.counts["started"] == 1


def test_overlap_queue_runs_events_one_after_another_in_order() -> None:
    order: list[int] = []

    class Watch:
        def on_run_start(self, run: object) -> None:
            order.append(run.params["n"])  # type: ignore[attr-defined]

    server = Server(Pipeline([gated], name="g"), [Idle()], overlap="queue", hooks=[Watch()])
    with running(server):
        subs = [server.submit_threadsafe(_event(n)) for n in range(4)]
        GATE.wait_for(1)
        assert [s.status for s in subs] == ["running", "queued", "queued", "queued"]
        GATE.open()
        assert _finish(server, subs) == ["succeeded"] * 4
    assert order == [0, 1, 2, 3]


def test_overlap_allow_runs_events_together_up_to_the_limit() -> None:
    server = Server(Pipeline([gated], name="g"), [Idle()], overlap="allow", max_concurrent_runs=3)
    with running(server):
        subs = [server.submit_threadsafe(_event(n)) for n in range(5)]
        GATE.wait_for(3)  # three at once: they overlap
        assert [s.status for s in subs] == ["running"] * 3 + ["queued"] * 2
        GATE.open()
        assert _finish(server, subs) == ["succeeded"] * 5


def test_a_failing_run_never_stops_the_server(tmp_path: Path) -> None:
    server = Server(Pipeline([fragile], name="f"), [Idle()], overlap="queue", store=str(tmp_path))
    with running(server):
        subs = [server.submit_threadsafe(_event(n)) for n in (1, -1, 2)]
        subs.append(server.submit_threadsafe(Event("manual", "manual", "bad", {"nope": 1})))
        assert _finish(server, subs) == ["succeeded", "failed", "succeeded", "rejected"]
        later = server.submit_threadsafe(_event(3))
        assert _finish(server, [later]) == ["succeeded"]
    assert server.store is not None
    records = {r.run_id: r for r in server.store.history.runs(limit=None)}
    assert records[subs[1].run_id].status == "failed"
    assert records[subs[1].run_id].trigger == {
        "kind": "manual",
        "name": "manual",
        "event_id": "e-1",
    }
    assert subs[3].run_id not in records  # invalid params: refused before it started


def test_stop_lets_running_runs_finish_within_the_grace_period(tmp_path: Path) -> None:
    server = Server(Pipeline([gated], name="g"), [Idle()], store=str(tmp_path), grace=60)
    with running(server):
        sub = server.submit_threadsafe(_event(1))
        GATE.wait_for(1)
        server.stop()
        refused = server.submit_threadsafe(_event(2))
        assert refused.status == "cancelled"  # no new runs once stopping
        GATE.open()
    assert sub.status == "succeeded"
    assert server.store is not None
    assert server.store.history.run(sub.run_id).status == "succeeded"


def test_runs_still_running_after_the_grace_period_are_recorded_cancelled(tmp_path: Path) -> None:
    server = Server(Pipeline([gated], name="g"), [Idle()], store=str(tmp_path), grace=0)
    try:
        with running(server):
            sub = server.submit_threadsafe(_event(1))
            GATE.wait_for(1)
    finally:
        GATE.open()
    assert sub.status == "cancelled"
    assert server.store is not None
    record = server.store.history.run(sub.run_id)
    assert record.status == "cancelled"
    assert record.trigger == {"kind": "manual", "name": "manual", "event_id": "e1"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"overlap": "sometimes"}, "overlap must be one of"),
        ({"max_concurrent_runs": 0}, "at least 1"),
    ],
)
def test_bad_server_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Server(Pipeline([fragile]), [Idle()], **options)


def test_a_server_needs_triggers_with_distinct_names() -> None:
    with pytest.raises(UsageError, match="at least one trigger"):
        Server(Pipeline([fragile]), [])
    with pytest.raises(UsageError, match="same name"):
        Server(Pipeline([fragile]), [Every(5), Every(5)])


def test_stop_from_another_thread_ends_serve() -> None:
    server = Server(Pipeline([fragile]), [Every(3600)])
    thread = threading.Thread(target=lambda: asyncio.run(server.run()))
    thread.start()
    assert server.ready.wait(10)
    server.stop()
    thread.join(30)
    assert server.stopped.is_set()


def test_importing_events_and_observe_loads_no_optional_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, plait, plait.events, plait.observe\n"
        "heavy = ['croniter', 'starlette', 'uvicorn', 'watchfiles', 'redis',"
        " 'plait.observe.emitters']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    bare = subprocess.run(
        [sys.executable, "-c", "import sys, plait; print('plait.events' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert bare.stdout.strip() == "False"


def test_the_queue_is_bounded() -> None:
    server = Server(Pipeline([gated], name="g"), [Idle()], overlap="queue", queue_size=1)
    with running(server):
        subs = [server.submit_threadsafe(_event(n)) for n in range(3)]
        GATE.wait_for(1)
        assert [s.status for s in subs] == ["running", "queued", "skipped"]
        assert "queue is full" in (subs[2].error or "")
        GATE.open()
        assert _finish(server, subs) == ["succeeded", "succeeded", "skipped"]


def test_triggered_runs_are_traced_by_the_opentelemetry_hook() -> None:
    import datetime as dt

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from events_cases import StopAfter
    from plait.events import ManualClock
    from plait.observe import OpenTelemetryHook

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    clock = ManualClock(start, until=start + dt.timedelta(seconds=150))
    stopper = StopAfter(2)
    server = Server(
        Pipeline([fragile], name="traced"),
        [Every(60, clock=clock)],
        overlap="queue",
        hooks=[OpenTelemetryHook(tracer_provider=provider), stopper],
    )
    stopper.server = server
    asyncio.run(server.run())
    runs = [s for s in exporter.get_finished_spans() if s.name == "plait.run traced"]
    assert len(runs) == 2
    steps = [s for s in exporter.get_finished_spans() if s.name == "plait.step fragile"]
    assert {s.parent.span_id for s in steps} == {s.context.span_id for s in runs}
    provider.shutdown()


def test_the_public_names_of_plait_events() -> None:
    import plait.events

    assert {
        "Cron",
        "Every",
        "Webhook",
        "FileWatch",
        "RedisStream",
        "Iterable",
        "FileTail",
        "serve",
        "stream",
    } <= set(plait.events.__all__)
    assert plait.events.__all__ == sorted(plait.events.__all__)
    assert all(hasattr(plait.events, name) for name in plait.events.__all__)
