"""Checking the data and splitting off the holdout, before any model is fitted.

Every problem a person can fix in the data or the spec (a missing or
one-class target, too few rows for the folds asked for) is reported here, so
a run fails in a second rather than after the first estimator has trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loopml.automl.config import TrainParams
from loopml.core.errors import DataError


@dataclass
class Split:
    """The training split (cross-validated) and the holdout (scored once per candidate).

    Classification targets are encoded as ``0..k-1``; ``labels[i]`` is class ``i``
    as the data wrote it. Regression has no labels.
    """

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_holdout: pd.DataFrame
    y_holdout: np.ndarray
    labels: np.ndarray


def split_data(frame: pd.DataFrame, target: str, problem_type: str, params: TrainParams) -> Split:
    """Check ``frame`` for ``params`` and split it once (stratified for classification)."""
    from sklearn.model_selection import train_test_split

    modeling = params.modeling_params
    X, y, labels = features_and_target(frame, target, problem_type, params)
    if problem_type == "classification":
        _check_classes(y, labels, target)
    X_train, X_holdout, y_train, y_holdout = train_test_split(
        X,
        y,
        train_size=modeling.train_size,
        random_state=modeling.session_id,
        stratify=y if problem_type == "classification" else None,
    )
    check_folds(y_train, labels, problem_type, modeling.fold, modeling.fold_strategy)
    return Split(
        X_train.reset_index(drop=True),
        np.asarray(y_train),
        X_holdout.reset_index(drop=True),
        np.asarray(y_holdout),
        labels,
    )


def features_and_target(
    frame: pd.DataFrame, target: str, problem_type: str, params: TrainParams
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The feature columns, the (encoded) target and the class labels."""
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} is not in the data; columns are "
            f"{', '.join(map(str, frame.columns[:30]))}"
        )
    if len(frame) == 0:
        raise DataError("the data has no rows")
    y_raw = frame[target]
    if y_raw.isna().any():
        raise DataError(
            f"target column {target!r} has {int(y_raw.isna().sum())} missing "
            "values; drop those rows or fill them before training"
        )
    ignored = params.feature_engineering_params.ignore_features
    unknown = [name for name in ignored if name not in frame.columns]
    if unknown:
        raise DataError(
            f"ignore_features names columns the data does not have: {', '.join(unknown)}"
        )
    if target in ignored:
        raise DataError(f"ignore_features names the target {target!r}; leave it out")
    X = frame.drop(columns=[target, *ignored])
    if X.shape[1] == 0:
        raise DataError("no feature columns are left besides the target")
    if problem_type == "classification":
        return X, *_encode(y_raw, target)
    if not pd.api.types.is_numeric_dtype(y_raw) or pd.api.types.is_bool_dtype(y_raw):
        raise DataError(
            f"target column {target!r} is {y_raw.dtype}, not numeric; regression "
            "needs a numeric target (or use problem_type classification)"
        )
    values = y_raw.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"target column {target!r} has infinite values")
    return X, values, np.asarray([])


def _encode(y_raw: pd.Series, target: str) -> tuple[np.ndarray, np.ndarray]:
    values = y_raw.to_numpy()
    if values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
        raise DataError(
            f"target column {target!r} holds fractional numbers ({values[:3].tolist()}...), "
            "which are not classes; use problem_type regression"
        )
    try:
        labels, encoded = np.unique(values, return_inverse=True)
    except TypeError:  # mixed types (1 and "1"): compare them as text
        labels, encoded = np.unique(values.astype(str), return_inverse=True)
    return encoded.astype(np.int64), labels


def _check_classes(y: np.ndarray, labels: np.ndarray, target: str) -> None:
    if len(labels) < 2:
        raise DataError(
            f"target column {target!r} has a single class ({_show(labels[0])}); "
            "classification needs at least two"
        )
    counts = np.bincount(y, minlength=len(labels))
    if counts.min() < 2:
        rare = _show(labels[int(np.argmin(counts))])
        raise DataError(
            f"class {rare} of target column {target!r} has only {int(counts.min())} row; "
            "the stratified holdout split needs at least 2 rows per class (the rarest class "
            "needs at least fold / train_size rows to reach every fold)"
        )


def check_folds(
    y_train: np.ndarray, labels: np.ndarray, problem_type: str, fold: int, strategy: str | None
) -> None:
    """Enough training rows, and for stratified folds enough of the rarest class, for ``fold``."""
    if len(y_train) < fold * 2:
        raise DataError(
            f"{len(y_train)} training rows are too few for fold={fold}; "
            "lower fold, raise train_size, or bring more data"
        )
    if problem_type == "classification" and (strategy or "stratifiedkfold") == "stratifiedkfold":
        counts = np.bincount(y_train, minlength=len(labels))
        smallest = int(counts.min())
        if smallest < fold:
            rare = _show(labels[int(np.argmin(counts))])
            raise DataError(
                f"the rarest class ({rare}) has {smallest} training rows, fewer than "
                f"fold={fold}, so some folds would not see it; lower fold to at most "
                f"{max(smallest, 2)} or bring more rows of that class"
            )


def _show(label: object) -> str:
    """A label as a person wrote it: ``1``, not ``np.int64(1)``."""
    item = getattr(label, "item", None)
    return repr(item() if callable(item) else label)
