#!/usr/bin/env bash
# Every example spec (json/yaml under examples/) runs with `loopml run --smoke` on small
# generated data; fails when any pipeline breaks. Budget: under 2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
start=$(date +%s)
"$PYTHON" scripts/smoke_examples.py "$@"
echo "smoke-examples: $(( $(date +%s) - start )) s wall"
