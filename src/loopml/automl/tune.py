"""PyCaret's ``tune_model`` on the shared folds: Optuna (TPE, random, grid) or scikit-learn.

Each trial cross-validates one parameter set on the folds every other
candidate used, so tuned and untuned scores compare like for like. Trials run
in this process (their folds on every core), on threads beside it over a
journal file study, or, with a :class:`StudyHost` (the training workers and a
study in PostgreSQL), in every idle worker. Only the best parameters are then
fitted on the whole training split. As PyCaret's ``choose_better``, the tuned
model is kept only if it beats the untuned one on the optimized metric.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from loopml.automl.compare import Candidate, candidate, first_error, fit_specs
from loopml.automl.config import TuneParams
from loopml.automl.metrics import better
from loopml.automl.session import Session
from loopml.automl.studies import (
    CLOSED,
    TrialRecord,
    TuningReport,
    best,
    distributions,
    figures,
    records,
    work_and_wait,
)
from loopml.automl.trials import (
    Dimension,
    Plan,
    TrialData,
    estimator_name,
    grid_of,
    objective,
    pruner_for,
    sampler_for,
)

log = logging.getLogger(__name__)
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
    problem_type: str,
    estimator_id: str,
    overrides: dict[str, Any],
    replace: dict[str, Any] | None = None,
) -> dict[str, Dimension]:
    """The default space for ``estimator_id`` updated by ``overrides`` or replaced by ``replace``.

    Entries were checked by :class:`~loopml.automl.config.TuneParams`: a list
    is a set of choices, ``{low, high, log}`` a range (integers if both ends
    are integers).
    """
    space = {} if replace else dict(SPACES[problem_type].get(estimator_id, {}))
    for name, value in (replace or overrides).items():
        if isinstance(value, list):
            space[name] = ("cat", value)
        else:
            low, high = value["low"], value["high"]
            kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
            space[name] = (kind, low, high, bool(value.get("log", False)))
    return space


class StudyHost(Protocol):
    """Where a distributed study lives and who works on it (the training workers)."""

    def storage(self) -> Any:
        """An Optuna storage every worker reaches, its schema already created."""

    def share(self, study: Any, plan: Plan, data: TrialData) -> None:
        """Store ``data`` once for the workers and record where on ``study``."""

    def fan_out(self, study_name: str, count: int) -> None:
        """Ask up to ``count`` idle workers to work on ``study_name``."""

    def study_name(self, estimator_id: str) -> str:
        """The study's name for this job and estimator (the same on a resumed job)."""

    def gate(self, study: Any) -> AbstractContextManager[Any]:
        """The lock every process takes to count ``study``'s trials and start one."""


def plan_for(session: Session, base: Candidate, tuning: TuneParams) -> Plan | None:
    """What to search for ``base``; ``None`` when its estimator has nothing to tune."""
    space = space_for(
        session.problem_type,
        base.id,
        tuning.search_space.get(base.id, {}),
        tuning.custom_grid.get(base.id),
    )
    if not space:
        return None
    n_iter = tuning.n_iter
    if tuning.algorithm == "grid":
        space = grid_of(space)
        size = 1
        for dimension in space.values():
            size *= len(dimension[1])
        n_iter = min(n_iter, size)
    return Plan(
        estimator_id=base.id,
        problem_type=session.problem_type,
        metric=tuning.optimize or session.main_metric,
        space={name: list(dim) for name, dim in space.items()},
        n_iter=n_iter,
        algorithm=tuning.algorithm,
        pruner=tuning.pruner,
        seed=session.seed,
        n_classes=session.n_classes,
        extra={"n_jobs": session.n_jobs},
    )


def tune(
    session: Session,
    base: Candidate,
    failures: dict[str, str] | None = None,
    host: StudyHost | None = None,
    say: Callable[[str], None] | None = None,
) -> Candidate:
    """Search ``base``'s space for ``n_iter`` trials; the tuned model if it scores better.

    The returned candidate (tuned, or ``base`` when kept) carries the
    :class:`~loopml.automl.studies.TuningReport` in ``tuning``. A trial whose
    parameters make the estimator fail is pruned; if all fail, ``base`` is kept
    and why is added to ``failures`` under ``<id>_tuned``. ``say`` receives
    what a person should read in the run's log (a fallback, a missing plot).
    """
    tuning = session.params.modeling_params.tuning
    assert tuning is not None
    plan = plan_for(session, base, tuning)
    if plan is None:
        return base
    tell = say or log.info
    if tuning.search_library == "scikit-learn":
        report = _sklearn_search(session, plan)
    elif tuning.distributed and host is not None:
        report = _distributed(session, plan, host)
    elif tuning.distributed:
        tell(
            f"tuning {base.id}: distributed trials need the metadata store on PostgreSQL and "
            f"training workers; running {plan.n_iter} trials in-process on {session.n_jobs} "
            "threads with a journal file study instead"
        )
        report = _journal(session, plan)
    else:
        report = _in_process(session, plan)
    for note in report.notes:
        tell(f"tuning {base.id}: {note}")
    base.tuning = report
    return _choose(session, base, plan, report, tuning.choose_better, failures)


def _choose(
    session: Session,
    base: Candidate,
    plan: Plan,
    report: TuningReport,
    choose_better: bool,
    failures: dict[str, str] | None,
) -> Candidate:
    winner = best(report.trials, plan)
    if winner is None:
        errors = [t.error for t in report.trials if t.error]
        if failures is not None:
            first = errors[0] if errors else "no trial finished"
            failures[f"{base.id}_tuned"] = f"every trial failed; the first: {first}"
        return base
    if choose_better and not better(
        plan.metric, winner.value or 0.0, base.mean_metrics[plan.metric]
    ):
        return base
    (fits,) = fit_specs(session, [(base.id, winner.params)], label="", folds="all")
    error = first_error(fits)
    if error is not None:
        if failures is not None:
            failures[f"{base.id}_tuned"] = error
        return base
    tuned = candidate(session, base.id, winner.params, "tuned", fits)
    tuned.params = {**tuned.params, "tuned_from": base.id}
    tuned.tuning = report
    base.tuning = None
    return tuned


def _progress(session: Session, plan: Plan, study: Any) -> Callable[[], None]:
    """Reports finished trials of the whole study (every worker's) and the best score so far."""
    from loopml.automl.studies import counts

    title = f"{plan.estimator_id} tuning {estimator_name(plan.problem_type, plan.estimator_id)}"

    def report() -> None:
        done, _ = counts(study)
        try:
            shown = f" (best {plan.metric} {study.best_value:.4f})"
        except ValueError:  # no completed trial yet
            shown = ""
        session.progress(title + shown, min(done, plan.n_iter), plan.n_iter)

    session.progress(title, 0, plan.n_iter)
    return report


def _study(
    plan: Plan, storage: Any = None, name: str | None = None, seed: int | None = None
) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction=plan.direction,
        sampler=sampler_for(plan, seed),
        pruner=pruner_for(plan),
        load_if_exists=name is not None,
    )


def _report(plan: Plan, study: Any, storage: str) -> TuningReport:
    notes: list[str] = []
    found = records(study)
    return TuningReport(
        plan.estimator_id, plan.metric, plan.n_iter, storage, found, figures(study, notes), notes
    )


def _in_process(session: Session, plan: Plan) -> TuningReport:
    """One trial at a time, each trial's folds on every core."""
    study = _study(plan, seed=plan.seed)
    func = objective(plan, TrialData.of(session), session.n_jobs, session.seed)
    work_and_wait(study, func, plan.n_iter, _progress(session, plan, study))
    return _report(plan, study, "in-memory")


def _journal(session: Session, plan: Plan) -> TuningReport:
    """Trials side by side on threads over a journal file study (one machine, no PostgreSQL)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    with tempfile.TemporaryDirectory(prefix="loopml-study-") as folder:
        path = str(Path(folder) / "study.log")
        storage = JournalStorage(JournalFileBackend(path, lock_obj=_thread_lock()))
        study = _study(plan, storage, f"loopml-{plan.estimator_id}", plan.seed)
        func = objective(plan, TrialData.of(session), 1, session.seed)
        after = _progress(session, plan, study)
        threads = max(1, min(session.n_jobs, plan.n_iter))

        def counted(trial: Any) -> float:
            value: float = func(trial)
            after()
            return value

        from loopml.automl.parallel import run_all

        run_all([(_thread_loop, (study, counted, plan.n_iter)) for _ in range(threads)], threads)
        return _report(plan, study, "journal file (in-process threads)")


def _thread_lock() -> Any:
    """A journal lock for threads of one process.

    Optuna's file locks back off up to a second per attempt under contention,
    which threads polling the same study hit all the time; a plain mutex
    serialises them without sleeping (only this process writes the file).
    """
    import threading

    from optuna.storages.journal._file import BaseJournalFileLock

    class ThreadLock(BaseJournalFileLock):
        def __init__(self) -> None:
            self._lock = threading.Lock()

        def acquire(self) -> bool:
            self._lock.acquire()
            return True

        def release(self) -> None:
            self._lock.release()

    return ThreadLock()


def _thread_loop(study: Any, func: Callable[[Any], float], n_iter: int) -> int:
    from loopml.automl.studies import work

    return work(study, func, n_iter, lambda: None)


def _distributed(session: Session, plan: Plan, host: StudyHost) -> TuningReport:
    """One study in the host's storage; this job and every idle training worker run trials."""
    name = host.study_name(plan.estimator_id)
    study = _study(plan, host.storage(), name, None)
    study.set_user_attr(CLOSED, False)  # a resumed job reopens its study
    host.share(study, plan, TrialData.of(session))
    host.fan_out(name, plan.n_iter - 1)
    func = objective(plan, TrialData.of(session), session.n_jobs, session.seed)
    try:
        with host.gate(study) as gate:
            work_and_wait(study, func, plan.n_iter, _progress(session, plan, study), gate=gate)
    finally:
        study.set_user_attr(CLOSED, True)
    return _report(plan, study, "distributed (training workers, PostgreSQL)")


def _sklearn_search(session: Session, plan: Plan) -> TuningReport:
    """scikit-learn's ParameterSampler or ParameterGrid, every (set, fold) fit in parallel."""
    import optuna
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    from loopml.automl.compare import fold_metrics, oof_scores

    space = plan.dimensions()
    if plan.algorithm == "grid":
        sets = list(ParameterGrid({name: dim[1] for name, dim in space.items()}))[: plan.n_iter]
    else:
        sets = list(ParameterSampler(_scipy(space), n_iter=plan.n_iter, random_state=plan.seed))
        sets = [_typed(space, chosen) for chosen in sets]
    results = fit_specs(
        session,
        [(plan.estimator_id, chosen) for chosen in sets],
        label=f"tuning ({len(sets)} parameter sets)",
        folds="cv",
    )
    study = optuna.create_study(direction=plan.direction)
    found: list[TrialRecord] = []
    known = distributions(space)
    for number, (chosen, fits) in enumerate(zip(sets, results, strict=True)):
        error = first_error(fits)
        seconds = float(sum(f.seconds for f in fits))
        if error is not None:
            found.append(
                TrialRecord(number, "PRUNED", chosen, None, {}, seconds, None, None, error)
            )
            continue
        metrics = fold_metrics(session, oof_scores(session, [f.scores for f in fits]))
        value = float(sum(metrics[plan.metric]) / len(fits))
        found.append(TrialRecord(number, "COMPLETE", chosen, value, metrics, seconds, None, None))
        study.add_trial(
            optuna.trial.create_trial(
                params=chosen,
                distributions={k: known[k] for k in chosen},
                value=value,
            )
        )
    notes: list[str] = []
    return TuningReport(
        plan.estimator_id,
        plan.metric,
        plan.n_iter,
        "scikit-learn",
        found,
        figures(study, notes),
        notes,
    )


def _scipy(space: dict[str, Dimension]) -> dict[str, Any]:
    from scipy import stats

    found: dict[str, Any] = {}
    for name, dimension in space.items():
        if dimension[0] == "cat":
            found[name] = list(dimension[1])
        elif dimension[3]:
            found[name] = stats.loguniform(dimension[1], dimension[2])
        elif dimension[0] == "int":
            found[name] = stats.randint(dimension[1], dimension[2] + 1)
        else:
            found[name] = stats.uniform(dimension[1], dimension[2] - dimension[1])
    return found


def _typed(space: dict[str, Dimension], chosen: dict[str, Any]) -> dict[str, Any]:
    """Plain Python values (a log-uniform int range is drawn as a float)."""
    typed: dict[str, Any] = {}
    for name, value in chosen.items():
        kind = space[name][0]
        if kind == "int":
            typed[name] = round(float(value))
        elif kind == "float":
            typed[name] = float(value)
        else:
            typed[name] = value.item() if hasattr(value, "item") else value
    return typed
