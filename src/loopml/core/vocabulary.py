"""The words a spec may use for problems and metrics, in PyCaret's spelling.

PyCaret users write ``F1`` or ``Prec.``; we keep those display names as the
canonical form and accept PyCaret's short ids (``f1``, ``precision``) and any
letter case on the way in.
"""

from __future__ import annotations

from typing import Literal

ProblemType = Literal["classification", "regression"]
PROBLEM_TYPES: tuple[str, ...] = ("classification", "regression")

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "Accuracy",
    "AUC",
    "Recall",
    "Prec.",
    "F1",
    "Kappa",
    "MCC",
)
REGRESSION_METRICS: tuple[str, ...] = ("MAE", "MSE", "RMSE", "R2", "RMSLE", "MAPE")

METRICS: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}

# Regression metrics where smaller is better; every other metric is maximised.
LOWER_IS_BETTER: frozenset[str] = frozenset({"MAE", "MSE", "RMSE", "RMSLE", "MAPE"})

_ALIASES: dict[str, str] = {
    "acc": "Accuracy",
    "accuracy": "Accuracy",
    "auc": "AUC",
    "roc_auc": "AUC",
    "recall": "Recall",
    "prec": "Prec.",
    "prec.": "Prec.",
    "precision": "Prec.",
    "f1": "F1",
    "kappa": "Kappa",
    "mcc": "MCC",
    "mae": "MAE",
    "mse": "MSE",
    "rmse": "RMSE",
    "r2": "R2",
    "rmsle": "RMSLE",
    "mape": "MAPE",
}


def canonical_metric(name: str) -> str | None:
    """PyCaret's display name for ``name`` (any case, display name or id), or ``None``."""
    return _ALIASES.get(name.strip().lower())


def problem_of_metric(metric: str) -> str | None:
    """Which problem type a canonical metric belongs to."""
    for problem, names in METRICS.items():
        if metric in names:
            return problem
    return None
