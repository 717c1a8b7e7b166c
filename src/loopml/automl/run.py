"""``run_automl``: compare, tune, ensemble, pick the best and build the deployable models."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loopml.automl.compare import (
    Candidate,
    estimator_ids,
    rank,
    score_estimators,
)
from loopml.automl.config import TrainParams, TuneParams
from loopml.automl.metrics import metric_names
from loopml.automl.session import Session, start_session
from loopml.core.context import ProgressCallback
from loopml.core.errors import LoopmlError, SpecError, SpecIssue
from loopml.core.vocabulary import METRICS, PROBLEM_TYPES, canonical_metric

if TYPE_CHECKING:
    from loopml.automl.tune import StudyHost


@dataclass
class AutoMLResult:
    """Every candidate (each with a deployable model), the comparison grid, and the winner.

    ``X_holdout`` and ``y_holdout`` are the rows no candidate trained on
    (``y_holdout`` encoded ``0..k-1`` for classification; ``labels`` decode it).
    With ``finalized``, ``best.model`` was refitted on every row, holdout included.
    ``failures`` maps the id of each estimator (or tuning) that raised to why.
    """

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
    failures: dict[str, str] = field(default_factory=dict)

    def holdout_labels(self) -> np.ndarray:
        """The holdout target in the data's own labels."""
        return self.labels[self.y_holdout] if len(self.labels) else self.y_holdout

    def candidate(self, candidate_id: str) -> Candidate:
        """The candidate with ``candidate_id`` (``rf``, ``rf_tuned``, ``blend``, ``stack``...)."""
        for item in self.candidates:
            if item.id == candidate_id:
                return item
        known = ", ".join(c.id for c in self.candidates)
        raise KeyError(f"no candidate {candidate_id!r}; candidates are {known}")


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
    progress: ProgressCallback | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    study_host: StudyHost | None = None,
    say: Callable[[str], None] | None = None,
) -> AutoMLResult:
    """PyCaret's setup + compare_models + tune_model + blend/stack + finalize, done once.

    Everything a person can fix is checked before the first fit. Returns
    every candidate with a deployable pipeline (preprocessing, fit-only
    samplers, estimator) that predicts from the raw feature columns.
    ``n_jobs`` (default: ``modeling_params.n_jobs``, else every core) is the
    number of fits run side by side, one thread each. ``overrides`` sets
    parameters of an estimator id in every fit (the smoke profile's caps);
    ``study_host`` shares tuning trials with the training workers
    (``tune.distributed``); ``say`` receives what belongs in the run's log.
    """
    started = time.perf_counter()
    report = progress or _no_progress
    metric = check_request(problem_type, main_metric, params)
    session = start_session(frame, target, problem_type, metric, params, n_jobs, report)
    modeling = params.modeling_params
    failures: dict[str, str] = {}
    ids = estimator_ids(params, problem_type)
    candidates = score_estimators(
        session, [(i, dict((overrides or {}).get(i, {}))) for i in ids], failures=failures
    )
    if not candidates:
        reasons = "; ".join(f"{key}: {why}" for key, why in failures.items())
        raise LoopmlError(f"every estimator failed to train, so there is no model: {reasons}")
    selected = rank(candidates, metric)[: modeling.n_select]
    if modeling.tuning is not None:
        from loopml.automl.tune import tune

        selected = [tune(session, base, failures, study_host, say) for base in selected]
        candidates += [c for c in selected if c.kind == "tuned"]
    if modeling.ensemble and len(selected) >= 2:
        from loopml.automl.combine import blend, stack

        report("ensembling blend and stack", 0, 2)
        candidates.append(blend(session, selected))
        report("ensembling blend and stack", 1, 2)
        candidates.append(stack(session, selected))
        report("ensembling blend and stack", 2, 2)
    for item in candidates:
        item.model = deployable(session, item.estimator)
    best = rank(candidates, metric)[0]
    if params.finalize:
        report("finalizing on all rows", 0, 1)
        best.model = finalize(session, best)
        report("finalizing on all rows", 1, 1)
    return AutoMLResult(
        problem_type,
        metric,
        candidates,
        leaderboard(candidates, problem_type, metric, modeling.fold),
        best,
        session.labels,
        session.split.X_holdout,
        session.y_holdout,
        time.perf_counter() - started,
        params.finalize,
        failures,
    )


def check_request(problem_type: str, main_metric: str, params: TrainParams) -> str:
    """The canonical metric, after checking everything that depends on the problem type.

    ``params`` may have been validated without a problem type in context (by a
    caller other than the engine); it is validated again here with it.
    """
    from pydantic import ValidationError

    from loopml.core.validation import issues_from_validation_error

    if problem_type not in PROBLEM_TYPES:
        raise SpecError(
            [
                SpecIssue(
                    "experiment_config.problem_type",
                    "unknown problem type",
                    repr(problem_type),
                    ", ".join(PROBLEM_TYPES),
                )
            ]
        )
    metric = canonical_metric(main_metric)
    if metric not in METRICS[problem_type]:
        raise SpecError(
            [
                SpecIssue(
                    "experiment_config.main_metric",
                    f"not a {problem_type} metric",
                    repr(main_metric),
                    ", ".join(METRICS[problem_type]),
                )
            ]
        )
    try:
        TrainParams.model_validate(
            params.model_dump(exclude_unset=True), context={"problem_type": problem_type}
        )
    except ValidationError as exc:
        raise SpecError(issues_from_validation_error(exc, TrainParams, "train_model")) from exc
    tuning = params.modeling_params.tuning
    if tuning is not None:
        check_tuned_parameters(problem_type, tuning)
    return metric


def check_tuned_parameters(problem_type: str, tuning: TuneParams) -> None:
    """Every parameter a search space names must be one its estimator takes."""
    from loopml.automl.catalog import estimator

    issues = []
    for key in ("search_space", "custom_grid"):
        for estimator_id, space in getattr(tuning, key).items():
            known = sorted(estimator(problem_type, estimator_id).build(None, 1).get_params())
            for name in space:
                if name not in known:
                    from loopml.core.suggest import closest

                    issues.append(
                        SpecIssue(
                            f"train_model.modeling_params.tune.{key}.{estimator_id}.{name}",
                            f"not a parameter of {estimator_id}",
                            repr(name),
                            ", ".join(known),
                            closest(name, known),
                        )
                    )
    if issues:
        raise SpecError(issues)


def deployable(session: Session, fitted: Any, preprocess: Any = None, transform: Any = None) -> Any:
    """One imbalanced-learn pipeline: fitted preprocessing, samplers (fit only), model.

    Each candidate gets its own copy of the fitted stages, so refitting one
    model never changes another.
    """
    from imblearn.pipeline import Pipeline
    from sklearn.base import clone

    from loopml.automl.transformers import LabelledClassifier

    model = fitted
    if session.classification and (
        not _is_range(session.labels) or not hasattr(fitted, "predict_proba")
    ):
        model = LabelledClassifier.prefit(fitted, session.labels)
    if preprocess is None:
        preprocess = copy.deepcopy(session.final.preprocess)
    if transform is None and session.final.transform is not None:
        transform = copy.deepcopy(session.final.transform)
    steps: list[tuple[str, Any]] = [("preprocess", preprocess)]
    steps += [(name, clone(sampler)) for name, sampler in session.stages.samplers]
    if transform is not None:
        steps.append(("transform", transform))
    steps.append(("model", model))
    return Pipeline(steps)


def _is_range(labels: np.ndarray) -> bool:
    return labels.dtype.kind in "iu" and list(labels) == list(range(len(labels)))


def finalize(session: Session, best: Candidate) -> Any:
    """The winner refitted on every row (training split and holdout): stages and estimators.

    A stack keeps its meta-model, which learned from out-of-fold outputs.
    """
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    split = session.split
    X = pd.concat([split.X_train, split.X_holdout], ignore_index=True)
    y = np.concatenate([split.y_train, split.y_holdout])
    with threadpool_limits(session.n_jobs):
        preprocess = clone(session.stages.preprocess)
        X_all = preprocess.fit_transform(X, y)
        for _, sampler in session.stages.samplers:
            X_all, y = clone(sampler).fit_resample(X_all, y)
        transform = None
        if session.stages.transform is not None:
            transform = clone(session.stages.transform)
            X_all = transform.fit_transform(X_all, y)
        refit = refit_estimator(
            best.estimator, np.asarray(X_all, dtype=np.float64), y, session.n_jobs
        )
    return deployable(session, refit, preprocess, transform)


def refit_estimator(model: Any, X: np.ndarray, y: np.ndarray, threads: int) -> Any:
    """A fresh fit of ``model`` (of each member, for a blend or stack) using ``threads``."""
    from sklearn.base import clone

    from loopml.automl.catalog import set_threads
    from loopml.automl.ensemble import ENSEMBLES

    if isinstance(model, ENSEMBLES):
        members = [
            (name, set_threads(set_threads(clone(member), threads).fit(X, y), 1))
            for (name, _), member in zip(model.estimators or [], model.estimators_, strict=True)
        ]
        return model.with_members(members)
    return set_threads(set_threads(clone(model), threads).fit(X, y), 1)


def leaderboard(
    candidates: list[Candidate], problem_type: str, main_metric: str, fold: int
) -> pd.DataFrame:
    """PyCaret's comparison grid: mean CV metrics per model, best first.

    ``TT (Sec)`` is, as in PyCaret, the mean time per fold (here: per fit,
    counting the final fit on the training split too).
    """
    rows = []
    for item in rank(candidates, main_metric):
        means = item.mean_metrics
        row: dict[str, Any] = {"Model": item.name}
        row.update({name: round(means[name], 4) for name in metric_names(problem_type)})
        row["TT (Sec)"] = round(item.fit_seconds / (fold + 1), 2)
        rows.append(row)
    return pd.DataFrame(rows)
