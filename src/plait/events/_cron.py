"""``Cron``: runs on a cron schedule (croniter's syntax), in a time zone.

Design. The next tick is computed from the clock's current time, then waited for through
the clock, so a manual clock in tests fires ticks without waiting. The last tick handed to
the server is checkpointed in the store (``events/``): on restart, ticks missed while the
server was down are skipped, or with ``catchup=True`` run once each (oldest first, at
most ``max_catchup`` of the most recent), each waiting for the previous one to finish.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from plait.errors import UsageError
from plait.events._triggers import Clock, Event, Params, SystemClock, make_params

if TYPE_CHECKING:
    from plait.events._serve import Server

__all__ = ["Cron"]

_log = logging.getLogger("plait.events")


def _zone(tz: str | dt.tzinfo | None) -> dt.tzinfo:
    if tz is None:
        return dt.UTC
    if isinstance(tz, dt.tzinfo):
        return tz
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(
            f"Cron(tz={tz!r}): unknown time zone; use an IANA name such as 'Europe/Paris'"
        ) from exc


class Cron:
    """A run at every tick of a cron expression.

    Args:
        expr: Five fields (``"0 * * * *"``: every hour on the hour), or six with seconds
            last, or a shortcut such as ``"@daily"``.
        tz: Time zone the expression is read in (an IANA name or tzinfo; default UTC).
        params: Run params: a mapping, or a callable given the tick's time.
        name: The trigger's name in run records (default ``cron <expr>``).
        clock: Where time is read (tests pass a :class:`~plait.events.ManualClock`).

    Raises:
        UsageError: For an invalid expression or time zone.
    """

    kind = "cron"

    def __init__(
        self,
        expr: str,
        *,
        tz: str | dt.tzinfo | None = None,
        params: Params = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        from croniter import croniter

        if not isinstance(expr, str) or not croniter.is_valid(expr):
            raise UsageError(
                f"Cron({expr!r}) is not a valid cron expression: write five fields "
                "'minute hour day-of-month month day-of-week', e.g. '0 * * * *' (hourly)"
            )
        self.expr = expr
        self.tz = _zone(tz)
        self.params = params
        self.name = name or f"cron {expr}"
        self.clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"Cron({self.expr!r}, tz={self.tz!s})"

    def ticks_between(self, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
        """The ticks strictly after ``after`` and at or before ``until``."""

        found: list[dt.datetime] = []
        tick = after
        while (tick := self.next_tick(tick)) <= until:
            found.append(tick)
        return found

    def next_tick(self, after: dt.datetime) -> dt.datetime:
        """The first tick strictly after ``after``.

        When clocks go back, an expression with a fixed hour fires once in the repeated
        hour (as cron does), one with a wildcard hour (``0 * * * *``) in both.
        """
        from croniter import croniter

        schedule = croniter(self.expr, after.astimezone(self.tz))
        while True:
            tick: dt.datetime = schedule.get_next(dt.datetime)
            if not (self._fixed_hour and self._repeated(tick)):
                return tick

    @property
    def _fixed_hour(self) -> bool:
        fields = self.expr.split()
        return len(fields) < 5 or not fields[1].startswith("*")

    def _repeated(self, tick: dt.datetime) -> bool:
        """Whether ``tick`` is the second occurrence of its local time (clocks went back)."""
        first = tick.replace(tzinfo=None).replace(tzinfo=self.tz, fold=0)
        earlier = first.astimezone(dt.UTC) < tick.astimezone(dt.UTC)  # same-zone < ignores fold
        return first.utcoffset() != tick.utcoffset() and earlier

    def _event(self, tick: dt.datetime, catchup: bool = False) -> Event:
        payload: dict[str, Any] = {"scheduled": tick, "catchup": catchup}
        params = make_params(self.params, tick, {})
        return Event(self.kind, self.name, tick.isoformat(), params, payload)

    async def _catch_up(self, server: Server, key: str) -> None:
        last = server.checkpoints.load(key)
        if not isinstance(last, str):
            return
        missed = self.ticks_between(dt.datetime.fromisoformat(last), self.clock.now())
        if not missed:
            return
        if not server.catchup:
            _log.info("%s: skipping %d tick(s) missed while down", self.name, len(missed))
            return
        if len(missed) > server.max_catchup:
            _log.warning(
                "%s: %d ticks missed; running the last %d (max_catchup)",
                self.name,
                len(missed),
                server.max_catchup,
            )
            missed = missed[-server.max_catchup :]
        for tick in missed:
            submitted = server.submit(self._event(tick, catchup=True))
            server.checkpoints.save(key, tick.isoformat())
            await submitted.wait()

    async def run(self, server: Server) -> None:
        """Submit one event per tick until cancelled."""
        key = f"cron/{server.pipeline.name}/{self.name}"
        await self._catch_up(server, key)
        tick = self.next_tick(self.clock.now())
        while True:
            await self.clock.sleep((tick - self.clock.now()).total_seconds())
            server.submit(self._event(tick))
            server.checkpoints.save(key, tick.isoformat())
            tick = self.next_tick(max(tick, self.clock.now()))
