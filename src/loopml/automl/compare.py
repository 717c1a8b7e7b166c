"""Compare, tune and ensemble models on shared folds: the heart of ``train_model``.

Work is done once: each fold is prepared once (:mod:`loopml.automl.folds`),
every (estimator, fold) fit is an independent task run in parallel with one
thread per model, out-of-fold predictions are kept, and blends and stacks are
scored from those predictions instead of refitting their members.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.automl.catalog import DEFAULT_ESTIMATORS, estimator
from loopml.automl.config import TrainParams
from loopml.automl.ensemble import member_scores
from loopml.automl.folds import PreparedFold, prepare_fold, splitter
from loopml.automl.metrics import metric_names, scores_for, sort_key
from loopml.automl.preprocess import build_preprocessor, build_samplers, plan_columns
from loopml.core.errors import DataError

Progress = Callable[[str, float, float | None], None]
FINAL = -1  # the fold index of the fit on all training rows, scored on the holdout


@dataclass
class Candidate:
    """One model the comparison scored: base estimator, tuned, blend or stack."""

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
    model: Any = None
    members: list[str] = field(default_factory=list)

    @property
    def mean_metrics(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.fold_metrics.items()}

    @property
    def std_metrics(self) -> dict[str, float]:
        return {k: float(np.std(v)) for k, v in self.fold_metrics.items()}


@dataclass
class Session:
    """The data and prepared folds every candidate is scored on."""

    problem_type: str
    main_metric: str
    params: TrainParams
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_holdout: pd.DataFrame
    y_holdout: np.ndarray
    labels: np.ndarray
    folds: list[PreparedFold]
    final: PreparedFold
    preprocessor: Any
    samplers: list[tuple[str, Any]]
    n_jobs: int
    progress: Progress

    @property
    def classification(self) -> bool:
        return self.problem_type == "classification"

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def seed(self) -> int | None:
        return self.params.modeling_params.session_id


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def start_session(
    frame: pd.DataFrame,
    target: str,
    problem_type: str,
    main_metric: str,
    params: TrainParams,
    n_jobs: int | None,
    progress: Progress,
) -> Session:
    """Check the data, split off the holdout, and prepare every fold once."""
    from sklearn.model_selection import train_test_split

    modeling = params.modeling_params
    X, y, labels = _features_and_target(frame, target, problem_type, params)
    stratify = y if problem_type == "classification" else None
    X_train, X_holdout, y_train, y_holdout = train_test_split(
        X, y, train_size=modeling.train_size, random_state=modeling.session_id, stratify=stratify
    )
    _check_folds(y_train, problem_type, modeling.fold)
    plan = plan_columns(X_train, params.feature_engineering_params)
    preprocessor = build_preprocessor(
        plan, params.feature_engineering_params, problem_type, modeling.session_id
    )
    samplers = build_samplers(params.feature_engineering_params, problem_type, modeling.session_id)
    jobs = n_jobs or modeling.n_jobs or default_jobs()
    X_train = X_train.reset_index(drop=True)
    split = splitter(problem_type, modeling.fold, modeling.fold_strategy, modeling.session_id)
    tasks = [(i, tr, va) for i, (tr, va) in enumerate(split.split(X_train, y_train))]
    tasks.append((FINAL, np.arange(len(X_train)), np.arange(0)))
    progress("preparing folds", 0, len(tasks))
    prepared = _parallel(
        [
            (
                prepare_fold,
                (
                    i,
                    X_train,
                    y_train,
                    tr,
                    va,
                    preprocessor,
                    samplers,
                    X_holdout if i == FINAL else None,
                ),
            )
            for i, tr, va in tasks
        ],
        jobs,
        progress,
        "preparing folds",
    )
    folds = sorted((p for p in prepared if p.index != FINAL), key=lambda p: p.index)
    final = next(p for p in prepared if p.index == FINAL)
    return Session(
        problem_type,
        main_metric,
        params,
        X_train,
        y_train,
        X_holdout.reset_index(drop=True),
        y_holdout,
        labels,
        folds,
        final,
        preprocessor,
        samplers,
        jobs,
        progress,
    )


def _features_and_target(
    frame: pd.DataFrame, target: str, problem_type: str, params: TrainParams
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    if target not in frame.columns:
        raise DataError(f"target column {target!r} is not in the data")
    y_raw = frame[target]
    if y_raw.isna().any():
        raise DataError(
            f"target column {target!r} has {int(y_raw.isna().sum())} missing "
            "values; drop those rows or fill them before training"
        )
    X = frame.drop(columns=[target, *params.feature_engineering_params.ignore_features])
    if problem_type == "classification":
        labels, y = np.unique(y_raw.to_numpy(), return_inverse=True)
        if len(labels) < 2:
            raise DataError(
                f"target column {target!r} has a single class ({labels[0]!r}); "
                "classification needs at least two"
            )
        return X, y.astype(np.int64), labels
    if not pd.api.types.is_numeric_dtype(y_raw):
        raise DataError(
            f"target column {target!r} is {y_raw.dtype}, not numeric; regression "
            "needs a numeric target (or use problem_type classification)"
        )
    return X, y_raw.to_numpy(dtype=np.float64), np.asarray([])


def _check_folds(y_train: np.ndarray, problem_type: str, fold: int) -> None:
    if len(y_train) < fold * 2:
        raise DataError(
            f"{len(y_train)} training rows are too few for fold={fold}; "
            "lower fold or train_size, or bring more data"
        )
    if problem_type == "classification":
        smallest = int(np.bincount(y_train).min())
        if smallest < fold:
            raise DataError(
                f"the rarest class has {smallest} training rows, fewer than "
                f"fold={fold}; lower fold to at most {max(smallest, 2)}"
            )


def _parallel(
    tasks: list[tuple[Callable[..., Any], tuple[Any, ...]]],
    n_jobs: int,
    progress: Progress,
    description: str,
) -> list[Any]:
    """Run ``tasks`` over ``n_jobs`` processes, reporting each one that finishes."""
    from joblib import Parallel, delayed

    results: list[Any] = []
    runner = Parallel(
        n_jobs=min(n_jobs, len(tasks)),
        return_as="generator_unordered",
        backend="loky",
        max_nbytes="1M",
    )
    for result in runner(delayed(func)(*args) for func, args in tasks):
        results.append(result)
        progress(description, len(results), len(tasks))
    return results


@dataclass
class FitResult:
    """One estimator fitted on one prepared fold; ``task`` orders results that arrive unordered."""

    task: int
    fold: int
    scores: np.ndarray
    seconds: float
    model: Any


def fit_on_fold(
    task: int,
    estimator_id: str,
    problem_type: str,
    overrides: dict[str, Any],
    seed: int | None,
    fold: PreparedFold,
) -> FitResult:
    """Fit a fresh estimator on a prepared fold and score its validation rows."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        model = estimator(problem_type, estimator_id).build(seed, 1)
        if overrides:
            model.set_params(**overrides)
        started = time.perf_counter()
        model.fit(fold.X_train, fold.y_train)
        seconds = time.perf_counter() - started
        scores = member_scores(model, fold.X_valid, problem_type == "classification")
    return FitResult(task, fold.index, scores, seconds, model if fold.index == FINAL else None)


def score_estimators(
    session: Session, specs: list[tuple[str, dict[str, Any]]], kind: str = "base"
) -> list[Candidate]:
    """Cross-validate each (estimator id, parameters) on the shared folds, in parallel."""
    all_folds = [*session.folds, session.final]
    pairs = [(spec, fold) for spec in specs for fold in all_folds]
    tasks = [
        (fit_on_fold, (task, estimator_id, session.problem_type, overrides, session.seed, fold))
        for task, ((estimator_id, overrides), fold) in enumerate(pairs)
    ]
    label = "tuning" if kind == "tuned" else "cross-validating"
    session.progress(f"{label} {len(specs)} model(s) x {len(all_folds)} folds", 0, len(tasks))
    results = _parallel(
        tasks,
        session.n_jobs,
        session.progress,
        f"{label} {len(specs)} model(s) x {len(all_folds)} folds",
    )
    per_spec = len(all_folds)
    ordered = sorted(results, key=lambda result: result.task)
    return [
        _candidate(
            session, estimator_id, overrides, kind, ordered[i * per_spec : (i + 1) * per_spec]
        )
        for i, (estimator_id, overrides) in enumerate(specs)
    ]


def _candidate(
    session: Session, estimator_id: str, overrides: dict[str, Any], kind: str, fits: list[FitResult]
) -> Candidate:
    entry = estimator(session.problem_type, estimator_id)
    oof = _oof(session, [f.scores for f in fits if f.fold != FINAL])
    final = next(f for f in fits if f.fold == FINAL)
    model = final.model
    params = {
        k: v
        for k, v in model.get_params(deep=False).items()
        if isinstance(v, int | float | str | bool | type(None))
    }
    return Candidate(
        id=estimator_id if kind == "base" else f"{estimator_id}_{kind}",
        name=entry.name if kind == "base" else f"{entry.name} ({kind})",
        kind=kind,
        params=params,
        fold_metrics=fold_metrics(session, oof),
        holdout_metrics=holdout_metrics(session, final.scores),
        fit_seconds=float(sum(f.seconds for f in fits if f.fold != FINAL)),
        estimator=model,
        oof_scores=oof,
        holdout_scores=final.scores,
    )


def _oof(session: Session, fold_scores: Iterable[np.ndarray]) -> np.ndarray:
    """Per-fold validation scores put back in training-row order."""
    blocks = list(fold_scores)
    shape = (len(session.y_train), *blocks[0].shape[1:])
    oof = np.zeros(shape, dtype=np.float64)
    for fold, block in zip(session.folds, blocks, strict=True):
        oof[fold.valid_rows] = block
    return oof


def predictions(session: Session, scores: np.ndarray) -> np.ndarray:
    if session.classification:
        return np.asarray(np.argmax(scores, axis=1))
    return scores


def fold_metrics(session: Session, oof: np.ndarray) -> dict[str, list[float]]:
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
    """Best first by the mean CV value of ``metric``."""
    key = sort_key(metric)
    return sorted(candidates, key=lambda c: key(c.mean_metrics[metric]))


def estimator_ids(params: TrainParams, problem_type: str) -> list[str]:
    chosen = params.modeling_params.estimator_list
    return list(chosen) if chosen else list(DEFAULT_ESTIMATORS[problem_type])
