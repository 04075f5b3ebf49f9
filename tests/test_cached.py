"""``@cached``: memoize any function in a store, with the same keys and expiry as steps."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from plait import Store, cached
from store_cases import (
    CALLS,
    count,
    damage,
    forget_modules,
    load_module,
    shared_square,
    store_files,
)

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _reset(monkeypatch):
    CALLS.reset()
    monkeypatch.delenv("PLAIT_STORE", raising=False)


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "store")


def test_a_second_call_is_served_from_the_store(store):
    @cached(store=store)
    def square(x):
        CALLS.hit("square")
        return x * x

    assert square(4) == 16
    assert square(4) == 16
    assert CALLS["square"] == 1
    assert square(5) == 25
    assert CALLS["square"] == 2


def test_a_store_object_works_too(store):
    @cached(store=Store(store))
    def double(x):
        CALLS.hit("double")
        return 2 * x

    assert [double(3), double(3)] == [6, 6]
    assert CALLS["double"] == 1


def test_without_a_store_it_memoizes_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @cached
    def triple(x):
        CALLS.hit("triple")
        return 3 * x

    assert [triple(2), triple(2), triple(2)] == [6, 6, 6]
    assert CALLS["triple"] == 1
    assert list(tmp_path.iterdir()) == []  # nothing written to disk


def test_plait_store_environment_variable_is_used(store, monkeypatch):
    monkeypatch.setenv("PLAIT_STORE", store)

    @cached
    def negate(x):
        CALLS.hit("negate")
        return -x

    assert negate(1) == negate(1) == -1
    assert CALLS["negate"] == 1
    assert Path(store).is_dir()


def test_positional_keyword_and_default_arguments_share_an_entry(store):
    @cached(store=store)
    def power(base, exponent=2, *, offset=0):
        CALLS.hit("power")
        return base**exponent + offset

    calls = [
        power(3),
        power(3, 2),
        power(base=3),
        power(3, exponent=2),
        power(exponent=2, base=3),
        power(3, 2, offset=0),
    ]
    assert calls == [9] * 6
    assert CALLS["power"] == 1
    assert power(3, 3) == 27
    assert power(3, offset=1) == 10
    assert CALLS["power"] == 3


def test_keyword_order_does_not_matter(store):
    @cached(store=store)
    def pair(**kwargs):
        CALLS.hit("pair")
        return sorted(kwargs.items())

    assert pair(a=1, b=2) == pair(b=2, a=1) == [("a", 1), ("b", 2)]
    assert CALLS["pair"] == 1


def test_different_types_are_not_confused(store):
    @cached(store=store)
    def echo(x):
        CALLS.hit("echo")
        return x

    values = [1, 1.0, True, "1", [1], (1,), {1}, b"1", None, np.int64(1)]
    first = [echo(v) for v in values]
    second = [echo(v) for v in values]
    assert CALLS["echo"] == len(values)
    for value, a, b in zip(values, first, second, strict=True):
        assert type(a) is type(value)
        assert type(b) is type(value)
        assert b == value


def test_none_results_are_cached(store):
    @cached(store=store)
    def nothing(x):
        CALLS.hit("nothing")

    assert nothing(1) is None
    assert nothing(1) is None
    assert CALLS["nothing"] == 1


def test_exceptions_are_not_cached(store):
    @cached(store=store)
    def fragile(x):
        CALLS.hit("fragile")
        if CALLS["fragile"] == 1:
            raise ValueError("first call fails")
        return x

    with pytest.raises(ValueError, match="first call fails"):
        fragile(1)
    assert fragile(1) == 1
    assert fragile(1) == 1
    assert CALLS["fragile"] == 2


def test_results_keep_their_types(store):
    @cached(store=store)
    def build(n):
        CALLS.hit("build")
        return {"tuple": (n, n), "array": np.arange(n, dtype=np.int16), "set": {n}}

    build(3)
    value = build(3)
    assert CALLS["build"] == 1
    assert value["tuple"] == (3, 3)
    assert value["array"].dtype == np.int16
    assert value["set"] == {3}


def test_wrapping_keeps_the_function_name_and_doc(store):
    @cached(store=store)
    def documented(x):
        """Documented."""
        return x

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Documented."


def test_ttl_expires(store):
    @cached(store=store, ttl=0.2)
    def short(x):
        CALLS.hit("short")
        return x

    @cached(store=store, ttl=3600)
    def long(x):
        CALLS.hit("long")
        return x

    short(1), long(1)
    time.sleep(0.4)
    short(1), long(1)
    assert CALLS["short"] == 2
    assert CALLS["long"] == 1


def test_min_and_max_ttl_refresh(store):
    @cached(store=store, min_ttl=3600, max_ttl=7200)
    def soft(x):
        CALLS.hit("soft")
        return x

    @cached(store=store, min_ttl=0.05, max_ttl=0.1)
    def hard(x):
        CALLS.hit("hard")
        return x

    soft(1), hard(1)
    time.sleep(0.3)
    soft(1), hard(1)
    assert CALLS["soft"] == 1
    assert CALLS["hard"] == 2


def test_min_ttl_without_max_ttl_is_an_error(store):
    with pytest.raises(ValueError, match="max_ttl"):
        cached(store=store, min_ttl=1)


def test_version_label_invalidates(store):
    def compute(x):
        CALLS.hit("compute")
        return x + 1

    first = cached(store=store, version="1")(compute)
    again = cached(store=store, version="1")(compute)
    second = cached(store=store, version="2")(compute)
    assert first(1) == again(1) == second(1) == 2
    assert CALLS["compute"] == 2


def test_async_functions_are_memoized(store):
    @cached(store=store)
    async def fetch(x):
        CALLS.hit("fetch")
        await asyncio.sleep(0)
        return {"x": x}

    async def main():
        return [await fetch(1), await fetch(1), await fetch(2)]

    assert asyncio.run(main()) == [{"x": 1}, {"x": 1}, {"x": 2}]
    assert asyncio.run(fetch(1)) == {"x": 1}
    assert CALLS["fetch"] == 2
    assert asyncio.iscoroutinefunction(fetch)


def test_a_store_path_is_shared_across_processes(store, tmp_path):
    folder = str(tmp_path)
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
        "from store_cases import shared_square\n"
        "from plait import cached\n"
        f"print(cached(store={store!r})(shared_square)(7, {folder!r}))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(completed.stdout) == 49
    assert count(folder, "shared_square") == 1
    assert cached(store=store)(shared_square)(7, folder) == 49
    assert count(folder, "shared_square") == 1  # served from the other process's entry
    assert cached(store=store)(shared_square)(8, folder) == 64
    assert count(folder, "shared_square") == 2


SOURCE = """
from plait import cached
from store_cases import CALLS

@cached(store={store!r})
def scale(x):
    CALLS.hit("scale")
    return x * {factor}  # a comment
"""


@pytest.fixture
def _scale_module(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield
    forget_modules("cached_scale")


@pytest.mark.usefixtures("_scale_module")
def test_code_changes_invalidate_and_cosmetic_edits_do_not(store, tmp_path):
    def scale(directory, source):
        return load_module(tmp_path / directory, "cached_scale", source).scale

    base = SOURCE.format(store=store, factor=2)
    assert scale("a", base)(5) == 10
    cosmetic = base.replace("# a comment", "# another comment").replace(
        "def scale", "\n\ndef scale"
    )
    assert scale("b", cosmetic)(5) == 10
    assert CALLS["scale"] == 1
    assert scale("c", SOURCE.format(store=store, factor=3))(5) == 15
    assert CALLS["scale"] == 2


def test_threads_calling_at_once_get_correct_values(store):
    @cached(store=store)
    def slow(x):
        CALLS.hit("slow")
        time.sleep(0.01)
        return [x] * 100

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(slow, [1] * 16 + [2] * 16))
    assert results == [[1] * 100] * 16 + [[2] * 100] * 16
    calls = CALLS["slow"]
    assert slow(1) == [1] * 100
    assert CALLS["slow"] == calls


def test_partial_arguments_are_bound_like_calls(store):
    @cached(store=store)
    def add(a, b):
        CALLS.hit("add")
        return a + b

    add_one = functools.partial(add, 1)
    assert add_one(2) == add(1, 2) == add(a=1, b=2) == 3
    assert CALLS["add"] == 1


@pytest.mark.parametrize("how", ["flip", "truncate", "garbage"])
def test_a_damaged_artifact_is_recomputed_and_repaired(store, how):
    @cached(store=store)
    def listing(x):
        CALLS.hit("listing")
        return {"values": [x] * 50}

    listing(1)
    for path in store_files(Path(store)):
        damage(path, how)
    assert listing(1) == {"values": [1] * 50}
    assert CALLS["listing"] == 2
    assert listing(1) == {"values": [1] * 50}
    assert CALLS["listing"] == 2  # the store was repaired: served again
