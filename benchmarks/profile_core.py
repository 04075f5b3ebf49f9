"""Where plait's time goes in the core benchmarks: cProfile of one case, top functions.

The companion of ``bench_core.py`` for whoever optimises the engine::

    .bench-venv/bin/python benchmarks/profile_core.py run-chain       # p.run() on a 10k chain
    .bench-venv/bin/python benchmarks/profile_core.py run-fan         # p.run() on 1 -> 10k -> 1
    .bench-venv/bin/python benchmarks/profile_core.py build --size 100000 --sort tottime
    .bench-venv/bin/python benchmarks/profile_core.py run-chain --sampling   # pyinstrument tree

The graphs are the ones ``bench_core.py`` times; the profiled call is repeated ``--repeat``
times after one warm-up run, so first-call costs do not dominate. Profiling slows pure
Python code down several times over: read the shares, not the absolute figures. cProfile
charges its own overhead to every call, so many small calls look dearer than they are;
``--sampling`` (pyinstrument, installed by ``setup_env.sh``) distorts less.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections.abc import Callable, Sequence
from typing import Any

# benchmarks/ is on sys.path: it is the script's directory
from bench_core import X, chain, fan, inc, plait_pipeline

CASES = ("run-chain", "run-fan", "run-chain-pruned", "build")


def case(name: str, size: int) -> Callable[[], Any]:
    """The call to profile, its graph built once (except for ``build``, which is the call)."""
    if name == "build":
        from plait import Pipeline, Step

        specs = [(f"s{i}", {"v": "x" if i == 0 else f"s{i - 1}"}, [f"s{i}"]) for i in range(size)]

        def build() -> Any:
            steps = [
                Step(inc, inputs=inputs, outputs=out, name=step) for step, inputs, out in specs
            ]
            return Pipeline(steps, name="bench", params={"x": X}).validate()

        return build
    shape = fan(size) if name == "run-fan" else chain(size)
    pipeline = plait_pipeline(shape.nodes, {"x": X})
    if name == "run-chain-pruned":
        return lambda: pipeline.run(outputs=[shape.last])
    return pipeline.run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    parser.add_argument("--sampling", action="store_true", help="pyinstrument instead of cProfile")
    args = parser.parse_args(argv)
    call = case(args.case, args.size)
    call()  # warm-up
    if args.sampling:
        from pyinstrument import Profiler

        sampler = Profiler(interval=0.0002)
        sampler.start()
        for _ in range(args.repeat):
            call()
        sampler.stop()
        print(sampler.output_text(unicode=True, color=False))
        return 0
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.repeat):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs().sort_stats(args.sort)
    stats.print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
