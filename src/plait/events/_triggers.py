"""What every trigger shares: the event it produces, its params, and the clock.

Design. A trigger is an object with ``kind``, ``name`` and an ``async run(server)``
coroutine that watches for its events and hands each to ``server.submit(event)``; the
server (:mod:`plait.events._serve`) decides, by its overlap policy, whether and when the
event becomes a run. Time-driven triggers (:class:`Every`, :class:`~plait.events.Cron`)
read and wait through a :class:`Clock`, so tests drive them with a manual clock instead
of sleeping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from plait.errors import UsageError

if TYPE_CHECKING:
    from plait.events._serve import Server

__all__ = ["Clock", "Event", "Every", "ManualClock", "Params", "SystemClock", "Trigger"]

Params = Mapping[str, Any] | Callable[[Any], Mapping[str, Any]] | None
"""A trigger's params: a fixed mapping, a callable ``payload -> params``, or None."""


@dataclass(frozen=True, slots=True)
class Event:
    """One occurrence of a trigger: what the server turns into a run.

    ``payload`` is what happened (a tick's time, a webhook's body, a file change, a
    stream entry); ``params`` the run params made from it.
    """

    kind: str
    name: str
    event_id: str
    params: Mapping[str, Any] = field(default_factory=dict)
    payload: Any = None

    @property
    def trigger(self) -> dict[str, str]:
        """The ``RunRecord.trigger`` of the run this event starts."""
        return {"kind": self.kind, "name": self.name, "event_id": self.event_id}


class Trigger(Protocol):
    """What :func:`~plait.events.serve` needs of a trigger."""

    kind: str
    name: str

    async def run(self, server: Server) -> None:
        """Watch for events and hand each to ``server.submit`` until cancelled."""


def make_params(spec: Params, payload: Any, default: Mapping[str, Any]) -> dict[str, Any]:
    """The run params of one event: ``spec`` applied to ``payload`` (``default`` if None).

    Raises:
        UsageError: When a callable ``spec`` returns something other than a mapping.
    """
    if spec is None:
        return dict(default)
    if callable(spec):
        made = spec(payload)
        if not isinstance(made, Mapping):
            raise UsageError(
                f"a trigger's params callable must return a mapping of run params, "
                f"got {type(made).__name__}: return a dict such as {{'name': value}}"
            )
        return dict(made)
    return dict(spec)


class Clock(Protocol):
    """Where time-driven triggers read the time and wait."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""


class SystemClock:
    """The real clock."""

    def now(self) -> dt.datetime:
        """The current UTC time."""
        return dt.datetime.now(dt.UTC)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock for tests: ``sleep`` moves time forward at once (nothing really waits).

    Args:
        start: The time it starts at (timezone-aware; naive means UTC).
        until: Time never passes this point: a sleep past it waits until cancelled (so a
            test sees exactly the ticks before it).
    """

    def __init__(self, start: dt.datetime, until: dt.datetime | None = None) -> None:
        self._now = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
        self.until = until
        self.slept: list[float] = []

    def now(self) -> dt.datetime:
        """The clock's current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._now += dt.timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` and let other tasks run."""
        self.slept.append(seconds)
        if self.until is not None and self._now + dt.timedelta(seconds=seconds) > self.until:
            self._now = max(self._now, self.until)
            await asyncio.Event().wait()  # frozen: until the task is cancelled
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def seconds_of(value: dt.timedelta | float, what: str) -> float:
    """A positive duration in seconds.

    Raises:
        UsageError: For a duration that is not positive.
    """
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if not seconds > 0:
        raise UsageError(f"{what} must be a positive duration, got {value!r}")
    return seconds


class Every:
    """A run every fixed interval, the first one interval after the server starts.

    Args:
        interval: A ``timedelta`` or seconds.
        params: Run params: a mapping, or a callable given the tick's time.
        name: The trigger's name in run records (default ``every <interval>s``).
        clock: Where time is read (tests pass a :class:`ManualClock`).
    """

    kind = "every"

    def __init__(
        self,
        interval: dt.timedelta | float,
        *,
        params: Params = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.interval = seconds_of(interval, "Every(interval)")
        self.params = params
        self.name = name or f"every {self.interval:g}s"
        self.clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"Every({self.interval:g})"

    async def run(self, server: Server) -> None:
        """Submit one event per interval until cancelled."""
        due = self.clock.now() + dt.timedelta(seconds=self.interval)
        while True:
            await self.clock.sleep((due - self.clock.now()).total_seconds())
            tick = due.isoformat()
            params = make_params(self.params, due, {})
            server.submit(Event(self.kind, self.name, tick, params, due))
            due += dt.timedelta(seconds=self.interval)
            now = self.clock.now()
            if due <= now:  # a late wake-up (a busy loop): skip the missed ticks
                missed = (now - due) // dt.timedelta(seconds=self.interval) + 1
                due += missed * dt.timedelta(seconds=self.interval)
