"""Online features' cost at serving: the same model served with and without a Feast lookup.

    .venv-feast/bin/python bench/serving/features.py [--single 400] [--concurrent 2000]

Needs the Feast environment (bash scripts/install-feast.sh). Generates the example's
Parquet files, applies the Feast repo (SQLite online store), trains version 1 of
``bench_fs`` from the feature service (``load_data_from_feature_store``) and version 1
of ``bench_plain`` on the very same joined frame from a file, materializes, and serves
both with ``loopml serve`` (one worker each, prediction log on). ``bench_fs`` gets
entity-only requests (customer_id, amount), ``bench_plain`` the whole row. Prints p50
and p99 at concurrency 1 (the added latency of the lookup), throughput at concurrency 16
(batched lookups) and the ratios, all from the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "examples" / "feature_store"))

from load import drive  # noqa: E402
from make_data import make  # noqa: E402
from run import LOOPML_SERVE, free_port, line, start, wait_ready  # noqa: E402


def _spec(load: dict[str, Any], name: str) -> str:
    return json.dumps(
        {
            "pipeline": [
                {
                    "MLSteps": [
                        load,
                        {
                            "train_model": {
                                "modeling_params": {
                                    "estimator_list": ["lr"],
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
                "experiment_name": f"bench-{name}",
                "model_name": name,
                "main_metric": "AUC",
                "problem_type": "classification",
                "target": "is_fraud",
            },
        }
    )


def prepare(home: Path) -> tuple[dict[str, str], list[dict[str, Any]], list[dict[str, Any]]]:
    """Train both models; the servers' environment and one request row for each."""
    import shutil

    import pandas as pd

    from loopml.core.settings import Settings
    from loopml.core.spec import parse_spec
    from loopml.engine import run_pipeline
    from loopml.features import apply_repo
    from loopml.features.materialize import materialize

    example = HERE.parents[1] / "examples" / "feature_store"
    make(home, customers=500, days=10, transactions=3000, seed=1)
    for name in ("feature_store.yaml", "definitions.py"):
        shutil.copy(example / "repo" / name, home / "repo" / name)
    apply_repo(home / "repo")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'loopml.db'}")
    fs_load = {
        "load_data_from_feature_store": {
            "repo": str(home / "repo"),
            "entities": {"path": str(home / "transactions.parquet")},
            "feature_service": "fraud_features",
        }
    }
    result = run_pipeline(parse_spec(_spec(fs_load, "bench_fs")), settings)
    joined = result.context.data["train"]
    joined.to_parquet(home / "joined.parquet", index=False)
    plain_load = {"load_data_from_file": {"path": str(home / "joined.parquet")}}
    run_pipeline(parse_spec(_spec(plain_load, "bench_plain")), settings)
    materialize(settings, home / "repo")
    stats = pd.read_parquet(home / "repo" / "data" / "customer_stats.parquet")
    latest = stats.sort_values("event_timestamp").groupby("customer_id").tail(1).iloc[0]
    entity = {"customer_id": int(latest["customer_id"]), "amount": 42.0}
    whole = {
        "amount": 42.0,
        **{
            column: latest[column].item()
            for column in ("avg_amount_30d", "tx_count_7d", "chargeback_rate", "account_age_days")
        },
    }
    env = {
        "LOOPML_HOME": str(home),
        "LOOPML_TRACKING_URI": settings.tracking,
        "LOOPML_DATABASE_URL": settings.database,
    }
    return env, [entity], [whole]


def lookup_microbench(home: Path, calls: int = 300) -> list[str]:
    """The online lookup alone, in-process: one key per call, and 16 keys per call."""
    import time

    import numpy as np
    import pandas as pd

    from loopml.features import open_store

    store = open_store(home / "repo")
    refs = [
        f"customer_stats:{name}"
        for name in ("avg_amount_30d", "tx_count_7d", "chargeback_rate", "account_age_days")
    ]
    ids = pd.read_parquet(home / "transactions.parquet")["customer_id"].unique().tolist()
    lines = []
    for keys in (1, 16):
        times = []
        for i in range(calls):
            chosen = [int(ids[(i * keys + j) % len(ids)]) for j in range(keys)]
            started = time.perf_counter()
            store.get_online_features(features=refs, entity_rows={"customer_id": chosen})
            times.append((time.perf_counter() - started) * 1000)
        p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
        lines.append(
            f"get_online_features, {keys:>2} key(s) per call: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", type=int, default=400, help="requests at concurrency 1")
    parser.add_argument("--concurrent", type=int, default=2000, help="requests at concurrency 16")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-fs-") as folder:
        home = Path(folder)
        env, entity, whole = prepare(home)
        micro = lookup_microbench(home)
        servers, urls = [], {}
        try:
            for name in ("bench_plain", "bench_fs"):
                port = free_port()
                command = [*LOOPML_SERVE, "--model", f"{name}@champion", "--port", str(port)]
                servers.append(start(command, env, home / f"{name}.log"))
                urls[name] = f"http://127.0.0.1:{port}"
            for server, name in zip(servers, urls, strict=True):
                wait_ready(urls[name], server, home / f"{name}.log")
            bodies = {"bench_plain": orjson.dumps(whole), "bench_fs": orjson.dumps(entity)}
            results: dict[tuple[str, int], Any] = {}
            for name, url in urls.items():  # warm up, and check the answers are 200s
                warm = drive(f"{url}/predict", bodies[name], 50, 1)
                if warm.failures:
                    raise SystemExit(f"{name} answered errors; see {home / (name + '.log')}")
            for concurrency, total in ((1, args.single), (16, args.concurrent)):
                for name, url in urls.items():
                    results[name, concurrency] = drive(
                        f"{url}/predict", bodies[name], total, concurrency
                    )
        finally:
            for server in servers:
                server.terminate()
                server.wait(30)
    print(
        f"{'case':<22} {'server':<22} {'req/s':>9} {'rows/s':>10} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'fail':>6}"
    )
    print("-" * 91)
    labels = {"bench_plain": "whole rows", "bench_fs": "entity + Feast"}
    for (name, concurrency), result in results.items():
        print(line(f"1 row, concurrency {concurrency}", labels[name], result, 1))
    plain1, fs1 = results["bench_plain", 1], results["bench_fs", 1]
    plain16, fs16 = results["bench_plain", 16], results["bench_fs", 16]
    print()
    print(
        f"added p50 at concurrency 1: {fs1.percentile(50) - plain1.percentile(50):.2f} ms "
        f"({fs1.percentile(50):.2f} vs {plain1.percentile(50):.2f})"
    )
    print(f"throughput at concurrency 16, with / without features: {fs16.rps / plain16.rps:.2f}")
    print()
    print("\n".join(micro))


if __name__ == "__main__":
    main()
