"""Resume, rerun and debug from a recorded run.

``p.resume(run_id, store=...)`` takes the run's params and config from its record, re-runs
what failed, was skipped or never ran and reuses what succeeded; ``p.rerun(run_id,
steps=[...])`` re-executes the named steps and all their descendants; ``p.debug(run_id,
step)`` calls one step on the exact inputs it had. Reuse is proven with call counters
(``CALLS``, or files written by a child process); failures are switched on and off through
``FAILING``, which is not part of any step's code or inputs.

Every test runs on the three history backends (``history_url``) except the SIGKILL test,
which kills a real child process mid-step (SQLite, the embedded default).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from plait import Pipeline, Store, step
from plait.errors import PlaitError, RunFailed, UsageError

HEX32 = re.compile(r"[0-9a-f]{32}")
CALLS: Counter[str] = Counter()
FAILING: set[str] = set()
RECEIVED: list[object] = []


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    FAILING.clear()
    RECEIVED.clear()
    yield
    FAILING.clear()


def _fail_if_asked(name: str) -> None:
    if name in FAILING:
        raise RuntimeError(f"{name} is down")


# -- a pipeline with non-JSON params, a config value and an independent branch ----------------


@dataclass(frozen=True)
class Options:
    scale: int
    label: str


@step
def prepare(n, shape, options):
    CALLS["prepare"] += 1
    return (n * options.scale, shape, options.label)


@step(inputs={"bias": "config.bias"})
def weigh(prepare, bias):
    CALLS["weigh"] += 1
    _fail_if_asked("weigh")
    return prepare[0] + bias


@step
def side(n):
    CALLS["side"] += 1
    return -n


@step
def finish(weigh, prepare, side):
    CALLS["finish"] += 1
    _fail_if_asked("finish")
    RECEIVED.append(prepare)
    return (weigh, prepare[1], side)


def _resumable():
    return Pipeline(
        [prepare, weigh, side, finish],
        name="resumable",
        params={"n": 1, "shape": (1,), "options": Options(1, "default")},
        config={"bias": 0},
    )


RUN_PARAMS = {"n": 5, "shape": (2, 3), "options": Options(2, "custom")}
RUN_CONFIG = {"bias": 10}


def _failed_run(store, on_error="raise", failing=("weigh",)):
    FAILING.update(failing)
    if on_error == "raise":
        with pytest.raises(RunFailed) as caught:
            _resumable().run(params=RUN_PARAMS, config=RUN_CONFIG, store=store)
        result = caught.value.result
    else:
        result = _resumable().run(
            params=RUN_PARAMS, config=RUN_CONFIG, store=store, on_error=on_error
        )
    FAILING.clear()
    return result


@pytest.mark.parametrize("on_error", ["raise", "continue"])
def test_resume_needs_nothing_but_the_run_id_and_the_store(open_store, on_error):
    origin = _failed_run(open_store(), on_error)
    assert origin.status == "failed"
    before = dict(CALLS)
    # a new Store object on the same directory and database, and a fresh pipeline object
    # whose own defaults differ from the run's params and config
    store = open_store()
    resumed = _resumable().resume(origin.run_id, store=store)
    assert resumed.status == "succeeded"
    assert resumed["finish"] == (20, (2, 3), -5)
    assert type(resumed["finish"][1]) is tuple
    assert RECEIVED == [(10, (2, 3), "custom")]
    assert type(RECEIVED[0]) is tuple
    # every step that succeeded ran exactly once over both runs; weigh ran twice
    assert Counter(prepare=1, weigh=2, side=1, finish=1) == CALLS
    assert resumed.steps["prepare"].cached is True
    if before.get("side"):
        assert resumed.steps["side"].cached is True
    assert resumed.steps["weigh"].cached is False
    assert resumed.steps["finish"].cached is False


def test_a_resumed_run_is_a_new_run_linked_to_its_origin(open_store):
    store = open_store()
    origin = _failed_run(store)
    resumed = _resumable().resume(origin.run_id, store=store)
    assert resumed.run_id != origin.run_id
    record = store.history.run(resumed.run_id)
    assert record.origin_run_id == origin.run_id
    assert record.status == "succeeded"
    assert record.pipeline == "resumable"
    assert record.params["n"] == 5
    assert record.config == {"config.bias": 10}
    assert store.history.run(origin.run_id).status == "failed"
    assert store.history.run(origin.run_id).origin_run_id is None
    assert [r.run_id for r in store.history.runs()] == [resumed.run_id, origin.run_id]
    steps = store.history.run(resumed.run_id).steps
    assert steps["prepare"].cached is True
    assert steps["weigh"].cached is False
    assert steps["weigh"].status == "ok"


def test_a_resume_of_a_resume_reuses_what_both_computed(open_store):
    store = open_store()
    origin = _failed_run(store, failing=("weigh", "finish"))
    FAILING.add("finish")
    with pytest.raises(RunFailed) as caught:
        _resumable().resume(origin.run_id, store=store)
    middle = caught.value.result
    FAILING.clear()
    last = _resumable().resume(middle.run_id, store=store)
    assert last["finish"] == (20, (2, 3), -5)
    assert Counter(prepare=1, weigh=2, side=1, finish=2) == CALLS
    assert store.history.run(middle.run_id).origin_run_id == origin.run_id
    assert store.history.run(last.run_id).origin_run_id == middle.run_id
    assert store.history.run(middle.run_id).status == "failed"


def test_resume_accepts_a_unique_prefix_and_rejects_an_unknown_run(open_store):
    store = open_store()
    origin = _failed_run(store)
    resumed = _resumable().resume(origin.run_id[:-2], store=store)
    assert store.history.run(resumed.run_id).origin_run_id == origin.run_id
    with pytest.raises(KeyError, match="no run"):
        _resumable().resume("ffff-not-a-run", store=store)


def test_resume_without_a_store_says_to_pass_one(monkeypatch):
    monkeypatch.delenv("PLAIT_STORE", raising=False)
    with pytest.raises(UsageError, match="store="):
        _resumable().resume("0123")


@step
def count_items(items):
    CALLS["count_items"] += 1
    return list(items)


@step
def check_items(count_items):
    CALLS["check_items"] += 1
    _fail_if_asked("check_items")
    return len(count_items)


def test_resume_uses_the_params_as_they_were_when_the_run_started(open_store):
    store = open_store()
    items = [1, 2, 3]
    pipeline = Pipeline([count_items, check_items], name="snapshot")
    FAILING.add("check_items")
    with pytest.raises(RunFailed) as caught:
        pipeline.run(params={"items": items}, store=store)
    FAILING.clear()
    items.append(4)  # mutating the caller's object afterwards changes nothing recorded
    resumed = pipeline.resume(caught.value.result.run_id, store=store)
    assert resumed["check_items"] == 3
    assert resumed.steps["count_items"].cached is True
    assert store.history.run(caught.value.result.run_id).params == {"items": [1, 2, 3]}


# -- values come back losslessly --------------------------------------------------------------


@step(outputs=["grid", "mixed"])
def produce(size):
    CALLS["produce"] += 1
    return np.arange(size, dtype=np.int16), (1, 1.0, True, "1", None, b"1", (2,))


@step
def consume(grid, mixed):
    CALLS["consume"] += 1
    _fail_if_asked("consume")
    RECEIVED.append((grid, mixed))
    return grid.astype(np.float32) / 2


def test_resumed_values_keep_their_types_and_dtypes(open_store):
    store = open_store()
    pipeline = Pipeline([produce, consume], name="lossless")
    FAILING.add("consume")
    with pytest.raises(RunFailed):
        pipeline.run(params={"size": 5}, store=store)
    FAILING.clear()
    RECEIVED.clear()
    resumed = pipeline.resume(store.history.runs()[0].run_id, store=store)
    assert CALLS["produce"] == 1
    [(grid, mixed)] = RECEIVED
    assert type(grid) is np.ndarray
    assert grid.dtype == np.int16
    assert grid.tolist() == [0, 1, 2, 3, 4]
    assert type(mixed) is tuple
    assert [type(v) for v in mixed] == [int, float, bool, str, type(None), bytes, tuple]
    assert mixed == (1, 1.0, True, "1", None, b"1", (2,))
    assert resumed["consume"].dtype == np.float32
    assert resumed["grid"].dtype == np.int16
    assert type(resumed["mixed"]) is tuple


# -- rerun ------------------------------------------------------------------------------------


@step
def a(n):
    CALLS["a"] += 1
    return n + 1


@step
def b(a):
    CALLS["b"] += 1
    return a * 2


@step
def c(b):
    CALLS["c"] += 1
    return b + 3


@step
def d(c):
    CALLS["d"] += 1
    return c * 10


@step
def e(a):
    CALLS["e"] += 1
    return a - 1


def _chain():
    return Pipeline([a, b, c, d, e], name="chain", params={"n": 1})


def test_rerun_re_executes_a_step_and_all_its_descendants(open_store):
    store = open_store()
    first = _chain().run(params={"n": 7}, store=store)
    assert first["d"] == 190
    rerun = _chain().rerun(first.run_id, steps=["b"], store=store)
    # b's output is unchanged, yet c and d run again; a and e are reused
    assert Counter(a=1, b=2, c=2, d=2, e=1) == CALLS
    assert rerun["d"] == 190
    assert rerun["e"] == 7
    executed = {name for name, s in rerun.steps.items() if not s.cached}
    assert executed == {"b", "c", "d"}
    record = store.history.run(rerun.run_id)
    assert record.origin_run_id == first.run_id
    assert {n for n, s in record.steps.items() if not s.cached} == {"b", "c", "d"}
    assert {n for n, s in record.steps.items() if s.cached} == {"a", "e"}


def test_resuming_a_succeeded_run_recomputes_nothing(open_store):
    store = open_store()
    first = _chain().run(params={"n": 7}, store=store)
    resumed = _chain().resume(first.run_id, store=store)
    assert Counter(a=1, b=1, c=1, d=1, e=1) == CALLS
    assert all(s.cached for s in resumed.steps.values())
    assert resumed["d"] == 190
    assert store.history.run(resumed.run_id).origin_run_id == first.run_id


def test_rerun_of_several_steps_unions_their_descendants(open_store):
    store = open_store()
    first = _chain().run(params={"n": 2}, store=store)
    rerun = _chain().rerun(first.run_id, steps=["c", "e"], store=store)
    assert Counter(a=1, b=1, c=2, d=2, e=2) == CALLS
    assert {n for n, s in rerun.steps.items() if not s.cached} == {"c", "d", "e"}


def test_rerun_of_an_unknown_step_suggests_the_name(open_store):
    store = open_store()
    first = _chain().run(store=store)
    with pytest.raises(UsageError, match=r"'bb'.*did you mean 'b'"):
        _chain().rerun(first.run_id, steps=["bb"], store=store)
    assert Counter(a=1, b=1, c=1, d=1, e=1) == CALLS


# -- resume after the code changed ------------------------------------------------------------

EVOLVING = """
from collections import Counter

from plait import Pipeline, step

CALLS = Counter()
FAILING = set()


@step
def a(n):
    CALLS["a"] += 1
    return n + 1


@step
def b(a):
    CALLS["b"] += 1
    return {b_body}


@step
def c(b):
    CALLS["c"] += 1
    return b * 10


@step
def d(c):
    CALLS["d"] += 1
    if "d" in FAILING:
        raise RuntimeError("d is down")
    return c + 1


PIPELINE = Pipeline([a, b, c, d], name="evolving")
"""


def _load(tmp_path, monkeypatch, name, b_body):
    folder = tmp_path / name
    folder.mkdir()
    path = folder / f"{name}.py"
    path.write_text(EVOLVING.format(b_body=b_body))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("b_body", "reran"),
    [
        ("2 * a", {"b", "d"}),  # new code, same output: c is an early-cutoff hit
        ("a * 3", {"b", "c", "d"}),  # new code, new output: c runs again
        ("a * 2", {"d"}),  # same code (a fresh import): only the failed step runs
    ],
    ids=["same-output", "new-output", "unchanged"],
)
def test_resume_with_changed_code_reruns_what_the_cache_rules_say(
    open_store, tmp_path, monkeypatch, b_body, reran
):
    store = open_store()
    old = _load(tmp_path, monkeypatch, "evolving_old", "a * 2")
    old.FAILING.add("d")
    with pytest.raises(RunFailed) as caught:
        old.PIPELINE.run(params={"n": 4}, store=store)
    assert Counter(a=1, b=1, c=1, d=1) == old.CALLS
    new = _load(tmp_path, monkeypatch, "evolving_new", b_body)
    resumed = new.PIPELINE.resume(caught.value.result.run_id, store=store)
    assert {name for name, count in new.CALLS.items() if count} == reran
    assert {n for n, s in resumed.steps.items() if not s.cached} == reran
    b_value = eval(b_body, {"a": 5})
    assert resumed["d"] == b_value * 10 + 1
    if "b" in reran:
        assert resumed.steps["b"].reason == "code changed"
    # each step execution records its code fingerprint
    before = store.history.run(caught.value.result.run_id).steps
    after = store.history.run(resumed.run_id).steps
    assert all(HEX32.fullmatch(s.fingerprint or "") for s in [*before.values(), *after.values()])
    assert after["a"].fingerprint == before["a"].fingerprint
    assert (after["b"].fingerprint != before["b"].fingerprint) == ("b" in reran)


# -- cache=False steps are checkpoints for resume, not cache for other runs ------------------


@step(cache=False)
def stamp(n):
    CALLS["stamp"] += 1
    return n * 100


@step
def use_stamp(stamp):
    CALLS["use_stamp"] += 1
    _fail_if_asked("use_stamp")
    return stamp + 1


def test_cache_false_steps_are_reused_by_resume_but_not_by_a_fresh_run(open_store):
    store = open_store()
    pipeline = Pipeline([stamp, use_stamp], name="checkpoints")
    FAILING.add("use_stamp")
    with pytest.raises(RunFailed) as caught:
        pipeline.run(params={"n": 3}, store=store)
    FAILING.clear()
    resumed = pipeline.resume(caught.value.result.run_id, store=store)
    assert resumed["use_stamp"] == 301
    assert Counter(stamp=1, use_stamp=2) == CALLS
    assert resumed.steps["stamp"].cached is True
    fresh = pipeline.run(params={"n": 3}, store=store)
    assert CALLS["stamp"] == 2
    assert fresh.steps["stamp"].cached is False
    # stamp's output did not change, so its consumer is a cache hit (early cutoff)
    assert CALLS["use_stamp"] == 2
    assert fresh["use_stamp"] == 301


# -- debug ------------------------------------------------------------------------------------


@step(outputs=["grid", "meta"])
def shape_up(n, shape):
    CALLS["shape_up"] += 1
    return np.full(shape, n, dtype=np.float32), {"n": n, "shape": shape}


@step
def inspect_inputs(grid, meta, scale):
    CALLS["inspect_inputs"] += 1
    RECEIVED.append((grid, meta, scale))
    _fail_if_asked("inspect_inputs")
    return float(grid.sum()) * scale


def _debuggable():
    return Pipeline(
        [shape_up, inspect_inputs],
        name="debuggable",
        params={"n": 1, "shape": (1,), "scale": 1},
    )


def _check_received(received):
    grid, meta, scale = received
    assert type(grid) is np.ndarray
    assert grid.dtype == np.float32
    assert grid.shape == (2, 2)
    assert grid.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert meta == {"n": 3, "shape": (2, 2)}
    assert type(meta["shape"]) is tuple
    assert scale == 5


def test_debug_calls_the_step_on_its_exact_recorded_inputs(open_store):
    store = open_store()
    result = _debuggable().run(params={"n": 3, "shape": (2, 2), "scale": 5}, store=store)
    _check_received(RECEIVED[0])
    RECEIVED.clear()
    value = _debuggable().debug(result.run_id, "inspect_inputs", store=store)
    assert value == 60.0
    [received] = RECEIVED
    _check_received(received)
    # the inputs came from the store, not from running the upstream step again
    assert Counter(shape_up=1, inspect_inputs=2) == CALLS


def test_debug_reproduces_a_failing_step_in_process(open_store):
    store = open_store()
    FAILING.add("inspect_inputs")
    with pytest.raises(RunFailed) as caught:
        _debuggable().run(params={"n": 3, "shape": (2, 2), "scale": 5}, store=store)
    RECEIVED.clear()
    with pytest.raises(RuntimeError, match="inspect_inputs is down"):
        _debuggable().debug(caught.value.result.run_id[:-1], "inspect_inputs", store=store)
    [received] = RECEIVED
    _check_received(received)
    assert CALLS["shape_up"] == 1


def test_debug_explains_what_it_cannot_do(open_store):
    store = open_store()
    origin = _failed_run(store)
    with pytest.raises(UsageError, match=r"'wiegh'.*did you mean 'weigh'"):
        _resumable().debug(origin.run_id, "wiegh", store=store)
    # finish never ran: its input "weigh" has no stored value in that run
    with pytest.raises(PlaitError, match="weigh"):
        _resumable().debug(origin.run_id, "finish", store=store)
    assert CALLS["finish"] == 0


# -- SIGKILL mid-step, then resume ------------------------------------------------------------

KILLED = textwrap.dedent(
    """
    import os
    import signal
    import time
    from pathlib import Path

    from plait import Pipeline, Store, step


    def bump(folder, name):
        with open(Path(folder, name + ".calls"), "a") as handle:
            handle.write(".")


    @step
    def one(folder):
        bump(folder, "one")
        return (1,)


    @step
    def two(one, folder):
        bump(folder, "two")
        return (*one, 2)


    @step
    def three(two, folder):
        bump(folder, "three")
        if Path(folder, "kill-yourself").exists():
            os.kill(os.getpid(), signal.SIGKILL)
        if not Path(folder, "release").exists():
            Path(folder, "marker").touch()
            time.sleep(60)
        return (*two, 3)


    @step
    def four(three, folder):
        bump(folder, "four")
        return (*three, 4)


    PIPELINE = Pipeline([one, two, three, four], name="killed")


    def main(store, folder):
        PIPELINE.run(params={"folder": folder}, store=Store(store))
    """
)


def _calls(folder: Path, name: str) -> int:
    path = folder / f"{name}.calls"
    return len(path.read_text()) if path.exists() else 0


def _kill_mid_step(tmp_path: Path) -> tuple[Path, Path]:
    """Run the 4-step chain in a child process and SIGKILL it as soon as step three has
    started (steps one and two have finished by then); return (store dir, work folder)."""
    (tmp_path / "killed_chain.py").write_text(KILLED)
    folder = tmp_path / "work"
    folder.mkdir()
    store_dir = tmp_path / "store"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import killed_chain; "
            "killed_chain.main(sys.argv[2], sys.argv[3])",
            str(tmp_path),
            str(store_dir),
            str(folder),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(60_000):
            if (folder / "marker").exists() or child.poll() is not None:
                break
            time.sleep(0.001)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        assert (folder / "marker").exists()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert [_calls(folder, n) for n in ("one", "two", "three", "four")] == [1, 1, 1, 0]
    return store_dir, folder


def test_a_run_killed_mid_step_keeps_a_true_partial_record(tmp_path):
    store_dir, _ = _kill_mid_step(tmp_path)
    store = Store(store_dir)
    try:
        [record] = store.history.runs()
        assert record.status == "failed"  # its process is gone
        assert record.error is not None
        assert record.error.startswith("process died")
        assert record.finished_at is None
        steps = store.history.run(record.run_id).steps
        # every step that finished before the kill keeps its record
        assert {n: s.status for n, s in steps.items() if n in ("one", "two")} == {
            "one": "ok",
            "two": "ok",
        }
        assert "four" not in steps
        assert steps.get("three") is None or steps["three"].status != "ok"
    finally:
        store.history.close()


def test_a_run_killed_the_moment_a_step_starts_keeps_the_steps_before_it(tmp_path):
    # the same kill with no delay at all: step three kills its own process as it starts,
    # when one and two have finished (so their records must already be durable)
    (tmp_path / "killed_chain.py").write_text(KILLED)
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "kill-yourself").touch()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import killed_chain; "
            "killed_chain.main(sys.argv[2], sys.argv[3])",
            str(tmp_path),
            str(tmp_path / "store"),
            str(folder),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert [_calls(folder, n) for n in ("one", "two", "three", "four")] == [1, 1, 1, 0]
    store = Store(tmp_path / "store")
    try:
        [record] = store.history.runs()
        assert record.status == "failed"
        steps = store.history.run(record.run_id).steps
        assert {n: s.status for n, s in steps.items() if n in ("one", "two")} == {
            "one": "ok",
            "two": "ok",
        }
    finally:
        store.history.close()


def test_a_run_killed_mid_step_resumes_without_recomputing_what_finished(tmp_path, monkeypatch):
    store_dir, folder = _kill_mid_step(tmp_path)
    (folder / "release").touch()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "killed_chain", raising=False)
    import killed_chain

    store = Store(store_dir)
    try:
        [record] = store.history.runs()
        resumed = killed_chain.PIPELINE.resume(record.run_id[:12], store=store)
        assert resumed["four"] == (1, 2, 3, 4)
        assert type(resumed["four"]) is tuple
        assert [_calls(folder, n) for n in ("one", "two", "three", "four")] == [1, 1, 2, 1]
        assert resumed.steps["one"].cached is True
        assert resumed.steps["two"].cached is True
        again = store.history.run(resumed.run_id)
        assert again.status == "succeeded"
        assert again.origin_run_id == record.run_id
        assert store.history.run(record.run_id).status == "failed"
    finally:
        store.history.close()
        sys.modules.pop("killed_chain", None)
