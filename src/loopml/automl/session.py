"""The data every candidate is scored on: the split, and each fold prepared once.

A :class:`Session` is built before any estimator is fitted: the data are
checked and split, the stages are planned from the columns, and each fold's
preprocessing, resampling and PCA are fitted once, in parallel. Estimators,
tuning trials and ensembles then all read the same prepared folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loopml.automl.config import TrainParams
from loopml.automl.data import Split, split_data
from loopml.automl.folds import FINAL, PreparedFold, prepare_fold, splitter
from loopml.automl.parallel import Task, default_jobs, run_unordered
from loopml.automl.preprocess import Stages, build_stages, plan_columns
from loopml.core.context import ProgressCallback


@dataclass
class Session:
    """The data and the prepared folds every candidate is scored on."""

    problem_type: str
    main_metric: str
    params: TrainParams
    split: Split
    stages: Stages
    folds: list[PreparedFold]
    final: PreparedFold
    feature_names: list[str]
    n_jobs: int
    progress: ProgressCallback

    @property
    def classification(self) -> bool:
        return self.problem_type == "classification"

    @property
    def n_classes(self) -> int:
        return len(self.split.labels)

    @property
    def labels(self) -> np.ndarray:
        return self.split.labels

    @property
    def y_train(self) -> np.ndarray:
        return self.split.y_train

    @property
    def y_holdout(self) -> np.ndarray:
        return self.split.y_holdout

    @property
    def seed(self) -> int | None:
        return self.params.modeling_params.session_id


def start_session(
    frame: pd.DataFrame,
    target: str,
    problem_type: str,
    main_metric: str,
    params: TrainParams,
    n_jobs: int | None,
    progress: ProgressCallback,
) -> Session:
    """Check the data, split off the holdout, and prepare every fold once."""
    modeling = params.modeling_params
    split = split_data(frame, target, problem_type, params)
    plan = plan_columns(split.X_train, params.feature_engineering_params)
    stages = build_stages(
        plan, params.feature_engineering_params, problem_type, modeling.session_id
    )
    jobs = n_jobs or modeling.n_jobs or default_jobs()
    cv = splitter(
        problem_type,
        modeling.fold,
        modeling.fold_strategy,
        modeling.fold_shuffle,
        modeling.session_id,
    )
    rows = [
        (i, train, valid) for i, (train, valid) in enumerate(cv.split(split.X_train, split.y_train))
    ]
    rows.append((FINAL, np.arange(len(split.y_train)), np.arange(0)))
    tasks: list[Task] = [
        (
            prepare_fold,
            (
                i,
                split.X_train,
                split.y_train,
                train,
                valid,
                stages,
                split.X_holdout if i == FINAL else None,
            ),
        )
        for i, train, valid in rows
    ]
    progress("preparing folds", 0, len(tasks))
    prepared: list[PreparedFold] = []
    for _, fold in run_unordered(tasks, jobs):
        prepared.append(fold)
        progress("preparing folds", len(prepared), len(tasks))
    folds = sorted((p for p in prepared if p.index != FINAL), key=lambda p: p.index)
    final = next(p for p in prepared if p.index == FINAL)
    return Session(
        problem_type,
        main_metric,
        params,
        split,
        stages,
        folds,
        final,
        _feature_names(final),
        jobs,
        progress,
    )


def _feature_names(fold: PreparedFold) -> list[str]:
    """The names of the columns estimators see, or ``x0..`` when a step cannot name them."""
    try:
        names = fold.preprocess.get_feature_names_out()
        if fold.transform is not None:
            names = fold.transform.get_feature_names_out(names)
        return [str(name) for name in names]
    except (AttributeError, ValueError, TypeError):
        return [f"x{i}" for i in range(fold.X_train.shape[1])]
