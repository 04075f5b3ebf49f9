#!/usr/bin/env bash
# Create the benchmark environment: a venv separate from the project's own,
# so that the peers compared against (Apache Hamilton, Prefect, joblib) and the tools the
# benchmarks need (numpy, psutil, pyinstrument) never become dependencies of plait.
#
# Usage: bash benchmarks/setup_env.sh        (from anywhere)
# Then:  .bench-venv/bin/python benchmarks/bench_core.py
#        .bench-venv/bin/python benchmarks/bench_runtime.py
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.bench-venv"
python="${PYTHON:-python3}"

if [[ ! -x "${venv}/bin/python" ]]; then
    "${python}" -m venv "${venv}"
fi
"${venv}/bin/python" -m pip install --quiet --upgrade pip
"${venv}/bin/python" -m pip install --quiet -e "${repo_root}" apache-hamilton numpy psutil pyinstrument
# The runtime benchmarks (bench_runtime.py): Prefect, joblib, pandas + pyarrow (parquet) and
# xxhash (the raw-buffer hashing baseline). Prefect 3.8's ephemeral server passes
# Body(min_items=...), which FastAPI >= 0.150 rejects, hence the pin.
"${venv}/bin/python" -m pip install --quiet prefect "fastapi<0.150" joblib pandas pyarrow xxhash
# bench_issue16.py's Dask row and bench_engines.py: Dask at the project's locked versions.
"${venv}/bin/python" -m pip install --quiet -c "${repo_root}/constraints/dev.txt" "dask[distributed]"
"${venv}/bin/python" - <<'PY'
import importlib.metadata as md
for name in ("plait", "apache-hamilton", "numpy", "psutil", "pyinstrument", "prefect", "joblib",
             "pandas", "pyarrow", "xxhash", "dask", "distributed"):
    print(f"{name} {md.version(name)}")
PY
