"""Events: trigger-to-run-start latency (webhook, Redis), webhook requests/s, stream items/s.

Run: ``python benchmarks/bench_events.py [--redis URL]`` (without ``--redis`` a throwaway
``redis-server`` is started on a free loopback port). Targets (issue 13): latency <= 50 ms
for webhook and Redis; >= 200 authenticated webhook requests/s of a trivial pipeline with
``overlap="allow"`` and nothing lost; streaming 100,000 in-memory items >= 5,000 items/s
with history on (micro-batches allowed) and >= 20,000 items/s without history.

Latency is measured from just before the event is sent (HTTP request written, ``XADD``)
to the run's ``on_run_start`` hook, both read with ``time.perf_counter`` in this process;
it is the median (and the 95th percentile) of 200 sequential events.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from plait import Pipeline, step
from plait.events import Iterable, RedisStream, Server, Webhook, stream

TOKEN = "bench-token-0123456789"


@step
def echo(n: int = 0) -> int:
    return n


@step
def count(items: list[int]) -> int:
    return len(items)


@step
def one(item: int) -> int:
    return item


class Starts:
    """Records when each run starts, by its ``n`` param."""

    def __init__(self) -> None:
        self.at: dict[Any, float] = {}
        self.ended = 0
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)

    def on_run_start(self, run: Any) -> None:
        self.at[run.params.get("n")] = time.perf_counter()

    def on_run_end(self, result: Any) -> None:
        with self.done:
            self.ended += 1
            self.done.notify_all()

    def wait_ended(self, count: int) -> None:
        with self.done:
            if not self.done.wait_for(lambda: self.ended >= count, timeout=300):
                raise SystemExit(f"only {self.ended} of {count} runs ended")


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    thread = threading.Thread(target=lambda: asyncio.run(server.run()), daemon=True)
    thread.start()
    if not server.ready.wait(30):
        raise SystemExit("server not ready")
    try:
        yield server
    finally:
        server.stop()
        thread.join(60)


def _post(conn: http.client.HTTPConnection, path: str, n: int) -> int:
    body = json.dumps({"n": n}).encode()
    conn.request("POST", path, body, {"Authorization": f"Bearer {TOKEN}"})
    answer = conn.getresponse()
    answer.read()
    return answer.status


def _summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered) * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms"


def webhook_latency(events: int = 200) -> str:
    starts = Starts()
    hook = Webhook(port=0, token=TOKEN)
    server = Server(Pipeline([echo], name="lat"), [hook], overlap="queue", hooks=[starts])
    with serving(server):
        host, port = hook.address  # type: ignore[misc]
        conn = http.client.HTTPConnection(host, port)
        latencies = []
        for n in range(events):
            sent = time.perf_counter()
            if _post(conn, "/run", n) != 202:
                raise SystemExit("a request was refused")
            starts.wait_ended(n + 1)
            latencies.append(starts.at[n] - sent)
        conn.close()
    return _summary(latencies)


def webhook_throughput(requests: int = 2000, clients: int = 8) -> str:
    starts = Starts()
    hook = Webhook(port=0, token=TOKEN)
    server = Server(
        Pipeline([echo], name="rps"),
        [hook],
        overlap="allow",
        max_concurrent_runs=64,
        hooks=[starts],
    )
    accepted = [0] * clients
    with serving(server):
        host, port = hook.address  # type: ignore[misc]

        def client(index: int) -> None:
            conn = http.client.HTTPConnection(host, port)
            for n in range(index, requests, clients):
                accepted[index] += _post(conn, "/run", n) == 202
            conn.close()

        began = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        starts.wait_ended(requests)
        took = time.perf_counter() - began
    lost = requests - sum(accepted)
    return (
        f"{requests} requests from {clients} clients: {requests / took:,.0f} runs/s "
        f"(accepted, run and ended), {lost} lost, {server.counts['succeeded']} succeeded"
    )


def redis_latency(url: str, events: int = 200) -> str:
    import redis

    starts = Starts()
    server = Server(
        Pipeline([echo], name="rlat"),
        [RedisStream(url, "bench", block=1.0)],
        overlap="queue",
        hooks=[starts],
    )
    client = redis.Redis.from_url(url)
    client.delete("bench")
    with serving(server):
        time.sleep(0.2)  # let the consumer block on XREADGROUP
        latencies = []
        for n in range(events):
            sent = time.perf_counter()
            client.xadd("bench", {"n": str(n)})
            starts.wait_ended(n + 1)
            latencies.append(starts.at[str(n)] - sent)
    return _summary(latencies)


def stream_rate(items: int, *, batch: int | None, history: bool) -> str:
    with tempfile.TemporaryDirectory() as root:
        store = root if history else None
        pipeline = Pipeline([count], name="b") if batch else Pipeline([one], name="i")
        param = "items" if batch else "item"
        began = time.perf_counter()
        stats = stream(
            pipeline,
            Iterable(range(items)),
            param=param,
            batch=batch,
            batch_wait=0,
            store=store,
            max_in_flight=10_000,
        )
        took = time.perf_counter() - began
    if stats.items != items:
        raise SystemExit(f"streamed {stats.items} of {items}")
    shown = f"batch={batch}" if batch else "one run per item"
    return (
        f"{items:,} items, {shown}, history {'on' if history else 'off'}: "
        f"{items / took:,.0f} items/s ({stats.runs:,} runs, {took:.2f} s)"
    )


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed (or pass --redis URL)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="a Redis URL (default: start a redis-server)")
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    print("webhook latency:", webhook_latency())
    print("webhook throughput:", webhook_throughput())
    if args.redis:
        print("redis latency:", redis_latency(args.redis))
    else:
        with redis_server() as url:
            print("redis latency:", redis_latency(url))
    for batch, history in [(None, False), (None, True), (100, True), (1000, True), (1000, False)]:
        items = args.items if batch or not history else min(args.items, 5_000)
        print("stream:", stream_rate(items, batch=batch, history=history))


if __name__ == "__main__":
    main()
