"""Small synthetic data and a one-call runner shared by the automl tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification, make_regression

from loopml.automl import TrainParams
from loopml.automl.run import AutoMLResult, run_automl


def classification(
    rows: int = 240, labels: tuple[Any, ...] = (0, 1), weights: list[float] | None = None
) -> pd.DataFrame:
    """Six numeric features, one two-valued text column, a learnable target."""
    classes = len(labels)
    X, y = make_classification(
        rows,
        6,
        n_informative=4,
        n_classes=classes,
        weights=weights or ([0.7] if classes == 2 else None),
        random_state=3,
    )
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    frame["color"] = np.where(X[:, 0] > 0, "red", "blue")
    frame["target"] = np.asarray(labels, dtype=object)[y]
    if all(isinstance(label, int) for label in labels):
        frame["target"] = frame["target"].astype(int)
    return frame


def regression(rows: int = 200) -> pd.DataFrame:
    """Five numeric features and a positive target (so RMSLE and MAPE mean something)."""
    X, y = make_regression(rows, 5, noise=5.0, random_state=4)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    frame["target"] = y + 300
    return frame


def raw(
    feature_engineering: dict[str, Any] | None = None, finalize: bool = False, **modeling: Any
) -> dict[str, Any]:
    """A ``train_model`` parameter dict: two folds, fixed seed, two workers."""
    return {
        "feature_engineering_params": feature_engineering or {},
        "modeling_params": {"fold": 2, "session_id": 7, "n_jobs": 2, **modeling},
        "finalize": finalize,
    }


def run(
    frame: pd.DataFrame, problem: str, metric: str, params: dict[str, Any], **options: Any
) -> AutoMLResult:
    validated = TrainParams.model_validate(params, context={"problem_type": problem})
    return run_automl(frame, "target", problem, metric, validated, **options)


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="target")
