"""Blend and stack candidates from out-of-fold predictions the comparison already made."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from loopml.automl.compare import Candidate, Session, fold_metrics, holdout_metrics
from loopml.automl.ensemble import (
    BlendedClassifier,
    BlendedRegressor,
    StackedClassifier,
    StackedRegressor,
    meta_features,
)


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
    return Candidate(
        id="blend",
        name=f"Blend ({' + '.join(m.id for m in members)})",
        kind="blend",
        params={"members": ", ".join(m.id for m in members), "method": "soft"},
        fold_metrics=fold_metrics(session, oof),
        holdout_metrics=holdout_metrics(session, holdout),
        fit_seconds=time.perf_counter() - started + sum(m.fit_seconds for m in members),
        estimator=model,
        oof_scores=oof,
        holdout_scores=holdout,
        members=[m.id for m in members],
    )


def stack(session: Session, members: list[Candidate]) -> Candidate:
    """A meta-model (PyCaret's default: logistic or ridge regression) on members' OOF output.

    The meta-model's CV score uses the same folds: for each fold it is fitted
    on the other folds' out-of-fold member outputs and scored on this one.
    """
    from sklearn.base import clone

    started = time.perf_counter()
    classification = session.classification
    meta_train = meta_features([m.oof_scores for m in members], classification)
    meta_holdout = meta_features([m.holdout_scores for m in members], classification)
    template = _meta_model(classification, session.seed)
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
    return Candidate(
        id="stack",
        name=f"Stack ({' + '.join(m.id for m in members)})",
        kind="stack",
        params={"members": ", ".join(m.id for m in members), "meta_model": type(template).__name__},
        fold_metrics=fold_metrics(session, oof),
        holdout_metrics=holdout_metrics(session, holdout),
        fit_seconds=time.perf_counter() - started + sum(m.fit_seconds for m in members),
        estimator=model,
        oof_scores=oof,
        holdout_scores=holdout,
        members=[m.id for m in members],
    )


def _meta_model(classification: bool, seed: int | None) -> Any:
    if classification:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000, random_state=seed)
    from sklearn.linear_model import Ridge

    return Ridge(random_state=seed)


def _meta_scores(meta: Any, features: np.ndarray, classification: bool) -> np.ndarray:
    if classification:
        return np.asarray(meta.predict_proba(features), dtype=np.float64)
    return np.asarray(meta.predict(features), dtype=np.float64)
