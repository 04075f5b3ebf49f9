"""The hot path with the store on: per-step cost of a chain, cold store and warm store.

Two figures, each with history on (the default of a local store) and off::

    python benchmarks/bench_store.py                  # 1,000-step chain, 7 repetitions
    python benchmarks/bench_store.py --size 2000 --repeat 11

- **cold**: a fresh store directory; every step executes, stores its output and its entry,
  and is recorded. Per executed step.
- **hit**: the same pipeline run again on the warm store; every step is a cache hit, and
  is recorded. Per step.

Each repetition builds nothing (the pipeline is built once) and times only ``run()``;
medians with min-max are printed, in microseconds per step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any


def inc(v: int) -> int:
    return v + 1


def chain(size: int) -> Any:
    from plait import Pipeline, Step

    steps = [
        Step(inc, inputs={"v": "x" if i == 0 else f"s{i - 1}"}, outputs=[f"s{i}"], name=f"s{i}")
        for i in range(size)
    ]
    return Pipeline(steps, name="bench", params={"x": 0})


def measure(size: int, repeat: int, history: bool) -> dict[str, list[float]]:
    """Per-step microseconds of ``repeat`` cold runs and ``repeat`` all-hit runs."""
    from plait import Store

    pipeline = chain(size)
    last = f"s{size - 1}"
    cold: list[float] = []
    hit: list[float] = []
    base = tempfile.mkdtemp(prefix="plait-bench-store-")
    try:
        for i in range(repeat):
            root = os.path.join(base, f"r{i}")
            store = Store(root, history=None if history else False)
            started = time.perf_counter()
            result = pipeline.run(store=store, outputs=[last])
            cold.append((time.perf_counter() - started) / size * 1e6)
            assert result[last] == size
            started = time.perf_counter()
            result = pipeline.run(store=store, outputs=[last])
            hit.append((time.perf_counter() - started) / size * 1e6)
            assert all(r.cached for r in result.steps.values())
            store.close()
            shutil.rmtree(root)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"cold": cold, "hit": hit}


def show(label: str, figures: list[float]) -> str:
    return (
        f"{label:<28} {statistics.median(figures):8.1f} µs/step "
        f"({min(figures):.1f}-{max(figures):.1f})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    chain(10).run()  # imports and first-call costs out of the way
    for history in (True, False):
        figures = measure(args.size, args.repeat, history)
        tag = "with history" if history else "no history"
        print(show(f"cold store, {tag}", figures["cold"]))
        print(show(f"cache hit, {tag}", figures["hit"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
