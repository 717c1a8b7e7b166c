"""loopml serve against mlflow models serve: the same registered model, same machine, same run.

    python bench/serving/run.py [--estimator lr] [--single 600] [--concurrent 3000] [--batches 300]
                                [--database postgresql+psycopg://postgres@127.0.0.1:5432/DB]
                                [--validate-data] [--journal-only] [--runtimes]

Trains a fraud pipeline with the engine, registers it, starts
``mlflow models serve --env-manager local`` and ``loopml serve`` (prediction
log ON, SQLite by default) on free loopback ports, one worker each, and drives
both with the same async load generator: single-row requests at concurrency 1
and 16, and 100-row batches at concurrency 4. Prints req/s, rows/s, p50 and
p99 per case, and loopml's ratios to MLflow. At the end it checks that every
row loopml scored is in the prediction log. The load generator shares the
machine with the servers, so absolute figures depend on what else runs.

The prediction journal's cost, same run: a second ``loopml serve`` with the
journal off (``LOOPML_SERVE_JOURNAL=false``, which logs nothing) is driven
with the same requests; the table prints both and the ratio, and a
micro-benchmark times ``PredictionLogger.log`` itself (the work a request does
before its answer: build the rows, one ``write()``). ``--journal-only`` skips
MLflow and ``/invocations``.

The ONNX runtime, same run: a third ``loopml serve --runtime onnx`` (the
version exported and parity-checked at start, onnxruntime on one thread,
prediction log ON) is driven with the same requests, and the table ends with
its ratios to the pyfunc runtime against the issue's targets (single row at
concurrency 1: p50 <= 0.6 ms, p99 <= 2 ms; concurrency 16: >= 1.5x pyfunc's
throughput). ``--runtimes`` drives only MLflow, pyfunc ``/predict`` and onnx
``/predict`` (shorter).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "examples"))

from load import LoadResult, drive  # noqa: E402
from make_creditcard import make_creditcard, write_zip  # noqa: E402

MODEL = "bench_fraud"
# one worker each, loopback only
MLFLOW_SERVE = [
    *(sys.executable, "-m", "mlflow", "models", "serve"),
    *("--env-manager", "local", "-h", "127.0.0.1", "-w", "1"),
]
NO_JOURNAL = "loopml (no journal)"
ONNX = "loopml onnx /predict"
LOOPML_SERVE = [sys.executable, "-m", "loopml", "serve", "--host", "127.0.0.1", "--workers", "1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train_and_register(
    home: Path, estimator: str, database: str, validate_data: bool = False
) -> dict[str, str]:
    """Train with the engine; the environment both servers need to find the model.

    With ``validate_data`` the version carries a reference profile, so loopml
    checks every request against it (schema skew refused, value skew logged).
    """
    from loopml.core.settings import Settings
    from loopml.core.spec import parse_spec
    from loopml.engine import run_pipeline

    data = write_zip(make_creditcard(5000, positive_rate=0.05, seed=7), home / "cc.zip")
    spec = {
        "pipeline": [
            {
                "MLSteps": [
                    {"load_data_from_file": {"path": str(data)}},
                    *([{"validate_data": {}}] if validate_data else []),
                    {
                        "train_model": {
                            "modeling_params": {
                                "estimator_list": [estimator],
                                "fold": 2,
                                "session_id": 1,
                            },
                            "finalize": False,
                        }
                    },
                    {"register_model": {}},
                ]
            }
        ],
        "experiment_config": {
            "experiment_name": "bench-serving",
            "model_name": MODEL,
            "main_metric": "F1",
            "problem_type": "classification",
            "target": "Class",
        },
    }
    settings = Settings(home=home, database_url=database)
    run_pipeline(parse_spec(json.dumps(spec)), settings)
    return {
        "LOOPML_HOME": str(home),
        "LOOPML_TRACKING_URI": settings.tracking,
        "LOOPML_DATABASE_URL": database,
        "MLFLOW_TRACKING_URI": settings.tracking,
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
        # mlflow models serve execs `uvicorn` by name: it must find this environment's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT
    )


READY_TIMEOUT_S = float(os.environ.get("BENCH_READY_TIMEOUT_S", "240"))


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server at {url} did not come up:\n{log.read_text()[-3000:]}")


def rows(n: int) -> list[dict[str, Any]]:
    frame = make_creditcard(n, seed=99).drop(columns=["Class"])
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def line(case: str, server: str, result: LoadResult, rows_per_request: int) -> str:
    return (
        f"{case:<22} {server:<22} {result.rps:>9.0f} {result.rps * rows_per_request:>10.0f} "
        f"{result.percentile(50):>8.2f} {result.percentile(99):>8.2f} {result.failures:>6}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimator", default="lr", help="loopml estimator id (lr, rf, lightgbm)")
    parser.add_argument("--single", type=int, default=600, help="requests at concurrency 1")
    parser.add_argument("--concurrent", type=int, default=3000, help="requests at concurrency 16")
    parser.add_argument("--batches", type=int, default=300, help="100-row requests (conc. 4)")
    parser.add_argument("--database", default=None, help="prediction store URL (default SQLite)")
    parser.add_argument(
        "--journal-only",
        action="store_true",
        help="only loopml /predict with the journal on and off (no MLflow)",
    )
    parser.add_argument(
        "--runtimes",
        action="store_true",
        help="only MLflow, loopml /predict (pyfunc) and loopml --runtime onnx /predict",
    )
    parser.add_argument(
        "--validate-data",
        action="store_true",
        help="train with validate_data: loopml checks each request against the reference profile",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="loopml-bench-serving-"))
    database = args.database or f"sqlite:///{home / 'loopml.db'}"
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}")
    print(f"training {args.estimator} and registering {MODEL} under {home} ...", flush=True)
    env = train_and_register(home, args.estimator, database, args.validate_data)
    print(f"reference profile checks: {'on' if args.validate_data else 'off'}")

    if not args.runtimes:
        print(f"journal.log per call: {journal_microbench(home)}", flush=True)
    mlflow_port, loopml_port, bare_port = free_port(), free_port(), free_port()
    onnx_port = free_port()
    onnx_url = f"http://127.0.0.1:{onnx_port}"
    mlflow_url, loopml_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{loopml_port}"
    bare_url = f"http://127.0.0.1:{bare_port}"
    bare_env = {**env, "LOOPML_SERVE_JOURNAL": "false", "LOOPML_SERVE_SPOOL_DIR": str(home / "x")}
    servers = {
        "loopml": start(
            [*LOOPML_SERVE, "--model", f"{MODEL}@champion", "--port", str(loopml_port)],
            env,
            home / "loopml-serve.log",
        )
    }
    if not args.runtimes:
        servers["bare"] = start(
            [*LOOPML_SERVE, "--model", f"{MODEL}@champion", "--port", str(bare_port)],
            bare_env,
            home / "loopml-serve-no-journal.log",
        )
    if not args.journal_only:
        servers["mlflow"] = start(
            [*MLFLOW_SERVE, "-m", f"models:/{MODEL}/1", "-p", str(mlflow_port)],
            env,
            home / "mlflow-serve.log",
        )
        onnx_serve = [*LOOPML_SERVE, "--model", f"{MODEL}@champion", "--port", str(onnx_port)]
        servers["onnx"] = start(
            [*onnx_serve, "--runtime", "onnx"], env, home / "loopml-serve-onnx.log"
        )
    try:
        wait_ready(loopml_url, servers["loopml"], home / "loopml-serve.log")
        if not args.runtimes:
            wait_ready(bare_url, servers["bare"], home / "loopml-serve-no-journal.log")
        targets = [
            ("loopml /predict", f"{loopml_url}/predict", "plain"),
            (NO_JOURNAL, f"{bare_url}/predict", "plain"),
        ]
        if not args.journal_only:
            wait_ready(mlflow_url, servers["mlflow"], home / "mlflow-serve.log")
            wait_ready(onnx_url, servers["onnx"], home / "loopml-serve-onnx.log")
            targets = [
                ("mlflow /invocations", f"{mlflow_url}/invocations", "records"),
                ("loopml /invocations", f"{loopml_url}/invocations", "records"),
                *targets,
                (ONNX, f"{onnx_url}/predict", "plain"),
            ]
            if args.runtimes:
                keep = ("mlflow /invocations", "loopml /predict", ONNX)
                targets = [target for target in targets if target[0] in keep]
        one, hundred = rows(1), rows(100)

        def body(style: str, batch: list[dict[str, Any]]) -> bytes:
            payload: Any = {"dataframe_records": batch} if style == "records" else batch
            return json.dumps(payload).encode()

        for _, url, style in targets:  # warm both servers up
            drive(url, body(style, one), 100, 4)
        cases = [
            ("1 row, concurrency 1", one, args.single, 1),
            ("1 row, concurrency 16", one, args.concurrent, 16),
            ("100 rows, concurrency 4", hundred, args.batches, 4),
        ]
        header = (
            f"{'case':<22} {'server':<22} {'req/s':>9} {'rows/s':>10} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'fail':>6}"
        )
        print(header)
        print("-" * len(header))
        results: dict[tuple[str, str], LoadResult] = {}
        # the warm-up requests to the journaled server's endpoints
        sent_rows = 100 * sum(1 for server, *_ in targets if _journaled(server))
        for case, batch, count, concurrency in cases:
            for server, url, style in targets:
                result = drive(url, body(style, batch), count, concurrency)
                results[(case, server)] = result
                if _journaled(server):
                    sent_rows += count * len(batch)
                print(line(case, server, result, len(batch)), flush=True)
        if not args.journal_only:
            print()
            print("loopml / mlflow          req/s ratio   p99 ratio (lower is better)")
            for case, *_ in cases:
                base = results[(case, "mlflow /invocations")]
                for server in ("loopml /invocations", "loopml /predict", ONNX):
                    if (case, server) not in results:
                        continue
                    mine = results[(case, server)]
                    print(
                        f"{case:<22} {server:<20} {mine.rps / base.rps:>6.1f}x "
                        f"{mine.percentile(99) / base.percentile(99):>10.2f}x"
                    )
        if not args.journal_only:
            print_runtimes(results)
        print()
        if args.runtimes:
            check_log(loopml_url, database, sent_rows)
            return
        print("journal on / off         req/s ratio   p50 +ms   p99 ratio")
        for case, *_ in cases:
            on, off = results[(case, "loopml /predict")], results[(case, NO_JOURNAL)]
            print(
                f"{case:<22} {'/predict':<20} {on.rps / off.rps:>6.2f}x "
                f"{on.percentile(50) - off.percentile(50):>9.3f} "
                f"{on.percentile(99) / off.percentile(99):>9.2f}x"
            )
        check_log(loopml_url, database, sent_rows)
    finally:
        for process in servers.values():
            process.terminate()
        for process in servers.values():
            process.wait(30)


def _journaled(server: str) -> bool:
    """The servers that log to the bench's prediction store (all loopml ones but one)."""
    return server.startswith("loopml") and server != NO_JOURNAL


def print_runtimes(results: dict[tuple[str, str], LoadResult]) -> None:
    """``--runtime onnx`` against the pyfunc runtime, with the issue's targets."""
    single, many = "1 row, concurrency 1", "1 row, concurrency 16"
    onnx1, py1 = results[(single, ONNX)], results[(single, "loopml /predict")]
    onnx16, py16 = results[(many, ONNX)], results[(many, "loopml /predict")]
    p50, p99 = onnx1.percentile(50), onnx1.percentile(99)
    ratio = onnx16.rps / py16.rps
    print()
    print("onnx runtime / pyfunc runtime (same run, prediction log on)")
    print(
        f"1 row, c1   onnx p50 {p50:.2f} ms (target <= 0.6; pyfunc {py1.percentile(50):.2f}), "
        f"p99 {p99:.2f} ms (target <= 2; pyfunc {py1.percentile(99):.2f})"
    )
    print(f"1 row, c16  onnx {onnx16.rps:.0f} req/s = {ratio:.2f}x pyfunc (target >= 1.5x)")


def journal_microbench(home: Path, calls: int = 20_000) -> str:
    """Microseconds per ``PredictionLogger.log`` (1 and 100 rows): the request path's share."""
    import numpy as np

    from loopml.serving.predlog import PredictionLogger, Scored
    from loopml.serving.table import Table

    logger = PredictionLogger(f"sqlite:///{home / 'micro.db'}", home / "micro-journal")
    logger.journal.open()  # no shipper: only the request path is timed
    names = tuple(rows(1)[0])
    timings = []
    for n in (1, 100):
        table = Table(names, n, matrix=np.random.default_rng(1).random((n, len(names))))
        ids = [f"{i:032x}" for i in range(n)]
        item = Scored("m", "1", time.time(), ids, table, [0] * n, [[0.9, 0.1]] * n, ["0", "1"], 1.0)
        repeat = calls if n == 1 else calls // 20
        started = time.perf_counter()
        for _ in range(repeat):
            logger.log(item)
        timings.append(f"{(time.perf_counter() - started) / repeat * 1e6:.1f} us ({n} row(s))")
    logger.journal.close()
    return ", ".join(timings)


def check_log(url: str, database: str, sent_rows: int) -> None:
    """Prediction logging was on: every row loopml scored is in the prediction log."""
    from loopml.store.predictions import PredictionLog

    deadline = time.monotonic() + 120
    log = PredictionLog.open(database)
    count = log.count(model_name=MODEL)
    while count < sent_rows and time.monotonic() < deadline:
        time.sleep(1)
        count = log.count(model_name=MODEL)
    status = httpx.get(f"{url}/metadata").json()["prediction_log"]
    print(f"\nprediction log: {count} rows in the store for {sent_rows} rows scored; {status}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
