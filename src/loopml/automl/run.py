"""``run_automl``: compare, tune, ensemble, pick the best and build the deployable model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.automl.compare import (
    Candidate,
    Progress,
    Session,
    estimator_ids,
    rank,
    score_estimators,
    start_session,
)
from loopml.automl.config import TrainParams
from loopml.automl.metrics import metric_names


@dataclass
class AutoMLResult:
    """Every candidate (each with a deployable model), the grid, and the winner."""

    problem_type: str
    main_metric: str
    candidates: list[Candidate]
    leaderboard: pd.DataFrame
    best: Candidate
    labels: np.ndarray
    X_holdout: pd.DataFrame
    y_holdout: np.ndarray
    seconds: float
    finalized: bool

    def holdout_labels(self) -> np.ndarray:
        """The holdout target in the data's own labels."""
        return self.labels[self.y_holdout] if len(self.labels) else self.y_holdout


def _no_progress(description: str, completed: float, total: float | None) -> None:
    return None


def run_automl(
    frame: pd.DataFrame,
    target: str,
    problem_type: str,
    main_metric: str,
    params: TrainParams,
    *,
    n_jobs: int | None = None,
    progress: Progress | None = None,
) -> AutoMLResult:
    """PyCaret's setup + compare_models + tune_model + blend/stack + finalize, done once.

    Returns every candidate with a deployable pipeline (preprocessing,
    fit-only samplers, estimator) that predicts from raw columns.
    """
    started = time.perf_counter()
    report = progress or _no_progress
    session = start_session(frame, target, problem_type, main_metric, params, n_jobs, report)
    modeling = params.modeling_params
    specs: list[tuple[str, dict[str, Any]]] = [
        (estimator_id, {}) for estimator_id in estimator_ids(params, problem_type)
    ]
    candidates = score_estimators(session, specs)
    selected = rank(candidates, main_metric)[: modeling.n_select]
    if modeling.tune:
        from loopml.automl.tune import tune

        tuned = [tune(session, base) for base in selected]
        candidates += [c for c in tuned if c.kind == "tuned"]
        selected = tuned
    if modeling.ensemble and len(selected) >= 2:
        from loopml.automl.combine import blend, stack

        report("ensembling", 0, 2)
        candidates += [blend(session, selected), stack(session, selected)]
        report("ensembling", 2, 2)
    for candidate in candidates:
        candidate.model = deployable(session, candidate.estimator)
    best = rank(candidates, main_metric)[0]
    if params.finalize:
        report("finalizing on all rows", 0, 1)
        best.model = finalize(session, frame, target, best)
        report("finalizing on all rows", 1, 1)
    return AutoMLResult(
        problem_type,
        main_metric,
        candidates,
        leaderboard(candidates, problem_type, main_metric),
        best,
        session.labels,
        session.X_holdout,
        session.y_holdout,
        time.perf_counter() - started,
        params.finalize,
    )


def deployable(session: Session, fitted: Any, preprocessor: Any = None) -> Any:
    """One imbalanced-learn pipeline: fitted preprocessing, samplers (fit only), model."""
    from imblearn.pipeline import Pipeline

    from loopml.automl.transformers import LabelledClassifier

    model = fitted
    if session.classification and not _is_range(session.labels):
        model = LabelledClassifier.prefit(fitted, session.labels)
    steps: list[tuple[str, Any]] = [("preprocess", preprocessor or session.final.preprocessor)]
    steps += session.samplers
    steps.append(("model", model))
    return Pipeline(steps)


def _is_range(labels: np.ndarray) -> bool:
    return labels.dtype.kind in "iu" and list(labels) == list(range(len(labels)))


def finalize(session: Session, frame: pd.DataFrame, target: str, best: Candidate) -> Any:
    """Refit the winner's preprocessing and estimators on every row (train and holdout).

    A stack keeps its meta-model, which learned from out-of-fold outputs.
    """
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    from loopml.automl.catalog import set_threads

    X = pd.concat([session.X_train, session.X_holdout], ignore_index=True)
    y = np.concatenate([session.y_train, session.y_holdout])
    with threadpool_limits(session.n_jobs):
        prep = clone(session.preprocessor)
        X_all = prep.fit_transform(X, y)
        y_all = y
        for _, sampler in session.samplers:
            X_all, y_all = clone(sampler).fit_resample(X_all, y_all)
        refit = _refit(best.estimator, X_all, y_all, session.n_jobs, set_threads)
    return deployable(session, refit, prep)


def _refit(model: Any, X: Any, y: Any, threads: int, set_threads: Any) -> Any:
    from sklearn.base import clone

    members = getattr(model, "estimators_", None)
    if members is None:
        return set_threads(clone(model), threads).fit(X, y)
    model.estimators_ = [set_threads(clone(member), threads).fit(X, y) for member in members]
    return model


def leaderboard(candidates: list[Candidate], problem_type: str, main_metric: str) -> pd.DataFrame:
    """PyCaret's comparison grid: mean CV metrics per model, best first."""
    rows = []
    for candidate in rank(candidates, main_metric):
        means = candidate.mean_metrics
        row: dict[str, Any] = {"Model": candidate.name}
        row.update({name: round(means[name], 4) for name in metric_names(problem_type)})
        row["TT (Sec)"] = round(candidate.fit_seconds, 3)
        rows.append(row)
    return pd.DataFrame(rows)
