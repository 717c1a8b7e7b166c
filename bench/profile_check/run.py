"""Skew-check benchmark: the cost of checking a scoring request against a reference profile.

    .venv/bin/python bench/profile_check/run.py [--rows 20000] [--repeat 2000]

Measures, in one run on the same profile (credit-card data, 30 feature columns):
- the serving fast path, ``check_records`` on one JSON-like row;
- the anchor it is meant to stay well under: one single-row ``predict_proba``
  of a fitted scikit-learn pipeline (scaler + logistic regression), what
  serving spends on every request anyway;
- ``check_batch`` on a one-row frame (converted to records, then the fast path), and on
  a 10,000-row batch (vectorised per column).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def per_call(func: Callable[[], object], repeat: int) -> float:
    """Median seconds per call over ``repeat`` calls, after a warm-up."""
    for _ in range(min(50, repeat)):
        func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2_000)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "examples"))
    from make_creditcard import make_creditcard
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from loopml.core.checker import check_batch, check_records
    from loopml.core.profile import build_profile

    frame = make_creditcard(args.rows, seed=1)
    profile = build_profile(frame, "Class")
    X, y = frame.drop(columns=["Class"]), frame["Class"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    fresh = make_creditcard(10_000, seed=2).drop(columns=["Class"])
    record = [{k: float(v) for k, v in fresh.iloc[0].items()}]
    one_row = fresh.head(1)

    fast = per_call(lambda: check_records(profile, record), args.repeat)
    predict = per_call(lambda: model.predict_proba(one_row), args.repeat)
    frame_one = per_call(lambda: check_batch(profile, one_row), max(args.repeat // 4, 10))
    batch = per_call(lambda: check_batch(profile, fresh), 20)

    print(f"profile: {len(profile.columns)} feature columns from {args.rows} rows")
    print(f"check_records, 1 row (serving fast path):  {fast * 1e6:9.1f} us")
    print(f"anchor: predict_proba, 1 row (sklearn):     {predict * 1e6:9.1f} us")
    print(f"  ratio fast path / anchor:                 {fast / predict:9.3f}")
    print(f"check_batch, 1-row frame (to_dict + fast):  {frame_one * 1e6:9.1f} us")
    print(f"  ratio fast path / 1-row frame:            {fast / frame_one:9.3f}")
    print(f"check_batch, 10,000 rows:                   {batch * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
