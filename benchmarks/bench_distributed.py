"""Distributed benchmarks of plait on Dask and Ray (issue 7).

Run on their own, never as part of the test suite; nothing here asserts anything about time::

    pip install -e '.[dask,ray]' numpy          # or: pip install 'dask[distributed]' ray numpy
    python benchmarks/bench_distributed.py       # the full run (about 10 minutes on 2 cores)
    python benchmarks/bench_distributed.py --quick
    python benchmarks/bench_distributed.py --only overhead --repeat 11 --json raw.json

Both engines run locally, started once for the whole run: a ``distributed.LocalCluster`` of
two worker processes with one thread each, and ``ray.init(num_cpus=2)``. Sections
(``--only`` selects some):

overhead
    Per-step cost on two graphs of trivial steps (``inc(v) = v + 1``): a chain
    ``s0(x) -> s1(s0) -> ... -> s{N-1}`` and a 1 -> N -> 1 fan-out/fan-in (``src(x)``,
    N steps ``inc(src)``, one ``total(**kwargs)``), N = 200 by default, asking for the last
    value only. plait on ``Dask(client)`` against the same graph as ``dask.delayed`` calls
    computed with ``client.compute`` and as ``client.submit`` calls; plait on ``Ray()``
    against the same graph as ``ray.remote`` calls. Each graph is built once; only the run
    is timed; µs/step is the median run time divided by the number of steps. The engines'
    own APIs get the whole graph at once; plait decides after each step what runs next
    (skips, ``when``, failures), so a chain costs it one round trip to the driver per step.
fanout
    1 -> 200 -> 1 of 0.1 s CPU-bound steps (each burns 0.1 s of its thread's CPU time:
    ``time.thread_time``), as 200 steps and as one ``map`` step over 200 elements, on
    ``Sequential()`` (in process), on the Dask cluster and on Ray. Speed-up = the
    sequential median / the engine's median. Two workers cannot beat 2x; the driver's own
    work shares the same two cores.
bytes
    A 20-step chain of 100 MiB float64 arrays (``s0`` makes ``np.full``, each next step
    returns ``prev + 1``), ``outputs=[last]``: the bytes of array data that reached the
    driver, counted by wrapping ``client.gather`` (Dask) and ``ray.get`` (Ray), and, on
    Dask, the step descriptions' bytes (the events on topic ``plait-outcomes``). Then the
    same with ``outputs=None`` as the control (every array is asked for, every array comes).

Every timing is the median of several repetitions with the contenders interleaved inside each
repetition, so that a burst of load from a neighbour hits them alike. Each result is checked
to be the right value outside the timed region.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTIONS = ("overhead", "fanout", "bytes")
MIB = 1024 * 1024


# --- the step functions: the same objects for plait and the engines' own APIs ---------------


def inc(v: int) -> int:
    """A trivial step: one more than its input."""
    return v + 1


def ident(v: int) -> int:
    """The fan-out's source: passes its input through."""
    return v


def total(**kwargs: Any) -> Any:
    """The fan-in sink: sums everything it receives."""
    return sum(kwargs.values())


def burn(seconds: float) -> float:
    """Spend ``seconds`` of this thread's CPU time in pure Python."""
    end = time.thread_time() + seconds
    spins = 0
    while time.thread_time() < end:
        for _ in range(1000):
            spins += 1
    return float(spins)


def work(src: float, seconds: float) -> float:
    """A CPU-bound step of the fan-out."""
    return burn(seconds) * 0 + src


def work_element(items: int, seconds: float) -> float:
    """A CPU-bound element of the map step."""
    return burn(seconds) * 0 + items


def sum_list(work_element: list[float]) -> float:
    """The map step's sink."""
    return sum(work_element)


# --- graphs -------------------------------------------------------------------------------


@dataclass
class Graph:
    """One benchmark graph as a plait pipeline and as a recipe for the engines' APIs."""

    name: str
    size: int
    pipeline: Any
    last: str
    steps: int
    expected: Any


def chain_graph(n: int) -> Graph:
    from plait import Pipeline, Step

    steps = [Step(inc, inputs={"v": "x"}, outputs="s0", name="s0")]
    steps += [
        Step(inc, inputs={"v": f"s{i - 1}"}, outputs=f"s{i}", name=f"s{i}") for i in range(1, n)
    ]
    return Graph("chain", n, Pipeline(steps), f"s{n - 1}", n, 1 + n)


def fan_graph(n: int) -> Graph:
    from plait import Pipeline, Step

    steps = [Step(ident, inputs={"v": "x"}, outputs="src", name="src")]
    steps += [Step(inc, inputs={"v": "src"}, outputs=f"s{i}", name=f"s{i}") for i in range(n)]
    sinks = {f"s{i}": f"s{i}" for i in range(n)}
    steps.append(Step(total, inputs=sinks, outputs="total", name="total"))
    return Graph("fan-out", n, Pipeline(steps), "total", n + 2, 2 * n)


def delayed_graph(graph: Graph) -> Any:
    import dask

    if graph.name == "chain":
        value = dask.delayed(inc, pure=False)(1)
        for _ in range(1, graph.size):
            value = dask.delayed(inc, pure=False)(value)
        return value
    src = dask.delayed(ident, pure=False)(1)
    parts = {f"s{i}": dask.delayed(inc, pure=False)(src) for i in range(graph.size)}
    return dask.delayed(total, pure=False)(**parts)


def submit_graph(client: Any, graph: Graph) -> Any:
    if graph.name == "chain":
        future = client.submit(inc, 1, pure=False)
        for _ in range(1, graph.size):
            future = client.submit(inc, future, pure=False)
        return future.result()
    src = client.submit(ident, 1, pure=False)
    parts = {f"s{i}": client.submit(inc, src, pure=False) for i in range(graph.size)}
    return client.submit(total, pure=False, **parts).result()


class RayGraphs:
    """The graphs as ``ray.remote`` calls (the remote functions are made once)."""

    def __init__(self) -> None:
        import ray

        self.ray = ray
        self.inc, self.ident, self.total = ray.remote(inc), ray.remote(ident), ray.remote(total)

    def run(self, graph: Graph) -> Any:
        if graph.name == "chain":
            ref = self.inc.remote(1)
            for _ in range(1, graph.size):
                ref = self.inc.remote(ref)
            return self.ray.get(ref)
        src = self.ident.remote(1)
        parts = {f"s{i}": self.inc.remote(src) for i in range(graph.size)}
        return self.ray.get(self.total.remote(**parts))


# --- timing -------------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    run: Callable[[], Any]
    expected: Any
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def measure(contenders: Sequence[Contender], repeat: int) -> None:
    """Warm each contender once (checking its value), then time them interleaved."""
    for contender in contenders:
        got = contender.run()
        if got != contender.expected:
            raise AssertionError(f"{contender.name}: got {got!r}, expected {contender.expected!r}")
    for _ in range(repeat):
        for contender in contenders:
            start = time.perf_counter()
            contender.run()
            contender.times.append(time.perf_counter() - start)


# --- engines ------------------------------------------------------------------------------


@dataclass
class Engines:
    client: Any
    cluster: Any
    dask: Any  # plait's Dask executor on the client
    ray: Any  # plait's Ray executor

    def close(self) -> None:
        import ray

        self.client.close()
        self.cluster.close()
        ray.shutdown()


def start_engines() -> Engines:
    import dask
    import ray
    from distributed import Client, LocalCluster

    from plait.executors import Dask, Ray

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
    client = Client(cluster, set_as_default=False)
    here = str(Path(__file__).resolve().parent)
    pythonpath = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
    )
    return Engines(client, cluster, Dask(client), Ray())


# --- sections -----------------------------------------------------------------------------


def overhead_section(engines: Engines, args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    ray_graphs = RayGraphs()
    for graph in (chain_graph(args.size), fan_graph(args.size)):

        def plait_on(executor: Any, graph: Graph = graph) -> Any:
            result = graph.pipeline.run(params={"x": 1}, executor=executor, outputs=[graph.last])
            return result[graph.last]

        contenders = [
            Contender("plait on Dask", lambda: plait_on(engines.dask), graph.expected),
            Contender(
                "dask.delayed",
                lambda graph=graph: engines.client.compute(delayed_graph(graph)).result(),
                graph.expected,
            ),
            Contender(
                "client.submit",
                lambda graph=graph: submit_graph(engines.client, graph),
                graph.expected,
            ),
            Contender("plait on Ray", lambda: plait_on(engines.ray), graph.expected),
            Contender("ray.remote", lambda graph=graph: ray_graphs.run(graph), graph.expected),
        ]
        measure(contenders, args.repeat)
        for contender in contenders:
            rows.append(
                {
                    "graph": graph.name,
                    "N": graph.size,
                    "steps": graph.steps,
                    "contender": contender.name,
                    "median_s": contender.median,
                    "us_per_step": contender.median / graph.steps * 1e6,
                    "times_s": contender.times,
                }
            )
        print(f"  overhead {graph.name}: done", file=sys.stderr, flush=True)
    return {"rows": rows}


def fanout_pipelines(
    width: int, seconds: float
) -> dict[str, tuple[Any, dict[str, Any], str, float]]:
    from plait import Pipeline, Step, step

    steps = [Step(ident, inputs={"v": "x"}, outputs="src", name="src")]
    steps += [
        Step(work, inputs={"src": "src", "seconds": "seconds"}, outputs=f"w{i}", name=f"w{i}")
        for i in range(width)
    ]
    steps.append(Step(total, inputs={f"w{i}": f"w{i}" for i in range(width)}, name="total"))
    mapped = Pipeline(
        [
            step(work_element, map="items"),
            step(sum_list),
        ]
    )
    return {
        f"{width} steps": (Pipeline(steps), {"x": 1.0, "seconds": seconds}, "total", width),
        f"map over {width}": (
            mapped,
            {"items": list(range(width)), "seconds": seconds},
            "sum_list",
            sum(range(width)),
        ),
    }


def fanout_section(engines: Engines, args: argparse.Namespace) -> dict[str, Any]:
    from plait.executors import Sequential

    rows = []
    executors = {"sequential": Sequential(), "Dask": engines.dask, "Ray": engines.ray}
    for shape, (pipeline, params, last, expected) in fanout_pipelines(
        args.width, args.seconds
    ).items():
        contenders = [
            Contender(
                name,
                lambda executor=executor, pipeline=pipeline, params=params, last=last: pipeline.run(
                    params=params, executor=executor, outputs=[last]
                )[last],
                expected,
            )
            for name, executor in executors.items()
        ]
        measure(contenders, args.fanout_repeat)
        sequential = contenders[0].median
        for contender in contenders:
            rows.append(
                {
                    "shape": shape,
                    "executor": contender.name,
                    "median_s": contender.median,
                    "speed_up": sequential / contender.median,
                    "times_s": contender.times,
                }
            )
        print(f"  fanout {shape}: done", file=sys.stderr, flush=True)
    return {"rows": rows, "width": args.width, "seconds": args.seconds}


def _arrays_bytes(value: Any) -> tuple[int, int]:
    """(number of numpy arrays, their bytes) inside ``value``."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return 1, value.nbytes
    if isinstance(value, list | tuple):
        parts = [_arrays_bytes(item) for item in value]
    elif isinstance(value, dict):
        parts = [_arrays_bytes(item) for item in value.values()]
    else:
        return 0, 0
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


class Counter:
    """Counts the numpy arrays a wrapped fetch function returns."""

    def __init__(self, fetch: Callable[..., Any]) -> None:
        self.fetch = fetch
        self.arrays = 0
        self.bytes = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        value = self.fetch(*args, **kwargs)
        arrays, size = _arrays_bytes(value)
        self.arrays += arrays
        self.bytes += size
        return value


def array_chain(length: int, mib: int) -> Any:
    import numpy as np

    from plait import Pipeline, Step

    size = mib * MIB // 8
    steps = [Step(lambda: np.full(size, 1.0), inputs=[], outputs="a0", name="a0")]
    steps += [
        Step(lambda prev: prev + 1.0, inputs=[f"a{i - 1}"], outputs=f"a{i}", name=f"a{i}")
        for i in range(1, length)
    ]
    return Pipeline(steps)


def bytes_section(engines: Engines, args: argparse.Namespace) -> dict[str, Any]:
    import ray

    rows = []
    pipeline = array_chain(args.chain, args.mib)
    last = f"a{args.chain - 1}"
    for engine in ("Dask", "Ray"):
        for outputs in ([last], None):
            if engine == "Dask":
                counter = Counter(engines.client.gather)
                engines.client.gather = counter
                executor = engines.dask
            else:
                counter = Counter(ray.get)
                ray.get = counter
                executor = engines.ray
            started_at = time.time()
            start = time.perf_counter()
            try:
                result = pipeline.run(executor=executor, outputs=outputs)
            finally:
                if engine == "Dask":
                    del engines.client.gather  # back to the class's method
                else:
                    ray.get = counter.fetch
            elapsed = time.perf_counter() - start
            assert float(result[last][0]) == float(args.chain)
            described = None
            if engine == "Dask":
                events = engines.client.get_events("plait-outcomes")
                described = sum(len(m["outcome"]) for t, m in events if t >= started_at)
            rows.append(
                {
                    "engine": engine,
                    "outputs": "[last]" if outputs else "None (control)",
                    "arrays_fetched": counter.arrays,
                    "mib_fetched": counter.bytes / MIB,
                    "description_bytes": described,
                    "run_s": elapsed,
                }
            )
            del result
        print(f"  bytes {engine}: done", file=sys.stderr, flush=True)
    return {"rows": rows, "chain": args.chain, "mib": args.mib}


# --- report -------------------------------------------------------------------------------


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    here = Path(__file__).resolve().parent
    done = subprocess.run(
        ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return "no commit yet"
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--", "../src"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return done.stdout.strip() + (" (src/ modified)" if dirty else "")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def environment(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/bench_distributed.py " + " ".join(args.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": f"{cpu_model()}, {os.cpu_count()} logical cores",
        "load average at start": load_average(),
        "plait": f"{version('plait')} @ {git_revision()}",
        "dask / distributed": f"{version('dask')} / {version('distributed')}",
        "ray": version("ray"),
        "numpy": version("numpy"),
    }


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def overhead_table(section: dict[str, Any]) -> str:
    rows = {(r["graph"], r["contender"]): r for r in section["rows"]}
    out = []
    for graph in dict.fromkeys(r["graph"] for r in section["rows"]):

        def us(name: str, graph: str = graph) -> float:
            return float(rows[(graph, name)]["us_per_step"])

        n = rows[(graph, "plait on Dask")]["N"]
        out.append(
            [
                graph,
                n,
                f"{us('plait on Dask'):,.0f}",
                f"{us('dask.delayed'):,.0f}",
                f"{us('client.submit'):,.0f}",
                f"**{us('plait on Dask') / us('dask.delayed'):.2f}x**",
                f"{us('plait on Ray'):,.0f}",
                f"{us('ray.remote'):,.0f}",
                f"**{us('plait on Ray') / us('ray.remote'):.2f}x**",
            ]
        )
    header = [
        "graph",
        "N",
        "plait on Dask µs/step",
        "dask.delayed",
        "client.submit",
        "plait / delayed",
        "plait on Ray µs/step",
        "ray.remote",
        "plait / ray.remote",
    ]
    return table(header, out)


def fanout_table(section: dict[str, Any]) -> str:
    out = [
        [r["shape"], r["executor"], f"{r['median_s']:.2f}", f"**{r['speed_up']:.2f}x**"]
        for r in section["rows"]
    ]
    return table(["shape", "executor", "median s", "speed-up vs sequential"], out)


def bytes_table(section: dict[str, Any]) -> str:
    out = [
        [
            r["engine"],
            r["outputs"],
            r["arrays_fetched"],
            f"{r['mib_fetched']:,.0f}",
            "n/a" if r["description_bytes"] is None else f"{r['description_bytes']:,}",
            f"{r['run_s']:.1f}",
        ]
        for r in section["rows"]
    ]
    header = [
        "engine",
        "outputs",
        "arrays fetched",
        "MiB fetched",
        "description bytes",
        "run s",
    ]
    return table(header, out)


def report(results: dict[str, Any]) -> str:
    out = ["### Environment", ""]
    out += [f"- {key}: {value}" for key, value in results["environment"].items()]
    if "overhead" in results:
        out += ["", "### Per-step overhead (medians)", "", overhead_table(results["overhead"])]
    if "fanout" in results:
        section = results["fanout"]
        out += [
            "",
            f"### Fan-out: 1 -> {section['width']} -> 1 of {section['seconds']} s CPU-bound "
            "steps (medians)",
            "",
            fanout_table(section),
        ]
    if "bytes" in results:
        section = results["bytes"]
        out += [
            "",
            f"### Bytes to the driver: {section['chain']}-step chain of {section['mib']} MiB "
            "arrays",
            "",
            bytes_table(section),
        ]
    return "\n".join(out)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes")
    parser.add_argument("--size", type=int, default=200, help="N of the overhead graphs")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions of the overhead")
    parser.add_argument("--width", type=int, default=200, help="steps of the fan-out")
    parser.add_argument("--seconds", type=float, default=0.1, help="CPU seconds per step")
    parser.add_argument("--fanout-repeat", type=int, default=3)
    parser.add_argument("--chain", type=int, default=20, help="steps of the array chain")
    parser.add_argument("--mib", type=int, default=100, help="MiB per array")
    parser.add_argument("--json", type=Path, help="write every raw timing here")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    if args.quick:
        args.size, args.repeat, args.width, args.fanout_repeat = 20, 2, 10, 1
        args.chain, args.mib = 5, 8
    return args


def main(argv: Sequence[str]) -> None:
    args = parse(argv)
    results: dict[str, Any] = {"environment": environment(args)}
    print("starting Dask and Ray...", file=sys.stderr, flush=True)
    engines = start_engines()
    sections = {"overhead": overhead_section, "fanout": fanout_section, "bytes": bytes_section}
    try:
        for name in args.only:
            print(f"{name}...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            results[name] = sections[name](engines, args)
            results[name]["section_s"] = time.perf_counter() - started
    finally:
        engines.close()
    results["environment"]["load average at end"] = load_average()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(report(results))


if __name__ == "__main__":
    main(sys.argv[1:])
