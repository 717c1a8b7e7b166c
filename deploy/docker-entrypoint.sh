#!/bin/sh
# The role a container plays is its command; configuration comes from LOOPML_* variables
# (docs/deploy.md lists them). Extra arguments go to the command.
#   api [ARGS]        the jobs API on :8100            (loopml api)
#   serve [ARGS]      the model server on :8080        (loopml serve; LOOPML_SERVE_MODEL)
#   worker [ARGS]     a Celery worker                  (loopml worker)
#   monitor NAME ...  the scheduled monitor            (loopml monitor NAME --every S)
#   tracking [ARGS]   the MLflow tracking server :5000 (mlflow server)
#   healthcheck       the image's HEALTHCHECK: asks the role's own endpoint
#   anything else     run as given (e.g. `loopml models promote NAME 3`)
set -eu

role="${1:-serve}"
[ "$#" -gt 0 ] && shift

case "$role" in
    api)
        exec loopml api --host 0.0.0.0 --port 8100 "$@" ;;
    serve)
        exec loopml serve --host 0.0.0.0 --port 8080 "$@" ;;
    worker)
        exec loopml worker "$@" ;;
    monitor)
        exec loopml monitor "$@" ;;
    tracking)
        exec mlflow server --host 0.0.0.0 --port 5000 "$@" ;;
    healthcheck)
        # PID 1 is tini; its command line names the role this container was started with.
        started=$(tr '\0' ' ' < /proc/1/cmdline)
        case "$started" in
            *" serve"*) url=http://127.0.0.1:8080/v2/health/ready ;;
            *" api"*) url=http://127.0.0.1:8100/docs ;;
            *" tracking"*) url=http://127.0.0.1:5000/health ;;
            # worker, monitor: no port; alive is healthy (tini exits when they do).
            *) exit 0 ;;
        esac
        # Healthy: any answer below 500 (an API that wants a key still answers 401).
        exec python - "$url" <<'PY'
import sys
import urllib.error
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1], timeout=4)
except urllib.error.HTTPError as error:
    sys.exit(1 if error.code >= 500 else 0)
except OSError as error:
    print(f"unhealthy: {sys.argv[1]}: {error}", file=sys.stderr)
    sys.exit(1)
PY
        ;;
    *)
        exec "$role" "$@" ;;
esac
