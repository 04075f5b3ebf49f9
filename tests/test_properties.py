"""Properties over random DAGs, and determinism of the order across hash seeds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait import Pipeline, Step

PRIME = 1_000_003
MAX_STEPS = 30


@st.composite
def dags(draw) -> tuple[list[list[int]], list[int]]:
    """Step i depends on a random subset of steps 0..i-1; plus a declaration order."""
    size = draw(st.integers(min_value=1, max_value=MAX_STEPS))
    deps = [[]]
    for i in range(1, size):
        chosen = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=5))
        deps.append(sorted(chosen))
    declaration = draw(st.permutations(range(size)))
    return deps, list(declaration)


def _expected(deps: list[list[int]]) -> dict[str, int]:
    values: list[int] = []
    for i, ds in enumerate(deps):
        values.append((i * 31 + sum(values[j] for j in ds)) % PRIME)
    return {f"v{i}": value for i, value in enumerate(values)}


def _node(i: int, log: list[int], lock: threading.Lock):
    def node(**inputs):
        with lock:
            log.append(i)
        return (i * 31 + sum(inputs.values())) % PRIME

    return node


def _build(deps: list[list[int]], declaration: list[int], log: list[int]) -> Pipeline:
    lock = threading.Lock()
    steps = {
        i: Step(
            _node(i, log, lock),
            inputs={f"in{j}": f"v{j}" for j in ds},
            outputs=[f"v{i}"],
            name=f"s{i}",
        )
        for i, ds in enumerate(deps)
    }
    return Pipeline([steps[i] for i in declaration])


def _names(order) -> list[str]:
    return [item if isinstance(item, str) else item.name for item in order]


@pytest.mark.parametrize("executor", ["sequential", "threads:4"])
@settings(max_examples=100, deadline=None)
@given(dag=dags())
def test_every_step_runs_exactly_once_after_all_its_inputs(executor, dag):
    deps, declaration = dag
    log: list[int] = []
    result = _build(deps, declaration, log).run(executor=executor)
    assert sorted(log) == list(range(len(deps)))
    position = {i: k for k, i in enumerate(log)}
    for i, ds in enumerate(deps):
        assert all(position[j] < position[i] for j in ds), (i, ds, log)
    assert dict(result.outputs) == _expected(deps)


@settings(max_examples=100, deadline=None)
@given(dag=dags(), other=st.randoms(use_true_random=False))
def test_results_do_not_depend_on_declaration_order(dag, other):
    deps, declaration = dag
    shuffled = list(declaration)
    other.shuffle(shuffled)
    first = _build(deps, declaration, []).run()
    second = _build(deps, shuffled, []).run()
    assert dict(first.outputs) == dict(second.outputs) == _expected(deps)


@settings(max_examples=100, deadline=None)
@given(dag=dags())
def test_order_is_topological_and_complete(dag):
    deps, declaration = dag
    order = _names(_build(deps, declaration, []).order)
    assert sorted(order) == sorted(f"s{i}" for i in range(len(deps)))
    position = {name: k for k, name in enumerate(order)}
    for i, ds in enumerate(deps):
        assert all(position[f"s{j}"] < position[f"s{i}"] for j in ds)


@settings(max_examples=20, deadline=None)
@given(dag=dags(), data=st.data())
def test_subset_runs_exactly_the_ancestors_of_the_requested_output(dag, data):
    deps, declaration = dag
    target = data.draw(st.integers(min_value=0, max_value=len(deps) - 1))
    ancestors = {target}
    for i in range(target, -1, -1):
        if i in ancestors:
            ancestors.update(deps[i])
    log: list[int] = []
    result = _build(deps, declaration, log).run(outputs=[f"v{target}"])
    assert sorted(log) == sorted(ancestors)
    assert dict(result.outputs) == {f"v{target}": _expected(deps)[f"v{target}"]}


_ORDER_SCRIPT = textwrap.dedent(
    """
    from plait import Pipeline, Step

    def node(**inputs):
        return len(inputs)

    words = ["apple", "kiwi", "fig", "plum", "pear", "lime", "date", "sloe", "yuzu", "nut"]
    steps = []
    for i, word in enumerate(words):
        deps = {f"in_{other}": other for other in words[: i // 3]}
        steps.append(Step(node, inputs=deps, outputs=[word], name=f"make_{word}"))
    pipeline = Pipeline(steps[::-1], name="seeded")
    order = [s if isinstance(s, str) else s.name for s in pipeline.order]
    print(order)
    print(pipeline.fingerprint)
    print(sorted(pipeline.run().outputs.items()))
    """
)


def test_order_and_fingerprint_are_identical_across_hash_seeds(tmp_path):
    script = tmp_path / "seeded_pipeline.py"
    script.write_text(_ORDER_SCRIPT)
    outputs = set()
    for seed in ("0", "1", "2", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env.pop("PLAIT_STORE", None)
        completed = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert completed.returncode == 0, completed.stderr
        outputs.add(completed.stdout)
    assert len(outputs) == 1, outputs
