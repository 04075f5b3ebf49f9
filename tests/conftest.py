"""Shared fixtures for the core test suite.

Tests go through the public API only (``plait`` and ``plait.errors``). The fixtures here
record what steps did (calls, events, timestamps) so that tests prove behaviour with
counters and recorded ordering rather than with wall-clock thresholds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest


@dataclass
class Recorder:
    """A thread-safe log of what steps did during a run.

    ``hit(name)`` counts a call and appends an event; ``mark(label)`` appends an event
    with a monotonic timestamp, so tests compare orderings instead of durations.
    """

    calls: Counter[str] = field(default_factory=Counter)
    events: list[str] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def hit(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
            self.events.append(name)

    def mark(self, label: str) -> None:
        with self._lock:
            self.events.append(label)
            self.times[label] = time.monotonic()

    def position(self, name: str) -> int:
        return self.events.index(name)


@pytest.fixture
def recorder() -> Recorder:
    """A fresh :class:`Recorder` for one test."""
    return Recorder()


def names(items: Iterable[object]) -> list[str]:
    """Step names of ``p.order`` whether it holds steps or names."""
    return [item if isinstance(item, str) else item.name for item in items]  # type: ignore[attr-defined]


@pytest.fixture
def order_names():
    """``order_names(p)``: the names of ``p.order``, in order."""

    def _order_names(pipeline: object) -> list[str]:
        return names(pipeline.order)  # type: ignore[attr-defined]

    return _order_names


@pytest.fixture
def clean_cwd(tmp_path, monkeypatch):
    """Run the test in an empty temporary directory, with no store configured."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAIT_STORE", raising=False)
    return tmp_path
