"""loopml's own transformers and samplers, on scikit-learn's estimator contract.

Parameters are stored untouched in ``__init__``, learned state ends in ``_``,
and everything is defined at module level so a fitted pipeline pickles and
loads wherever loopml is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data


def as_float(X: Any) -> np.ndarray:
    """Numeric columns as a float matrix: booleans become 0/1, nullable integers' NA becomes NaN.

    Module-level so the ``FunctionTransformer`` holding it pickles with the model.
    """
    if hasattr(X, "to_numpy"):
        return np.asarray(X.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.asarray(X, dtype=np.float64)


class TrigonometryFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Appends sin and cos of every input column (PyCaret 2's ``trigonometry_features``).

    Missing values pass through (as NaN) for a later imputer to handle.
    """

    def fit(self, X: Any, y: Any = None) -> TrigonometryFeatures:
        validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        values = validate_data(
            self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False
        )
        return np.hstack([values, np.sin(values), np.cos(values)])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

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
            blocks += [
                dates.dt.year,
                dates.dt.month,
                dates.dt.day,
                dates.dt.day_of_week,
                dates.dt.hour,
            ]
        return np.column_stack([np.asarray(b, dtype=np.float64) for b in blocks])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"{c}_{p}" for c in self.columns_ for p in self.parts])


class RemoveMulticollinearity(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Of features correlated above ``threshold``, keeps the one most correlated with the target.

    PyCaret's rule (it keeps, within each correlated group, the feature that
    tells most about ``y``), done greedily on absolute correlations.
    """

    def __init__(self, threshold: float = 0.9) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any = None) -> RemoveMulticollinearity:
        values = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            stacked = values if y is None else np.column_stack([values, np.asarray(y, float)])
            corr = np.atleast_2d(np.abs(np.nan_to_num(np.corrcoef(stacked, rowvar=False))))
        n = values.shape[1]
        order = range(n) if y is None else np.argsort(-corr[:n, n], kind="stable")
        keep: list[int] = []
        for column in order:
            if all(corr[column, kept] < self.threshold for kept in keep):
                keep.append(int(column))
        self.keep_ = np.asarray(sorted(keep), dtype=int)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        values: np.ndarray = validate_data(self, X, dtype=np.float64, reset=False)
        return values[:, self.keep_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = (
            np.asarray(input_features)
            if input_features is not None
            else np.asarray([f"x{i}" for i in range(self.n_features_in_)])
        )
        return np.asarray(names[self.keep_], dtype=object)


def drop_outliers(
    X: Any, y: Any, method: str = "iforest", threshold: float = 0.05, seed: int | None = None
) -> tuple[Any, Any]:
    """The training rows the detector calls inliers (PyCaret's ``remove_outliers``).

    A plain function (not a closure) so ``FunctionSampler`` pickles with the model.
    """
    if method == "ee":
        from sklearn.covariance import EllipticEnvelope

        detector: Any = EllipticEnvelope(contamination=threshold, random_state=seed)
    elif method == "lof":
        from sklearn.neighbors import LocalOutlierFactor

        detector = LocalOutlierFactor(contamination=threshold)
    else:
        from sklearn.ensemble import IsolationForest

        detector = IsolationForest(contamination=threshold, random_state=seed)
    flags = detector.fit_predict(X)
    return X[flags == 1], y[flags == 1]


class LabelledClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier trained on ``0..k-1`` that answers in the data's labels, with probabilities.

    XGBoost and our metrics want integer classes; a served model must answer
    with the labels the data had ("fraud", 1, True...). Models without
    ``predict_proba`` (PyCaret's ``svm`` and ``ridge``) get one from their
    decision function (a logistic or softmax squash: ordered, not calibrated),
    so every loopml classifier can report a score.
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
        from loopml.automl.ensemble import member_scores

        return member_scores(self.estimator_, X, True)

    def decision_function(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator_.decision_function(X))


class CalibratedSVC(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """PyCaret's ``rbfsvm``: an RBF-kernel SVC with Platt-scaled probabilities.

    What ``SVC(probability=True)`` did (five-fold sigmoid calibration, then one
    SVC on all rows), written with ``CalibratedClassifierCV`` because
    scikit-learn 1.9 deprecates the ``probability`` flag. ``C`` and ``gamma``
    stay top-level parameters, so tuning spaces name them as PyCaret does.
    """

    def __init__(
        self, C: float = 1.0, gamma: Any = "scale", random_state: int | None = None
    ) -> None:
        self.C = C
        self.gamma = gamma
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> CalibratedSVC:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC
        from sklearn.utils.multiclass import check_classification_targets

        X, y = validate_data(self, X, y, accept_sparse="csr")
        check_classification_targets(y)
        svc = SVC(C=self.C, gamma=self.gamma, random_state=self.random_state)
        self.model_ = CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False)
        self.model_.fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def _checked(self, X: Any) -> Any:
        check_is_fitted(self)
        return validate_data(self, X, accept_sparse="csr", reset=False)

    def predict_proba(self, X: Any) -> np.ndarray:
        values = self._checked(X)
        return np.asarray(self.model_.predict_proba(values))

    def predict(self, X: Any) -> np.ndarray:
        values = self._checked(X)
        return np.asarray(self.model_.predict(values))

    def decision_function(self, X: Any) -> np.ndarray:
        values = self._checked(X)
        svc = self.model_.calibrated_classifiers_[0].estimator
        return np.asarray(svc.decision_function(values))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
