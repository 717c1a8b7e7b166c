"""Compare models on shared folds: the heart of ``train_model``.

The work is done once. The holdout is split off once and each fold is
prepared once (:mod:`loopml.automl.session`); each (estimator, fold) fit is an
independent task run on every core with one thread per fit; out-of-fold
predictions are kept, every metric is computed from them, and blends, stacks
and tuning trials reuse the same folds.

Progress goes to a ``progress(description, completed, total)`` callback
(:data:`loopml.core.context.ProgressCallback`). Descriptions start with the
estimator id (``"rf cross-validating Random Forest Classifier"``, completed
folds of ``fold + 1`` fits, the last one on the whole training split), so a
progress display keyed on the first word shows one bar per estimator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from loopml.automl.catalog import DEFAULT_ESTIMATORS, estimator
from loopml.automl.config import TrainParams
from loopml.automl.ensemble import member_scores
from loopml.automl.folds import FINAL, FoldSet, PreparedFold
from loopml.automl.metrics import metric_names, scores_for, sort_key
from loopml.automl.parallel import Task, run_unordered
from loopml.automl.session import Session


@dataclass
class Candidate:
    """One model the comparison scored: a base estimator, a tuned one, a blend or a stack.

    ``fold_metrics`` holds each metric per fold (from out-of-fold predictions),
    ``holdout_metrics`` the same metrics on the holdout. ``oof_scores`` and
    ``holdout_scores`` are class probabilities (classification) or predicted
    values (regression); ``holdout_pred`` the predicted classes (encoded
    ``0..k-1``) or values. ``fit_seconds`` is the time spent fitting and scoring
    on all folds and on the whole training split. ``estimator`` is the fitted
    model alone, ``model`` the deployable pipeline that predicts from raw
    columns; ``feature_names`` name the columns ``estimator`` sees.
    """

    id: str
    name: str
    kind: str
    params: dict[str, Any]
    fold_metrics: dict[str, list[float]]
    holdout_metrics: dict[str, float]
    fit_seconds: float
    estimator: Any
    oof_scores: np.ndarray
    holdout_scores: np.ndarray
    holdout_pred: np.ndarray
    model: Any = None
    members: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    tuning: Any = None
    """The :class:`~loopml.automl.studies.TuningReport` of the study behind this candidate."""

    @property
    def mean_metrics(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.fold_metrics.items()}

    @property
    def std_metrics(self) -> dict[str, float]:
        return {k: float(np.std(v)) for k, v in self.fold_metrics.items()}

    @property
    def holdout_proba(self) -> np.ndarray | None:
        """Class probabilities on the holdout (``None`` for regression)."""
        return self.holdout_scores if self.holdout_scores.ndim == 2 else None


@dataclass
class FitResult:
    """One estimator fitted on one prepared fold and scored on its validation rows.

    ``error`` says why the fit failed (``scores`` are then empty).
    """

    fold: int
    scores: np.ndarray
    seconds: float
    model: Any
    error: str | None = None


def fit_on_fold(
    estimator_id: str,
    problem_type: str,
    overrides: dict[str, Any],
    seed: int | None,
    n_classes: int,
    fold: PreparedFold,
) -> FitResult:
    """Fit a fresh single-threaded estimator on ``fold`` and score its validation rows.

    An estimator that raises is reported, not fatal: as PyCaret's
    ``errors="ignore"``, one model that cannot fit these data (QDA on
    collinear columns, say) does not end the comparison of the others.
    """
    started = time.perf_counter()
    model = estimator(problem_type, estimator_id).build(seed, 1)
    try:
        if overrides:
            model.set_params(**overrides)
        model.fit(fold.X_train, fold.y_train)
        scores = member_scores(model, fold.X_valid, problem_type == "classification")
    except Exception as exc:  # any estimator's own failure, reported per candidate
        seconds = time.perf_counter() - started
        return FitResult(fold.index, np.zeros(0), seconds, None, f"{type(exc).__name__}: {exc}")
    if scores.ndim == 2 and scores.shape[1] != n_classes:
        scores = _all_classes(scores, model.classes_, n_classes)
    seconds = time.perf_counter() - started
    return FitResult(fold.index, scores, seconds, model if fold.index == FINAL else None)


def _all_classes(scores: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities with a zero column for each class a fold's training rows lacked."""
    full = np.zeros((len(scores), n_classes), dtype=np.float64)
    full[:, np.asarray(seen, dtype=int)] = scores
    return full


Spec = tuple[str, dict[str, Any]]


def fit_specs(
    session: Session,
    specs: list[Spec],
    label: str,
    folds: Literal["all", "cv", "final"] = "all",
) -> list[list[FitResult]]:
    """Fit each (estimator id, parameters) on the folds, the final fold, or both, in parallel.

    The slowest estimators start first so no core waits idle on a last long fit.
    With a ``label``, progress counts each spec's finished fits under
    ``"<id> <label> <name>"``.
    """
    chosen = {
        "all": [*session.folds, session.final],
        "cv": list(session.folds),
        "final": [session.final],
    }[folds]
    order = sorted(
        range(len(specs)),
        key=lambda i: -estimator(session.problem_type, specs[i][0]).cost,
    )
    pairs = [(i, fold) for i in order for fold in chosen]
    tasks: list[Task] = [
        (
            fit_on_fold,
            (specs[i][0], session.problem_type, specs[i][1], session.seed, session.n_classes, fold),
        )
        for i, fold in pairs
    ]
    done = [0] * len(specs)
    titles = [
        f"{spec_id} {label} {estimator(session.problem_type, spec_id).name}" for spec_id, _ in specs
    ]
    if label:
        for i in order:
            session.progress(titles[i], 0, len(chosen))
    results: list[list[FitResult]] = [[] for _ in specs]
    for position, fit in run_unordered(tasks, session.n_jobs):
        spec = pairs[position][0]
        results[spec].append(fit)
        done[spec] += 1
        if label:
            session.progress(titles[spec], done[spec], len(chosen))
    for fits in results:
        fits.sort(key=lambda fit: (fit.fold == FINAL, fit.fold))
    return results


def score_estimators(
    session: Session,
    specs: list[Spec],
    kind: str = "base",
    label: str = "cross-validating",
    failures: dict[str, str] | None = None,
) -> list[Candidate]:
    """Cross-validate each (estimator id, parameters) on the shared folds, in parallel.

    Estimators that failed on any fold are left out; why goes into ``failures``.
    """
    scored = []
    for (estimator_id, overrides), fits in zip(
        specs, fit_specs(session, specs, label), strict=True
    ):
        error = first_error(fits)
        if error is None:
            scored.append(candidate(session, estimator_id, overrides, kind, fits))
        elif failures is not None:
            failures[estimator_id] = error
    return scored


def first_error(fits: list[FitResult]) -> str | None:
    """The first failure among ``fits``, naming its fold."""
    for fit in fits:
        if fit.error is not None:
            where = "the whole training split" if fit.fold == FINAL else f"fold {fit.fold}"
            return f"{fit.error} (on {where})"
    return None


def candidate(
    session: Session, estimator_id: str, overrides: dict[str, Any], kind: str, fits: list[FitResult]
) -> Candidate:
    """A candidate from its fits: out-of-fold metrics, holdout metrics, the final model."""
    entry = estimator(session.problem_type, estimator_id)
    oof = oof_scores(session, [f.scores for f in fits if f.fold != FINAL])
    final = next(f for f in fits if f.fold == FINAL)
    return Candidate(
        id=estimator_id if kind == "base" else f"{estimator_id}_{kind}",
        name=entry.name if kind == "base" else f"{entry.name} ({kind})",
        kind=kind,
        params=hyperparameters(final.model),
        fold_metrics=fold_metrics(session, oof),
        holdout_metrics=holdout_metrics(session, final.scores),
        fit_seconds=float(sum(f.seconds for f in fits)),
        estimator=final.model,
        oof_scores=oof,
        holdout_scores=final.scores,
        holdout_pred=predictions(session, final.scores),
        feature_names=session.feature_names,
    )


def hyperparameters(model: Any) -> dict[str, Any]:
    """The estimator's own parameters that are plain values (what a person would log)."""
    return {
        key: value
        for key, value in model.get_params(deep=False).items()
        if isinstance(value, int | float | str | bool | type(None))
    }


def oof_scores(session: FoldSet, fold_scores: list[np.ndarray]) -> np.ndarray:
    """Per-fold validation scores put back in training-row order."""
    shape = (len(session.y_train), *fold_scores[0].shape[1:])
    oof = np.zeros(shape, dtype=np.float64)
    for fold, block in zip(session.folds, fold_scores, strict=True):
        oof[fold.valid_rows] = block
    return oof


def predictions(session: FoldSet, scores: np.ndarray) -> np.ndarray:
    """Encoded classes (argmax of probabilities) or the values themselves."""
    if session.classification:
        return np.asarray(np.argmax(scores, axis=1))
    return scores


def fold_metrics(session: FoldSet, oof: np.ndarray) -> dict[str, list[float]]:
    """Every metric on every fold, from out-of-fold scores."""
    per_metric: dict[str, list[float]] = {name: [] for name in metric_names(session.problem_type)}
    for fold in session.folds:
        rows = fold.valid_rows
        values = scores_for(
            session.problem_type,
            session.y_train[rows],
            predictions(session, oof[rows]),
            oof[rows],
            session.n_classes,
        )
        for name, value in values.items():
            per_metric[name].append(value)
    return per_metric


def holdout_metrics(session: Session, scores: np.ndarray) -> dict[str, float]:
    return scores_for(
        session.problem_type,
        session.y_holdout,
        predictions(session, scores),
        scores,
        session.n_classes,
    )


def rank(candidates: list[Candidate], metric: str) -> list[Candidate]:
    """Best first by the mean CV value of ``metric`` (stable: earlier candidates win ties)."""
    key = sort_key(metric)
    return sorted(candidates, key=lambda c: key(c.mean_metrics[metric]))


def estimator_ids(params: TrainParams, problem_type: str) -> list[str]:
    chosen = params.modeling_params.estimator_list
    return list(chosen) if chosen else list(DEFAULT_ESTIMATORS[problem_type])
