"""Hashing a 10,000,000-row DataFrame with a string column (issue 16, target >= 8 GB/s).

Run on its own, never as part of the test suite::

    .venv/bin/python benchmarks/bench_hash.py               # 10M rows, 9 repetitions
    .venv/bin/python benchmarks/bench_hash.py --rows 1000000 --repeat 5

The frame has an ``int64``, a ``float64`` and a ``str`` column (pandas' default string
dtype: arrow ``large_string``); GB/s are of its in-memory size
(``memory_usage(deep=True)``). Beside plait's ``data_version``: the floor (xxh3_128 over
the raw buffers, no metadata, not chunk-independent), the same for a numpy array and
a deep copy of the frame. Medians with min and max, the cases interleaved within each
repetition so that a noisy neighbour hurts them alike.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

GB = 1e9


def frame_of(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "i": rng.integers(0, 1 << 40, rows),
            "f": rng.random(rows),
            "s": pd.array([f"item-{k}" for k in rng.integers(0, 1_000_000, rows)], dtype="str"),
        }
    )


def raw_buffers(frame: Any) -> list[Any]:
    import pyarrow as pa

    out = [frame["i"].to_numpy().data.cast("B"), frame["f"].to_numpy().data.cast("B")]
    for chunk in pa.chunked_array(frame["s"].array.__arrow_array__()).chunks:
        out += [buffer for buffer in chunk.buffers() if buffer is not None]
    return out


def main() -> None:
    import xxhash

    from plait.store.hashing import data_version

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    frame = frame_of(args.rows)
    size = int(frame.memory_usage(deep=True, index=False).sum())
    buffers = raw_buffers(frame)

    def floor() -> None:
        hasher = xxhash.xxh3_128()
        for buffer in buffers:
            hasher.update(buffer)
        hasher.digest()

    cases: dict[str, Callable[[], object]] = {
        "plait data_version(frame)": lambda: data_version(frame),
        "xxh3_128 over the raw buffers (floor)": floor,
        "frame.copy(deep=True)": lambda: frame.copy(deep=True),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, case in cases.items():
            gc.collect()
            clock = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - clock)
    load = os.getloadavg()[0]
    print(
        f"\n### Hashing a {args.rows:,}-row frame (int64, float64, str), "
        f"{size / 2**20:,.0f} MiB (load average {load:.2f})\n"
    )
    print("| method | median ms | GB/s (median) | GB/s (min-max) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"| {name} | {median * 1e3:.1f} | {size / median / GB:.2f} | "
            f"{size / max(values) / GB:.2f}-{size / min(values) / GB:.2f} |"
        )


if __name__ == "__main__":
    main()
