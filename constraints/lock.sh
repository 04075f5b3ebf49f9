#!/usr/bin/env bash
# Regenerate the locks from pyproject.toml (needs uv: pip install uv).
#   constraints/dev.txt     every package of the dev extra (tests, linters, every optional
#                           extra), pinned: the README's commands and .ci/run install with it
#   constraints/lowest.txt  plait's runtime dependencies at the lowest versions pyproject.toml
#                           allows, with the test tools: .ci/lowest.sh runs the core suite on it
# Run it when pyproject.toml changes or to move the lock forward; then run .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
header() {
  echo "# $1"
  echo "# Regenerate with: bash constraints/lock.sh (see docs/install.md). Do not edit by hand."
}
{
  header "The locked dev/test closure: the README's two commands and .ci/run install with it."
  uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header --quiet
} >constraints/dev.txt
{
  header "plait's runtime dependencies at their lowest allowed versions, with the test tools."
  printf 'pytest>=8\npytest-timeout>=2.3\nhypothesis>=6.100\npyyaml>=6.0.1\n' |
    uv pip compile pyproject.toml - --resolution lowest-direct --python-version 3.11 \
      --no-header --quiet
} >constraints/lowest.txt
echo "wrote constraints/dev.txt ($(grep -c '==' constraints/dev.txt) pins)," \
  "constraints/lowest.txt ($(grep -c '==' constraints/lowest.txt) pins)"
