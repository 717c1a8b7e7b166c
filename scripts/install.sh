#!/usr/bin/env bash
# Install loopml and its pinned dependencies (requirements.lock) into ./.venv.
# Usage: bash scripts/install.sh        (idempotent; fast when nothing changed)
#        LOOPML_EXTRAS="spark onnx" bash scripts/install.sh
#          also installs each named extra from its own pinned requirements-<extra>.lock
#          (compiled with requirements.lock as a constraint, so the two always agree).
#          scripts/test.sh installs the extras the test suite exercises.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet "uv==0.13.9"
fi
if [ ! -x .venv/bin/python ]; then
    uv venv --quiet --python "$("$PYTHON" -c 'import sys; print(sys.executable)')" .venv
fi
locks=(requirements.lock)
for extra in ${LOOPML_EXTRAS:-}; do
    if [ ! -f "requirements-$extra.lock" ]; then
        echo "install: no requirements-$extra.lock for the extra '$extra'" >&2
        exit 2
    fi
    locks+=("requirements-$extra.lock")
done
# /opt/wheels holds wheels this machine ships on disk (the CPU build of torch); uv only
# looks there when told to.
find_links=()
[ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)
uv pip sync --quiet --python .venv/bin/python "${find_links[@]}" "${locks[@]}"
uv pip install --quiet --python .venv/bin/python --no-deps -e .
# .pyc files now, once: see scripts/compile-bytecode.sh for why
bash scripts/compile-bytecode.sh .venv
