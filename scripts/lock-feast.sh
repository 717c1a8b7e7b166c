#!/usr/bin/env bash
# Re-pin requirements-feast.lock: the full lock of the Feast venv (.venv-feast).
# Feast 0.67.0 needs pandas<3 and prometheus-client<0.25 while requirements.lock has newer
# ones, so this lock cannot be a constraint-compatible add-on like the other extras: it is
# compiled with requirements.lock as constraints (same versions everywhere else) except those
# two, which are overridden. Without the overrides uv silently resolves feast 0.1.2; the check
# at the end refuses that.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'pandas<3\nprometheus-client<0.25\n' >"$tmp/overrides.txt"
grep -vE '^(pandas|prometheus-client)==' requirements.lock | grep -E '^[A-Za-z0-9]' >"$tmp/constraints.txt"
uv pip compile pyproject.toml --quiet --extra dev --extra feast \
    --override "$tmp/overrides.txt" -c "$tmp/constraints.txt" \
    --custom-compile-command "bash scripts/lock-feast.sh" -o requirements-feast.lock
grep -qx 'feast==0.67.0' requirements-feast.lock || {
    echo "lock-feast: feast did not resolve to 0.67.0 (see requirements-feast.lock)" >&2
    exit 1
}
