"""Write the Parquet files the example Feast repo reads: customers, their daily stats, transactions.

Kept outside ``repo/`` on purpose: ``feast apply`` imports every ``.py`` in the repo
folder, and this script must not run as a side effect of applying it.

- ``repo/data/customer_stats.parquet``: one row per customer per day (``event_timestamp``),
  with ``avg_amount_30d``, ``tx_count_7d``, ``chargeback_rate`` and ``account_age_days``.
  Risky customers (about 8 %) have high chargeback rates and many transactions.
- ``transactions.parquet``: the entity frame for training, one row per transaction:
  ``customer_id``, ``event_timestamp``, ``amount`` (a request-time feature) and ``is_fraud``
  (the target), fraud being likelier for risky customers and large amounts.

Deterministic for a seed.  ``python examples/feature_store/make_data.py [--out DIR]``
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def make(
    out: Path = HERE,
    *,
    customers: int = 200,
    days: int = 30,
    transactions: int = 3000,
    seed: int = 0,
    end: datetime | None = None,
) -> tuple[Path, Path]:
    """Write both files under ``out`` (stats in ``out/repo/data``); their paths.

    The days end at ``end`` (default: today, midnight UTC), so a fresh materialization
    finds the last days within the feature view's TTL.
    """
    end = end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days - 1)
    rng = np.random.default_rng(seed)
    ids = np.arange(1001, 1001 + customers, dtype=np.int64)
    risky = rng.random(customers) < 0.08
    base_amount = rng.lognormal(3.5, 0.6, customers)
    age = rng.integers(30, 3000, customers)
    rows = []
    for day in range(days):
        stamp = start + timedelta(days=day)
        drift = rng.normal(1.0, 0.05, customers)
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "event_timestamp": stamp,
                    "avg_amount_30d": (base_amount * drift).astype("float64"),
                    "tx_count_7d": (rng.poisson(np.where(risky, 25, 8))).astype("int64"),
                    "chargeback_rate": np.clip(
                        np.where(risky, 0.3, 0.01) + rng.normal(0, 0.02, customers), 0, 1
                    ),
                    "account_age_days": (age + day).astype("int64"),
                }
            )
        )
    stats = pd.concat(rows, ignore_index=True)
    who = rng.integers(0, customers, transactions)
    seconds = rng.uniform(86_400, (days - 1) * 86_400, transactions)  # within the stats days
    amount = rng.lognormal(3.5, 0.9, transactions)
    logit = -4.0 + 3.5 * risky[who] + 0.8 * (amount > 150)
    fraud = (rng.random(transactions) < 1 / (1 + np.exp(-logit))).astype("int64")
    tx = pd.DataFrame(
        {
            "customer_id": ids[who],
            "event_timestamp": [start + timedelta(seconds=float(s)) for s in seconds],
            "amount": amount,
            "is_fraud": fraud,
        }
    ).sort_values("event_timestamp", ignore_index=True)
    data = out / "repo" / "data"
    data.mkdir(parents=True, exist_ok=True)
    stats_path, tx_path = data / "customer_stats.parquet", out / "transactions.parquet"
    stats.to_parquet(stats_path, index=False)
    tx.to_parquet(tx_path, index=False)
    return stats_path, tx_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in make(args.out, seed=args.seed):
        print(path)


if __name__ == "__main__":
    main()
