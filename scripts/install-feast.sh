#!/usr/bin/env bash
# Install the Feast environment ./.venv-feast: requirements-feast.lock (its own full lock,
# pandas 2.x: Feast 0.67 needs pandas<3) plus loopml itself, editable, without dependencies.
# The main ./.venv (pandas 3) never gets Feast; scripts/test.sh runs the feature-store
# tests (marker `feast`) here after the main suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet "uv==0.13.9"
fi
if [ ! -x .venv-feast/bin/python ]; then
    uv venv --quiet --python "$("$PYTHON" -c 'import sys; print(sys.executable)')" .venv-feast
fi
find_links=()
[ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)
uv pip sync --quiet --python .venv-feast/bin/python "${find_links[@]}" requirements-feast.lock
uv pip install --quiet --python .venv-feast/bin/python --no-deps -e .
bash scripts/compile-bytecode.sh .venv-feast
