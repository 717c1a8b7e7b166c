"""Blends and stacks built from members that are already fitted.

scikit-learn's Voting/Stacking estimators refit every member (and stacking
cross-validates them again) inside ``fit``; that is where PyCaret spends most
of its time. Here the members come fitted from the comparison, and the
stack's meta-model learns from out-of-fold predictions the comparison already
made. Both follow the estimator contract, so they sit in the model pipeline
and pickle like any scikit-learn model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone


def member_scores(model: Any, X: Any, classification: bool) -> np.ndarray:
    """What one member contributes: class probabilities, a decision function, or values."""
    if not classification:
        return np.asarray(model.predict(X), dtype=np.float64)
    if hasattr(model, "predict_proba"):
        try:
            return np.asarray(model.predict_proba(X), dtype=np.float64)
        except AttributeError:  # e.g. SVC without probability
            pass
    decision = np.asarray(model.decision_function(X), dtype=np.float64)
    if decision.ndim == 1:
        squashed = 1.0 / (1.0 + np.exp(-decision))
        return np.column_stack([1.0 - squashed, squashed])
    exp = np.exp(decision - decision.max(axis=1, keepdims=True))
    normalised: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return normalised


def meta_features(scores: list[np.ndarray], classification: bool) -> np.ndarray:
    """Stack members' outputs side by side; for two classes keep the positive column only."""
    columns = []
    for block in scores:
        if classification and block.ndim == 2 and block.shape[1] == 2:
            columns.append(block[:, 1:])
        else:
            columns.append(block.reshape(len(block), -1))
    return np.hstack(columns)


class BlendedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Soft voting: the mean of the members' class probabilities."""

    def __init__(self, estimators: list[tuple[str, Any]] | None = None) -> None:
        self.estimators = estimators

    def fit(self, X: Any, y: Any) -> BlendedClassifier:
        self.estimators_ = [clone(model).fit(X, y) for _, model in self.estimators or []]
        self.classes_ = np.unique(y)
        return self

    @classmethod
    def prefit(cls, members: list[tuple[str, Any]], classes: np.ndarray) -> BlendedClassifier:
        blend = cls(members)
        blend.estimators_ = [model for _, model in members]
        blend.classes_ = np.asarray(classes)
        return blend

    def with_members(self, members: list[tuple[str, Any]]) -> BlendedClassifier:
        """The same blend over other fitted members (a refit on more rows)."""
        return type(self).prefit(members, self.classes_)

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(np.mean([member_scores(m, X, True) for m in self.estimators_], axis=0))

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


class BlendedRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """The mean of the members' predictions."""

    def __init__(self, estimators: list[tuple[str, Any]] | None = None) -> None:
        self.estimators = estimators

    def fit(self, X: Any, y: Any) -> BlendedRegressor:
        self.estimators_ = [clone(model).fit(X, y) for _, model in self.estimators or []]
        return self

    @classmethod
    def prefit(cls, members: list[tuple[str, Any]]) -> BlendedRegressor:
        blend = cls(members)
        blend.estimators_ = [model for _, model in members]
        return blend

    def with_members(self, members: list[tuple[str, Any]]) -> BlendedRegressor:
        """The same blend over other fitted members (a refit on more rows)."""
        return type(self).prefit(members)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(np.mean([m.predict(X) for m in self.estimators_], axis=0))


class StackedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A meta-model over the members' probabilities (members fitted on all training rows)."""

    def __init__(
        self, estimators: list[tuple[str, Any]] | None = None, final_estimator: Any = None
    ) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator

    @classmethod
    def prefit(
        cls, members: list[tuple[str, Any]], final: Any, classes: np.ndarray
    ) -> StackedClassifier:
        stack = cls(members, final)
        stack.estimators_ = [model for _, model in members]
        stack.final_estimator_ = final
        stack.classes_ = np.asarray(classes)
        return stack

    def fit(self, X: Any, y: Any) -> StackedClassifier:
        from sklearn.model_selection import cross_val_predict

        self.classes_ = np.unique(y)
        blocks = [
            cross_val_predict(clone(m), X, y, cv=5, method=_method(m))
            for _, m in self.estimators or []
        ]
        self.estimators_ = [clone(model).fit(X, y) for _, model in self.estimators or []]
        self.final_estimator_ = clone(self.final_estimator).fit(
            meta_features([_as_scores(b) for b in blocks], True), y
        )
        return self

    def with_members(self, members: list[tuple[str, Any]]) -> StackedClassifier:
        """The same meta-model over other fitted members (a refit on more rows)."""
        return type(self).prefit(members, self.final_estimator_, self.classes_)

    def _meta(self, X: Any) -> np.ndarray:
        return meta_features([member_scores(m, X, True) for m in self.estimators_], True)

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.final_estimator_.predict_proba(self._meta(X)))

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


class StackedRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A linear meta-model over the members' predictions."""

    def __init__(
        self, estimators: list[tuple[str, Any]] | None = None, final_estimator: Any = None
    ) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator

    @classmethod
    def prefit(cls, members: list[tuple[str, Any]], final: Any) -> StackedRegressor:
        stack = cls(members, final)
        stack.estimators_ = [model for _, model in members]
        stack.final_estimator_ = final
        return stack

    def fit(self, X: Any, y: Any) -> StackedRegressor:
        from sklearn.model_selection import cross_val_predict

        blocks = [cross_val_predict(clone(m), X, y, cv=5) for _, m in self.estimators or []]
        self.estimators_ = [clone(model).fit(X, y) for _, model in self.estimators or []]
        self.final_estimator_ = clone(self.final_estimator).fit(meta_features(blocks, False), y)
        return self

    def with_members(self, members: list[tuple[str, Any]]) -> StackedRegressor:
        """The same meta-model over other fitted members (a refit on more rows)."""
        return type(self).prefit(members, self.final_estimator_)

    def predict(self, X: Any) -> np.ndarray:
        meta = meta_features([np.asarray(m.predict(X)) for m in self.estimators_], False)
        return np.asarray(self.final_estimator_.predict(meta))


def _method(model: Any) -> str:
    return "predict_proba" if hasattr(model, "predict_proba") else "decision_function"


def _as_scores(block: np.ndarray) -> np.ndarray:
    if block.ndim == 1:
        squashed = 1.0 / (1.0 + np.exp(-block))
        return np.column_stack([1.0 - squashed, squashed])
    return block


ENSEMBLES = (BlendedClassifier, BlendedRegressor, StackedClassifier, StackedRegressor)
