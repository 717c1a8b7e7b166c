#!/usr/bin/env bash
# Install, make the example data, and run the example spec end to end on embedded
# defaults: SQLite for MLflow and the metadata store, local artifacts, no servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python examples/make_creditcard.py --rows 20000
.venv/bin/loopml run examples/credit_fraud.json
.venv/bin/loopml runs list --limit 5
