"""Issue 16's whole table, re-measured in one run: every row, its floor or peer, its target.

Run on its own, never as part of the test suite; nothing here asserts anything about time::

    bash benchmarks/setup_env.sh                                  # .bench-venv/ with the peers
    .bench-venv/bin/python benchmarks/bench_issue16.py            # every row (a few minutes)
    .bench-venv/bin/python benchmarks/bench_issue16.py --quick    # smaller sizes: a dry run
    .bench-venv/bin/python benchmarks/bench_issue16.py --only chain cache --repeat 11
    .bench-venv/bin/python benchmarks/bench_issue16.py --profile  # cProfile of the plait cases

The rows (``--only`` selects sections), reusing the other benchmark scripts' code:

chain
    A 10,000-step chain, warm ``run()`` with no store, beside the bare ``graphlib`` loop
    (``bench_core.Floor``) and Apache Hamilton (``bench_core``'s generated driver), the three
    interleaved in each repetition.
first
    The first ``run()`` of a freshly built and validated 10,000-step chain, in a fresh
    process per repetition (``bench_build.FIRST``: planning and compiling included, the
    build and ``validate()`` not), beside the first ``execute`` of a freshly built Hamilton
    driver in this process.
build
    Build + validate a 100,000-step chain (``bench_build.BUILD``, a fresh process each).
million
    Build + validate + ``run(outputs=[last])`` of a 1,000,000-step chain and its peak memory
    above ``import plait`` (``bench_build.MILLION``), beside a ``graphlib`` loop of the same
    chain in its own process, once (``--quick``: 100,000 steps, once).
cache
    A rerun of a fully cached 1,000-step chain on a warm local store, history on and off,
    beside a keyed SQLite+JSON floor (per step: ``json.dumps`` of the key, sha256, one
    ``SELECT``, ``json.loads`` of the entry), ``joblib.Memory`` and Hamilton's
    ``with_cache()``, interleaved. The history's recording cost per step is the paired
    difference (history on minus off) of each repetition.
cold
    The same chain on a new store directory (every step executes, writes its artifact,
    entry and record), history on and off (``bench_store.measure``), per executed step.
hash
    ``data_version`` of a 10M-row frame (int64, float64, str) beside xxh3_128 over its raw
    buffers (``bench_hash``), in GB/s of the frame's in-memory size.
import
    ``python -c "import plait"`` minus ``python -c pass``, interleaved pairs (``bench_import``).
async
    1,000 async steps of ``asyncio.sleep(0.05)`` on the default executor, beside
    ``asyncio.run(asyncio.gather(...))`` of the same coroutines, as multiples of 50 ms.
dask
    A 200-step chain on ``Dask(client)`` (a ``LocalCluster`` of two single-thread worker
    processes) beside the same chain of ``dask.delayed`` computed at once; the ratio is taken
    per repetition.

Every figure is the median with min-max of the repetitions; the peers run in this process
(the ``million`` floor and the fresh-process rows aside), interleaved with plait where the
row compares them. It ends with one Markdown table: row, plait, floor/peer, target, verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import json
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# benchmarks/ is on sys.path: it is the script's directory
import bench_build
import bench_core
import bench_hash
import bench_import
import bench_runtime
import bench_store

HERE = Path(__file__).resolve().parent
SECTIONS = (
    "chain",
    "first",
    "build",
    "million",
    "cache",
    "cold",
    "hash",
    "import",
    "async",
    "dask",
)


@dataclass
class Row:
    """One line of the final table."""

    name: str
    plait: str
    peer: str
    target: str
    met: bool | None  # None: not decided (no figure, or no peer to compare with)


def spread(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    """``median (min-max)``."""
    return (
        f"{fmt.format(statistics.median(values))} "
        f"({fmt.format(min(values))}-{fmt.format(max(values))})"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def rounds(
    cases: dict[str, Callable[[], Any]], repeat: int, warm: bool = True
) -> dict[str, list[float]]:
    """Seconds of each case, interleaved repetition by repetition (one warm-up call each).

    A case returning a float reports its own seconds; otherwise its call is timed.
    """

    def once(case: Callable[[], Any]) -> float:
        gc.collect()
        start = time.perf_counter()
        own = case()
        elapsed = time.perf_counter() - start
        return own if isinstance(own, float) else elapsed

    if warm:
        for case in cases.values():
            once(case)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            times[name].append(once(case))
    return times


def per_step(seconds: Sequence[float], steps: int) -> list[float]:
    return [s / steps * 1e6 for s in seconds]


def hamilton_ok(args: argparse.Namespace) -> bool:
    return args.peers and bench_core.hamilton_available()


def say(text: str) -> None:
    print(text, flush=True)


# --- 10k chain, warm, no store --------------------------------------------------------------------


def section_chain(args: argparse.Namespace) -> list[Row]:
    """Two rounds: plait and the floor alone, then the three with Hamilton's driver alive.

    A driver of 10,000 nodes is a quarter of a million objects that every full collection
    of the garbage collector walks during plait's run too (with the collector off, plait's
    figure is the same in both rounds): the first round is plait's figure against the floor,
    the second compares plait and Hamilton in the same heap.
    """
    n = args.chain_steps
    shape = bench_core.chain(n)
    params = {"x": bench_core.X}
    floor = bench_core.Floor(shape.nodes)
    pipeline = bench_core.plait_pipeline(shape.nodes, params)
    assert pipeline.run()[shape.last] == shape.expected
    cases: dict[str, Callable[[], Any]] = {
        "plait": pipeline.run,
        "floor": lambda: floor.run(params),
    }
    alone = {k: per_step(v, n) for k, v in rounds(cases, args.repeat).items()}
    plait, floor_us = median(alone["plait"]), median(alone["floor"])
    met: bool | None = plait <= 2 * floor_us
    figure = f"{spread(alone['plait'])} ({plait / floor_us:.2f}x floor)"
    peer = f"graphlib loop {spread(alone['floor'])}"
    if hamilton_ok(args):
        dr = bench_core.hamilton_driver(bench_core.hamilton_chain_functions(n))

        def hamilton() -> Any:
            with bench_core.recursion_limit(10 * n + 1_000):
                return dr.execute([shape.last], inputs={"x": bench_core.X})

        cases["hamilton"] = hamilton
        both = {k: per_step(v, n) for k, v in rounds(cases, args.repeat).items()}
        ratio = median(both["hamilton"]) / median(both["plait"])
        figure += (
            f"; {spread(both['plait'])} with Hamilton's driver alive (Hamilton {ratio:.2f}x plait)"
        )
        peer += f"; Hamilton {spread(both['hamilton'])}"
        met = met and ratio >= 2
    else:
        met = None
        peer += "; Hamilton not measured"
    return [
        Row(
            f"{n:,} chain, warm `run()`, no store (µs/step)",
            figure,
            peer,
            "<= 2x floor and >= 2x below Hamilton",
            met,
        )
    ]


# --- 10k chain, first run -------------------------------------------------------------------------


def section_first(args: argparse.Namespace) -> list[Row]:
    n = args.chain_steps
    figures = bench_build.measure(bench_build.FIRST, n, args.repeat_fresh)
    first, ratio = figures["first us/step"], figures["first / warm"]
    peer = "—"
    below: bool | None = None
    if hamilton_ok(args):
        hamilton: list[float] = []
        for _ in range(args.repeat_fresh):
            dr = bench_core.hamilton_driver(bench_core.hamilton_chain_functions(n))
            gc.collect()
            with bench_core.recursion_limit(10 * n + 1_000):
                start = time.perf_counter()
                dr.execute([f"s{n - 1}"], inputs={"x": bench_core.X})
                hamilton.append((time.perf_counter() - start) / n * 1e6)
            del dr
        peer = f"Hamilton, first `execute` of a new driver {spread(hamilton)}"
        below = median(first) < median(hamilton)
    met = None if below is None else (median(ratio) <= 1.5 and below)
    return [
        Row(
            f"{n:,} chain, **first** run, build excluded (µs/step)",
            f"{spread(first)}; {spread(ratio, '{:.2f}')}x its warm runs "
            f"({spread(figures['warm us/step'])}), fresh processes",
            peer,
            "<= 1.5x the warm figure; below Hamilton",
            met,
        )
    ]


# --- build + validate 100k, the 1M chain ----------------------------------------------------------


def section_build(args: argparse.Namespace) -> list[Row]:
    figures = bench_build.measure(bench_build.BUILD, args.build_steps, args.repeat_fresh)
    parts = ", ".join(
        f"{key} {median(figures[key]):.2f}" for key in ("steps", "pipeline", "validate")
    )
    return [
        Row(
            f"build + validate {args.build_steps:,} steps (s)",
            f"{spread(figures['build'], '{:.2f}')}: {parts}",
            "—",
            "<= 0.5 s",
            median(figures["build"]) <= 0.5,
        )
    ]


FLOOR_MILLION = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
from bench_core import Floor, chain

def status(key):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")

base = status("VmRSS")
clock = time.perf_counter()
shape = chain(int(sys.argv[1]))
floor = Floor(shape.nodes)
del shape
built = time.perf_counter()
values = floor.run({"x": 1})
ran = time.perf_counter()
print(json.dumps({"build": built - clock, "run": ran - built, "total": ran - clock,
                  "peak MiB": status("VmHWM") - base}))
"""


def section_million(args: argparse.Namespace) -> list[Row]:
    n = args.million_steps
    repeat = args.repeat_million
    figures = bench_build.measure(bench_build.MILLION, n, repeat)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FLOOR_MILLION), str(n), str(HERE)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    floor = json.loads(out.splitlines()[-1])
    total, peak = median(figures["total"]), median(figures["peak MiB"])
    scale = n / 1_000_000
    return [
        Row(
            f"build + validate + run, {n:,}-step chain",
            f"{spread(figures['build'])} s + {spread(figures['run'])} s = "
            f"{spread(figures['total'])} s; {median(figures['built MiB']) / 1024:.2f} GiB "
            f"built, {spread([p / 1024 for p in figures['peak MiB']], '{:.2f}')} GiB peak",
            f"graphlib loop (every value kept, one run) {floor['total']:.1f} s, "
            f"+{floor['peak MiB']:.0f} MiB",
            "<= 15 s in all, <= 1.5 GiB peak" + ("" if n == 1_000_000 else f" (x {scale:g})"),
            total <= 15 * scale and peak <= 1.5 * 1024 * scale,
        )
    ]


# --- cache hits and cold stores -------------------------------------------------------------------


class SqliteJsonFloor:
    """A keyed cache in its simplest form: per step, a JSON key hashed with sha256, one
    indexed ``SELECT`` in SQLite and the entry's JSON decoded into the value."""

    def __init__(self, path: Path, steps: int) -> None:
        self.steps = steps
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, entry TEXT)")
        rows = []
        for i in range(steps):  # step i's input is i, its output i + 1
            rows.append((self.key(i, i), json.dumps({"value": i + 1, "step": f"s{i}"})))
        self.db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?)", rows)
        self.db.commit()

    @staticmethod
    def key(i: int, v: int) -> str:
        parts = json.dumps({"step": f"s{i}", "code": "inc", "inputs": {"v": v}}, sort_keys=True)
        return hashlib.sha256(parts.encode()).hexdigest()

    def run(self) -> int:
        v = 0
        query = self.db.execute
        for i in range(self.steps):
            (entry,) = query(
                "SELECT entry FROM entries WHERE key = ?", (self.key(i, v),)
            ).fetchone()
            v = json.loads(entry)["value"]
        return v


def section_cache(args: argparse.Namespace, root: Path) -> list[Row]:
    import joblib

    from plait import Store

    n = args.cache_steps
    last = f"s{n - 1}"
    chain = bench_runtime.plait_chain(n, name="cached")
    stores = {
        "history": Store(root / "plait-hist"),
        "no history": Store(root / "plait-nohist", history=False),
    }
    cases: dict[str, Callable[[], Any]] = {}
    for label, store in stores.items():
        chain.run(store=store, outputs=[last])  # populate

        def hit(store: Any = store) -> Any:
            result = chain.run(store=store, outputs=[last])
            assert result[last] == n
            return result

        cases[label] = hit
    floor = SqliteJsonFloor(root / "floor.db", n)
    cases["floor"] = floor.run
    memory = joblib.Memory(root / "joblib", verbose=0)
    cached_inc = memory.cache(bench_runtime.inc)

    def joblib_chain() -> int:
        v = 0
        for _ in range(n):
            v = cached_inc(v)
        return v

    joblib_chain()
    cases["joblib"] = joblib_chain
    if hamilton_ok(args):
        from hamilton import driver

        source = bench_runtime.hamilton_chain_source(n)
        module = bench_runtime.hamilton_file_module(source, root / "hamilton_chain16.py")
        dr = driver.Builder().with_modules(module).with_cache(path=str(root / "hamilton")).build()

        def hamilton() -> Any:
            with bench_core.recursion_limit(20 * n + 1_000):
                return dr.execute([last], inputs={"x": 0})

        hamilton()
        cases["hamilton"] = hamilton
    times = {k: per_step(v, n) for k, v in rounds(cases, args.repeat).items()}
    for store in stores.values():
        store.close()
    args.hit_times = times
    peer = f"keyed SQLite+JSON floor {spread(times['floor'])}; joblib {spread(times['joblib'])}"
    if "hamilton" in times:
        peer += f"; Hamilton `with_cache()` {spread(times['hamilton'])}"
    recording = [h - w for h, w in zip(times["history"], times["no history"], strict=True)]
    return [
        Row(
            f"cache hit per step ({n:,} chain, warm store) (µs)",
            f"{spread(times['no history'])} ({spread(times['history'])} with history)",
            peer,
            "<= 20 µs with history on",
            median(times["history"]) <= 20,
        ),
        Row(
            "history recording, warm run (µs/step: hit with history - without, paired)",
            spread(recording),
            "—",
            "<= 10 µs/step",
            median(recording) <= 10,
        ),
    ]


def section_cold(args: argparse.Namespace) -> list[Row]:
    n = args.cache_steps
    with_history = bench_store.measure(n, args.repeat_cold, history=True)
    without = bench_store.measure(n, args.repeat_cold, history=False)
    cold, cold_off = with_history["cold"], without["cold"]
    return [
        Row(
            f"cold store, per executed trivial step ({n:,} chain) (µs)",
            f"{spread(cold_off, '{:.0f}')} ({spread(cold, '{:.0f}')} with history)",
            "—",
            "<= 100 µs with history on",
            median(cold) <= 100,
        )
    ]


# --- hashing, import ------------------------------------------------------------------------------


def section_hash(args: argparse.Namespace) -> list[Row]:
    import xxhash

    from plait.store.hashing import data_version

    frame = bench_hash.frame_of(args.frame_rows)
    size = int(frame.memory_usage(deep=True, index=False).sum())
    buffers = bench_hash.raw_buffers(frame)

    def floor() -> None:
        hasher = xxhash.xxh3_128()
        for buffer in buffers:
            hasher.update(buffer)
        hasher.digest()

    times = rounds({"plait": lambda: data_version(frame), "floor": floor}, args.repeat)
    gbs = {k: [size / s / 1e9 for s in v] for k, v in times.items()}
    return [
        Row(
            f"hashing a {args.frame_rows:,}-row frame with a string column "
            f"({size / 2**20:,.0f} MiB) (GB/s)",
            spread(gbs["plait"], "{:.2f}"),
            f"xxh3 over its buffers {spread(gbs['floor'], '{:.2f}')}",
            ">= 8 GB/s",
            median(gbs["plait"]) >= 8,
        )
    ]


def section_import(args: argparse.Namespace) -> list[Row]:
    bench_import.wall("import plait")  # bytecode written, files in the page cache
    bare, full = [], []
    for _ in range(args.repeat_import):
        bare.append(bench_import.wall("pass"))
        full.append(bench_import.wall("import plait"))
    added = [(f - b) * 1e3 for f, b in zip(full, bare, strict=True)]
    whole = [f * 1e3 for f in full]
    return [
        Row(
            "`import plait` (ms)",
            f'{spread(whole)} for `python -c "import plait"`; plait\'s part {spread(added)}',
            f"`python -c pass` {spread([b * 1e3 for b in bare])}",
            "<= 60 ms",
            median(whole) <= 60,
        )
    ]


# --- async, dask ----------------------------------------------------------------------------------


async def nap50() -> int:
    """An async step: 50 ms of ``asyncio.sleep``."""
    await asyncio.sleep(0.05)
    return 1


def section_async(args: argparse.Namespace) -> list[Row]:
    n = args.async_steps
    sleepers = bench_runtime.plait_independent(nap50, n)

    async def together() -> None:
        await asyncio.gather(*(nap50() for _ in range(n)))

    times = rounds({"plait": sleepers.run, "gather": lambda: asyncio.run(together())}, args.repeat)
    ideal = {k: [s / 0.05 for s in v] for k, v in times.items()}
    return [
        Row(
            f"{n:,} x 50 ms async steps (x ideal)",
            spread(ideal["plait"], "{:.2f}"),
            f"`asyncio.gather` {spread(ideal['gather'], '{:.2f}')}",
            "<= 1.1x ideal",
            median(ideal["plait"]) <= 1.1,
        )
    ]


def section_dask(args: argparse.Namespace) -> list[Row]:
    try:
        import dask
        import distributed  # noqa: F401 - bench_engines.two_workers needs it
    except ImportError:
        return [Row("Dask, 200-step chain", "not measured (no dask here)", "—", "<= 1.3x", None)]
    import bench_engines

    from plait.executors import Dask

    n = args.dask_steps
    cluster, client = bench_engines.two_workers()
    try:
        executor = Dask(client)
        pipeline, last, expected = bench_engines._plait_chain(n)
        value = dask.delayed(bench_engines.ident, pure=False)(0)
        for _ in range(1, n):
            value = dask.delayed(bench_engines.inc, pure=False)(value)

        def plait() -> Any:
            out = pipeline.run(params={"x": 0}, outputs=[last], executor=executor)[last]
            assert out == expected
            return out

        def raw() -> Any:
            out = client.compute(value).result()
            assert out == expected
            return out

        times = rounds({"plait": plait, "raw": raw}, args.repeat_dask)
    finally:
        client.close()
        cluster.close()
    ratio = [p / r for p, r in zip(times["plait"], times["raw"], strict=True)]
    return [
        Row(
            f"Dask, {n}-step chain, per step (x raw `dask.delayed`)",
            f"{spread(ratio, '{:.2f}')}x ({spread(per_step(times['plait'], n), '{:,.0f}')} µs)",
            f"raw `dask.delayed` {spread(per_step(times['raw'], n), '{:,.0f}')} µs",
            "<= 1.3x",
            median(ratio) <= 1.3,
        )
    ]


def plain_inc(v):  # type: ignore[no-untyped-def]
    """``bench_build``'s chain step: no annotations, so validation skips the type check."""
    return v + 1


# --- profiles -------------------------------------------------------------------------------------


def profile(label: str, call: Callable[[], Any], top: int) -> None:
    """cProfile one call; the top functions by own time, then by cumulative time."""
    call()  # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    call()
    profiler.disable()
    say(f"\n#### cProfile: {label}\n\n```text")
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    say("```")


def profiles(args: argparse.Namespace, root: Path) -> None:
    """The plait side of the rows that miss their targets, one cProfile each."""
    from plait import Store

    top = args.top
    shape = bench_core.chain(args.chain_steps)
    pipeline = bench_core.plait_pipeline(shape.nodes, {"x": bench_core.X})
    profile(f"warm run(), {args.chain_steps:,} chain, no store", pipeline.run, top)

    def first() -> Any:
        fresh = bench_core.plait_pipeline(shape.nodes, {"x": bench_core.X})
        return fresh.run

    runs = [first() for _ in range(2)]
    profile(f"first run(), {args.chain_steps:,} chain (validated)", lambda: runs.pop()(), top)  # noqa: PLW0108
    specs = [
        (f"s{i}", {"v": "x" if i == 0 else f"s{i - 1}"}, [f"s{i}"]) for i in range(args.build_steps)
    ]

    def build() -> Any:
        from plait import Pipeline, Step

        steps = [Step(plain_inc, inputs=i, outputs=o, name=s) for s, i, o in specs]
        return Pipeline(steps, name="bench", params={"x": 1}).validate()

    profile(f"build + validate {args.build_steps:,}", build, top)
    n = args.cache_steps
    last = f"s{n - 1}"
    chain = bench_runtime.plait_chain(n, name="profiled")
    warm = Store(root / "profile-warm")
    chain.run(store=warm, outputs=[last])
    profile(
        f"cache hits, {n:,} chain, history on",
        lambda: chain.run(store=warm, outputs=[last]),
        top,
    )
    warm.close()
    counter = iter(range(10**6))

    def cold() -> Any:
        store = Store(root / f"profile-cold-{next(counter)}")
        try:
            return chain.run(store=store, outputs=[last])
        finally:
            store.close()

    profile(f"cold store, {n:,} chain, history on", cold, top)
    sleepers = bench_runtime.plait_independent(nap50, args.async_steps)
    profile(f"{args.async_steps:,} async 50 ms steps", sleepers.run, top)


# --- main -----------------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    parser.add_argument("--repeat", type=int, default=None, help="in-process repetitions")
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="skip Hamilton")
    parser.add_argument("--profile", action="store_true", help="cProfile the plait cases only")
    parser.add_argument("--top", type=int, default=12, help="functions per profile listing")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeat = args.repeat or (3 if quick else 9)
    args.repeat_fresh = 2 if quick else 5
    args.repeat_million = 1 if quick else 3  # the graphlib floor: once
    args.repeat_cold = 2 if quick else 5
    args.repeat_import = 7 if quick else 31
    args.repeat_dask = 2 if quick else 5
    args.chain_steps = 10_000
    args.build_steps = 100_000
    args.million_steps = 100_000 if quick else 1_000_000
    args.cache_steps = 1_000
    args.frame_rows = 1_000_000 if quick else 10_000_000
    args.async_steps = 1_000
    args.dask_steps = 200
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    root = Path(tempfile.mkdtemp(prefix="plait-bench16-"))
    try:
        if args.profile:
            profiles(args, root)
            return 0
        versions = []
        for dist in ("plait", "apache-hamilton", "joblib", "dask", "pandas", "pyarrow"):
            versions.append(f"{dist} {bench_core.version(dist)}")
        say(
            f"python {platform.python_version()}, {os.cpu_count()} cores, "
            f"{bench_core.git_revision()}; {', '.join(versions)}"
        )
        say(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.peers and not bench_core.hamilton_available():
            say("Hamilton is not importable here: its columns are left out")
        sections: dict[str, Callable[[], list[Row]]] = {
            "chain": lambda: section_chain(args),
            "first": lambda: section_first(args),
            "build": lambda: section_build(args),
            "million": lambda: section_million(args),
            "cache": lambda: section_cache(args, root),
            "cold": lambda: section_cold(args),
            "hash": lambda: section_hash(args),
            "import": lambda: section_import(args),
            "async": lambda: section_async(args),
            "dask": lambda: section_dask(args),
        }
        rows: list[Row] = []
        started = time.perf_counter()
        for name in SECTIONS:
            if name in args.only:
                clock = time.perf_counter()
                new = sections[name]()
                rows += new
                say(f"- {name}: {time.perf_counter() - clock:.1f} s")
                for row in new:
                    say(f"  {row.name}: {row.plait} | {row.peer}")
        say(
            f"\n{time.perf_counter() - started:.0f} s in all; load average at the end: "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
        )
        say("| row | plait | floor / peer | target | |")
        say("|---|---|---|---|---|")
        for row in rows:
            verdict = {True: "met", False: "**missed**", None: "not decided"}[row.met]
            say(f"| {row.name} | {row.plait} | {row.peer} | {row.target} | {verdict} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
