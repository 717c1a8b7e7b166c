"""Hyperparameter tuning with Optuna's TPE sampler on the shared folds."""

from __future__ import annotations

from typing import Any, Literal

from loopml.automl.compare import Candidate, Session, score_estimators
from loopml.automl.metrics import better
from loopml.core.errors import DataError

# PyCaret-like default spaces: name -> ("int"|"float"|"cat", low/choices, high, log)
SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "lr": {"C": ("float", 1e-3, 10.0, True)},
    "ridge": {"alpha": ("float", 1e-3, 10.0, True)},
    "lasso": {"alpha": ("float", 1e-4, 10.0, True)},
    "en": {"alpha": ("float", 1e-4, 10.0, True), "l1_ratio": ("float", 0.01, 0.99, False)},
    "knn": {"n_neighbors": ("int", 1, 51, False), "weights": ("cat", ["uniform", "distance"])},
    "dt": {"max_depth": ("int", 1, 16, False), "min_samples_leaf": ("int", 1, 50, False)},
    "rf": {
        "n_estimators": ("int", 10, 300, False),
        "max_depth": ("int", 1, 16, False),
        "min_samples_leaf": ("int", 1, 20, False),
    },
    "et": {
        "n_estimators": ("int", 10, 300, False),
        "max_depth": ("int", 1, 16, False),
        "min_samples_leaf": ("int", 1, 20, False),
    },
    "lightgbm": {
        "n_estimators": ("int", 10, 300, False),
        "learning_rate": ("float", 1e-3, 0.5, True),
        "num_leaves": ("int", 2, 256, False),
        "min_child_samples": ("int", 1, 100, False),
    },
    "xgboost": {
        "n_estimators": ("int", 10, 300, False),
        "learning_rate": ("float", 1e-3, 0.5, True),
        "max_depth": ("int", 1, 11, False),
    },
    "gbc": {
        "n_estimators": ("int", 10, 300, False),
        "learning_rate": ("float", 1e-3, 0.5, True),
        "max_depth": ("int", 1, 11, False),
    },
    "gbr": {
        "n_estimators": ("int", 10, 300, False),
        "learning_rate": ("float", 1e-3, 0.5, True),
        "max_depth": ("int", 1, 11, False),
    },
    "ada": {"n_estimators": ("int", 10, 300, False), "learning_rate": ("float", 1e-3, 1.0, True)},
    "nb": {"var_smoothing": ("float", 1e-12, 1.0, True)},
    "svm": {"alpha": ("float", 1e-6, 1e-1, True)},
    "rbfsvm": {"C": ("float", 1e-2, 100.0, True)},
    "huber": {"epsilon": ("float", 1.0, 2.0, False), "alpha": ("float", 1e-6, 1e-1, True)},
    "qda": {"reg_param": ("float", 0.0, 1.0, False)},
}


def space_for(estimator_id: str, overrides: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """The default space for ``estimator_id`` updated by the spec's ``search_space`` entry."""
    space = dict(SPACES.get(estimator_id, {}))
    for name, value in overrides.items():
        if isinstance(value, list):
            space[name] = ("cat", value)
        elif isinstance(value, dict) and {"low", "high"} <= set(value):
            kind = "int" if all(isinstance(value[k], int) for k in ("low", "high")) else "float"
            space[name] = (kind, value["low"], value["high"], bool(value.get("log", False)))
        else:
            raise DataError(
                f"search_space.{estimator_id}.{name}: give a list of choices or "
                f"{{low, high, log}}; found {value!r}"
            )
    return space


def suggest(trial: Any, space: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for name, spec in space.items():
        if spec[0] == "int":
            chosen[name] = trial.suggest_int(name, spec[1], spec[2], log=spec[3])
        elif spec[0] == "float":
            chosen[name] = trial.suggest_float(name, spec[1], spec[2], log=spec[3])
        else:
            chosen[name] = trial.suggest_categorical(name, spec[1])
    return chosen


def tune(session: Session, base: Candidate) -> Candidate:
    """Search ``base``'s space for ``n_iter`` trials; the tuned model if it scores better."""
    import optuna

    modeling = session.params.modeling_params
    space = space_for(base.id, modeling.search_space.get(base.id, {}))
    if not space:
        return base
    metric = session.main_metric
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction: Literal["maximize", "minimize"] = (
        "maximize" if better(metric, 1.0, 0.0) else "minimize"
    )
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.TPESampler(seed=modeling.session_id)
    )
    best: Candidate | None = None

    def objective(trial: Any) -> float:
        nonlocal best
        (candidate,) = score_estimators(session, [(base.id, suggest(trial, space))], "tuned")
        session.progress(f"tuning {base.id}", trial.number + 1, modeling.n_iter)
        value = candidate.mean_metrics[metric]
        if best is None or better(metric, value, best.mean_metrics[metric]):
            best = candidate
        return value

    study.optimize(objective, n_trials=modeling.n_iter)
    if best is not None and better(metric, best.mean_metrics[metric], base.mean_metrics[metric]):
        return best
    return base
