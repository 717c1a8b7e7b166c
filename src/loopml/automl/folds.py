"""Preparing each cross-validation fold once, for every estimator to share.

Preprocessing, outlier removal, SMOTE and PCA are fitted once per fold here,
not once per estimator and fold as ``cross_validate`` on a full pipeline
would. The prepared folds are plain numpy arrays, cheap to hand to workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class PreparedFold:
    """One fold, transformed: resampled training rows and untouched validation rows."""

    index: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    valid_rows: np.ndarray
    preprocessor: Any


def prepare_fold(
    index: int,
    X: pd.DataFrame,
    y: np.ndarray,
    train_rows: np.ndarray,
    valid_rows: np.ndarray,
    preprocessor: Any,
    samplers: list[tuple[str, Any]],
    X_valid: pd.DataFrame | None = None,
) -> PreparedFold:
    """Fit the preprocessor and samplers on ``train_rows``; transform ``valid_rows``.

    ``X_valid`` replaces ``X.iloc[valid_rows]`` for the final fit, whose
    validation rows are the holdout.
    """
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        prep = clone(preprocessor)
        X_fit = X.iloc[train_rows]
        y_fit = y[train_rows]
        X_train = np.ascontiguousarray(prep.fit_transform(X_fit, y_fit), dtype=np.float64)
        for _, sampler in samplers:
            X_train, y_fit = clone(sampler).fit_resample(X_train, y_fit)
        valid = X.iloc[valid_rows] if X_valid is None else X_valid
        X_v = np.ascontiguousarray(prep.transform(valid), dtype=np.float64)
    return PreparedFold(index, np.asarray(X_train), np.asarray(y_fit), X_v, valid_rows, prep)


def splitter(problem_type: str, fold: int, strategy: str | None, seed: int | None) -> Any:
    """PyCaret's default fold strategy: stratified for classification, shuffled k-fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    chosen = strategy or ("stratifiedkfold" if problem_type == "classification" else "kfold")
    if chosen == "stratifiedkfold" and problem_type == "classification":
        return StratifiedKFold(n_splits=fold, shuffle=True, random_state=seed)
    return KFold(n_splits=fold, shuffle=True, random_state=seed)
