#!/usr/bin/env bash
# Install loopml and its pinned dependencies (requirements.lock) into ./.venv.
# Usage: bash scripts/install.sh        (idempotent; fast when nothing changed)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet "uv==0.13.9"
fi
if [ ! -x .venv/bin/python ]; then
    uv venv --quiet --python "$("$PYTHON" -c 'import sys; print(sys.executable)')" .venv
fi
uv pip sync --quiet --python .venv/bin/python requirements.lock
uv pip install --quiet --python .venv/bin/python --no-deps -e .
