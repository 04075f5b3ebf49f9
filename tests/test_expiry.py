"""Expiry policies: entries really expire, by time, process, run, date or probability."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plait import Pipeline, expire, step
from store_cases import CALLS, session_pipeline

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.reset()


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def _counted(name, policy):
    def body(n):
        CALLS.hit(name)
        return n + 1

    # the version label keeps the keys of these same-code steps apart
    return step(body, name=name, expire=policy, version=name)


# -- ttl -----------------------------------------------------------------------------------


def test_ttl_really_expires(store):
    short = _counted("short", expire.ttl(seconds=0.3))
    long = _counted("long", expire.ttl(hours=1))
    pipeline = Pipeline([short, long])
    pipeline.run(params={"n": 1}, store=store)
    time.sleep(0.5)
    result = pipeline.run(params={"n": 1}, store=store)
    assert not result.steps["short"].cached
    assert result.steps["short"].reason == "expired"
    assert result.steps["long"].cached
    assert CALLS["short"] == 2
    assert CALLS["long"] == 1
    assert result["short"] == 2


def test_an_expired_upstream_with_the_same_output_cuts_off(store):
    short = _counted("short", expire.ttl(seconds=0.2))

    @step
    def after(short):
        CALLS.hit("after")
        return short * 10

    Pipeline([short, after]).run(params={"n": 1}, store=store)
    time.sleep(0.4)
    result = Pipeline([short, after]).run(params={"n": 1}, store=store)
    assert not result.steps["short"].cached
    assert result.steps["after"].cached
    assert CALLS["after"] == 1


@pytest.mark.parametrize(
    "policy",
    [
        expire.ttl(60),
        expire.ttl(dt.timedelta(minutes=1)),
        expire.ttl(seconds=60),
        expire.ttl(minutes=1),
        expire.ttl(seconds=30, minutes=0.5),
    ],
    ids=["seconds", "timedelta", "seconds-kw", "minutes-kw", "sum"],
)
def test_ttl_durations_accept_seconds_and_timedeltas(policy):
    created = 1_000_000.0
    assert policy.fresh(created, created + 59.9, same_run=False, same_session=False)
    assert not policy.fresh(created, created + 60.1, same_run=False, same_session=False)


@pytest.mark.parametrize("bad", [0, -1, dt.timedelta(0)])
def test_ttl_rejects_non_positive_durations(bad):
    with pytest.raises(ValueError, match="positive"):
        expire.ttl(bad)


def test_never_is_always_fresh():
    policy = expire.never()
    assert policy.fresh(0.0, 1e12, same_run=False, same_session=False)


# -- session and run ---------------------------------------------------------------------------

SESSION_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from store_cases import CALLS, session_pipeline
pipeline = session_pipeline()
first = pipeline.run(params={{"n": 5}}, store=sys.argv[1])
second = pipeline.run(params={{"n": 5}}, store=sys.argv[1])
print(json.dumps({{
    "first_cached": first.steps["per_process"].cached,
    "first_reason": first.steps["per_process"].reason,
    "second_cached": second.steps["per_process"].cached,
    "value": first["per_process"],
    "calls": CALLS["per_process"],
}}))
"""


def _session_run_elsewhere(store):
    completed = subprocess.run(
        [sys.executable, "-c", SESSION_SCRIPT.format(tests=str(TESTS)), str(store)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(completed.stdout)


@pytest.mark.parametrize("executor", ["sequential", "threads:2", "processes:2"])
def test_session_entries_are_reused_within_the_process(store, executor):
    # "the Python process that wrote it" is the caller's: steps executed by worker
    # processes belong to the session of the process that runs the pipeline
    pipeline = session_pipeline()
    first = pipeline.run(params={"n": 5}, store=store, executor=executor)
    result = pipeline.run(params={"n": 5}, store=store, executor=executor)
    assert result.steps["per_process"].cached, result.steps["per_process"].reason
    assert result["per_process"] == first["per_process"] == 10


def test_session_entries_are_not_reused_by_another_process(store):
    session_pipeline().run(params={"n": 5}, store=store)
    elsewhere = _session_run_elsewhere(store)
    assert elsewhere["first_cached"] is False
    assert elsewhere["first_reason"] == "expired"
    assert elsewhere["second_cached"] is True  # its own entries serve it
    assert elsewhere["value"] == 10
    assert elsewhere["calls"] == 1
    # and the other process's fresh entry is not reused here either
    result = session_pipeline().run(params={"n": 5}, store=store)
    assert not result.steps["per_process"].cached
    assert CALLS["per_process"] == 2


def test_on_complete_entries_are_not_reused_by_a_later_run(store):
    once = _counted("once", expire.on_complete())
    other = _counted("other", None)
    pipeline = Pipeline([once, other.with_options(name="other")])
    pipeline.run(params={"n": 1}, store=store)
    result = pipeline.run(params={"n": 1}, store=store)
    assert not result.steps["once"].cached
    assert result.steps["once"].reason == "expired"
    assert result.steps["other"].cached
    assert CALLS["once"] == 2
    assert CALLS["other"] == 1


# -- fixed moments -----------------------------------------------------------------------------


def test_at_a_past_moment_always_reruns(store):
    past = dt.datetime.now() - dt.timedelta(days=1)
    stale = _counted("stale", expire.at(past))
    for _ in range(3):
        result = Pipeline([stale]).run(params={"n": 1}, store=store)
        assert not result.steps["stale"].cached
    assert result.steps["stale"].reason == "expired"
    assert CALLS["stale"] == 3


def test_at_a_future_moment_hits(store):
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    fresh = _counted("fresh", expire.at(future))
    Pipeline([fresh]).run(params={"n": 1}, store=store)
    assert Pipeline([fresh]).run(params={"n": 1}, store=store).steps["fresh"].cached
    assert CALLS["fresh"] == 1


def test_at_midnight_is_fresh_now(store):
    daily = _counted("daily", expire.at_midnight())
    Pipeline([daily]).run(params={"n": 1}, store=store)
    assert Pipeline([daily]).run(params={"n": 1}, store=store).steps["daily"].cached
    assert CALLS["daily"] == 1


def test_at_midnight_expires_at_the_next_local_midnight():
    policy = expire.at_midnight()
    today = dt.date(2024, 3, 14)
    morning = dt.datetime.combine(today, dt.time(0, 0, 1)).timestamp()
    evening = dt.datetime.combine(today, dt.time(23, 59, 59)).timestamp()
    tomorrow = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(0, 0, 1)).timestamp()
    assert policy.fresh(morning, evening, same_run=False, same_session=False)
    assert not policy.fresh(morning, tomorrow, same_run=False, same_session=False)
    assert not policy.fresh(evening, tomorrow, same_run=False, same_session=False)


def test_at_compares_with_the_moment():
    moment = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    policy = expire.at(moment)
    before = moment.timestamp() - 1
    assert policy.fresh(0.0, before, same_run=False, same_session=False)
    assert not policy.fresh(0.0, moment.timestamp() + 1, same_run=False, same_session=False)


# -- probabilistic refresh ----------------------------------------------------------------------


@pytest.fixture
def seeded():
    state = random.getstate()
    random.seed(20240314)
    yield
    random.setstate(state)


def _refreshed_share(policy, age, draws=2000):
    created = 1_000_000.0
    fresh = sum(
        policy.fresh(created, created + age, same_run=False, same_session=False)
        for _ in range(draws)
    )
    return 1 - fresh / draws


@pytest.mark.parametrize(
    "policy",
    [
        expire.refresh(10, 20),
        expire.refresh(dt.timedelta(seconds=10), dt.timedelta(seconds=20)),
        expire.refresh(dt.timedelta(seconds=10), 20),
    ],
    ids=["seconds", "timedeltas", "mixed"],
)
def test_refresh_probability_grows_linearly_between_the_ttls(seeded, policy):
    assert _refreshed_share(policy, 0) == 0
    assert _refreshed_share(policy, 9.99) == 0
    assert _refreshed_share(policy, 12.5) == pytest.approx(0.25, abs=0.05)
    assert _refreshed_share(policy, 15) == pytest.approx(0.5, abs=0.1)
    assert _refreshed_share(policy, 17.5) == pytest.approx(0.75, abs=0.05)
    assert _refreshed_share(policy, 20) == 1
    assert _refreshed_share(policy, 1e6) == 1


def test_refresh_shares_increase_with_age(seeded):
    policy = expire.refresh(0, 100)
    shares = [_refreshed_share(policy, age, draws=1000) for age in (10, 30, 50, 70, 90)]
    assert shares == sorted(shares)
    assert shares[0] < 0.2
    assert shares[-1] > 0.8


@pytest.mark.parametrize(("low", "high"), [(5, 1), (5, 5), (-1, 5)])
def test_refresh_rejects_bad_bounds(low, high):
    with pytest.raises(ValueError, match="min_ttl"):
        expire.refresh(low, high)


def test_refresh_in_a_pipeline_is_fresh_below_min_ttl(store):
    soft = _counted("soft", expire.refresh(dt.timedelta(hours=1), dt.timedelta(hours=2)))
    Pipeline([soft]).run(params={"n": 1}, store=store)
    assert Pipeline([soft]).run(params={"n": 1}, store=store).steps["soft"].cached
    assert CALLS["soft"] == 1


def test_refresh_in_a_pipeline_past_max_ttl_reruns(store):
    soft = _counted("soft", expire.refresh(0.05, 0.1))
    Pipeline([soft]).run(params={"n": 1}, store=store)
    time.sleep(0.3)
    result = Pipeline([soft]).run(params={"n": 1}, store=store)
    assert not result.steps["soft"].cached
    assert result.steps["soft"].reason == "expired"
    assert CALLS["soft"] == 2
