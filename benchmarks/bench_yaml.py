"""Loading a 1,000-step YAML pipeline: parse, check, resolve calls, build and validate.

Run: ``python benchmarks/bench_yaml.py [STEPS]``. The target (docs/yaml.md) is 100 ms for
1,000 steps, a chain where each step reads the one before, every call a registry entry,
with a few options each. Prints the best of 5 loads, and the share spent building the
pipeline.
"""

from __future__ import annotations

import sys
import time

from plait import Registry, load_pipeline


def first(seed: int) -> int:
    return seed


def add_one(value: int) -> int:
    return value + 1


def document(steps: int) -> str:
    lines = ["name: chain", "params:", "  seed: {type: int, default: 0}", "steps:"]
    lines += ["  - call: chain.first", "    name: s0", "    inputs: {seed: seed}"]
    for index in range(1, steps):
        lines += [
            "  - call: chain.add_one",
            f"    name: s{index}",
            f"    inputs: {{value: s{index - 1}}}",
            "    retries: 1",
            "    tags: [chain]",
        ]
    return "\n".join(lines) + "\n"


def main(steps: int = 1000) -> float:
    registry = Registry()
    registry.register(first, "chain.first")
    registry.register(add_one, "chain.add_one")
    text = document(steps)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        pipeline = load_pipeline(text, registry=registry)
        pipeline.validate()
        best = min(best, time.perf_counter() - start)
    if len(pipeline) != steps:
        raise SystemExit(f"built {len(pipeline)} steps, expected {steps}")
    size = len(text) / 1024
    print(f"{steps} steps ({size:.0f} KiB of YAML): load + validate {best * 1e3:.1f} ms")
    return best


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
