"""Preparing each cross-validation fold once, for every estimator to share.

Preprocessing, outlier removal, SMOTE and PCA are fitted once per fold here,
not once per estimator and fold as ``cross_validate`` over a whole pipeline
would. The prepared folds are plain float arrays, cheap to hand to workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from loopml.automl.preprocess import Stages
from loopml.core.errors import DataError

FINAL = -1
"""The index of the "fold" that trains on the whole training split and scores the holdout."""


@dataclass
class PreparedFold:
    """One fold, transformed: resampled training rows and untouched validation rows.

    ``preprocess`` and ``transform`` are the fitted stages, kept for the final
    fold, whose fitted stages go into every deployable model.
    """

    index: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    valid_rows: np.ndarray
    preprocess: Any
    transform: Any | None


class FoldSet(Protocol):
    """What scoring out-of-fold predictions needs: a session, or a tuning trial's copy of it."""

    @property
    def problem_type(self) -> str: ...
    @property
    def folds(self) -> list[PreparedFold]: ...
    @property
    def y_train(self) -> np.ndarray: ...
    @property
    def n_classes(self) -> int: ...
    @property
    def classification(self) -> bool: ...


def prepare_fold(
    index: int,
    X: pd.DataFrame,
    y: np.ndarray,
    train_rows: np.ndarray,
    valid_rows: np.ndarray,
    stages: Stages,
    X_valid: pd.DataFrame | None = None,
) -> PreparedFold:
    """Fit the stages on ``train_rows`` (resampling them); transform the validation rows.

    ``X_valid`` replaces ``X.iloc[valid_rows]`` for the final fold, whose
    validation rows are the holdout.
    """
    from sklearn.base import clone

    preprocess = clone(stages.preprocess)
    y_fit = y[train_rows]
    X_fit = _floats(preprocess.fit_transform(X.iloc[train_rows], y_fit))
    for name, sampler in stages.samplers:
        try:
            X_fit, y_fit = clone(sampler).fit_resample(X_fit, y_fit)
        except ValueError as exc:
            counts = np.bincount(y_fit) if y_fit.dtype.kind in "iu" else np.asarray([len(y_fit)])
            raise DataError(
                f"{name} failed on the training rows of fold {index} ({exc}); the rarest class "
                f"has {int(counts.min())} rows there. Lower fold, pick another "
                "fix_imbalance_method, or bring more rows of the rare class"
            ) from exc
    transform = None if stages.transform is None else clone(stages.transform)
    if transform is not None:
        X_fit = transform.fit_transform(X_fit, y_fit)
    valid = preprocess.transform(X.iloc[valid_rows] if X_valid is None else X_valid)
    if transform is not None:
        valid = transform.transform(valid)
    return PreparedFold(
        index, _floats(X_fit), np.asarray(y_fit), _floats(valid), valid_rows, preprocess, transform
    )


def _floats(values: Any) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64)


def splitter(
    problem_type: str, fold: int, strategy: str | None, shuffle: bool, seed: int | None
) -> Any:
    """PyCaret's folds: stratified for classification, plain k-fold for regression.

    Like PyCaret, folds are not shuffled by default: the holdout split already
    shuffled the rows.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    chosen = strategy or ("stratifiedkfold" if problem_type == "classification" else "kfold")
    seed = seed if shuffle else None
    if chosen == "stratifiedkfold" and problem_type == "classification":
        return StratifiedKFold(n_splits=fold, shuffle=shuffle, random_state=seed)
    return KFold(n_splits=fold, shuffle=shuffle, random_state=seed)
