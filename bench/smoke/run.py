"""How much faster the smoke profile trains than the spec's own settings, and what recording
provenance (code manifest and environment) costs a run.

Side by side in one process: ``run_automl`` with the train parameters of
examples/credit_fraud_kaggle.json (SMOTE, PCA, trigonometry; rf, lightgbm, knn; 10 folds;
n_select 2; blend and stack) on generated credit-card rows, then the same with the smoke
profile (``loopml.automl.smoke``). Prints both times and the ratio; then the time of
``engine.provenance.reproducibility`` against the smoke training time.

    .venv/bin/python bench/smoke/run.py [--rows 3000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "examples"))
    from make_creditcard import make_creditcard

    from loopml.automl.config import TrainParams
    from loopml.automl.run import run_automl
    from loopml.automl.smoke import smoke_overrides, smoke_params
    from loopml.core.spec import read_spec_file
    from loopml.engine import check_spec_text
    from loopml.engine.provenance import reproducibility
    from loopml.steps.registry import StepRegistry

    spec = read_spec_file(ROOT / "examples" / "credit_fraud_kaggle.json")
    raw = next(call.params for call in spec.steps if call.name == "train_model")
    params = TrainParams.model_validate(dict(raw), context={"problem_type": "classification"})
    frame = make_creditcard(n_rows=args.rows, positive_rate=0.05, seed=3)

    def timed(p: TrainParams, overrides: dict) -> float:  # type: ignore[type-arg]
        started = time.perf_counter()
        run_automl(frame, "Class", "classification", "F1", p, overrides=overrides)
        return time.perf_counter() - started

    full = timed(params, {})
    fast = smoke_params(params)
    smoke = timed(fast, smoke_overrides("classification", ["rf", "lightgbm", "knn"]))
    print(
        f"rows {args.rows}: spec's settings {full:.1f} s, smoke profile {smoke:.1f} s, "
        f"ratio {full / smoke:.1f}x faster"
    )

    example = ROOT / "examples" / "decision_tree_vs_lr.json"
    checked = check_spec_text(
        example.read_text(), StepRegistry.with_builtins(), source=example, peek_data=False
    )
    started = time.perf_counter()
    for _ in range(3):
        reproducibility(checked, seed=1, smoke=False, threads=2)
    record = (time.perf_counter() - started) / 3
    print(
        f"provenance record (code manifest + environment): {record * 1000:.0f} ms per run, "
        f"{record / smoke:.1%} of the smoke training time"
    )


if __name__ == "__main__":
    main()
