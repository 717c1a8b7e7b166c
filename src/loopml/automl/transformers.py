"""loopml's own transformers and samplers, on scikit-learn's estimator contract.

Parameters are stored untouched in ``__init__``, learned state ends in ``_``,
and everything is defined at module level so a fitted pipeline pickles and
loads wherever loopml is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone


class TrigonometryFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Appends sin and cos of every input column (PyCaret 2's ``trigonometry_features``)."""

    def fit(self, X: Any, y: Any = None) -> TrigonometryFeatures:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype=np.float64)
        return np.hstack([values, np.sin(values), np.cos(values)])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = (
            list(input_features)
            if input_features is not None
            else [f"x{i}" for i in range(self.n_features_in_)]
        )
        return np.asarray(names + [f"sin_{n}" for n in names] + [f"cos_{n}" for n in names])


class DateFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Year, month, day, weekday and hour of each date column, as numbers."""

    parts = ("year", "month", "day", "weekday", "hour")

    def fit(self, X: Any, y: Any = None) -> DateFeatures:
        self.columns_ = list(getattr(X, "columns", range(np.asarray(X).shape[1])))
        return self

    def transform(self, X: Any) -> np.ndarray:
        import pandas as pd

        frame = pd.DataFrame(X, columns=self.columns_) if not hasattr(X, "columns") else X
        blocks = []
        for column in self.columns_:
            dates = pd.to_datetime(frame[column], errors="coerce")
            blocks += [dates.dt.year, dates.dt.month, dates.dt.day, dates.dt.weekday, dates.dt.hour]
        return np.column_stack([np.asarray(b, dtype=np.float64) for b in blocks])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"{c}_{p}" for c in self.columns_ for p in self.parts])


class DropCorrelated(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Drops a feature whose absolute correlation with an earlier one exceeds ``threshold``."""

    def __init__(self, threshold: float = 0.9) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any = None) -> DropCorrelated:
        values = np.asarray(X, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.abs(np.nan_to_num(np.corrcoef(values, rowvar=False)))
        corr = np.atleast_2d(corr)
        keep: list[int] = []
        for column in range(values.shape[1]):
            if all(corr[column, kept] <= self.threshold for kept in keep):
                keep.append(column)
        self.keep_ = np.asarray(keep, dtype=int)
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)[:, self.keep_]


def drop_outliers(
    X: Any, y: Any, threshold: float = 0.05, seed: int | None = None
) -> tuple[Any, Any]:
    """Training rows IsolationForest calls inliers (PyCaret's ``remove_outliers``)."""
    from sklearn.ensemble import IsolationForest

    flags = IsolationForest(contamination=threshold, random_state=seed).fit_predict(X)
    return X[flags == 1], y[flags == 1]


class LabelledClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier trained on 0..k-1 that answers in the original labels.

    XGBoost and our metrics want integer classes; a served model must answer
    with the labels the data had ("fraud", 1, True...).
    """

    def __init__(self, estimator: Any = None, labels: Any = None) -> None:
        self.estimator = estimator
        self.labels = labels

    def fit(self, X: Any, y: Any) -> LabelledClassifier:
        self.classes_ = np.asarray(self.labels)
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        encoded = np.asarray([index[v] for v in np.asarray(y).tolist()])
        self.estimator_ = clone(self.estimator).fit(X, encoded)
        return self

    @classmethod
    def prefit(cls, fitted: Any, labels: Any) -> LabelledClassifier:
        """Wrap an estimator already fitted on encoded labels."""
        wrapper = cls(estimator=fitted, labels=labels)
        wrapper.classes_ = np.asarray(labels)
        wrapper.estimator_ = fitted
        return wrapper

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[np.asarray(self.estimator_.predict(X), dtype=int)])

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator_.predict_proba(X))

    def decision_function(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator_.decision_function(X))
