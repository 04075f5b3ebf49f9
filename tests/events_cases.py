"""Helpers of the events tests: a server run on a thread, a gate steps wait on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
