"""One tuning trial: a parameter set cross-validated on the job's prepared folds.

The same objective runs in-process, on threads beside it, or in any training
worker: everything it needs is a :class:`Plan` (what to search, small, JSON)
and a :class:`TrialData` (the prepared folds, stored once per job). Each
trial records on itself who ran it (host, pid), how long it took and its
per-fold metrics, so the study alone is enough to track every trial.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from loopml.automl.catalog import estimator
from loopml.automl.compare import fit_on_fold, fold_metrics, oof_scores
from loopml.automl.config import GRID_POINTS
from loopml.automl.folds import PreparedFold
from loopml.automl.metrics import better
from loopml.automl.parallel import Task, run_unordered

# ("int" | "float", low, high, log) or ("cat", choices); PyCaret 3's tune_distributions.
Dimension = tuple[Any, ...]


@dataclass
class TrialData:
    """The prepared cross-validation folds and what scoring them needs (no fitted stages)."""

    problem_type: str
    folds: list[PreparedFold]
    y_train: np.ndarray
    n_classes: int

    @property
    def classification(self) -> bool:
        return self.problem_type == "classification"

    @classmethod
    def of(cls, session: Any) -> TrialData:
        """A session's folds without their fitted preprocessing (trials never need it)."""
        folds = [
            PreparedFold(f.index, f.X_train, f.y_train, f.X_valid, f.valid_rows, None, None)
            for f in session.folds
        ]
        return cls(session.problem_type, folds, session.y_train, session.n_classes)


@dataclass(frozen=True)
class Plan:
    """What one study searches; JSON-ready, stored with the study for every worker to read."""

    estimator_id: str
    problem_type: str
    metric: str
    space: dict[str, list[Any]]
    n_iter: int
    algorithm: str
    pruner: str | None
    seed: int | None
    n_classes: int
    failures_left: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if better(self.metric, 1.0, 0.0) else "minimize"

    def dimensions(self) -> dict[str, Dimension]:
        return {name: tuple(value) for name, value in self.space.items()}

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Plan:
        return cls(**raw)


def grid_of(space: dict[str, Dimension]) -> dict[str, Dimension]:
    """``space`` with each range cut into :data:`GRID_POINTS` values (a grid search's choices)."""
    grid: dict[str, Dimension] = {}
    for name, dimension in space.items():
        if dimension[0] == "cat":
            grid[name] = dimension
            continue
        kind, low, high, log = dimension
        points = (
            np.geomspace(low, high, GRID_POINTS) if log else np.linspace(low, high, GRID_POINTS)
        )
        values = sorted({round(p) for p in points}) if kind == "int" else [float(p) for p in points]
        grid[name] = ("cat", values)
    return grid


def sampler_for(plan: Plan, seed: int | None) -> Any:
    """The Optuna sampler of ``plan.algorithm`` (TPE, random, or a grid over every choice)."""
    import optuna

    if plan.algorithm == "grid":
        grid = {name: list(dim[1]) for name, dim in plan.dimensions().items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if plan.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: parallel workers do not all try the point the last result suggested
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def pruner_for(plan: Plan) -> Any:
    """Median or successive-halving pruning on the running mean after each fold, or none."""
    import optuna

    if plan.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if plan.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def suggest(trial: Any, space: dict[str, Dimension]) -> dict[str, Any]:
    """One parameter set drawn by ``trial`` from ``space``."""
    chosen: dict[str, Any] = {}
    for name, dimension in space.items():
        if dimension[0] == "int":
            chosen[name] = trial.suggest_int(name, dimension[1], dimension[2], log=dimension[3])
        elif dimension[0] == "float":
            chosen[name] = trial.suggest_float(name, dimension[1], dimension[2], log=dimension[3])
        else:
            chosen[name] = trial.suggest_categorical(name, dimension[1])
    return chosen


def objective(plan: Plan, data: TrialData, n_jobs: int, seed: int | None) -> Any:
    """The function Optuna calls per trial: the mean of ``plan.metric`` over the folds.

    Folds run side by side on ``n_jobs`` threads; with a pruner they run one
    after the other so a poor trial stops after the fold that shows it. A
    parameter set the estimator rejects prunes the trial (its error kept).
    """
    import optuna

    space = plan.dimensions()

    def run(trial: Any) -> float:
        started = time.perf_counter()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        chosen = suggest(trial, space)
        tasks: list[Task] = [
            (fit_on_fold, (plan.estimator_id, plan.problem_type, chosen, seed, data.n_classes, f))
            for f in data.folds
        ]
        fits = []
        stepwise = plan.pruner is not None
        for _, fit in run_unordered(tasks, 1 if stepwise else n_jobs):
            if fit.error is not None:
                trial.set_user_attr("error", f"{fit.error} (on fold {fit.fold})")
                trial.set_user_attr("seconds", time.perf_counter() - started)
                raise optuna.TrialPruned(fit.error)
            fits.append(fit)
            if stepwise:
                value = _partial_mean(plan, data, fits)
                trial.report(value, len(fits) - 1)
                if trial.should_prune():
                    trial.set_user_attr("seconds", time.perf_counter() - started)
                    raise optuna.TrialPruned(f"pruned after fold {fit.fold}")
        fits.sort(key=lambda fit: fit.fold)
        metrics = fold_metrics(data, oof_scores(data, [fit.scores for fit in fits]))
        trial.set_user_attr("fold_metrics", metrics)
        trial.set_user_attr("seconds", time.perf_counter() - started)
        return float(np.mean(metrics[plan.metric]))

    return run


def _partial_mean(plan: Plan, data: TrialData, fits: list[Any]) -> float:
    """The mean metric over the folds fitted so far (the value a pruner compares)."""
    from loopml.automl.compare import predictions
    from loopml.automl.metrics import scores_for

    values = []
    for fit in fits:
        fold = data.folds[fit.fold]
        y_true = data.y_train[fold.valid_rows]
        values.append(
            scores_for(
                plan.problem_type,
                y_true,
                predictions(data, fit.scores),
                fit.scores,
                data.n_classes,
            )[plan.metric]
        )
    return float(np.mean(values))


def estimator_name(problem_type: str, estimator_id: str) -> str:
    return estimator(problem_type, estimator_id).name
