"""Runtime benchmarks of plait: concurrency, caching, hashing, artifact I/O and history.

Issues 3, 4 and 5. Run on their own, never as part of the test suite; nothing here asserts
anything about time::

    bash benchmarks/setup_env.sh                                   # .bench-venv/ with the peers
    .bench-venv/bin/python benchmarks/bench_runtime.py             # the full run
    .bench-venv/bin/python benchmarks/bench_runtime.py --quick     # smaller sizes, fewer repeats
    .bench-venv/bin/python benchmarks/bench_runtime.py --only cache --profile

Sections (``--only`` selects one or more):

concurrency
    64 independent 50 ms ``time.sleep`` steps on ``Threads(8)`` (ideal 0.40 s) beside
    Hamilton's ``FutureAdapter`` (a ``ThreadPoolExecutor``) and Prefect tasks submitted to a
    ``ThreadPoolTaskRunner(8)``; 1,000 concurrent ``asyncio.sleep(0.1)`` steps (ideal 0.1 s)
    beside Prefect async tasks; 8 CPU-bound 0.2 s steps on ``Processes(2)`` vs
    ``Sequential``; per-step overhead on ``Threads(8)`` for a 10,000-step chain and a
    1 -> 10,000 -> 1 fan-out beside ``joblib.Parallel(n_jobs=8, prefer="threads")`` over the
    same trivial calls and Prefect (on 200 tasks, extrapolated per task).
cache
    A rerun of a fully cached 1,000-step chain: plait with ``Store(dir, history=False)`` and
    with history, Hamilton's ``Builder().with_cache()``, ``joblib.Memory`` and a bare
    pickle-file read per step (the floor).
hashing
    ``data_version`` of a 512 MiB float64 array and of a 10-million-row DataFrame (int,
    float and string columns) beside ``hashlib.sha256``, ``xxhash.xxh3_128`` over the raw
    buffers, ``pandas.util.hash_pandas_object`` and a numpy copy (memory bandwidth), in GB/s.
io
    A 1 GiB DataFrame through ``Store.put``/``Store.get`` (parquet) vs ``df.to_parquet`` /
    ``pd.read_parquet`` directly.
history
    Recording overhead per step (10,000-step chain, SQLite): a store with history vs
    ``history=False``, cold (a new store every run) and fully cached; then ``runs(limit=50)``
    and a 10-level ``lineage()`` over 1,000,000 step records inserted directly.

Prefect runs in a long-lived worker subprocess (this script with ``--prefect-worker``) so
that its ephemeral API server and logging never share the interpreter plait runs in; the
parent sends it one case at a time, interleaved with the other frameworks, and it answers
with the seconds the flow call took. Every figure is the median of several repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import json
import os
import pickle
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SECTIONS = ("concurrency", "cache", "hashing", "io", "history")
GB = 1e9
MIB = 1 << 20


# --- step functions (module level: picklable for Processes) ----------------------------------


def nap() -> int:
    """A sleep-bound step: 50 ms."""
    time.sleep(0.05)
    return 1


async def async_nap() -> int:
    """An async step: 100 ms of ``asyncio.sleep``."""
    await asyncio.sleep(0.1)
    return 1


def spin(loops: int) -> int:
    """A CPU-bound step: a pure-Python loop (holds the GIL)."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def inc(v: int) -> int:
    """A trivial step: one more than its input."""
    return v + 1


def ident(v: int) -> int:
    """The fan-out's source."""
    return v


def total(**kwargs: int) -> int:
    """The fan-in sink."""
    return sum(kwargs.values())


# --- timing helpers ---------------------------------------------------------------------------


def clock(run: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleave(
    cases: dict[str, Callable[[], Any]], repeat: int, limits: dict[str, int] | None = None
) -> dict[str, float]:
    """Medians per case, interleaved repetition by repetition after one warm-up call each.

    A case returning a float reports its own seconds, else its call is timed. ``limits``
    caps the repetitions of slow cases (which then skip the warm-up).
    """
    limits = limits or {}

    def once(case: Callable[[], Any]) -> float:
        gc.collect()
        start = time.perf_counter()
        own = case()
        elapsed = time.perf_counter() - start
        return own if isinstance(own, float) else elapsed

    for name, case in cases.items():
        if name not in limits:
            once(case)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for rep in range(repeat):
        for name, case in cases.items():
            if rep < limits.get(name, repeat):
                times[name].append(once(case))
    return {name: statistics.median(values) for name, values in times.items()}


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    sys.stdout.flush()


def profile(label: str, run: Callable[[], Any], top: int = 10) -> None:
    """cProfile one call of ``run``; print the top functions by own and cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    print(f"\n<details><summary>cProfile: {label} (top {top})</summary>\n\n```")
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print("```\n</details>")
    sys.stdout.flush()


# --- plait pipelines --------------------------------------------------------------------------


def plait_chain(n: int, name: str = "chain") -> Any:
    from plait import Pipeline, Step

    steps = [Step(inc, inputs={"v": "x"}, outputs=["s0"], name="s0")]
    steps += [
        Step(inc, inputs={"v": f"s{i - 1}"}, outputs=[f"s{i}"], name=f"s{i}") for i in range(1, n)
    ]
    return Pipeline(steps, name=name, params={"x": 0}).validate()


def plait_fan(n: int) -> Any:
    from plait import Pipeline, Step

    steps = [Step(ident, inputs={"v": "x"}, outputs=["src"], name="src")]
    steps += [Step(inc, inputs={"v": "src"}, outputs=[f"s{i}"], name=f"s{i}") for i in range(n)]
    sink_inputs = {f"v{i}": f"s{i}" for i in range(n)}
    steps.append(Step(total, inputs=sink_inputs, outputs=["total"], name="total"))
    return Pipeline(steps, name="fan", params={"x": 0}).validate()


def plait_independent(func: Callable[..., Any], n: int, **inputs: str) -> Any:
    from plait import Pipeline, Step

    steps = [Step(func, inputs=inputs, outputs=[f"t{i}"], name=f"t{i}") for i in range(n)]
    return Pipeline(steps, name="independent", params=dict.fromkeys(inputs.values(), 0)).validate()


# --- Hamilton ---------------------------------------------------------------------------------


def hamilton_module(source: str) -> Any:
    from hamilton import ad_hoc_utils

    namespace: dict[str, Any] = {"time": time}
    exec(compile(source, "<bench-generated>", "exec"), namespace)
    functions = [v for k, v in namespace.items() if callable(v) and k[:1] in "st"]
    return ad_hoc_utils.create_temporary_module(*functions)  # stays in sys.modules: Hamilton
    # finds a module's functions through inspect.getmodule


def hamilton_file_module(source: str, path: Path) -> Any:
    """Generated functions in a real module file: Hamilton's cache versions each node by
    its source code (``inspect.getsource``), which exec'd functions do not have."""
    import importlib.util

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def hamilton_chain_source(n: int) -> str:
    lines = ["def s0(x: int) -> int:\n    return x + 1\n"]
    lines += [f"def s{i}(s{i - 1}: int) -> int:\n    return s{i - 1} + 1\n" for i in range(1, n)]
    return "".join(lines)


# --- Prefect, in a worker subprocess ----------------------------------------------------------


class PrefectWorker:
    """A subprocess running Prefect flows on request, answering with their wall time."""

    def __init__(self, home: str) -> None:
        env = dict(os.environ)
        env.update(
            PREFECT_HOME=home,
            PREFECT_LOGGING_LEVEL="CRITICAL",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
        )
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--prefect-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self("warm")  # starts Prefect's ephemeral API server before anything is timed

    def __call__(self, case: str) -> float:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(case + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"prefect {case}: {answer['error']}")
        return float(answer["seconds"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def prefect_worker() -> None:
    """The worker's loop: read a case name per line, run it, print ``{"seconds": ...}``."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def p_nap() -> int:
        time.sleep(0.05)
        return 1

    @task
    async def p_async_nap() -> int:
        await asyncio.sleep(0.1)
        return 1

    @task
    def p_inc(v: int) -> int:
        return v + 1

    @task
    def p_total(values: list[int]) -> int:
        return sum(values)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def sleep64() -> int:
        return sum(f.result() for f in [p_nap.submit() for _ in range(64)])

    @flow
    async def async1000() -> int:
        return sum(await asyncio.gather(*[p_async_nap() for _ in range(1000)]))

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def chain200() -> int:
        future = p_inc.submit(0)
        for _ in range(199):
            future = p_inc.submit(future)
        return future.result()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def fan200() -> int:
        src = p_inc.submit(0)
        return p_total.submit([p_inc.submit(src) for _ in range(200)]).result()

    @flow
    def warm() -> int:
        return p_inc(0)

    flows: dict[str, Callable[[], Any]] = {
        "warm": warm,
        "sleep64": sleep64,
        "async1000": lambda: asyncio.run(async1000()),
        "chain200": chain200,
        "fan200": fan200,
    }
    for line in sys.stdin:
        try:
            start = time.perf_counter()
            flows[line.strip()]()
            answer: dict[str, Any] = {"seconds": time.perf_counter() - start}
        except Exception as exc:  # reported to the parent, which raises
            answer = {"error": repr(exc)}
        print(json.dumps(answer), flush=True)


# --- section: concurrency ---------------------------------------------------------------------


def section_concurrency(args: argparse.Namespace, prefect: PrefectWorker | None) -> None:
    from plait.executors import Processes, Sequential, Threads

    repeat = args.repeat
    # 64 x 50 ms sleeps on 8 threads
    sleepers = plait_independent(nap, 64)
    cases: dict[str, Callable[[], Any]] = {
        "plait Threads(8)": lambda: sleepers.run(executor=Threads(8)),
    }
    if args.hamilton:
        from hamilton import driver
        from hamilton.plugins.h_threadpool import FutureAdapter

        source = "".join(
            f"def t{i}() -> int:\n    time.sleep(0.05)\n    return 1\n" for i in range(64)
        )
        module = hamilton_module(source)
        names = [f"t{i}" for i in range(64)]

        def hamilton_sleep() -> None:
            adapter = FutureAdapter(max_workers=8)
            dr = driver.Builder().with_modules(module).with_adapters(adapter).build()
            dr.execute(names)
            adapter.executor.shutdown()

        cases["Hamilton FutureAdapter(8)"] = hamilton_sleep
    if prefect is not None:
        cases["Prefect ThreadPoolTaskRunner(8)"] = lambda: prefect("sleep64")
    medians = interleave(cases, repeat, {"Prefect ThreadPoolTaskRunner(8)": args.prefect_repeat})
    table(
        "64 independent 50 ms sleeps, 8 threads (ideal 0.40 s)",
        ["framework", "median wall (s)", "vs ideal"],
        [(k, f"{v:.3f}", f"{v / 0.40:.2f}x") for k, v in medians.items()],
    )

    # 1,000 concurrent asyncio.sleep(0.1)
    sleepers_async = plait_independent(async_nap, 1000)
    cases = {
        "plait (Sequential)": sleepers_async.run,
        "plait Threads(8)": lambda: sleepers_async.run(executor=Threads(8)),
    }
    if prefect is not None:
        cases["Prefect async tasks (gather)"] = lambda: prefect("async1000")
    # Prefect takes tens of seconds per run here: once
    medians = interleave(cases, repeat, {"Prefect async tasks (gather)": 1})
    table(
        "1,000 concurrent asyncio.sleep(0.1) steps (ideal 0.10 s)",
        ["framework", "median wall (s)", "vs ideal"],
        [(k, f"{v:.3f}", f"{v / 0.10:.2f}x") for k, v in medians.items()],
    )
    if args.profile:
        profile("1,000 async steps, Sequential", sleepers_async.run)

    # CPU-bound steps on 2 processes vs sequential
    loops = calibrate_spin(0.2)
    cpu = plait_independent(spin, 8, loops="loops")
    cpu_params = {"loops": loops}
    warm = Processes(2)  # passed as an object, its pool outlives a run: started once
    medians = interleave(
        {
            "plait Sequential": lambda: cpu.run(params=cpu_params, executor=Sequential()),
            "plait Processes(2), pool started per run": lambda: cpu.run(
                params=cpu_params, executor="processes:2"
            ),
            "plait Processes(2), warm pool": lambda: cpu.run(params=cpu_params, executor=warm),
            "ProcessPoolExecutor(2, spawn) per run": lambda: raw_pool(loops),
            "spawn 2 workers, no work (startup only)": lambda: raw_pool(0),
        },
        max(3, repeat // 2),
    )
    warm.shutdown()
    seq = medians["plait Sequential"]
    table(
        f"8 CPU-bound ~0.2 s steps ({loops:,} loop iterations each; target >= 1.7x)",
        ["executor", "median wall (s)", "speed-up vs Sequential"],
        [(k, f"{v:.3f}", f"{seq / v:.2f}x") for k, v in medians.items()],
    )

    # per-step overhead on Threads(8)
    n = args.steps
    chain, fan = plait_chain(n), plait_fan(n)
    cases = {
        f"plait chain {n:,}": lambda: chain.run(executor=Threads(8), outputs=[f"s{n - 1}"]),
        f"plait fan-out 1->{n:,}->1": lambda: fan.run(executor=Threads(8), outputs=["total"]),
    }
    from joblib import Parallel, delayed

    pool = Parallel(n_jobs=8, prefer="threads")
    cases[f"joblib Parallel(8, threads), {n:,} calls"] = lambda: pool(
        delayed(inc)(i) for i in range(n)
    )
    if prefect is not None:
        cases["Prefect chain 200 (extrapolated)"] = lambda: prefect("chain200")
        cases["Prefect fan-out 1->200->1 (extrapolated)"] = lambda: prefect("fan200")
    slow = {k: args.prefect_repeat for k in cases if k.startswith("Prefect")}
    medians = interleave(cases, repeat, slow)
    sizes = {
        k: (200 if k.startswith("Prefect chain") else 202 if k.startswith("Prefect") else n)
        for k in medians
    }
    sizes[f"plait fan-out 1->{n:,}->1"] = n + 2
    table(
        "Per-step overhead on 8 threads (trivial steps; target <= 25 us/step)",
        ["framework / graph", "median wall (s)", "us per step"],
        [(k, f"{v:.3f}", f"{v / sizes[k] * 1e6:,.1f}") for k, v in medians.items()],
    )
    if args.profile:
        profile(f"chain {n:,} on Threads(8)", lambda: chain.run(executor=Threads(8)))
        profile(f"fan-out {n:,} on Threads(8)", lambda: fan.run(executor=Threads(8)))


def raw_pool(loops: int) -> None:
    """The same 8 spins on a bare spawn ``ProcessPoolExecutor(2)`` made for the call."""
    import concurrent.futures as cf
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=context) as pool:
        list(pool.map(spin, [loops] * 8))


def calibrate_spin(seconds: float) -> int:
    loops = 100_000
    elapsed = min(clock(lambda: spin(loops)) for _ in range(3))
    return int(loops * seconds / elapsed)


# --- section: cache ---------------------------------------------------------------------------


def section_cache(args: argparse.Namespace, root: Path) -> None:
    from plait import Store

    n = args.cache_steps
    chain = plait_chain(n, name="cached")
    last = f"s{n - 1}"
    stores = {
        "plait, Store(history=False)": Store(root / "plait-nohist", history=False),
        "plait, Store (history)": Store(root / "plait-hist"),
    }
    cases: dict[str, Callable[[], Any]] = {}
    for label, store in stores.items():
        chain.run(store=store, outputs=[last])  # populate
        cases[label] = lambda store=store: chain.run(store=store, outputs=[last])
    if args.hamilton:
        from hamilton import driver

        module = hamilton_file_module(hamilton_chain_source(n), root / "hamilton_chain.py")
        dr = driver.Builder().with_modules(module).with_cache(path=str(root / "hamilton")).build()
        limit = max(sys.getrecursionlimit(), 20 * n)

        def hamilton_rerun() -> None:
            old = sys.getrecursionlimit()
            sys.setrecursionlimit(limit)
            try:
                dr.execute([last], inputs={"x": 0})
            finally:
                sys.setrecursionlimit(old)

        hamilton_rerun()
        cases["Hamilton with_cache()"] = hamilton_rerun
    import joblib

    memory = joblib.Memory(root / "joblib", verbose=0)
    cached_inc = memory.cache(inc)

    def joblib_chain() -> None:
        v = 0
        for _ in range(n):
            v = cached_inc(v)

    joblib_chain()
    cases["joblib.Memory (one call per step)"] = joblib_chain
    pickles = root / "pickles"
    pickles.mkdir(parents=True)
    for i in range(n):
        (pickles / f"{i}.pkl").write_bytes(pickle.dumps(i + 1))

    def pickle_floor() -> None:
        for i in range(n):
            with open(pickles / f"{i}.pkl", "rb") as handle:
                pickle.load(handle)

    cases["floor: open + pickle.load per step"] = pickle_floor
    medians = interleave(cases, args.repeat)
    table(
        f"Rerun of a fully cached {n:,}-step chain (target <= 20 us/step)",
        ["framework", "median wall (ms)", "us per step"],
        [(k, f"{v * 1e3:.1f}", f"{v / n * 1e6:,.1f}") for k, v in medians.items()],
    )
    if args.profile:
        for label, store in stores.items():
            profile(f"cached rerun, {label}", lambda s=store: chain.run(store=s, outputs=[last]))
    for store in stores.values():
        store.close()


# --- section: hashing -------------------------------------------------------------------------


def section_hashing(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd
    import xxhash

    from plait.store.hashing import data_version

    size = args.array_mib * MIB
    array = np.random.default_rng(0).random(size // 8)
    target = np.empty_like(array)
    buffer = array.data.cast("B")
    medians = interleave(
        {
            "plait data_version": lambda: data_version(array),
            "xxhash.xxh3_128 (raw buffer)": lambda: xxhash.xxh3_128(buffer).digest(),
            "hashlib.sha256 (raw buffer)": lambda: hashlib.sha256(buffer).digest(),
            "numpy copy (np.copyto)": lambda: np.copyto(target, array),
        },
        args.repeat_heavy,
    )
    table(
        f"Hashing a {args.array_mib} MiB float64 array (target >= 10 GB/s)",
        ["method", "median (ms)", "GB/s"],
        [(k, f"{v * 1e3:.1f}", f"{size / v / GB:.2f}") for k, v in medians.items()],
    )

    rows = args.frame_rows
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "i": rng.integers(0, 1 << 40, rows),
            "f": rng.random(rows),
            "s": pd.array([f"item-{k}" for k in rng.integers(0, 1_000_000, rows)], dtype="str"),
        }
    )
    nbytes = int(frame.memory_usage(deep=True, index=False).sum())

    def raw_buffers() -> list[Any]:
        import pyarrow as pa

        out = [frame["i"].to_numpy().data.cast("B"), frame["f"].to_numpy().data.cast("B")]
        chunks = pa.chunked_array(frame["s"].array._pa_array).chunks
        out += [b for chunk in chunks for b in chunk.buffers() if b is not None]
        return out

    def xxh_frame() -> None:
        hasher = xxhash.xxh3_128()
        for b in raw_buffers():
            hasher.update(b)
        hasher.digest()

    def sha_frame() -> None:
        hasher = hashlib.sha256()
        for b in raw_buffers():
            hasher.update(b)
        hasher.digest()

    def copy_frame() -> None:
        frame.copy(deep=True)

    cases: dict[str, Callable[[], Any]] = {
        "plait data_version": lambda: data_version(frame),
        "xxhash.xxh3_128 (raw buffers)": xxh_frame,
        "hashlib.sha256 (raw buffers)": sha_frame,
        "frame.copy(deep=True)": copy_frame,
    }
    if not args.quick:
        cases["pandas.util.hash_pandas_object (Hamilton's way)"] = lambda: (
            pd.util.hash_pandas_object(frame).sum()
        )
    medians = interleave(cases, args.repeat_heavy)
    table(
        f"Hashing a {rows:,}-row DataFrame (int64, float64, str; "
        f"{nbytes / MIB:,.0f} MiB in memory)",
        ["method", "median (ms)", "GB/s"],
        [(k, f"{v * 1e3:.1f}", f"{nbytes / v / GB:.2f}") for k, v in medians.items()],
    )
    if args.profile:
        profile("data_version(frame)", lambda: data_version(frame))


# --- section: artifact I/O --------------------------------------------------------------------


def section_io(args: argparse.Namespace, root: Path) -> None:
    import numpy as np
    import pandas as pd

    from plait import Store
    from plait.store.hashing import data_version

    columns = 8
    rows = args.io_mib * MIB // (8 * columns)
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({f"c{i}": rng.random(rows) for i in range(columns)})
    nbytes = frame.memory_usage(index=False).sum()
    store = Store(root / "io-store", history=False)
    version = data_version(frame)
    direct = root / "direct.parquet"
    refs: list[Any] = []

    def put() -> None:
        store.clear()
        refs[:] = [store.put(frame, version)]

    medians = interleave(
        {
            "plait Store.put": put,
            "df.to_parquet": lambda: frame.to_parquet(direct),
            "plait Store.get": lambda: store.get(refs[0]),
            "pd.read_parquet": lambda: pd.read_parquet(direct),
        },
        args.repeat_heavy,
    )
    size_on_disk = direct.stat().st_size
    table(
        f"A {args.io_mib:,} MiB float64 DataFrame through parquet "
        f"({size_on_disk / MIB:,.0f} MiB on disk)",
        ["operation", "median (s)", "GB/s (in-memory size)"],
        [(k, f"{v:.3f}", f"{nbytes / v / GB:.2f}") for k, v in medians.items()],
    )
    if args.profile:
        profile("Store.put (1 GiB frame)", put)
        profile("Store.get (1 GiB frame)", lambda: store.get(refs[0]))
    store.close()


# --- section: history -------------------------------------------------------------------------


def section_history(args: argparse.Namespace, root: Path) -> None:
    from plait import Store

    n, n_cold = args.steps, args.cold_steps
    chain = plait_chain(n, name="recorded")
    cold_chain = plait_chain(n_cold, name="recorded-cold")
    last = f"s{n - 1}"
    counter = iter(range(10**9))

    def cold(history: bool) -> Callable[[], float]:
        def run() -> float:
            path = root / f"cold-{next(counter)}"
            store = Store(path) if history else Store(path, history=False)
            seconds = clock(lambda: cold_chain.run(store=store, outputs=[f"s{n_cold - 1}"]))
            store.close()
            shutil.rmtree(path)
            return seconds

        return run

    warm_stores = {
        True: Store(root / "warm-hist"),
        False: Store(root / "warm-nohist", history=False),
    }
    for store in warm_stores.values():
        chain.run(store=store, outputs=[last])
    medians = interleave(
        {
            "cold, history=False": cold(False),
            "cold, history": cold(True),
            "cached, history=False": lambda: chain.run(store=warm_stores[False], outputs=[last]),
            "cached, history": lambda: chain.run(store=warm_stores[True], outputs=[last]),
        },
        args.repeat,
    )
    rows = []
    for kind, size in (("cold", n_cold), ("cached", n)):
        without, with_ = medians[f"{kind}, history=False"], medians[f"{kind}, history"]
        rows.append(
            (
                f"{kind} run of a {size:,}-step chain",
                f"{without:.3f}",
                f"{with_:.3f}",
                f"{(with_ - without) / size * 1e6:,.1f}",
            )
        )
    table(
        "History recording overhead, SQLite (target <= 20 us/step)",
        ["case", "history=False (s)", "history (s)", "recording us/step"],
        rows,
    )
    if args.profile:
        store = warm_stores[True]
        profile("cached run with history", lambda: chain.run(store=store, outputs=[last]))
        cold_store = Store(root / "cold-profiled")
        profile(
            f"cold run of {n_cold:,} steps with history",
            lambda: cold_chain.run(store=cold_store, outputs=[f"s{n_cold - 1}"]),
        )
        cold_store.close()
    for store in warm_stores.values():
        store.close()
    history_queries(args, root)


def history_queries(args: argparse.Namespace, root: Path) -> None:
    from plait import Store
    from plait.history.records import RunRecord, StepRecord

    records = args.records
    per_run = 100
    store = Store(root / "big-history")
    history = store.history
    db = history.db  # connects and creates the schema
    start = time.perf_counter()
    runs = records // per_run
    t0 = 1.7e9
    run_columns = [c.strip() for c in RunRecord.COLUMNS.split(",")]
    run_rows = []
    for r in range(runs):
        values = {
            "run_id": f"run{r:08d}",
            "pipeline": f"pipe{r % 10}",
            "fingerprint": "f" * 32,
            "status": "ok",
            "params": "{}",
            "config": "{}",
            "tags": "[]",
            "started_at": t0 + r,
            "finished_at": t0 + r + 1,
            "duration": 1.0,
            "host": "bench",
            "plait_version": "0.1.0",
            "python_version": "3.11",
            "executor": "sequential",
        }
        run_rows.append([values.get(c) for c in run_columns])
    db.insert_rows("runs", RunRecord.COLUMNS, run_rows)
    batch_runs = 500
    for first in range(0, runs, batch_runs):
        step_rows, data_rows = [], []
        for r in range(first, min(runs, first + batch_runs)):
            run_id = f"run{r:08d}"
            for s in range(per_run):
                out_v = f"{r:012d}{s:020d}"
                in_v = f"{r:012d}{s - 1:020d}" if s else "p" * 32
                step_rows.append(
                    [
                        run_id, f"s{s}", "ok", 0, None, 1, t0 + r + s * 1e-3,
                        t0 + r + s * 1e-3 + 1e-4, 1e-4, "k" * 32,
                        json.dumps({"v": in_v}), json.dumps({f"s{s}": out_v}),
                        None, None, None, "{}", None, "f" * 32,
                    ]
                )  # fmt: skip
                data_rows.append([out_v, run_id, f"s{s}", f"s{s}", "out"])
                data_rows.append([in_v, run_id, f"s{s}", "v", "in"])
        db.insert_rows(
            "steps",
            StepRecord.COLUMNS,
            step_rows,
            extra=("data", "version, run_id, step, name, role", data_rows),
        )
    filled = time.perf_counter() - start
    target_run = runs // 2
    leaf = f"{target_run:012d}{per_run - 1:020d}"
    found = history.lineage(leaf, depth=10)
    medians = interleave(
        {
            "runs(limit=50)": lambda: history.runs(limit=50),
            "runs(pipeline='pipe3', limit=50)": lambda: history.runs(pipeline="pipe3", limit=50),
            "lineage(version, depth=10)": lambda: history.lineage(leaf, depth=10),
        },
        args.repeat,
    )
    table(
        f"History queries over {records:,} step records ({runs:,} runs; filled in {filled:.0f} s)",
        ["query", "median (ms)"],
        [(k, f"{v * 1e3:.2f}") for k, v in medians.items()],
    )
    print(f"\n(lineage returned {len(found)} step records)")
    store.close()


# --- main -------------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile plait's cases too")
    parser.add_argument("--no-hamilton", dest="hamilton", action="store_false")
    parser.add_argument("--no-prefect", dest="prefect", action="store_false")
    parser.add_argument("--prefect-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = min(args.repeat, 3)
    args.repeat_heavy = 3 if args.quick else 5
    args.prefect_repeat = 2 if args.quick else 3
    args.steps = 2_000 if args.quick else 10_000
    args.cache_steps = 1_000
    args.cold_steps = 2_000  # an executed step writes its artifact: ~2 ms each here
    args.array_mib = 64 if args.quick else 512
    args.frame_rows = 1_000_000 if args.quick else 10_000_000
    args.io_mib = 128 if args.quick else 1024
    args.records = 100_000 if args.quick else 1_000_000
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    if args.prefect_worker:
        prefect_worker()
        return
    import platform

    print(
        f"# plait runtime benchmarks\n\n{platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at start{', --quick' if args.quick else ''}"
    )
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        root = Path(tmp)
        prefect = None
        if "concurrency" in args.only and args.prefect:
            prefect = PrefectWorker(str(root / "prefect-home"))
        try:
            for section in args.only:
                if section == "concurrency":
                    section_concurrency(args, prefect)
                elif section == "cache":
                    section_cache(args, root / "cache")
                elif section == "hashing":
                    section_hashing(args)
                elif section == "io":
                    section_io(args, root / "io")
                elif section == "history":
                    section_history(args, root / "history")
        finally:
            if prefect is not None:
                prefect.close()
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
