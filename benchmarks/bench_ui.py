"""Server-side timings of ``plait ui`` pages over a big history (issue 14).

Run on its own, never as part of the test suite (nothing here asserts a time)::

    python benchmarks/bench_ui.py                # 100,000 runs, a 5,000-step run
    python benchmarks/bench_ui.py --runs 20000   # smaller
    python benchmarks/bench_ui.py --profile /runs/big

The history is filled directly, as ``bench_runtime.py``'s history section does: 100,000
runs of 10 pipelines (about 8 % failed, 2 % cancelled, tags on a third), three steps each
with their lineage rows, and one run of a 5,000-step chain with its recorded structure,
reasons, a failure with its traceback and log lines. Each page is then requested through
``starlette.testclient`` (the whole ASGI app: guard, queries, templates; no network) and
the median of ``--repeat`` requests is reported, in milliseconds. Target: 300 ms a page.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TOKEN = "bench-token"
T0 = 1.7e9
PIPELINES = 10
STEPS_PER_RUN = 3
BIG_STEPS = 5_000


def fill(root: Path, runs: int) -> dict[str, str]:
    """Insert ``runs`` runs and the big run; return ids and versions to request."""
    from plait import Store
    from plait.history.records import RunRecord, StepRecord, structure_json, structure_row

    store = Store(root / "store")
    db = store.history.db
    run_columns = [c.strip() for c in RunRecord.COLUMNS.split(",")]
    batch = 5_000
    for first in range(0, runs, batch):
        run_rows, step_rows, data_rows = [], [], []
        for r in range(first, min(runs, first + batch)):
            run_id = f"{r:020x}"
            status = "failed" if r % 12 == 5 else "cancelled" if r % 50 == 7 else "succeeded"
            values = {
                "run_id": run_id,
                "pipeline": f"pipe{r % PIPELINES}",
                "fingerprint": "f" * 32,
                "status": status,
                "params": json.dumps({"n": r, "rate": 0.1}),
                "config": "{}",
                "tags": json.dumps(["nightly"] if r % 3 == 0 else []),
                "started_at": T0 + r,
                "finished_at": T0 + r + 1,
                "duration": 1.0 + (r % 7) / 10,
                "host": "bench",
                "plait_version": "0.1.0",
                "python_version": "3.11",
                "executor": "sequential",
                "error": "s2: ValueError('bad row')" if status == "failed" else None,
            }
            run_rows.append([values.get(c) for c in run_columns])
            for s in range(STEPS_PER_RUN):
                out_v = f"{r:012x}{s:020x}"
                in_v = f"{r:012x}{s - 1:020x}" if s else "p" * 32
                failed = status == "failed" and s == 2
                step_rows.append(
                    [
                        run_id, f"s{s}", "failed" if failed else "ok", 0, "input 'n' changed",
                        1, T0 + r + s * 0.1, T0 + r + s * 0.1 + 0.05, 0.05 + (r % 5) / 100,
                        "k" * 32, json.dumps({"v": in_v}),
                        "{}" if failed else json.dumps({f"s{s}": out_v}),
                        "ValueError" if failed else None, "bad row" if failed else None,
                        "Traceback ...\nValueError: bad row" if failed else None,
                        "{}", None, "f" * 32, "{}", None, "{}",
                    ]
                )  # fmt: skip
                if not failed:
                    data_rows.append([out_v, run_id, f"s{s}", f"s{s}", "out"])
                data_rows.append([in_v, run_id, f"s{s}", "v", "in"])
        db.insert_rows("runs", RunRecord.COLUMNS, run_rows)
        db.insert_rows(
            "steps",
            StepRecord.COLUMNS,
            step_rows,
            extra=("data", "version, run_id, step, name, role", data_rows),
        )
    big = _big_run(store, run_columns, structure_json, structure_row, StepRecord.COLUMNS, runs)
    store.close()
    middle = runs // 2
    return {
        "big": big,
        "a": f"{middle:020x}",
        "b": f"{middle + PIPELINES:020x}",
        "version": f"{middle:012x}{1:020x}",
    }


def _big_run(
    store: object,
    run_columns: list[str],
    structure_json: Callable[..., str],
    structure_row: Callable[..., list[object]],
    step_columns: str,
    runs: int,
) -> str:
    """The 5,000-step chain: a run row, its structure, its steps."""
    db = store.history.db  # type: ignore[attr-defined]
    run_id = "b" * 20
    rows = [
        structure_row(
            f"step{i:04d}",
            {"x": f"d{i - 1}"} if i else {},
            [f"d{i}"],
            (),
            is_async=False,
            map_over=None,
            dynamic=False,
            optional=False,
        )
        for i in range(BIG_STEPS)
    ]
    body = structure_json("big", rows)
    db.execute("INSERT INTO structures (id, body) VALUES (?, ?)", ["bigstructure", body])
    started = T0 + runs + 10
    values = {
        "run_id": run_id,
        "pipeline": "big",
        "fingerprint": "f" * 32,
        "status": "failed",
        "params": json.dumps({"n": 5000}),
        "config": json.dumps({"model.depth": 3}),
        "tags": json.dumps(["big"]),
        "started_at": started,
        "finished_at": started + 60,
        "duration": 60.0,
        "host": "bench",
        "plait_version": "0.1.0",
        "python_version": "3.11",
        "executor": "sequential",
        "error": "step4999 failed",
    }
    db.insert_rows("runs", ", ".join(run_columns), [[values.get(c) for c in run_columns]])
    db.execute("UPDATE runs SET structure = 'bigstructure' WHERE run_id = ?", [run_id])
    steps = []
    for i in range(BIG_STEPS):
        failed = i == BIG_STEPS - 1
        logs = json.dumps({"lines": [f"INFO step {i} line {k}" for k in range(3)], "dropped": 0})
        steps.append(
            [
                run_id, f"step{i:04d}", "failed" if failed else "ok", int(i % 3 == 0),
                "cache hit" if i % 3 == 0 else "no entry (first run)", 1,
                started + i * 0.01, started + i * 0.01 + 0.009, 0.009, "k" * 32,
                json.dumps({"x": f"{i:032x}"}),
                "{}" if failed else json.dumps({f"d{i}": f"{i + 1:032x}"}),
                "ValueError" if failed else None, "bad" if failed else None,
                "Traceback (most recent call last):\n  ...\nValueError: bad" if failed else None,
                json.dumps({"rows": i}), None, "f" * 32, "{}", logs, "{}",
            ]
        )  # fmt: skip
    db.insert_rows("steps", step_columns, steps)
    return run_id


def timed(call: Callable[[], object], repeat: int) -> float:
    """The median seconds of ``repeat`` calls (after one warm-up)."""
    call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", metavar="PATH", help="Profile one page and print the top.")
    args = parser.parse_args()

    from starlette.testclient import TestClient

    from plait import Store
    from plait.ui import app

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        start = time.perf_counter()
        ids = fill(root, args.runs)
        print(f"filled {args.runs:,} runs + a {BIG_STEPS:,}-step run "
              f"in {time.perf_counter() - start:.1f} s")  # fmt: skip
        store = Store(root / "store")
        pages = {
            "/runs": "/runs",
            "/runs, page 1,000": "/runs?page=1000",
            "/runs?pipeline&status": "/runs?pipeline=pipe3&status=failed",
            "/runs?tag": "/runs?tag=nightly",
            "/runs?q (text search)": "/runs?q=bad%20row",
            "/runs sorted by duration": "/runs?sort=duration",
            f"/runs/ID ({BIG_STEPS:,} steps)": f"/runs/{ids['big']}",
            "/runs/ID (3 steps)": f"/runs/{ids['a']}",
            "/steps/pipe/step": "/steps/pipe3/s1",
            "/lineage/VERSION": f"/lineage/{ids['version']}",
            "/compare (2 runs)": f"/compare?runs={ids['a']},{ids['b']}",
        }
        with TestClient(app(store, token=TOKEN)) as client:
            client.headers["Authorization"] = f"Bearer {TOKEN}"
            if args.profile:
                profiler = cProfile.Profile()
                profiler.runcall(lambda: client.get(args.profile))
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
                return
            print(f"\n{'page':<34} {'median (ms)':>12}")
            for label, path in pages.items():
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)
                took = timed(lambda path=path: client.get(path), args.repeat)
                print(f"{label:<34} {took * 1e3:>12.1f}")
        store.close()


if __name__ == "__main__":
    main()
