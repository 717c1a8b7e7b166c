"""Hyperparameter tuning with Optuna's TPE sampler on the shared folds.

Each trial cross-validates one parameter set on the folds every other
candidate used (its folds in parallel), so tuned and untuned scores compare
like for like. Only the best trial is then fitted on the whole training
split. As PyCaret's ``choose_better``, the tuned model is kept only if it
beats the untuned one on the main metric.
"""

from __future__ import annotations

from typing import Any, Literal

from loopml.automl.catalog import estimator
from loopml.automl.compare import (
    Candidate,
    FitResult,
    candidate,
    first_error,
    fit_specs,
    fold_metrics,
    oof_scores,
)
from loopml.automl.metrics import better
from loopml.automl.session import Session

# ("int" | "float", low, high, log) or ("cat", choices); PyCaret 3's tune_distributions.
Dimension = tuple[Any, ...]
_TINY = 1e-9
_BOOSTING: dict[str, Dimension] = {
    "n_estimators": ("int", 10, 300, False),
    "learning_rate": ("float", 1e-6, 0.5, True),
    "subsample": ("float", 0.2, 1.0, False),
    "min_samples_split": ("int", 2, 10, False),
    "min_samples_leaf": ("int", 1, 5, False),
    "max_depth": ("int", 1, 11, False),
    "min_impurity_decrease": ("float", _TINY, 0.5, True),
    "max_features": ("float", 0.4, 1.0, False),
}
_FOREST: dict[str, Dimension] = {
    "n_estimators": ("int", 10, 300, False),
    "max_depth": ("int", 1, 11, False),
    "min_impurity_decrease": ("float", _TINY, 0.5, True),
    "max_features": ("float", 0.4, 1.0, False),
    "min_samples_split": ("cat", [2, 5, 7, 9, 10]),
}
_TREE: dict[str, Dimension] = {
    "max_depth": ("int", 1, 16, False),
    "max_features": ("float", 0.4, 1.0, False),
    "min_samples_leaf": ("int", 2, 6, False),
    "min_samples_split": ("int", 2, 10, False),
    "min_impurity_decrease": ("float", _TINY, 0.5, True),
}
_LIGHTGBM: dict[str, Dimension] = {
    "num_leaves": ("int", 2, 256, False),
    "learning_rate": ("float", 1e-6, 0.5, True),
    "n_estimators": ("int", 10, 300, False),
    "min_split_gain": ("float", 0.0, 1.0, False),
    "reg_alpha": ("float", 1e-10, 10.0, True),
    "reg_lambda": ("float", 1e-10, 10.0, True),
    "colsample_bytree": ("float", 0.4, 1.0, False),
    "subsample": ("float", 0.4, 1.0, False),
    "subsample_freq": ("int", 0, 7, False),
    "min_child_samples": ("int", 1, 100, False),
}
_XGBOOST: dict[str, Dimension] = {
    "learning_rate": ("float", 1e-6, 0.5, True),
    "n_estimators": ("int", 10, 300, False),
    "subsample": ("float", 0.2, 1.0, False),
    "max_depth": ("int", 1, 11, False),
    "colsample_bytree": ("float", 0.5, 1.0, False),
    "min_child_weight": ("int", 1, 4, False),
    "reg_alpha": ("float", 1e-10, 10.0, True),
    "reg_lambda": ("float", 1e-10, 10.0, True),
}
_KNN: dict[str, Dimension] = {
    "n_neighbors": ("int", 1, 51, False),
    "weights": ("cat", ["uniform", "distance"]),
    "metric": ("cat", ["minkowski", "euclidean", "manhattan"]),
}
_ADA: dict[str, Dimension] = {
    "n_estimators": ("int", 10, 300, False),
    "learning_rate": ("float", 1e-6, 0.5, True),
}

SPACES: dict[str, dict[str, dict[str, Dimension]]] = {
    "classification": {
        "lr": {"C": ("float", 0.001, 10.0, False), "class_weight": ("cat", ["balanced", None])},
        "knn": _KNN,
        "nb": {"var_smoothing": ("float", 1e-9, 1.0, True)},
        "dt": {**_TREE, "criterion": ("cat", ["gini", "entropy"])},
        "svm": {
            "alpha": ("float", 1e-10, 0.9999999999, True),
            "l1_ratio": ("float", 1e-10, 0.9999999999, False),
            "penalty": ("cat", ["l2", "l1", "elasticnet"]),
        },
        "rbfsvm": {"C": ("float", 0.01, 50.0, False)},
        "ridge": {"alpha": ("float", 0.001, 10.0, False), "fit_intercept": ("cat", [True, False])},
        "rf": {
            **_FOREST,
            "criterion": ("cat", ["gini", "entropy"]),
            "class_weight": ("cat", ["balanced", "balanced_subsample", None]),
        },
        "qda": {"reg_param": ("float", 0.0, 1.0, False)},
        "ada": _ADA,
        "gbc": _BOOSTING,
        "lda": {"solver": ("cat", ["lsqr", "eigen"]), "shrinkage": ("float", 1e-4, 1.0, True)},
        "et": {**_FOREST, "min_samples_leaf": ("int", 1, 5, False)},
        "xgboost": {**_XGBOOST, "scale_pos_weight": ("float", 1.0, 50.0, False)},
        "lightgbm": _LIGHTGBM,
    },
    "regression": {
        "lr": {"fit_intercept": ("cat", [True, False])},
        "lasso": {"alpha": ("float", 0.001, 10.0, False), "fit_intercept": ("cat", [True, False])},
        "ridge": {"alpha": ("float", 0.001, 10.0, False), "fit_intercept": ("cat", [True, False])},
        "en": {"alpha": ("float", 0.001, 10.0, False), "l1_ratio": ("float", 0.01, 0.9999, False)},
        "lar": {"eps": ("float", 1e-5, 0.1, True), "fit_intercept": ("cat", [True, False])},
        "huber": {"epsilon": ("float", 1.0, 2.0, False), "alpha": ("float", 1e-10, 0.9999, True)},
        "knn": _KNN,
        "dt": {**_TREE, "criterion": ("cat", ["squared_error", "friedman_mse"])},
        "rf": _FOREST,
        "et": {**_FOREST, "min_samples_leaf": ("int", 1, 5, False)},
        "ada": {**_ADA, "loss": ("cat", ["linear", "square", "exponential"])},
        "gbr": _BOOSTING,
        "xgboost": _XGBOOST,
        "lightgbm": _LIGHTGBM,
    },
}


def space_for(
    problem_type: str, estimator_id: str, overrides: dict[str, Any]
) -> dict[str, Dimension]:
    """The default space for ``estimator_id`` updated by the spec's ``search_space`` entry.

    ``overrides`` were checked by :class:`~loopml.automl.config.ModelingParams`:
    a list is a set of choices, ``{low, high, log}`` a range (integers if both
    ends are integers).
    """
    space = dict(SPACES[problem_type].get(estimator_id, {}))
    for name, value in overrides.items():
        if isinstance(value, list):
            space[name] = ("cat", value)
        else:
            low, high = value["low"], value["high"]
            kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
            space[name] = (kind, low, high, bool(value.get("log", False)))
    return space


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


def tune(session: Session, base: Candidate, failures: dict[str, str] | None = None) -> Candidate:
    """Search ``base``'s space for ``n_iter`` trials; the tuned model if it scores better.

    A trial whose parameters make the estimator fail is pruned; if all fail,
    ``base`` is kept and why is added to ``failures`` under ``<id>_tuned``.
    """
    import optuna

    modeling = session.params.modeling_params
    space = space_for(session.problem_type, base.id, modeling.search_space.get(base.id, {}))
    if not space:
        return base
    metric = session.main_metric
    title = f"{base.id} tuning {estimator(session.problem_type, base.id).name}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction: Literal["maximize", "minimize"] = (
        "maximize" if better(metric, 1.0, 0.0) else "minimize"
    )
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.TPESampler(seed=modeling.session_id)
    )
    trials: dict[int, tuple[dict[str, Any], list[FitResult]]] = {}
    session.progress(title, 0, modeling.n_iter)

    def objective(trial: Any) -> float:
        chosen = suggest(trial, space)
        (fits,) = fit_specs(session, [(base.id, chosen)], label="", folds="cv")
        session.progress(title, trial.number + 1, modeling.n_iter)
        error = first_error(fits)
        if error is not None:
            errors.append(error)
            raise optuna.TrialPruned(error)
        trials[trial.number] = (chosen, fits)
        oof = oof_scores(session, [fit.scores for fit in fits])
        return float(sum(fold_metrics(session, oof)[metric]) / len(fits))

    errors: list[str] = []
    study.optimize(objective, n_trials=modeling.n_iter)
    if not trials:
        if failures is not None:
            failures[f"{base.id}_tuned"] = f"every trial failed; the first: {errors[0]}"
        return base
    if not better(metric, study.best_value, base.mean_metrics[metric]):
        return base
    chosen, fits = trials[study.best_trial.number]
    (final,) = fit_specs(session, [(base.id, chosen)], label="", folds="final")
    error = first_error(final)
    if error is not None:
        if failures is not None:
            failures[f"{base.id}_tuned"] = error
        return base
    tuned = candidate(session, base.id, chosen, "tuned", fits + final)
    tuned.params = {**tuned.params, "tuned_from": base.id}
    return tuned
