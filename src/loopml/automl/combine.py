"""Blend and stack candidates from out-of-fold predictions the comparison already made.

PyCaret's ``blend_models`` and ``stack_models`` refit every member on every
fold (and stacking cross-validates the members again inside each fold); that
is most of its run time. Here a blend's out-of-fold output is the mean of its
members' out-of-fold outputs, and a stack's meta-model is cross-validated on
the members' out-of-fold outputs with the same folds: no member is refitted.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from loopml.automl.compare import (
    Candidate,
    fold_metrics,
    holdout_metrics,
    predictions,
)
from loopml.automl.ensemble import (
    BlendedClassifier,
    BlendedRegressor,
    StackedClassifier,
    StackedRegressor,
    meta_features,
)
from loopml.automl.session import Session


def blend(session: Session, members: list[Candidate]) -> Candidate:
    """Soft voting (classification) or averaging (regression) of ``members``."""
    started = time.perf_counter()
    oof = np.mean([m.oof_scores for m in members], axis=0)
    holdout = np.mean([m.holdout_scores for m in members], axis=0)
    fitted = [(m.id, m.estimator) for m in members]
    model: Any = (
        BlendedClassifier.prefit(fitted, np.arange(session.n_classes))
        if session.classification
        else BlendedRegressor.prefit(fitted)
    )
    return _ensemble_candidate(
        session,
        "blend",
        "Voting " + ("Classifier" if session.classification else "Regressor"),
        members,
        model,
        oof,
        holdout,
        {"method": "soft" if session.classification else "mean"},
        time.perf_counter() - started,
    )


def stack(session: Session, members: list[Candidate]) -> Candidate:
    """A meta-model (PyCaret's: logistic regression, or linear regression) on members' output.

    The meta-model's CV score uses the same folds: for each fold it is fitted
    on the other folds' out-of-fold member outputs and scored on this fold's.
    The deployable meta-model learns from all out-of-fold outputs, as
    scikit-learn's ``StackingClassifier`` does from its internal CV.
    """
    from sklearn.base import clone

    started = time.perf_counter()
    classification = session.classification
    meta_train = meta_features([m.oof_scores for m in members], classification)
    meta_holdout = meta_features([m.holdout_scores for m in members], classification)
    template = meta_model(classification, session.seed)
    oof = np.zeros_like(members[0].oof_scores)
    for fold in session.folds:
        mask = np.ones(len(session.y_train), dtype=bool)
        mask[fold.valid_rows] = False
        meta = clone(template).fit(meta_train[mask], session.y_train[mask])
        oof[fold.valid_rows] = _meta_scores(meta, meta_train[fold.valid_rows], classification)
    final_meta = clone(template).fit(meta_train, session.y_train)
    holdout = _meta_scores(final_meta, meta_holdout, classification)
    fitted = [(m.id, m.estimator) for m in members]
    model: Any = (
        StackedClassifier.prefit(fitted, final_meta, np.arange(session.n_classes))
        if classification
        else StackedRegressor.prefit(fitted, final_meta)
    )
    return _ensemble_candidate(
        session,
        "stack",
        "Stacking " + ("Classifier" if classification else "Regressor"),
        members,
        model,
        oof,
        holdout,
        {"meta_model": type(template).__name__},
        time.perf_counter() - started,
    )


def _ensemble_candidate(
    session: Session,
    kind: str,
    title: str,
    members: list[Candidate],
    model: Any,
    oof: np.ndarray,
    holdout: np.ndarray,
    params: dict[str, Any],
    seconds: float,
) -> Candidate:
    ids = [m.id for m in members]
    return Candidate(
        id=kind,
        name=f"{title} ({' + '.join(ids)})",
        kind=kind,
        params={"members": ", ".join(ids), **params},
        fold_metrics=fold_metrics(session, oof),
        holdout_metrics=holdout_metrics(session, holdout),
        fit_seconds=seconds + sum(m.fit_seconds for m in members),
        estimator=model,
        oof_scores=oof,
        holdout_scores=holdout,
        holdout_pred=predictions(session, holdout),
        members=ids,
        feature_names=session.feature_names,
    )


def meta_model(classification: bool, seed: int | None) -> Any:
    """PyCaret's default meta-models."""
    if classification:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000, random_state=seed)
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


def _meta_scores(meta: Any, features: np.ndarray, classification: bool) -> np.ndarray:
    if classification:
        return np.asarray(meta.predict_proba(features), dtype=np.float64)
    return np.asarray(meta.predict(features), dtype=np.float64)
