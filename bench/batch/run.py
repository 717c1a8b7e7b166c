"""Batch scoring benchmark: through the inference queue vs in-process ``predict``, same model, data.

    .venv/bin/python bench/batch/run.py [--rows 100000] [--batch-rows 10000] [--estimator dt]

Needs RabbitMQ at 127.0.0.1:5672 and PostgreSQL at 127.0.0.1:5432 (fresh
databases are made and dropped). One ``loopml worker --queues inference``
process scores; the prediction log is on PostgreSQL. Printed side by side:

- in-process predict: ``score_frame`` on the whole frame (the anchor);
- in-process predict + log: the same, then every prediction written to the log;
- queue: split, publish, score on the worker, log, and read the scores back
  (``score_through_queue``, what ``loopml predict-batch --queue`` does).

The queue figure counts from the first publish to the last score read back,
with the worker already warm (model loaded by a small first batch).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--estimator", default="dt")
    args = parser.parse_args()

    import tempfile

    from tests.queue.helpers import (
        RABBIT_URL,
        Worker,
        delete_topology,
        fresh_postgres_database,
        make_data,
        write_spec,
    )

    from loopml.batch import ModelRef, load_model, score_and_log, score_frame
    from loopml.core.settings import Settings
    from loopml.core.spec import parse_spec
    from loopml.engine import run_pipeline
    from loopml.queue import make_app
    from loopml.queue.batches import score_through_queue
    from loopml.store.predictions import PredictionLog

    sys.path.insert(0, str(ROOT / "examples"))
    from make_creditcard import make_creditcard

    prefix = f"loopml-bench-{uuid.uuid4().hex[:8]}."
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
        name = f"bench_{uuid.uuid4().hex[:6]}"
        spec = write_spec(folder, make_data(folder, 3000), name, estimators=(args.estimator,))
        print(f"training {args.estimator} on 3000 rows ...", flush=True)
        run_pipeline(parse_spec(spec.read_text(), source=spec), settings)
        frame = make_creditcard(args.rows, seed=2024).drop(columns=["Class"])
        model = load_model(settings, ModelRef.parse(f"{name}/1"))

        started = time.perf_counter()
        score_frame(model, frame)
        predict_s = time.perf_counter() - started

        log = PredictionLog.open(settings.database)
        started = time.perf_counter()
        score_and_log(model, frame, f"inprocess-{uuid.uuid4().hex}", log)
        logged_s = time.perf_counter() - started
        log.engine.dispose()

        worker = Worker(settings, folder / "worker.log", "inference", concurrency=1)
        try:
            worker.wait_ready()
            app = make_app(settings)
            ref = ModelRef.parse(f"{name}@champion")
            score_through_queue(app, settings, ref, frame.iloc[:100], batch_rows=100)  # warm-up
            started = time.perf_counter()
            _, scored = score_through_queue(
                app, settings, ref, frame, batch_rows=args.batch_rows, poll_seconds=0.1
            )
            queue_s = time.perf_counter() - started
            assert len(scored) == args.rows
        finally:
            worker.stop()
            delete_topology(prefix)

    rows = args.rows
    print(f"\nbatch scoring, {rows} rows, model {args.estimator}, batches of {args.batch_rows}")
    print(
        f"  in-process predict (anchor)     {rows / predict_s:12,.0f} rows/s  ({predict_s:.2f} s)"
    )
    print(f"  in-process predict + log (PG)   {rows / logged_s:12,.0f} rows/s  ({logged_s:.2f} s)")
    print(f"  queue, 1 worker, log on PG      {rows / queue_s:12,.0f} rows/s  ({queue_s:.2f} s)")
    print(f"  ratio queue / in-process predict        {predict_s / queue_s:8.1%}")
    print(f"  ratio queue / in-process predict + log  {logged_s / queue_s:8.1%}")


if __name__ == "__main__":
    main()
