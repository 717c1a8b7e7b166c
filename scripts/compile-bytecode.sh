#!/usr/bin/env bash
# Byte-compile a venv's site-packages (and loopml's src) once, at install time.
# Usage: bash scripts/compile-bytecode.sh .venv
#
# Why: uv installs without .pyc files, and where PYTHONDONTWRITEBYTECODE is set (it is on
# the CI machine) Python never writes them either, so every process (each `loopml serve`,
# worker and CLI call the tests start) compiles MLflow, scikit-learn and pandas from source:
# 25 s instead of 9 s to import the server on a busy 2-core machine. compileall skips what
# is already up to date, so a second install costs seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:?usage: compile-bytecode.sh VENV}
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "$venv/bin/python" -m compileall -q -j 0 "$site" src >"$log" 2>&1; then
    # Some wheels ship test helpers for newer Pythons only (torch's py312 ones); nothing here
    # imports them. A failure anywhere else is a real error: show it all.
    failed=$(grep -c '^\*\*\* Error compiling' "$log" || true)
    outside=$(grep '^\*\*\* Error compiling' "$log" | grep -cv -e '/testing/' -e '/tests/' || true)
    if [ "$failed" = 0 ] || [ "$outside" != 0 ]; then
        cat "$log" >&2
        exit 1
    fi
    echo "install: $failed test helper(s) in dependencies need a newer Python; left uncompiled" >&2
fi
