"""Cron and Every: exact ticks, time zones, missed ticks (skipped, or caught up), all on
a manual clock (nothing waits)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from events_cases import StopAfter
from plait import Pipeline, step
from plait.errors import UsageError
from plait.events import Cron, Every, ManualClock, Server

START = dt.datetime(2026, 3, 1, 10, 0, 30, tzinfo=dt.UTC)


@step
def stamp(when: str = "") -> str:
    return when


def _pipeline() -> Pipeline:
    return Pipeline([stamp], name="clocked")


def _serve(triggers: list, count: int, **options: object) -> tuple[Server, StopAfter]:
    stopper = StopAfter(count)
    server = Server(_pipeline(), triggers, hooks=[stopper], overlap="queue", **options)  # type: ignore[arg-type]
    stopper.server = server
    asyncio.run(server.run())
    return server, stopper


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 * * * *", "2026-03-01T10:00:30+00:00", "2026-03-01T11:00:00+00:00"),
        ("*/15 * * * *", "2026-03-01T10:00:30+00:00", "2026-03-01T10:15:00+00:00"),
        ("30 2 * * 1", "2026-03-01T10:00:30+00:00", "2026-03-02T02:30:00+00:00"),  # a Monday
        ("@daily", "2026-03-01T10:00:30+00:00", "2026-03-02T00:00:00+00:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
    ],
)
def test_next_tick_follows_cron_syntax(expr: str, after: str, expected: str) -> None:
    assert Cron(expr).next_tick(dt.datetime.fromisoformat(after)).isoformat() == expected


def test_cron_reads_its_expression_in_its_time_zone() -> None:
    paris = Cron("0 9 * * *", tz="Europe/Paris")
    tick = paris.next_tick(dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC))
    assert tick.astimezone(dt.UTC).isoformat() == "2026-07-02T07:00:00+00:00"  # summer: UTC+2
    winter = paris.next_tick(dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC))
    assert winter.astimezone(dt.UTC).isoformat() == "2026-01-02T08:00:00+00:00"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Cron("every hour"), "not a valid cron expression"),
        (lambda: Cron("61 * * * *"), "not a valid cron expression"),
        (lambda: Cron("0 * * * *", tz="Mars/Olympus"), "unknown time zone"),
        (lambda: Every(0), "positive duration"),
        (lambda: Every(dt.timedelta(seconds=-1)), "positive duration"),
    ],
)
def test_bad_schedules_say_what_to_write(make: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make()  # type: ignore[operator]


def test_cron_runs_once_per_tick_with_the_tick_as_event_id(tmp_path: object) -> None:
    clock = ManualClock(START)
    cron = Cron("*/10 * * * *", clock=clock, params=lambda tick: {"when": tick.isoformat()})
    server, stopper = _serve([cron], 3, store=str(tmp_path))
    assert [r.outputs["stamp"] for r in stopper.ended][:3] == [
        "2026-03-01T10:10:00+00:00",
        "2026-03-01T10:20:00+00:00",
        "2026-03-01T10:30:00+00:00",
    ]
    assert server.store is not None
    records = server.store.history.runs(trigger="cron */10 * * * *", limit=None)
    assert sorted(r.trigger["event_id"] for r in records)[:3] == [  # type: ignore[index]
        "2026-03-01T10:10:00+00:00",
        "2026-03-01T10:20:00+00:00",
        "2026-03-01T10:30:00+00:00",
    ]
    assert {r.trigger["kind"] for r in records} == {"cron"}  # type: ignore[index]


def test_every_ticks_at_its_interval() -> None:
    clock = ManualClock(START)
    every = Every(dt.timedelta(minutes=5), clock=clock, params=lambda t: {"when": t.isoformat()})
    _, stopper = _serve([every], 2)
    assert [r.outputs["stamp"] for r in stopper.ended][:2] == [
        "2026-03-01T10:05:30+00:00",
        "2026-03-01T10:10:30+00:00",
    ]
    assert every.name == "every 300s"


@pytest.mark.parametrize("catchup", [False, True])
def test_ticks_missed_while_down_are_skipped_unless_catchup(
    tmp_path: object, catchup: bool
) -> None:
    store = str(tmp_path)
    first = ManualClock(START, until=dt.datetime(2026, 3, 1, 11, 30, tzinfo=dt.UTC))
    _serve([Cron("0 * * * *", clock=first, name="hourly")], 1, store=store)  # ticks 11:00
    later = ManualClock(
        dt.datetime(2026, 3, 1, 14, 30, tzinfo=dt.UTC),  # down from 11:00 to 14:30
        until=dt.datetime(2026, 3, 1, 15, 30, tzinfo=dt.UTC),
    )
    hourly = Cron("0 * * * *", clock=later, name="hourly", params=lambda t: {"when": t.isoformat()})
    _, stopper = _serve([hourly], 4 if catchup else 1, store=store, catchup=catchup)
    seen = [r.outputs["stamp"] for r in stopper.ended]
    if catchup:
        assert seen == [
            "2026-03-01T12:00:00+00:00",
            "2026-03-01T13:00:00+00:00",
            "2026-03-01T14:00:00+00:00",
            "2026-03-01T15:00:00+00:00",
        ]
    else:
        assert seen == ["2026-03-01T15:00:00+00:00"]


def test_catchup_is_bounded(tmp_path: object) -> None:
    store = str(tmp_path)
    once = ManualClock(START, until=START + dt.timedelta(minutes=1))
    _serve([Cron("* * * * *", clock=once, name="m")], 1, store=store)
    later = ManualClock(START + dt.timedelta(days=2), until=START + dt.timedelta(days=2, minutes=1))
    minutely = Cron("* * * * *", clock=later, name="m", params=lambda t: {"when": t.isoformat()})
    _, stopper = _serve([minutely], 3, store=store, catchup=True, max_catchup=2)
    seen = [r.outputs["stamp"] for r in stopper.ended]
    assert seen == [
        "2026-03-03T09:59:00+00:00",
        "2026-03-03T10:00:00+00:00",
        "2026-03-03T10:01:00+00:00",
    ]


def _utc_ticks(cron: Cron, after: dt.datetime, count: int) -> list[str]:
    ticks, tick = [], after
    for _ in range(count):
        tick = cron.next_tick(tick)
        ticks.append(tick.astimezone(dt.UTC).isoformat())
    return ticks


def test_when_clocks_go_back_a_fixed_hour_fires_once_and_an_hourly_one_twice() -> None:
    autumn = dt.datetime(2026, 10, 24, 12, tzinfo=dt.UTC)  # Paris: 03:00 CEST -> 02:00 CET
    assert _utc_ticks(Cron("30 2 * * *", tz="Europe/Paris"), autumn, 2) == [
        "2026-10-25T00:30:00+00:00",  # 02:30 CEST; the repeated 02:30 CET is not a tick
        "2026-10-26T01:30:00+00:00",
    ]
    night = dt.datetime(2026, 10, 24, 23, 30, tzinfo=dt.UTC)
    assert _utc_ticks(Cron("0 * * * *", tz="Europe/Paris"), night, 3) == [
        "2026-10-25T00:00:00+00:00",  # 02:00 CEST
        "2026-10-25T01:00:00+00:00",  # 02:00 CET: another hour
        "2026-10-25T02:00:00+00:00",
    ]


def test_when_clocks_go_forward_a_skipped_time_fires_after_the_jump() -> None:
    spring = dt.datetime(2026, 3, 28, 12, tzinfo=dt.UTC)  # Paris: 02:00 CET -> 03:00 CEST
    assert _utc_ticks(Cron("30 2 * * *", tz="Europe/Paris"), spring, 2) == [
        "2026-03-29T01:00:00+00:00",  # 03:00 CEST, right after the jump
        "2026-03-30T00:30:00+00:00",
    ]
