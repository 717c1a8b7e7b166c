"""The PyCaret 3.3.2 side of the training benchmark; runs in its own virtual environment.

    python pycaret_job.py DATA.zip --fold 10 --seed 123

Prints one JSON line: wall time, stage times, the best model and its CV F1.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--fold", type=int, default=10)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()

    from pycaret.classification import (
        blend_models,
        compare_models,
        pull,
        setup,
        stack_models,
    )

    frame = pd.read_csv(args.data)
    started = time.perf_counter()
    setup(
        frame,
        target="Class",
        session_id=args.seed,
        fold=args.fold,
        fix_imbalance=True,
        pca=True,
        train_size=0.7,
        verbose=False,
        html=False,
        n_jobs=-1,
    )
    stages = {"setup_s": time.perf_counter() - started}
    mark = time.perf_counter()
    top = compare_models(include=["rf", "lightgbm", "knn"], n_select=2, sort="F1", verbose=False)
    grid = pull()
    stages["compare_s"] = time.perf_counter() - mark
    scores = {str(name): float(f1) for name, f1 in zip(grid["Model"], grid["F1"], strict=True)}
    # PyCaret issue #3999: with folds already in parallel, VotingClassifier/StackingClassifier
    # given n_jobs=-1 crash on read-only memmapped folds ("cannot set WRITEABLE flag").
    # One job inside each (already parallel) fold is also what avoids oversubscription.
    from pycaret.classification import ClassificationExperiment

    ClassificationExperiment.gpu_n_jobs_param = property(lambda self: 1)  # read-only in PyCaret
    mark = time.perf_counter()
    blend_models(top, verbose=False)
    scores["Blend"] = float(pull().loc["Mean", "F1"])
    stages["blend_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    stack_models(top, verbose=False)
    scores["Stack"] = float(pull().loc["Mean", "F1"])
    stages["stack_s"] = time.perf_counter() - mark
    best = max(scores, key=lambda name: scores[name])
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - started,
                "best_model": best,
                "cv_f1": scores[best],
                "scores": scores,
                "stages": stages,
            }
        )
    )


if __name__ == "__main__":
    main()
