#!/usr/bin/env bash
# Install, then check everything CI checks: lint, types, layer contracts, tests.
# Tests that need PostgreSQL skip when it is down, unless CI=true (then they fail).
set -euo pipefail
cd "$(dirname "$0")/.."
# The extras whose code the suite tests (each pinned in requirements-<extra>.lock).
export LOOPML_EXTRAS="${LOOPML_EXTRAS-spark}"
bash scripts/install.sh
bash scripts/install-tools.sh   # validators of deploy/ and .github/ (tests/deploy)
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff";          ruff check src tests bench examples
echo "== ruff format";   ruff format --check src tests bench examples
echo "== mypy";          mypy
echo "== import-linter"; lint-imports
echo "== pytest";        pytest "$@"
