"""A store on Redis: ``Store("redis://host:port/db")`` against the session's real
redis-server (the ``redis_url`` fixture: a flushed database on loopback).

The same behaviours as the S3 store (``test_s3_store``): hits, misses, damaged and deleted
artifacts and entries, lazy outputs; then what is particular to Redis: the size limit and
its companion store, TTLs mapped onto Redis expiry, options in the URL that travel to
workers, signing with a store secret, and ``clear``.
"""

from __future__ import annotations

import logging
import pickle

import pytest
import redis

from plait import Pipeline, Store, step
from plait.errors import StoreSecretError, UsageError
from store_cases import CALLS, REMOTE_EXPECTED, Blob, remote_steps


@pytest.fixture
def db(redis_url):
    """A client on the flushed database, to look inside; the step counter reset."""
    CALLS.reset()
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


STEPS = remote_steps()
EXPECTED = REMOTE_EXPECTED


def _run(url, n=4, **kwargs):
    return Pipeline(STEPS).run(params={"n": n}, store=Store(url, **kwargs))


def _keys(client, pattern="plait:*"):
    return sorted(key.decode() for key in client.scan_iter(match=pattern))


def test_first_run_computes_and_second_run_hits(redis_url, db):
    first = _run(redis_url)
    assert first.outputs == EXPECTED
    assert not any(record.cached for record in first.steps.values())
    keys = _keys(db)
    assert any(key.startswith("plait:objects/") for key in keys)
    assert any(key.startswith("plait:cache/") for key in keys)
    second = _run(redis_url)
    assert all(record.cached for record in second.steps.values())
    assert second.outputs == EXPECTED
    assert type(second["raw"]["pair"]) is tuple
    assert CALLS["raw"] == CALLS["summary"] == 1


def test_a_changed_param_reruns(redis_url, db):
    _run(redis_url)
    result = _run(redis_url, n=5)
    assert result["summary"] == Blob(10)
    assert CALLS["raw"] == CALLS["summary"] == 2


@pytest.mark.parametrize("damage", [b"garbage", b""], ids=["garbage", "empty"])
def test_a_corrupted_artifact_is_recomputed(redis_url, db, damage):
    _run(redis_url)
    artifacts = _keys(db, "plait:objects/*")
    assert len(artifacts) == 2
    for key in artifacts:
        db.set(key, damage)
    CALLS.reset()
    assert _run(redis_url).outputs == EXPECTED
    assert CALLS["raw"] == CALLS["summary"] == 1
    CALLS.reset()
    assert _run(redis_url).outputs == EXPECTED
    assert CALLS.total() == 0


def test_a_deleted_artifact_is_recomputed(redis_url, db):
    _run(redis_url)
    db.delete(*_keys(db, "plait:objects/*"))
    CALLS.reset()
    assert _run(redis_url).outputs == EXPECTED
    assert CALLS["raw"] == CALLS["summary"] == 1


def test_a_damaged_entry_is_a_miss(redis_url, db):
    _run(redis_url)
    entries = _keys(db, "plait:cache/*")
    assert entries
    for key in entries:
        db.set(key, b"{not json")
    CALLS.reset()
    assert _run(redis_url).outputs == EXPECTED
    assert CALLS["raw"] == CALLS["summary"] == 1


def test_requested_outputs_load_lazily(redis_url, db):
    _run(redis_url)
    CALLS.reset()
    result = Pipeline(STEPS).run(params={"n": 4}, store=Store(redis_url), outputs=["summary"])
    assert result.outputs == {"summary": Blob(6)}
    assert CALLS.total() == 0


def test_a_key_prefix_keeps_two_stores_apart_in_one_database(redis_url, db):
    _run(f"{redis_url}?prefix=team-a")
    _run(f"{redis_url}?prefix=team-b")
    assert CALLS["raw"] == 2
    assert _keys(db, "team-a:objects/*")
    assert _keys(db, "team-b:objects/*")
    assert _keys(db, "plait:*") == []


# -- the size limit and the companion store --------------------------------------------------


@step
def big(n):
    CALLS.hit("big")
    return b"x" * n


def test_a_value_above_the_limit_is_refused_with_the_fix(redis_url, db, caplog):
    store = Store(f"{redis_url}?max_value_bytes=1000")
    with caplog.at_level(logging.WARNING, logger="plait"):
        first = Pipeline([big]).run(params={"n": 5000}, store=store)
    assert first["big"] == b"x" * 5000  # the run goes on with the value in memory
    assert "limit of 1,000 bytes" in caplog.text
    assert "companion store" in caplog.text
    assert _keys(db, "plait:objects/*") == []
    Pipeline([big]).run(params={"n": 5000}, store=store)
    assert CALLS["big"] == 2  # nothing was cached
    small = Pipeline([big]).run(params={"n": 10}, store=store)
    assert small["big"] == b"x" * 10
    assert len(_keys(db, "plait:objects/*")) == 1


def test_a_value_above_the_limit_goes_to_the_companion_store(redis_url, db, tmp_path):
    url = f"{redis_url}?max_value_bytes=1000&overflow={tmp_path / 'large'}"
    first = Pipeline([big]).run(params={"n": 5000}, store=Store(url))
    assert first.steps["big"].cached is False
    files = [p for p in (tmp_path / "large").rglob("*") if p.is_file()]
    assert len(files) == 1
    assert files[0].stat().st_size >= 5000
    (artifact,) = _keys(db, "plait:objects/*")
    assert len(db.get(artifact)) < 100  # only a pointer in Redis
    second = Pipeline([big]).run(params={"n": 5000}, store=Store(url))
    assert second.steps["big"].cached is True
    assert second["big"] == b"x" * 5000
    assert CALLS["big"] == 1
    Store(url).clear()
    assert [p for p in (tmp_path / "large").rglob("*") if p.is_file()] == []


# -- TTL ---------------------------------------------------------------------------------------


def test_a_ttl_is_set_on_every_key_and_refreshed_on_use(redis_url, db):
    _run(f"{redis_url}?ttl=3600")
    keys = _keys(db)
    assert keys
    assert all(0 < db.pttl(key) <= 3_600_000 for key in keys)
    for key in keys:  # as if they were nearly expired
        db.pexpire(key, 5000)
    second = _run(f"{redis_url}?ttl=3600")
    assert all(record.cached for record in second.steps.values())
    used = _keys(db, "plait:objects/*") + _keys(db, "plait:cache/*")
    assert all(db.pttl(key) > 5000 for key in used)  # read again: refreshed


def test_without_a_ttl_keys_never_expire(redis_url, db):
    _run(redis_url)
    assert all(db.pttl(key) == -1 for key in _keys(db))


def test_an_expired_key_is_a_miss(redis_url, db):
    _run(f"{redis_url}?ttl=3600")
    db.delete(*_keys(db))  # what Redis does when the TTL runs out
    CALLS.reset()
    assert _run(f"{redis_url}?ttl=3600").outputs == EXPECTED
    assert CALLS["raw"] == CALLS["summary"] == 1


# -- options, pickling, signing, clearing ------------------------------------------------------


def test_options_in_the_url_travel_with_a_pickled_store(redis_url):
    store = Store(f"{redis_url}?ttl=60&prefix=p&max_value_bytes=10")
    copy = pickle.loads(pickle.dumps(store))
    backend = copy.backend
    assert (backend.ttl, backend.prefix, backend.max_value_bytes) == (60, "p:", 10)


def test_valkey_urls_are_redis_urls(redis_url, db):
    _run(redis_url.replace("redis://", "valkey://"))
    assert _keys(db, "plait:objects/*")


@pytest.mark.parametrize("bad", ["ttl=soon", "ttl=-5", "max_value_bytes=0"])
def test_a_bad_option_is_named(redis_url, bad):
    name, _, value = bad.partition("=")
    with pytest.raises(UsageError, match=rf"{name} must be a positive number, got '{value}'"):
        Store(f"{redis_url}?{bad}")


def test_a_signed_store_refuses_to_be_read_without_its_secret(redis_url, db):
    Pipeline(STEPS).run(params={"n": 4}, store=Store(redis_url, secret="s3cret"))
    with pytest.raises(StoreSecretError):
        _run(redis_url)
    CALLS.reset()
    other = Pipeline(STEPS).run(params={"n": 4}, store=Store(redis_url, secret="other"))
    assert not any(record.cached for record in other.steps.values())  # not trusted
    again = Pipeline(STEPS).run(params={"n": 4}, store=Store(redis_url, secret="s3cret"))
    assert again.outputs == EXPECTED


def test_clear_removes_every_key_of_the_store(redis_url, db):
    _run(redis_url)
    db.set("someone-else", b"1")
    removed = Store(redis_url).clear()
    assert removed >= 3
    assert _keys(db) == []
    assert db.get("someone-else") == b"1"


def test_a_redis_store_records_runs_in_the_history_it_is_given(redis_url, tmp_path):
    store = Store(redis_url, history=str(tmp_path / "runs.db"))
    result = Pipeline(STEPS).run(params={"n": 4}, store=store)
    assert [run.run_id for run in store.history.runs()] == [result.run_id]
