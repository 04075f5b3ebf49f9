"""Emitters: JSON Lines, a signed webhook (retried) and Redis, each sending from a
bounded queue on its own thread; a dead or hanging endpoint never slows or breaks a run,
and what is dropped is counted."""

from __future__ import annotations

import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from plait import Pipeline, step
from plait.events import signature
from plait.observe import JsonLines, RedisEmitter, WebhookEmitter


@step
def load(n: int = 3) -> list[int]:
    return list(range(n))


@step
def total(load: list[int]) -> int:
    return sum(load)


def _pipeline() -> Pipeline:
    return Pipeline([load, total], name="emitted")


def test_json_lines_records_runs_steps_and_data_versions(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    emitter = JsonLines(str(path))
    result = _pipeline().run(params={"n": 3}, hooks=[emitter], store=str(tmp_path / "s"))
    emitter.close()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["event"] for e in events] == [
        "run_start",
        "step_start",
        "step_end",
        "step_start",
        "step_end",
        "run_end",
    ]
    assert {e["run_id"] for e in events} == {result.run_id}
    ends = {e["step"]: e for e in events if e["event"] == "step_end"}
    assert ends["total"]["data_versions"] == result.steps["total"].data_versions
    assert ends["total"]["data_versions"]["total"]
    assert events[0]["params"] == {"n": 3}
    assert events[-1]["status"] == "succeeded"
    assert (emitter.sent, emitter.dropped, emitter.failed) == (6, 0, 0)


def test_json_lines_to_an_open_stream_and_runs_only() -> None:
    out = io.StringIO()
    with JsonLines(out, steps=False) as emitter:
        _pipeline().run(hooks=[emitter])
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == [
        "run_start",
        "run_end",
    ]


class _Receiver(BaseHTTPRequestHandler):
    failures_left = 0
    bodies: list[tuple[bytes, str | None]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            if type(self).failures_left > 0:
                type(self).failures_left -= 1
                self.send_response(503)
                self.end_headers()
                return
            self.bodies.append((body, self.headers.get("X-Plait-Signature")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Any:
    _Receiver.bodies = []
    _Receiver.failures_left = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/events", _Receiver
    httpd.shutdown()
    httpd.server_close()


def test_webhook_emitter_signs_every_event(receiver: Any) -> None:
    url, handler = receiver
    emitter = WebhookEmitter(url, secret="s3cret")
    result = _pipeline().run(hooks=[emitter])
    emitter.close(timeout=30)
    assert emitter.sent == 6
    assert len(handler.bodies) == 6
    for body, signed in handler.bodies:
        assert signed == signature("s3cret", body)
        assert json.loads(body)["run_id"] == result.run_id


def test_webhook_emitter_retries_with_backoff(receiver: Any) -> None:
    url, handler = receiver
    handler.failures_left = 2
    emitter = WebhookEmitter(url, retries=3, backoff=0.01, steps=False)
    _pipeline().run(hooks=[emitter])
    emitter.close(timeout=30)
    assert (emitter.sent, emitter.failed) == (2, 0)
    assert [json.loads(b)["event"] for b, _ in handler.bodies] == ["run_start", "run_end"]


def test_an_endpoint_refusing_connections_counts_failures_and_the_run_succeeds() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    emitter = WebhookEmitter(f"http://127.0.0.1:{port}/", retries=1, backoff=0.01)
    result = _pipeline().run(hooks=[emitter])
    emitter.close(timeout=30)
    assert result.ok
    assert (emitter.sent, emitter.failed) == (0, 6)


def test_a_hanging_endpoint_never_blocks_runs_and_drops_are_counted() -> None:
    with socket.socket() as hanging:  # accepts connections (backlog), never answers
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(100)
        url = f"http://127.0.0.1:{hanging.getsockname()[1]}/"
        emitter = WebhookEmitter(url, timeout=60, retries=0, queue_size=4)
        results = [_pipeline().run(hooks=[emitter]) for _ in range(20)]
        assert all(r.ok for r in results)
        assert emitter.sent == 0
        assert emitter.dropped >= 20 * 6 - 4 - 1  # the queue's 4, one being sent
        assert emitter.dropped + emitter.pending <= 20 * 6
        emitter.close(timeout=0.1)


def test_redis_emitter_appends_events_to_a_stream(redis_url: str) -> None:
    emitter = RedisEmitter(redis_url, "plait:events")
    result = _pipeline().run(hooks=[emitter])
    emitter.close(timeout=30)
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange("plait:events")
    events = [json.loads(fields[b"event"]) for _, fields in entries]
    assert events[0]["event"] == "run_start"
    assert {e["run_id"] for e in events} == {result.run_id}
    assert len(events) == 6


def test_redis_emitter_publishes_on_a_channel(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    subscription = client.pubsub()
    subscription.subscribe("plait-runs")
    assert subscription.get_message(timeout=10)["type"] == "subscribe"
    emitter = RedisEmitter(redis_url, channel="plait-runs", steps=False)
    _pipeline().run(hooks=[emitter])
    emitter.close(timeout=30)
    got = [subscription.get_message(timeout=10) for _ in range(2)]
    subscription.close()
    assert [json.loads(m["data"])["event"] for m in got] == ["run_start", "run_end"]


def test_a_dead_redis_never_breaks_the_run() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emitter = RedisEmitter(f"redis://127.0.0.1:{port}/0")
    assert _pipeline().run(hooks=[emitter]).ok
    emitter.close(timeout=30)
    assert emitter.failed == 6
