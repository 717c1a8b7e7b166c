"""Batch scoring benchmark: every engine against in-process ``predict``, same model, same rows.

    .venv/bin/python bench/batch/run.py [--rows 1000000] [--batch-rows 10000] \
        [--estimators dt lightgbm] [--engines anchor local queue1 queue2 spark1 spark2]

Needs RabbitMQ at 127.0.0.1:5672 and PostgreSQL at 127.0.0.1:5432 (fresh databases are made and
dropped). One Parquet file of the example data (row groups of ``--batch-rows``) is scored by:

- ``anchor``: in-process ``predict`` over the file's chunks (the model's own predict, read time
  not counted);
- ``local``: the local engine (read, predict, one batch-log segment per chunk, scored file);
- ``queue1`` / ``queue2``: the queue engine with one, then two ``loopml worker --queues inference
  --concurrency 1`` processes (rows in the messages; ``--by-reference`` sends row ranges);
- ``spark1`` / ``spark2``: the spark engine on ``local[1]`` / ``local[2]`` (session start-up
  printed apart, not counted).

Every measurement runs in a fresh process, threads pinned to one (``OMP_NUM_THREADS=1``), and
reports its peak RSS (queue: the client and the workers; Spark: the driver and its Python
workers, the JVM apart). Engines stream chunks: peak memory does not grow with ``--rows``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PINNED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--estimators", nargs="+", default=["dt", "lightgbm"])
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["anchor", "local", "queue1", "queue2", "spark1", "spark2"],
    )
    parser.add_argument("--by-reference", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return
    orchestrate(args)


def _peak_mb() -> float:
    """This process's and its finished children's peak RSS, in MB (Linux: ru_maxrss is KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def measure(args: Any) -> dict[str, Any]:
    """One engine in this (fresh) process; JSON with seconds, rows and peak memory."""
    from loopml.batch import ModelRef, load_model
    from loopml.batch.engines import BatchRequest, get_engine
    from loopml.batch.files import iter_chunks
    from loopml.core.settings import get_settings

    settings = get_settings()
    ref = ModelRef.parse(args.model)
    if args.measure == "anchor":
        model = load_model(settings, ref)
        seconds = 0.0
        rows = 0
        for _, chunk in iter_chunks(args.input, args.batch_rows):
            started = time.perf_counter()
            model.predict(chunk)
            seconds += time.perf_counter() - started
            rows += len(chunk)
        return {"rows": rows, "seconds": seconds, "startup": 0.0, "peak_mb": _peak_mb()}
    engine_name = args.measure.rstrip("12")
    output = Path(tempfile.mkdtemp(prefix="loopml-bench-out-")) / "scored.parquet"
    request = BatchRequest(
        settings=settings,
        model=ref,
        input=args.input,
        output=str(output),
        batch_rows=args.batch_rows,
        master=f"local[{args.measure[-1]}]" if engine_name == "spark" else None,
        options={"by_reference": args.by_reference},
    )
    if engine_name == "spark":
        from loopml.batch.spark import spark_session

        started = time.perf_counter()
        spark_session(request.master)
        startup = time.perf_counter() - started
    else:
        startup = 0.0
    result = get_engine(engine_name).score(request)
    return {
        "rows": result.rows,
        "seconds": result.seconds,
        "startup": startup or result.startup_seconds,
        "peak_mb": _peak_mb() + _python_workers_mb(),
    }


def _python_workers_mb() -> float:
    """Peak RSS of this process's Python children still alive (Spark's daemon and workers)."""
    total = 0.0
    for pid in _descendants(os.getpid()):
        status = Path(f"/proc/{pid}/status")
        try:
            text = status.read_text()
        except OSError:
            continue
        if "python" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
            continue
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        found.append(int(child))
        found += _descendants(int(child))
    return found


def _worker_peak_mb(workers: list[Any]) -> float:
    total = 0.0
    for worker in workers:
        for pid in [worker.process.pid, *_descendants(worker.process.pid)]:
            try:
                text = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
    return total


def orchestrate(args: Any) -> None:
    from tests.conftest import fresh_postgres_database
    from tests.queue.helpers import (
        RABBIT_URL,
        Worker,
        delete_topology,
        make_data,
        settings_env,
        write_spec,
    )

    from loopml.core.settings import Settings
    from loopml.core.spec import parse_spec
    from loopml.engine import run_pipeline

    sys.path.insert(0, str(ROOT / "examples"))
    from make_creditcard import make_creditcard

    prefix = f"loopml-bench-{uuid.uuid4().hex[:8]}."
    results: list[tuple[str, str, dict[str, Any]]] = []
    with (
        tempfile.TemporaryDirectory() as temp,
        fresh_postgres_database("bench_meta") as database,
        fresh_postgres_database("bench_mlflow") as tracking,
    ):
        folder = Path(temp)
        settings = Settings(
            home=folder / "home",
            tracking_uri=tracking,
            database_url=database,
            artifact_root=(folder / "artifacts").as_uri(),
            broker_url=RABBIT_URL,
            queue_prefix=prefix,
        )
        source = folder / "rows.parquet"
        print(f"writing {args.rows:,} rows of the example data ...", flush=True)
        make_creditcard(args.rows, seed=2024).drop(columns=["Class"]).to_parquet(
            source, row_group_size=args.batch_rows
        )
        data = make_data(folder, 3000)
        env = {**os.environ, **settings_env(settings), **PINNED}
        try:
            for estimator in args.estimators:
                name = f"bench_{estimator}_{uuid.uuid4().hex[:6]}"
                spec = write_spec(folder, data, name, estimators=(estimator,))
                print(f"training {estimator} on 3000 rows ...", flush=True)
                run_pipeline(parse_spec(spec.read_text(), source=spec), settings)
                for engine in args.engines:
                    workers: list[Any] = []
                    if engine.startswith("queue"):
                        workers = [
                            Worker(settings, folder / f"worker-{i}.log", "inference", 1)
                            for i in range(int(engine[-1]))
                        ]
                        for worker in workers:
                            worker.wait_ready()
                        _run(args, env, "queue1", f"{name}/1", str(source), warm=True)
                    try:
                        print(f"  {estimator}: {engine} ...", flush=True)
                        found = _run(args, env, engine, f"{name}/1", str(source))
                        if workers:
                            found["workers_peak_mb"] = _worker_peak_mb(workers)
                    finally:
                        for worker in workers:
                            worker.stop()
                    results.append((estimator, engine, found))
                    rate = found["rows"] / found["seconds"] if found["seconds"] else 0.0
                    print(f"    {rate:,.0f} rows/s  {json.dumps(found)}", flush=True)
        finally:
            delete_topology(prefix)
    _print(args, results)


def _run(
    args: Any, env: dict[str, str], engine: str, model: str, source: str, warm: bool = False
) -> dict[str, Any]:
    """One measurement in a fresh process (``warm``: a small run to load the workers' model)."""
    command = [
        sys.executable,
        __file__,
        "--measure",
        engine,
        "--model",
        model,
        "--input",
        source,
        "--batch-rows",
        str(args.batch_rows),
    ]
    if args.by_reference:
        command.append("--by-reference")
    if warm:
        import pandas as pd

        small = Path(source).with_name("warm.parquet")
        if not small.exists():
            pd.read_parquet(source).iloc[: args.batch_rows].to_parquet(small)
        command[command.index(source)] = str(small)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _print(args: Any, results: list[tuple[str, str, dict[str, Any]]]) -> None:
    print(
        f"\nbatch scoring, {args.rows:,} rows, chunks of {args.batch_rows:,}, threads pinned to 1"
        f"{', queue by reference' if args.by_reference else ''}"
    )
    print(
        f"  {'model':<9}{'engine':<8}{'rows/s':>12}{'seconds':>9}{'/anchor':>9}"
        f"{'start s':>9}{'peak MB':>9}{'workers MB':>11}"
    )
    for estimator in dict.fromkeys(e for e, _, _ in results):
        mine = {engine: found for e, engine, found in results if e == estimator}
        anchor = mine.get("anchor")
        for engine, found in mine.items():
            rate = found["rows"] / found["seconds"] if found["seconds"] else 0.0
            ratio = (
                f"{rate / (anchor['rows'] / anchor['seconds']):8.1%}"
                if anchor and anchor["seconds"]
                else "       -"
            )
            workers = found.get("workers_peak_mb")
            print(
                f"  {estimator:<9}{engine:<8}{rate:12,.0f}{found['seconds']:9.2f} {ratio}"
                f"{found['startup']:9.1f}{found['peak_mb']:9.0f}"
                f"{(f'{workers:11.0f}' if workers is not None else '          -')}"
            )
        for fast, slow, target in (("queue2", "queue1", 1.7), ("spark2", "spark1", 1.6)):
            if fast in mine and slow in mine:
                speedup = mine[slow]["seconds"] / mine[fast]["seconds"]
                print(f"  {estimator}: {fast} / {slow} = {speedup:.2f}x (target {target}x)")
        if "queue1" in mine and anchor:
            share = anchor["seconds"] / mine["queue1"]["seconds"]
            print(f"  {estimator}: queue1 / anchor = {share:.1%} (target 50%)")


if __name__ == "__main__":
    main()
