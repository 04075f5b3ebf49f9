"""Build, validate and first-run benchmarks of plait at scale (issue 16).

Run on their own, never as part of the test suite; nothing here asserts anything::

    .venv/bin/python benchmarks/bench_build.py                  # every section (minutes)
    .venv/bin/python benchmarks/bench_build.py --only build first --repeat 7
    .venv/bin/python benchmarks/bench_build.py --only million --repeat 1

Sections:

build
    Build + validate a chain of ``--size`` steps (default 100,000): the ``Step`` objects,
    ``Pipeline(...)`` and ``p.validate(params=...)``, each timed, in a fresh process per
    repetition (the names the caller would have are made before the clock starts).
million
    A 1,000,000-step chain: build, validate, then ``run(outputs=[last])`` on the sequential
    executor, each timed, and the peak resident memory (``VmHWM``) above the interpreter's
    after ``import plait``. One process per repetition.
first
    A 10,000-step chain, built and validated, then run six times: the first run (its
    planning and compiling included, the run modules already imported by a one-step
    pipeline) against the median of the five warm runs after it.

Every figure is the median of the repetitions, with min and max; each repetition is a
fresh ``python`` process, so that the garbage collector and the allocator start alike.
Times are wall-clock, except ``build CPU``: the process's CPU time for the same build and
validation, which a loaded machine (others waiting for the same cores) changes less;
compare the two to tell the code's cost from the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Sequence

SECTIONS = ("build", "million", "first")

CHAIN = """
import gc, sys, time
from plait import Pipeline, Step

def start():
    return 0

def link(previous):
    return previous + 1

def status(key):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")

def chain(count):
    names = ["s%d" % i for i in range(count)]
    cpu = time.process_time()
    clock = time.perf_counter()
    steps = [Step(start, inputs=[], outputs=[names[0]], name=names[0])]
    steps += [Step(link, inputs=[names[i - 1]], outputs=[names[i]], name=names[i])
              for i in range(1, count)]
    made = time.perf_counter()
    pipeline = Pipeline(steps)
    del steps
    built = time.perf_counter()
    pipeline.validate()
    validated = time.perf_counter()
    return pipeline, names, {"steps": made - clock, "pipeline": built - made,
                             "validate": validated - built, "build": validated - clock,
                             "build CPU": time.process_time() - cpu}
"""

BUILD = (
    CHAIN
    + """
pipeline, names, times = chain(int(sys.argv[1]))
print(json.dumps(times))
"""
)

MILLION = (
    CHAIN
    + """
Pipeline([Step(start, inputs=[], outputs=["a"], name="a")]).run()  # run modules imported
base = status("VmRSS")
pipeline, names, times = chain(int(sys.argv[1]))
times["built MiB"] = status("VmRSS") - base
clock = time.perf_counter()
result = pipeline.run(outputs=[names[-1]])
times["run"] = time.perf_counter() - clock
assert result[names[-1]] == len(names) - 1 and list(result.outputs) == [names[-1]]
times["total"] = times["build"] + times["run"]
times["peak MiB"] = status("VmHWM") - base
print(json.dumps(times))
"""
)

FIRST = (
    CHAIN
    + """
Pipeline([Step(start, inputs=[], outputs=["a"], name="a")]).run()  # run modules imported
pipeline, names, times = chain(int(sys.argv[1]))
runs = []
for _ in range(6):
    gc.collect()
    clock = time.perf_counter()
    pipeline.run()
    runs.append(time.perf_counter() - clock)
count = len(names)
warm = statistics.median(runs[1:])
print(json.dumps({"first us/step": runs[0] / count * 1e6, "warm us/step": warm / count * 1e6,
                  "first / warm": runs[0] / warm}))
"""
)


def measure(script: str, size: int, repeat: int) -> dict[str, list[float]]:
    """Run ``script`` ``repeat`` times in fresh processes; every figure of every run."""
    figures: dict[str, list[float]] = {}
    code = "import json, statistics\n" + textwrap.dedent(script)
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code, str(size)], check=True, capture_output=True, text=True
        ).stdout
        for key, value in json.loads(out.splitlines()[-1]).items():
            figures.setdefault(key, []).append(value)
    return figures


def table(title: str, figures: dict[str, list[float]], unit: dict[str, str]) -> None:
    print(f"\n### {title}\n")
    print("| measure | median | min | max | runs |")
    print("|---|---|---|---|---|")
    for key, values in figures.items():
        suffix = unit.get(key, " s")
        cells = [f"{statistics.median(values):.3f}{suffix}"]
        cells += [f"{min(values):.3f}{suffix}", f"{max(values):.3f}{suffix}"]
        print(f"| {key} | {' | '.join(cells)} | {len(values)} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=100_000, help="steps of 'build'")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, "
        f"load average {load:.2f} at the start"
    )
    mib = {"built MiB": " MiB", "peak MiB": " MiB"}
    if "build" in args.only:
        figures = measure(BUILD, args.size, args.repeat)
        table(f"Build + validate, {args.size:,}-step chain (target <= 0.5 s)", figures, {})
    if "million" in args.only:
        figures = measure(MILLION, 1_000_000, max(1, min(args.repeat, 3)))
        table("1,000,000-step chain (target <= 15 s in all, <= 1.5 GiB peak)", figures, mib)
    if "first" in args.only:
        figures = measure(FIRST, 10_000, args.repeat)
        ratio = {"first us/step": " µs", "warm us/step": " µs", "first / warm": "x"}
        table("10,000-step chain: first run vs warm run (target <= 1.5x)", figures, ratio)


if __name__ == "__main__":
    main()
