"""RedisStream on a real redis-server: as a stream source and as a serve trigger; entries
are acknowledged only after their run is recorded, so a killed consumer's entries come
back on restart."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from events_cases import (
    StopAfter,
    environment,
    hanging_flow,
    plait_command,
    running,
    started,
    terminate,
    wait_until,
)
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


@pytest.mark.faults
def test_a_killed_server_gets_its_unacknowledged_entry_again(
    redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "flow.py").write_text(hanging_flow("n"))
    client = _client(redis_url)
    for n in range(6):
        client.xadd("queue", {"n": str(n)})
    out = tmp_path / "out.txt"
    env = environment(OUT=str(out), HANG_AT="3")
    queue = f"{redis_url}?stream=queue"
    command = plait_command("serve", "flow.py:p", "--overlap", "queue", "--redis", queue)
    command += ["--store", ".plait"]
    log = tmp_path / "err.txt"
    with (
        log.open("w") as errors,
        started(command, tmp_path, env, stdout=subprocess.DEVNULL, stderr=errors) as server,
    ):
        wait_until(
            lambda: out.exists() and "3" in out.read_text().split(),
            what="entry 3",
            timeout=60,
            alive=server,
            log=log,
        )
        server.kill()
        server.wait(30)
    assert out.read_text().split() == ["0", "1", "2", "3"]
    assert _pending(redis_url, "queue") >= 1  # 3 was never acknowledged (4 and 5 maybe read)

    env.pop("HANG_AT")
    log = tmp_path / "err2.txt"
    with log.open("w") as errors, started(command, tmp_path, env, stderr=errors) as again:
        wait_until(
            lambda: "5" in out.read_text().split(),
            what="entry 5",
            timeout=60,
            alive=again,
            log=log,
        )
        wait_until(lambda: not _pending(redis_url, "queue"), what="the acknowledgements")
        stdout, _ = terminate(again)
    assert again.returncode == 0, log.read_text()
    assert "stopped" in stdout
    assert out.read_text().split() == ["0", "1", "2", "3", "3", "4", "5"]


def test_a_trigger_waits_for_redis_to_come_back(start_redis: Callable[[int], str]) -> None:
    import logging
    import socket

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
    try:
        with running(server):
            assert warned.wait(30), "no warning while Redis was down"
            _client(start_redis(port)).xadd("later", {"n": "1"})
            assert server.stopped.wait(60), "the entry never ran"
    finally:
        logging.getLogger("plait.events").removeHandler(handler)
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
    source = f"{redis_url}?stream=items&group=g1"
    command = plait_command("stream", "flow.py:p", source, "--store", ".plait")
    with started(command, tmp_path, environment(OUT=str(out))) as process:
        wait_until(
            lambda: out.exists() and len(out.read_text().split()) == 3,
            what="three items",
            timeout=60,
            alive=process,
        )
        wait_until(lambda: not _pending(redis_url, "items", "g1"), what="the acknowledgements")
        stdout, stderr = terminate(process)
    assert process.returncode == 0, stderr
    assert "3 item(s) in 3 run(s): 3 succeeded" in stdout
    assert "Traceback" not in stderr
