"""Per-step overhead of plait on Dask and on Celery against the engines' own APIs (issue 17).

Run on its own, never as part of the test suite; nothing here asserts anything about time::

    python benchmarks/bench_engines.py                  # both engines, N = 200, 5 repetitions
    python benchmarks/bench_engines.py --only dask --steps 100 --repeat 7
    python benchmarks/bench_engines.py --json engines.json

dask
    A ``distributed.LocalCluster`` of two worker processes with one thread each. Two graphs
    of trivial steps (``inc(v) = v + 1``): a chain of N and a 1 -> N -> 1 fan-out/fan-in.
    plait on ``Dask(client)`` against the same graph as ``dask.delayed`` calls computed
    with ``client.compute`` (the whole graph handed to Dask at once).
celery
    A throwaway ``redis-server`` on loopback (broker, plait's values and outcomes, and the
    raw contender's result backend) and one ``celery worker`` process (prefork, two pool
    processes). plait on ``Celery(broker)`` against a raw Celery ``chain`` of the same N
    ``inc`` tasks, and the fan-out as a raw ``chord`` (a ``group`` of N, then ``total``).

Each graph is built once; only the run is timed; µs/step is the median run time divided by
the number of steps; contenders are interleaved in each repetition. Each result is checked
outside the timed region. "cpu" is the median CPU time of this process per step, all its
threads: the driver, the client and, on Dask, the ``LocalCluster``'s scheduler, which runs
in this process (the workers do not); for Celery, the driver and its Redis client only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def inc(v: int) -> int:
    return v + 1


def ident(v: int) -> int:
    return v


def total(**kwargs: Any) -> int:
    return sum(kwargs.values())


def _plait_chain(n: int) -> Any:
    from plait import Pipeline, Step

    steps = [Step(ident, inputs={"v": "x"}, outputs="s0", name="s0")]
    steps += [
        Step(inc, inputs={"v": f"s{i - 1}"}, outputs=f"s{i}", name=f"s{i}") for i in range(1, n)
    ]
    return Pipeline(steps), f"s{n - 1}", n - 1


def _plait_fan(n: int) -> Any:
    from plait import Pipeline, Step

    steps = [Step(ident, inputs={"v": "x"}, outputs="src", name="src")]
    steps += [Step(inc, inputs={"v": "src"}, outputs=f"s{i}", name=f"s{i}") for i in range(n)]
    steps.append(
        Step(total, inputs={f"s{i}": f"s{i}" for i in range(n)}, outputs="total", name="total")
    )
    return Pipeline(steps), "total", n


def _timed(function: Callable[[], Any]) -> tuple[float, float]:
    """Wall-clock and this process's CPU seconds of one call."""
    cpu = time.process_time()
    started = time.perf_counter()
    function()
    return time.perf_counter() - started, time.process_time() - cpu


def _measure(
    contenders: dict[str, Callable[[], Any]], expected: Any, repeat: int
) -> dict[str, tuple[float, float]]:
    """Each contender's median wall-clock and CPU seconds per run."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for name, run in contenders.items():  # warm-up, checked
        value = run()
        if value != expected:
            raise AssertionError(f"{name} gave {value!r}, expected {expected!r}")
    for _ in range(repeat):
        for name, run in contenders.items():
            times[name].append(_timed(run))
    return {
        name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for name, values in times.items()
    }


def _compare(
    shape: str, steps: int, executor: Any, raw_name: str, raw: Callable[[], Any], repeat: int
) -> dict[str, Any]:
    """plait on ``executor`` against ``raw`` (the same graph on the engine's own API) for
    one graph shape (``"chain"`` or ``"fan"`` of ``steps``): µs/step of each, and the ratio."""
    pipeline, last, expected = (_plait_chain if shape == "chain" else _plait_fan)(steps)

    def plait() -> Any:
        return pipeline.run(params={"x": 0}, outputs=[last], executor=executor)[last]

    medians = _measure({"plait": plait, raw_name: raw}, expected, repeat)
    count = steps + (1 if shape == "fan" else 0)
    return {
        "steps": count,
        "plait_us_per_step": medians["plait"][0] / count * 1e6,
        "raw_us_per_step": medians[raw_name][0] / count * 1e6,
        "ratio": medians["plait"][0] / medians[raw_name][0],
        "plait_cpu_us_per_step": medians["plait"][1] / count * 1e6,
        "raw_cpu_us_per_step": medians[raw_name][1] / count * 1e6,
    }


# -- dask ----------------------------------------------------------------------------------


def two_workers() -> tuple[Any, Any]:
    """A LocalCluster of two single-threaded worker processes (dashboard on loopback) and
    a client of it that is not the default: what every Dask figure here is measured on."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    return cluster, Client(cluster, set_as_default=False)


def bench_dask(steps: int, repeat: int) -> dict[str, Any]:
    import dask

    from plait.executors import Dask

    cluster, client = two_workers()
    executor = Dask(client)
    results: dict[str, Any] = {}
    try:
        for shape in ("chain", "fan"):
            if shape == "chain":
                value = dask.delayed(ident, pure=False)(0)
                for _ in range(1, steps):
                    value = dask.delayed(inc, pure=False)(value)
                graph = value
            else:
                src = dask.delayed(ident, pure=False)(0)
                parts = {f"s{i}": dask.delayed(inc, pure=False)(src) for i in range(steps)}
                graph = dask.delayed(total, pure=False)(**parts)

            def raw(graph: Any = graph) -> Any:
                return client.compute(graph).result()

            results[shape] = _compare(shape, steps, executor, "dask.delayed", raw, repeat)
    finally:
        client.close()
        cluster.close()
    return results


# -- celery --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the Celery benchmark needs redis-server (see .ci/system.sh)")
    root = tempfile.mkdtemp(prefix="plait-bench-redis-")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", root],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _worker(broker: str) -> Iterator[None]:
    env = {**os.environ, "PLAIT_CELERY_BROKER": broker, "PYTHONPATH": str(HERE)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "_celery_bench_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "-O",
            "fair",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=HERE,
        env=env,
        start_new_session=True,
    )
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def bench_celery(steps: int, repeat: int) -> dict[str, Any]:
    from celery import chain, chord, group

    from plait.executors import Celery

    results: dict[str, Any] = {}
    with _redis() as broker:
        os.environ["PLAIT_CELERY_BROKER"] = broker
        import _celery_bench_app as bench_app

        with _worker(broker):
            executor = Celery(broker)
            app = bench_app.app
            app.control.ping(timeout=10)
            for shape in ("chain", "fan"):
                if shape == "chain":
                    signature = chain(
                        bench_app.ident.s(0), *[bench_app.inc.s() for _ in range(1, steps)]
                    )
                else:
                    signature = chord(
                        group(bench_app.inc.s(0) for _ in range(steps)), bench_app.total_list.s()
                    )

                def raw(signature: Any = signature) -> Any:
                    return signature.apply_async().get(timeout=600, disable_sync_subtasks=False)

                results[shape] = _compare(shape, steps, executor, "celery", raw, repeat)
            executor.shutdown()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("dask", "celery"), action="append")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    options = parser.parse_args()
    chosen = options.only or ["dask", "celery"]
    report: dict[str, Any] = {
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "load": os.getloadavg()[0],
        "steps": options.steps,
        "repeat": options.repeat,
    }
    for engine in chosen:
        runner = bench_dask if engine == "dask" else bench_celery
        report[engine] = runner(options.steps, options.repeat)
        for shape, figures in report[engine].items():
            print(
                f"{engine:<7} {shape:<6} {figures['steps']:>4} steps: plait "
                f"{figures['plait_us_per_step']:>8.0f} µs/step, raw "
                f"{figures['raw_us_per_step']:>8.0f} µs/step, ratio {figures['ratio']:.2f}x; "
                f"cpu here {figures['plait_cpu_us_per_step']:.0f} vs "
                f"{figures['raw_cpu_us_per_step']:.0f} µs/step"
            )
    if options.json:
        Path(options.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
