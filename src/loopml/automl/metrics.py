"""PyCaret's metrics, computed from predictions we already have.

Classification metrics take encoded labels (0..k-1); for two classes the
positive class is 1 (the second label in sorted order), as in PyCaret.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from loopml.core.vocabulary import CLASSIFICATION_METRICS, LOWER_IS_BETTER, REGRESSION_METRICS


def classification_scores(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None, n_classes: int
) -> dict[str, float]:
    """Accuracy, AUC, Recall, Prec., F1, Kappa, MCC.

    ``scores`` are class probabilities (n x k) or, for models without them, a
    decision function; AUC is 0 when neither exists (PyCaret does the same).
    """
    from sklearn import metrics

    binary = n_classes == 2
    average = "binary" if binary else "weighted"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = {
            "Accuracy": metrics.accuracy_score(y_true, y_pred),
            "AUC": _auc(y_true, scores, n_classes),
            "Recall": metrics.recall_score(y_true, y_pred, average=average, zero_division=0),
            "Prec.": metrics.precision_score(y_true, y_pred, average=average, zero_division=0),
            "F1": metrics.f1_score(y_true, y_pred, average=average, zero_division=0),
            "Kappa": metrics.cohen_kappa_score(y_true, y_pred),
            "MCC": metrics.matthews_corrcoef(y_true, y_pred),
        }
    return {name: float(np.nan_to_num(value)) for name, value in result.items()}


def _auc(y_true: np.ndarray, scores: np.ndarray | None, n_classes: int) -> float:
    from sklearn.metrics import roc_auc_score

    if scores is None or len(np.unique(y_true)) < 2:
        return 0.0
    try:
        if n_classes == 2:
            positive = scores[:, 1] if scores.ndim == 2 else scores
            return float(roc_auc_score(y_true, positive))
        if scores.ndim != 2:
            return 0.0
        return float(
            roc_auc_score(
                y_true, scores, multi_class="ovr", average="weighted", labels=list(range(n_classes))
            )
        )
    except ValueError:
        return 0.0


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, MSE, RMSE, R2, RMSLE, MAPE as PyCaret computes them."""
    from sklearn import metrics

    mse = metrics.mean_squared_error(y_true, y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rmsle = float(np.sqrt(np.mean((np.log1p(np.abs(y_pred)) - np.log1p(np.abs(y_true))) ** 2)))
        nonzero = y_true != 0
        mape = (
            float(np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero])))
            if nonzero.any()
            else 0.0
        )
    return {
        "MAE": float(metrics.mean_absolute_error(y_true, y_pred)),
        "MSE": float(mse),
        "RMSE": float(np.sqrt(mse)),
        "R2": float(metrics.r2_score(y_true, y_pred)),
        "RMSLE": rmsle,
        "MAPE": mape,
    }


def scores_for(
    problem_type: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    n_classes: int,
) -> dict[str, float]:
    if problem_type == "classification":
        return classification_scores(y_true, y_pred, proba, n_classes)
    return regression_scores(y_true, y_pred)


def metric_names(problem_type: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if problem_type == "classification" else REGRESSION_METRICS


def better(metric: str, candidate: float, incumbent: float) -> bool:
    """Whether ``candidate`` beats ``incumbent`` on ``metric``."""
    return candidate < incumbent if metric in LOWER_IS_BETTER else candidate > incumbent


def sort_key(metric: str) -> Any:
    """A key that sorts best first."""
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    return lambda value: sign * value
