"""Helpers of the events tests: a server run on a thread, a gate steps wait on, and the
``plait serve`` / ``plait stream`` (or example script) subprocesses the end-to-end tests
start, talk to over their webhook, wait on and stop with a signal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from plait.events import Server


@contextmanager
def running(server: Server, *, timeout: float = 30) -> Iterator[Server]:
    """Run ``server`` on a thread until the block ends (then stop it and wait)."""
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(server.run())
        except BaseException as exc:
            errors.append(exc)
            server.ready.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert server.ready.wait(timeout), "the server never got ready"
    if errors:
        raise errors[0]
    try:
        yield server
    finally:
        server.stop()
        thread.join(timeout)
        assert not thread.is_alive(), "the server did not stop"
    if errors:
        raise errors[0]


class StopAfter:
    """A hook that stops ``server`` once ``count`` runs ended."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.ended: list[Any] = []
        self.server: Server | None = None

    def on_run_end(self, result: Any) -> None:
        self.ended.append(result)
        if len(self.ended) >= self.count and self.server is not None:
            self.server.stop()


class Idle:
    """A trigger that never fires: tests submit events themselves."""

    kind = "manual"
    name = "manual"

    async def run(self, server: Server) -> None:
        await asyncio.Event().wait()


class Gate:
    """What gated steps wait on: ``entered`` counts arrivals, ``open()`` lets them go."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.entered = 0
        self.arrived = threading.Condition(self.lock)

    def enter(self) -> None:
        with self.arrived:
            self.entered += 1
            self.arrived.notify_all()
        assert self.released.wait(60), "the gate was never opened"

    def wait_for(self, count: int, timeout: float = 30) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: self.entered >= count, timeout), (
                f"{self.entered} of {count} runs arrived"
            )

    def open(self) -> None:
        self.released.set()


# -- subprocesses: plait serve / plait stream -----------------------------------------


def hanging_flow(param: str) -> str:
    """The source of a ``flow.py`` whose pipeline ``p`` has one step: it appends its input
    ``param`` to the file ``$OUT``, then hangs (until killed) when that is ``$HANG_AT``."""
    return f"""
import os, time
from plait import Pipeline, step

@step
def job({param}: str) -> str:
    with open(os.environ["OUT"], "a") as out:
        out.write({param} + "\\n")
    if {param} == os.environ.get("HANG_AT"):
        time.sleep(600)  # killed here
    return {param}

p = Pipeline([job], name="jobs")
"""


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any ``PLAIT_`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT_")}
    env.update(extra)
    return env


def plait_command(*args: str) -> list[str]:
    """The command line of ``python -m plait ARGS``."""
    return [sys.executable, "-m", "plait", *args]


Output = int | IO[Any] | None


@contextmanager
def started(
    command: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    *,
    stdout: Output = subprocess.PIPE,
    stderr: Output = subprocess.PIPE,
) -> Iterator[subprocess.Popen[str]]:
    """A subprocess (text mode), killed at the end of the block if it still runs."""
    process = subprocess.Popen(
        list(command), cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def announced_url(process: subprocess.Popen[str]) -> str:
    """The webhook URL a server announces on its stderr (``POST http://…``)."""
    assert process.stderr is not None
    for line in process.stderr:
        if "POST http" in line:
            return line.split("POST ", 1)[1].split()[0]
    raise AssertionError("the server announced no URL")


def _request(url: str, token: str, body: bytes | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    with urllib.request.urlopen(
        urllib.request.Request(url, data=body, headers=headers), timeout=30
    ) as answer:
        assert answer.status == (200 if body is None else 202), answer.status
        return json.loads(answer.read())


def post_run(url: str, token: str, body: bytes) -> str:
    """POST ``body`` to a webhook with the bearer ``token``: the run id of its 202 answer."""
    return str(_request(url, token, body)["run_id"])


def run_status(url: str, token: str, run_id: str) -> str:
    """The status the webhook at ``url`` (``…/run``) reports for ``run_id``."""
    return str(_request(url.rsplit("/", 1)[0] + f"/runs/{run_id}", token)["status"])


def recorded_status(history: Any, run_id: str) -> str | None:
    """The status ``history`` records for ``run_id`` (None before the run is recorded)."""
    try:
        return str(history.run(run_id).status)
    except KeyError:
        return None


def _ended(process: subprocess.Popen[str], log: Path | None) -> str:
    """What a process that ended too early wrote to stderr (its ``log`` file or pipe)."""
    if log is not None:
        return log.read_text()
    stderr = process.communicate()[1] if process.stderr is not None else ""
    return stderr or "the process ended"


def wait_until(
    condition: Callable[[], object],
    *,
    what: str = "the condition",
    timeout: float = 30,
    alive: subprocess.Popen[str] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds, or at once when
    the process ``alive`` ended (with ``log``, the file its stderr went to, in the message)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if alive is not None and alive.poll() is not None:
            raise AssertionError(_ended(alive, log))
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def terminate(process: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """Send SIGTERM and wait: what the process wrote to its pipes (stdout, stderr)."""
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=timeout)
    return stdout or "", stderr or ""
