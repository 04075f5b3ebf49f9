"""How long ``import plait`` takes (issue 16, target <= 60 ms), and what it imports.

Run on its own, never as part of the test suite::

    .venv/bin/python benchmarks/bench_import.py            # 31 interleaved pairs
    .venv/bin/python benchmarks/bench_import.py --repeat 51

Each repetition starts ``python -c pass`` and ``python -c "import plait"`` (bytecode
already cached) one after the other; the table gives the medians with min and max of
both, and of their difference (the part plait adds). Then ``-X importtime``: the modules
``import plait`` loads, the largest self times first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def wall(code: str) -> float:
    clock = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()
    wall("import plait")  # bytecode written, files in the page cache
    bare, full = [], []
    for _ in range(args.repeat):
        bare.append(wall("pass"))
        full.append(wall("import plait"))
    added = [f - b for f, b in zip(full, bare, strict=True)]
    print(f"\n### import plait ({args.repeat} pairs, load average {os.getloadavg()[0]:.2f})\n")
    print("| measure | median ms | min ms | max ms |")
    print("|---|---|---|---|")
    for name, values in (
        ("python -c pass", bare),
        ('python -c "import plait"', full),
        ("difference (plait's part)", added),
    ):
        cells = (statistics.median(values), min(values), max(values))
        print(f"| {name} | " + " | ".join(f"{v * 1e3:.1f}" for v in cells) + " |")

    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import plait"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    rows = []
    for line in err.splitlines()[1:]:
        self_us, cumulative_us, name = (part.strip() for part in line[13:].split("|"))
        rows.append((int(self_us), int(cumulative_us), name))
    plait_total = next(c for _, c, name in rows if name == "plait")
    print(f"\n`-X importtime`: {len(rows)} modules, plait cumulative {plait_total / 1e3:.1f} ms\n")
    print("| module | self ms | cumulative ms |")
    print("|---|---|---|")
    for self_us, cumulative_us, name in sorted(rows, reverse=True)[:12]:
        print(f"| {name} | {self_us / 1e3:.1f} | {cumulative_us / 1e3:.1f} |")


if __name__ == "__main__":
    main()
