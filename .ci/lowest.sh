#!/usr/bin/env bash
# plait at the lowest runtime dependency versions pyproject.toml allows
# (constraints/lowest.txt: cloudpickle, xxhash, fsspec, click, rich), with no optional extra:
# the core suite must pass there too. Dask/Ray/Celery/DuckDB/PostgreSQL cases need extras and are
# deselected here; .ci/run runs them at the locked versions.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-lowest}
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -c constraints/lowest.txt -e . pytest pytest-timeout hypothesis pyyaml
"$venv/bin/python" -m pip list --format=freeze | grep -iE '^(cloudpickle|xxhash|fsspec|click|rich)=='
core=(
  tests/test_branching.py tests/test_cache_properties.py tests/test_cancellation.py
  tests/test_cli.py tests/test_dynamic.py tests/test_executors.py tests/test_expiry.py
  tests/test_fingerprint.py tests/test_gc.py tests/test_hygiene.py tests/test_lineage.py
  tests/test_map.py tests/test_pipeline.py tests/test_properties.py
  tests/test_public_api.py tests/test_results.py tests/test_retries.py tests/test_run.py
  tests/test_subpipelines.py tests/test_validation.py tests/test_viz.py
)
"$venv/bin/python" -m pytest -q -p no:cacheprovider "${core[@]}" \
  -k "not dask and not ray and not celery and not duckdb and not postgresql"
