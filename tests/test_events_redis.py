"""RedisStream on a real redis-server: as a stream source and as a serve trigger; entries
are acknowledged only after their run is recorded, so a killed consumer's entries come
back on restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from events_cases import StopAfter
from plait import Pipeline, Store, step
from plait.events import RedisStream, Server, stream

SEEN: list[Any] = []


@step
def consume(item: dict) -> str:
    SEEN.append(item["n"])
    return item["n"]


@step
def job(n: str, who: str = "nobody") -> str:
    SEEN.append((n, who))
    return f"{n}:{who}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()


def _client(url: str) -> Any:
    return redis.Redis.from_url(url, decode_responses=True)


def _pending(url: str, stream_key: str, group: str = "plait") -> int:
    return int(_client(url).xpending(stream_key, group)["pending"])


def test_a_stream_source_runs_each_entry_and_acknowledges_it(
    redis_url: str, tmp_path: Path
) -> None:
    client = _client(redis_url)
    ids = [client.xadd("jobs", {"n": str(n)}) for n in range(5)]
    stop = threading.Event()

    class StopAtFive:
        def on_run_end(self, result: object) -> None:
            if len(SEEN) == 5:
                stop.set()

    store = str(tmp_path / "s")
    source = RedisStream(redis_url, "jobs", block=0.1)
    stream(Pipeline([consume], name="r"), source, store=store, stop=stop, hooks=[StopAtFive()])
    assert SEEN == ["0", "1", "2", "3", "4"]
    assert _pending(redis_url, "jobs") == 0
    events = sorted(r.trigger["event_id"] for r in Store(store).history.runs(limit=None))
    assert events == sorted(ids)


def test_entries_read_but_never_acknowledged_come_back(redis_url: str) -> None:
    client = _client(redis_url)
    for n in range(3):
        client.xadd("jobs", {"n": str(n)})
    crashed = RedisStream(redis_url, "jobs", consumer="worker-1", block=0.1)
    reading = crashed.items(None, threading.Event())
    assert next(reading).value == {"n": "0"}  # read, then the process "dies": no XACK
    reading.close()
    assert _pending(redis_url, "jobs") >= 1
    stop = threading.Event()

    class StopAtThree:
        def on_run_end(self, result: object) -> None:
            if len(SEEN) == 3:
                stop.set()

    again = RedisStream(redis_url, "jobs", consumer="worker-1", block=0.1)
    stream(Pipeline([consume]), again, stop=stop, hooks=[StopAtThree()])
    assert SEEN == ["0", "1", "2"]
    assert _pending(redis_url, "jobs") == 0


def test_a_trigger_turns_entries_into_runs_and_acks_them_once_recorded(
    redis_url: str, tmp_path: Path
) -> None:
    client = _client(redis_url)
    first = client.xadd("work", {"n": "1", "who": "ada"})
    client.xadd("work", {"params": '{"n": "2"}'})
    stopper = StopAfter(2)
    server = Server(
        Pipeline([job], name="t"),
        [RedisStream(redis_url, "work", block=0.1)],
        store=str(tmp_path / "s"),
        overlap="queue",
        hooks=[stopper],
    )
    stopper.server = server
    asyncio.run(server.run())
    assert SEEN == [("1", "ada"), ("2", "nobody")]
    assert _pending(redis_url, "work") == 0
    records = Store(str(tmp_path / "s")).history.runs(trigger="redis work", limit=None)
    assert {r.trigger["event_id"] for r in records} >= {first}


FLOW = """
import os, time
from plait import Pipeline, step

@step
def job(n: str) -> str:
    with open(os.environ["OUT"], "a") as out:
        out.write(n + "\\n")
    if n == os.environ.get("HANG_AT"):
        time.sleep(600)  # killed here
    return n

p = Pipeline([job], name="jobs")
"""


@pytest.mark.faults
def test_a_killed_server_gets_its_unacknowledged_entry_again(
    redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    client = _client(redis_url)
    for n in range(6):
        client.xadd("queue", {"n": str(n)})
    out = tmp_path / "out.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT_")}
    env.update(OUT=str(out), HANG_AT="3")
    command = [
        sys.executable,
        "-m",
        "plait",
        "serve",
        "flow.py:p",
        "--overlap",
        "queue",
        "--redis",
        f"{redis_url}?stream=queue",
        "--store",
        ".plait",
    ]
    with (tmp_path / "err.txt").open("w") as errors:
        server = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=errors
        )
        deadline = time.monotonic() + 60
        while not (out.exists() and "3" in out.read_text().split()):
            assert server.poll() is None, (tmp_path / "err.txt").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    assert out.read_text().split() == ["0", "1", "2", "3"]
    assert _pending(redis_url, "queue") >= 1  # 3 was never acknowledged (4 and 5 maybe read)

    env.pop("HANG_AT")
    with (tmp_path / "err2.txt").open("w") as errors:
        again = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        deadline = time.monotonic() + 60
        while out.read_text().split().count("5") < 1:
            assert again.poll() is None, (tmp_path / "err2.txt").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        while _pending(redis_url, "queue"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        again.send_signal(signal.SIGTERM)
        stdout, _ = again.communicate(timeout=60)
    assert again.returncode == 0, (tmp_path / "err2.txt").read_text()
    assert "stopped" in stdout
    assert out.read_text().split() == ["0", "1", "2", "3", "3", "4", "5"]


def test_a_trigger_waits_for_redis_to_come_back(tmp_path: Path) -> None:
    import logging
    import shutil
    import socket

    from events_cases import running

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    warned = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Redis unreachable" in record.getMessage():
                warned.set()

    handler = Watch()
    logging.getLogger("plait.events").addHandler(handler)
    stopper = StopAfter(1)
    server = Server(
        Pipeline([job], name="t"), [RedisStream(url, "later", block=0.1)], hooks=[stopper]
    )
    stopper.server = server
    binary = shutil.which("redis-server")
    assert binary is not None
    process = None
    try:
        with running(server):
            assert warned.wait(30), "no warning while Redis was down"
            process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--dir",
                    str(tmp_path),
                ],
                stdout=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 30
            while True:
                try:
                    _client(url).xadd("later", {"n": "1"})
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            assert server.stopped.wait(60), "the entry never ran"
    finally:
        logging.getLogger("plait.events").removeHandler(handler)
        if process is not None:
            process.terminate()
            process.wait(30)
    assert SEEN == [("1", "nobody")]


STREAM_FLOW = """
import os
from plait import Pipeline, step

@step
def job(item: dict) -> str:
    with open(os.environ["OUT"], "a") as out:
        out.write(item["n"] + "\\n")
    return item["n"]

p = Pipeline([job], name="jobs")
"""


def test_plait_stream_from_redis_stops_cleanly_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(STREAM_FLOW))
    client = _client(redis_url)
    for n in range(3):
        client.xadd("items", {"n": str(n)})
    out = tmp_path / "out.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT_")}
    env["OUT"] = str(out)
    command = [
        sys.executable,
        "-m",
        "plait",
        "stream",
        "flow.py:p",
        f"{redis_url}?stream=items&group=g1",
        "--store",
        ".plait",
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and len(out.read_text().split()) == 3):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        while _pending(redis_url, "items", "g1"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "3 item(s) in 3 run(s): 3 succeeded" in stdout
    assert "Traceback" not in stderr
