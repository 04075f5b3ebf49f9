"""Soak: the spaceflights-style project through ``plait run -e dask``, N times (issue 17).

The report behind issue 17 saw ``plait run … -e dask`` fail in 6 of 8 tries on this kind of
project (a step's output hashed on a worker that had not imported the user's hasher
registrations). This runs the project (``tests/spaceflights_case.py``: pandas,
scikit-learn, a matplotlib figure, hashers registered in ``pipeline.py`` only) through the
command line, each run starting its own ``LocalCluster``, and counts the runs that did not
succeed or whose model, metrics and figure got another data version than the first run's.
Not part of the test suite (``tests/test_dask.py`` runs a bounded version: 3 runs)::

    python benchmarks/soak_spaceflights.py            # 20 runs, fresh store, every 5th --force
    python benchmarks/soak_spaceflights.py --runs 50 --executor dask
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from spaceflights_case import write_project  # noqa: E402

WATCHED = ("train_model", "evaluate_model", "plot_predictions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--executor", default="dask")
    options = parser.parse_args()
    folder = write_project(Path(tempfile.mkdtemp(prefix="plait-soak-")) / "spaceflights")
    failures, first, seconds = [], None, []
    for index in range(options.runs):
        forced = ["--force"] if index % 5 == 0 else []  # every 5th run recomputes it all
        command = [sys.executable, "-m", "plait", "run", "pipeline.py", "--json", "-q"]
        command += ["--store", ".plait", "-e", options.executor, *forced]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        seconds.append(time.perf_counter() - started)
        try:
            result = json.loads(done.stdout)
        except ValueError:
            failures.append((index, f"exit {done.returncode}: {done.stderr[-500:]}"))
            continue
        versions = {name: result["steps"][name]["data_versions"] for name in WATCHED}
        first = first or versions
        if result["status"] != "succeeded":
            failures.append((index, result["status"]))
        elif versions != first:
            failures.append((index, f"data versions differ: {versions} != {first}"))
        print(f"run {index + 1:>2}: {result['status']} {seconds[-1]:.1f} s {' '.join(forced)}")
    ok = options.runs - len(failures)
    print(
        f"\n{ok} of {options.runs} runs succeeded with stable data versions "
        f"(median {sorted(seconds)[len(seconds) // 2]:.1f} s per run)"
    )
    for index, why in failures:
        print(f"  run {index + 1}: {why}")
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
